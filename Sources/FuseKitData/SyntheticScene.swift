import Foundation
import FuseKitImage
import FuseKitTensor

/// Segmentation classes of the synthetic scenes.
public enum SceneClass: Int32, Sendable, CaseIterable {
    /// Sky and open ground.
    case background = 0
    /// People (warm in infrared).
    case person = 1
    /// Cars (warm in infrared).
    case car = 2
    /// The road (asphalt with lane markings visible only in the visible image).
    case road = 3
    /// Buildings (window grids, lit windows at night).
    case building = 4
    /// Trees and bushes (fine leaf texture in the visible image, cool in infrared).
    case vegetation = 5

    /// Class names in index order, for reports.
    public static let names = ["background", "person", "car", "road", "building", "vegetation"]

    /// Detection class names of the scenes' boxes, in index order (person 0, car 1).
    public static let detectionNames = ["person", "car"]

    /// The detection class index of a class that has boxes (person 0, car 1), else nil.
    public var detectionIndex: Int? {
        switch self {
        case .person: return 0
        case .car: return 1
        default: return nil
        }
    }
}

/// Lighting of a synthetic scene.
public enum TimeOfDay: String, Sendable, CaseIterable {
    /// Bright, high-contrast visible image.
    case day
    /// Dark, noisy, low-contrast visible image (warm objects nearly invisible in it) with a few
    /// light sources (lit windows, car lights); the infrared image changes little.
    case night
}

/// One procedurally generated infrared/visible scene with its labels.
public struct SyntheticScene: Sendable {
    /// Infrared image, one channel in [0, 1].
    public var infrared: Image
    /// Visible image in colour (RGB) in [0, 1].
    public var visible: Image
    /// Segmentation mask with ``SceneClass`` indices.
    public var segmentation: LabelMap
    /// 1 where a warm object (person or car) is, else 0.
    public var warmMask: LabelMap
    /// Boxes of people (class 0) and cars (class 1), normalised, YOLO style.
    public var boxes: [BoundingBox]
    /// Day or night.
    public var timeOfDay: TimeOfDay
    /// The seed that produced the scene.
    public var seed: UInt64

    /// The visible image as rounded gray levels / 255 (TDFusion's training input).
    public var visibleGray: Image { visible.grayscale() }

    /// The infrared image as rounded gray levels / 255.
    public var infraredGray: Image { infrared.grayscale() }

    /// The scene as a training sample (gray sources as they would be read back from 8-bit files).
    public func sample(name: String, includeColor: Bool = false) -> PairedSample {
        PairedSample(name: name, infrared: infraredGray, visible: visibleGray,
                     visibleColor: includeColor ? visible : nil, segmentation: segmentation, boxes: boxes)
    }
}

/// Procedural paired infrared/visible street scenes with segmentation masks and boxes,
/// deterministic for a seed, of any size.
///
/// A scene has a sky, ground, a road in perspective with lane markings, buildings with window
/// grids on the horizon, trees and bushes, cars on the road and people. Warm objects (people,
/// cars) are bright in infrared; at night the visible image is dark, noisy and shows them with
/// little contrast, while fine textures and edges (leaves, windows, lane markings, brick) exist
/// only in the visible image. Both images carry sensor noise; the infrared one is also slightly
/// blurred and has column (fixed-pattern) noise.
public struct SyntheticSceneGenerator: Sendable {
    /// Image width in pixels.
    public var width: Int
    /// Image height in pixels.
    public var height: Int
    /// Probability that a scene is at night when the time of day is not given.
    public var nightProbability: Double

    /// A generator of `width` x `height` scenes (at least 32 x 32).
    public init(width: Int = 256, height: Int = 256, nightProbability: Double = 0.5) {
        precondition(width >= 32 && height >= 32, "SyntheticSceneGenerator: scenes are at least 32x32, got \(width)x\(height)")
        self.width = width
        self.height = height
        self.nightProbability = nightProbability
    }

    /// The scene of `seed` (the time of day drawn from the seed unless given).
    public func scene(seed: UInt64, timeOfDay: TimeOfDay? = nil) -> SyntheticScene {
        var painter = ScenePainter(width: width, height: height, seed: seed)
        var random = RandomGenerator(seed: seed)
        let night = timeOfDay.map { $0 == .night } ?? (Double(random.nextUniform()) < nightProbability)
        painter.paint(night: night, random: &random)
        return painter.finish(night: night, random: &random, seed: seed)
    }

    /// `count` scenes from seeds derived from `seed`, generated on all cores.
    public func scenes(count: Int, seed: UInt64, timeOfDay: TimeOfDay? = nil) -> [SyntheticScene] {
        let seeds = Self.sceneSeeds(count: count, seed: seed)
        var results = [SyntheticScene?](repeating: nil, count: count)
        let generator = self
        results.withUnsafeMutableBufferPointer { buffer in
            let output = SceneSlots(buffer.baseAddress!)
            Parallel.forEach(count, itemCost: width * height * 40) { i in
                (output.base + i).pointee = generator.scene(seed: seeds[i], timeOfDay: timeOfDay)
            }
        }
        return results.map { $0! }
    }

    /// `count` scenes as in-memory training samples named `00000`, `00001`, ...
    public func samples(count: Int, seed: UInt64, includeColor: Bool = false) -> InMemorySamples {
        InMemorySamples(scenes(count: count, seed: seed).enumerated().map { index, scene in
            scene.sample(name: String(format: "%05d", index), includeColor: includeColor)
        })
    }

    /// Writes `count` scenes to `folder` in TDFusion's `{ir, vi, label}` layout, plus `boxes/`
    /// (YOLO text, person 0, car 1): `ir/NNNNN.png` (8-bit gray), `vi/NNNNN.png` (8-bit RGB),
    /// `label/NNNNN.png` (8-bit class indices), `boxes/NNNNN.txt`. Returns the file stems.
    @discardableResult
    public func writeDataset(count: Int, to folder: URL, seed: UInt64) throws -> [String] {
        let manager = FileManager.default
        for sub in ["ir", "vi", "label", "boxes"] {
            try manager.createDirectory(at: folder.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        var names: [String] = []
        let seeds = Self.sceneSeeds(count: count, seed: seed)
        for (index, sceneSeed) in seeds.enumerated() {
            let name = String(format: "%05d", index)
            let scene = self.scene(seed: sceneSeed)
            try scene.infrared.write(to: folder.appendingPathComponent("ir/\(name).png"))
            try scene.visible.write(to: folder.appendingPathComponent("vi/\(name).png"))
            try scene.segmentation.write(to: folder.appendingPathComponent("label/\(name).png"))
            try YOLOLabels.write(scene.boxes, to: folder.appendingPathComponent("boxes/\(name).txt"))
            names.append(name)
        }
        return names
    }

    static func sceneSeeds(count: Int, seed: UInt64) -> [UInt64] {
        var random = RandomGenerator(seed: seed)
        return (0..<count).map { _ in random.next() }
    }
}

private struct SceneSlots: @unchecked Sendable {
    let base: UnsafeMutablePointer<SyntheticScene?>
    init(_ base: UnsafeMutablePointer<SyntheticScene?>) { self.base = base }
}

// MARK: - Painting

/// Rasterises one scene: class, instance, infrared and visible layers, painted back to front.
private struct ScenePainter {
    let width: Int
    let height: Int
    let seed: UInt64
    var label: [Int32]
    var instance: [Int32]
    var infrared: [Float]
    var red: [Float]
    var green: [Float]
    var blue: [Float]
    /// Light sources keep their brightness at night.
    var emissive: [Bool]
    var instanceClasses: [SceneClass] = []

    init(width: Int, height: Int, seed: UInt64) {
        self.width = width
        self.height = height
        self.seed = seed
        let n = width * height
        label = [Int32](repeating: 0, count: n)
        instance = [Int32](repeating: -1, count: n)
        infrared = [Float](repeating: 0, count: n)
        red = [Float](repeating: 0, count: n)
        green = [Float](repeating: 0, count: n)
        blue = [Float](repeating: 0, count: n)
        emissive = [Bool](repeating: false, count: n)
    }

    // Deterministic hash noise in [0, 1).
    func hash(_ x: Int, _ y: Int, _ salt: UInt64) -> Float {
        var h = seed &* 0x9E37_79B9_7F4A_7C15 ^ salt &* 0xC2B2_AE3D_27D4_EB4F
        h ^= UInt64(bitPattern: Int64(x)) &* 0x1656_67B1_9E37_79F9
        h ^= UInt64(bitPattern: Int64(y)) &* 0x27D4_EB2F_1656_67C5
        h = (h ^ (h >> 33)) &* 0xFF51_AFD7_ED55_8CCD
        h = (h ^ (h >> 33)) &* 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return Float(h >> 40) / 16_777_216
    }

    /// Smooth value noise with cells of `cell` pixels, in [0, 1).
    func valueNoise(_ x: Int, _ y: Int, cell: Float, salt: UInt64) -> Float {
        let fx = Float(x) / cell, fy = Float(y) / cell
        let x0 = Int(fx.rounded(.down)), y0 = Int(fy.rounded(.down))
        var tx = fx - Float(x0), ty = fy - Float(y0)
        tx = tx * tx * (3 - 2 * tx)
        ty = ty * ty * (3 - 2 * ty)
        let a = hash(x0, y0, salt), b = hash(x0 + 1, y0, salt)
        let c = hash(x0, y0 + 1, salt), d = hash(x0 + 1, y0 + 1, salt)
        return (a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty
    }

    var scale: Float { Float(height) / 256 }

    mutating func set(_ x: Int, _ y: Int, cls: SceneClass, instance id: Int32 = -1, ir: Float,
                      rgb: (Float, Float, Float), lit: Bool = false) {
        let i = y * width + x
        label[i] = cls.rawValue
        instance[i] = id
        infrared[i] = ir
        red[i] = rgb.0
        green[i] = rgb.1
        blue[i] = rgb.2
        emissive[i] = lit
    }

    mutating func newInstance(_ cls: SceneClass) -> Int32 {
        instanceClasses.append(cls)
        return Int32(instanceClasses.count - 1)
    }

    func clampedRange(_ low: Float, _ high: Float, limit: Int) -> Range<Int> {
        let a = max(0, Int(low.rounded(.down))), b = min(limit, Int(high.rounded(.up)) + 1)
        return a < b ? a..<b : 0..<0
    }

    // MARK: Scene

    mutating func paint(night: Bool, random: inout RandomGenerator) {
        let horizon = Float(height) * (0.35 + 0.15 * random.nextUniform())
        let vanishingX = Float(width) * (0.3 + 0.4 * random.nextUniform())
        let roadBottomHalfWidth = Float(width) * (0.25 + 0.15 * random.nextUniform())
        let roadBottomCenter = Float(width) * (0.35 + 0.3 * random.nextUniform())

        paintSkyAndGround(horizon: horizon, night: night)
        paintBuildings(horizon: horizon, night: night, random: &random)
        paintRoad(horizon: horizon, vanishingX: vanishingX, bottomCenter: roadBottomCenter,
                  bottomHalfWidth: roadBottomHalfWidth, night: night)
        let (sceneWidth, sceneHeight) = (width, height)
        paintVegetation(horizon: horizon, night: night, random: &random, roadAt: { y in
            Self.roadSpan(y: y, width: sceneWidth, height: sceneHeight, horizon: horizon, vanishingX: vanishingX,
                          bottomCenter: roadBottomCenter, bottomHalfWidth: roadBottomHalfWidth)
        })

        // Warm objects, far (small) to near (large).
        var objects: [(y: Float, isCar: Bool)] = []
        let carCount = 1 + random.nextInt(below: 3)
        let personCount = 1 + random.nextInt(below: 4)
        for _ in 0..<carCount { objects.append((horizon + (Float(height) - horizon) * (0.2 + 0.75 * random.nextUniform()), true)) }
        for _ in 0..<personCount { objects.append((horizon + (Float(height) - horizon) * (0.15 + 0.8 * random.nextUniform()), false)) }
        objects.sort { $0.y < $1.y }
        for object in objects {
            let span = roadSpan(y: object.y, horizon: horizon, vanishingX: vanishingX, bottomCenter: roadBottomCenter,
                                bottomHalfWidth: roadBottomHalfWidth)
            let depth = (object.y - horizon) / (Float(height) - horizon)
            if object.isCar {
                let carWidth = Float(width) * (0.08 + 0.22 * depth) * (0.85 + 0.3 * random.nextUniform())
                let center = span.lowerBound + (span.upperBound - span.lowerBound) * (0.25 + 0.5 * random.nextUniform())
                paintCar(centerX: center, bottom: object.y, carWidth: carWidth, night: night, random: &random)
            } else {
                let personHeight = Float(height) * (0.08 + 0.28 * depth) * (0.85 + 0.3 * random.nextUniform())
                // People walk beside the road more often than on it.
                let side = random.nextUniform()
                let margin = personHeight * 0.6
                var center: Float
                if side < 0.4 {
                    center = span.lowerBound - margin * (0.5 + random.nextUniform())
                } else if side < 0.8 {
                    center = span.upperBound + margin * (0.5 + random.nextUniform())
                } else {
                    center = span.lowerBound + (span.upperBound - span.lowerBound) * random.nextUniform()
                }
                center = min(max(center, personHeight * 0.2), Float(width) - personHeight * 0.2)
                paintPerson(centerX: center, bottom: object.y, personHeight: personHeight, random: &random)
            }
        }
    }

    func roadSpan(y: Float, horizon: Float, vanishingX: Float, bottomCenter: Float, bottomHalfWidth: Float) -> ClosedRange<Float> {
        Self.roadSpan(y: y, width: width, height: height, horizon: horizon, vanishingX: vanishingX,
                      bottomCenter: bottomCenter, bottomHalfWidth: bottomHalfWidth)
    }

    /// The road's horizontal extent at row `y` (a trapezoid from the vanishing point down).
    static func roadSpan(y: Float, width: Int, height: Int, horizon: Float, vanishingX: Float, bottomCenter: Float,
                         bottomHalfWidth: Float) -> ClosedRange<Float> {
        let t = max(0, (y - horizon) / (Float(height) - horizon))
        let center = vanishingX + (bottomCenter - vanishingX) * t
        let half = Float(width) * 0.01 + bottomHalfWidth * t
        return (center - half)...(center + half)
    }

    mutating func paintSkyAndGround(horizon: Float, night: Bool) {
        let h = Int(horizon)
        for y in 0..<height {
            for x in 0..<width {
                if y < h {
                    let t = Float(y) / max(horizon, 1)
                    let ir: Float = (night ? 0.06 : 0.12) + 0.08 * t + 0.02 * valueNoise(x, y, cell: 40 * scale, salt: 1)
                    var rgb: (Float, Float, Float) = (0.45 + 0.35 * t, 0.62 + 0.25 * t, 0.92 + 0.05 * t)
                    if !night {
                        let cloud = max(0, valueNoise(x, y, cell: 30 * scale, salt: 2) - 0.55) * 1.6
                        rgb = (rgb.0 + cloud, rgb.1 + cloud, rgb.2 + cloud * 0.3)
                    }
                    // Night: stars are visible-only point sources.
                    let star = night && hash(x, y, 3) > 0.9985
                    set(x, y, cls: .background, ir: ir, rgb: star ? (0.9, 0.9, 0.85) : rgb, lit: star)
                } else {
                    let grain = valueNoise(x, y, cell: 6 * scale, salt: 4)
                    let patch = valueNoise(x, y, cell: 50 * scale, salt: 5)
                    let ir: Float = (night ? 0.24 : 0.42) + 0.08 * patch
                    let g: Float = 0.32 + 0.12 * patch + 0.1 * grain
                    set(x, y, cls: .background, ir: ir, rgb: (g * 1.05, g * 1.15, g * 0.65))
                }
            }
        }
    }

    mutating func paintRoad(horizon: Float, vanishingX: Float, bottomCenter: Float, bottomHalfWidth: Float, night: Bool) {
        for y in max(0, Int(horizon))..<height {
            let span = roadSpan(y: Float(y) + 0.5, horizon: horizon, vanishingX: vanishingX, bottomCenter: bottomCenter,
                                bottomHalfWidth: bottomHalfWidth)
            let t = (Float(y) - horizon) / (Float(height) - horizon)
            let center = (span.lowerBound + span.upperBound) / 2
            let markingHalf = max(0.5, (span.upperBound - span.lowerBound) * 0.012)
            // Dashes: periodic in the inverse depth, so they shorten towards the horizon.
            let dash = sin(1 / max(t, 0.02) * 3) > 0.1
            for x in clampedRange(span.lowerBound, span.upperBound, limit: width) where Float(x) + 0.5 >= span.lowerBound && Float(x) + 0.5 <= span.upperBound {
                let grain = hash(x, y, 6)
                var v: Float = 0.36 + 0.06 * grain + 0.04 * valueNoise(x, y, cell: 25 * scale, salt: 7)
                let edge = min(Float(x) + 0.5 - span.lowerBound, span.upperBound - Float(x) - 0.5)
                let isMarking = (dash && abs(Float(x) + 0.5 - center) <= markingHalf) || edge < markingHalf * 1.2
                if isMarking { v = 0.85 }
                let ir: Float = (night ? 0.33 : 0.58) + 0.03 * valueNoise(x, y, cell: 30 * scale, salt: 8) + (isMarking ? 0.01 : 0)
                set(x, y, cls: .road, ir: ir, rgb: (v, v, v * 1.02))
            }
        }
    }

    mutating func paintBuildings(horizon: Float, night: Bool, random: inout RandomGenerator) {
        let count = 2 + random.nextInt(below: 4)
        for _ in 0..<count {
            let buildingWidth = Float(width) * (0.1 + 0.18 * random.nextUniform())
            let left = Float(width) * random.nextUniform() - buildingWidth * 0.3
            let top = horizon - Float(height) * (0.12 + 0.25 * random.nextUniform())
            let bottom = horizon + Float(height) * 0.02
            let palette: [(Float, Float, Float)] = [(0.62, 0.55, 0.45), (0.55, 0.55, 0.57), (0.6, 0.33, 0.25), (0.75, 0.72, 0.65)]
            let facade = palette[random.nextInt(below: palette.count)]
            let facadeIR: Float = (night ? 0.38 : 0.5) + 0.06 * random.nextUniform()
            let windowSize = max(2, 6 * scale * (0.8 + 0.4 * random.nextUniform()))
            let pitch = windowSize * 2
            let salt = UInt64(random.nextInt(below: 1 << 30))
            for y in clampedRange(top, bottom, limit: height) {
                for x in clampedRange(left, left + buildingWidth, limit: width) {
                    let lx = Float(x) - left, ly = Float(y) - top
                    guard lx >= 0, lx < buildingWidth, ly >= 0, Float(y) < bottom else { continue }
                    let inWindowColumn = lx.truncatingRemainder(dividingBy: pitch) >= windowSize * 0.5
                        && lx.truncatingRemainder(dividingBy: pitch) < windowSize * 1.5 && lx > windowSize * 0.5
                        && lx < buildingWidth - windowSize * 0.5
                    let inWindowRow = ly.truncatingRemainder(dividingBy: pitch) >= windowSize * 0.5
                        && ly.truncatingRemainder(dividingBy: pitch) < windowSize * 1.5 && ly < (bottom - top) - windowSize
                    let brick = 0.04 * hash(x / max(1, Int(2 * scale)), y, salt)
                    if inWindowColumn && inWindowRow {
                        let cellX = Int(lx / pitch), cellY = Int(ly / pitch)
                        let lit = night && hash(cellX, cellY, salt &+ 1) > 0.6
                        let rgb: (Float, Float, Float) = lit ? (0.95, 0.85, 0.5) : (0.18, 0.22, 0.28)
                        set(x, y, cls: .building, ir: facadeIR + (lit ? 0.06 : -0.02), rgb: rgb, lit: lit)
                    } else {
                        set(x, y, cls: .building, ir: facadeIR,
                            rgb: (facade.0 + brick, facade.1 + brick, facade.2 + brick))
                    }
                }
            }
        }
    }

    mutating func paintVegetation(horizon: Float, night: Bool, random: inout RandomGenerator, roadAt: (Float) -> ClosedRange<Float>) {
        let treeCount = 2 + random.nextInt(below: 5)
        for _ in 0..<treeCount {
            // Trees stand on the ground near the horizon or by the road.
            let baseY = horizon + (Float(height) - horizon) * 0.4 * random.nextUniform()
            let span = roadAt(baseY)
            var x = Float(width) * random.nextUniform()
            if span.contains(x) { x = random.nextUniform() < 0.5 ? span.lowerBound - 10 * scale : span.upperBound + 10 * scale }
            let depth = (baseY - horizon) / (Float(height) - horizon)
            let radius = Float(height) * (0.05 + 0.12 * (0.3 + depth)) * (0.7 + 0.6 * random.nextUniform())
            let trunkHeight = radius * 0.9
            let canopyY = baseY - trunkHeight - radius * 0.6
            let blobs = (0..<3).map { _ in
                (x + radius * 0.6 * (random.nextUniform() - 0.5), canopyY + radius * 0.5 * (random.nextUniform() - 0.5),
                 radius * (0.6 + 0.4 * random.nextUniform()))
            }
            paintFoliage(blobs: blobs, trunk: (x, baseY, radius * 0.15, trunkHeight), night: night)
        }
        let bushCount = random.nextInt(below: 4)
        for _ in 0..<bushCount {
            let baseY = horizon + (Float(height) - horizon) * (0.3 + 0.7 * random.nextUniform())
            let span = roadAt(baseY)
            let depth = (baseY - horizon) / (Float(height) - horizon)
            let radius = Float(height) * (0.03 + 0.06 * depth)
            let x = random.nextUniform() < 0.5 ? span.lowerBound - radius * 1.5 : span.upperBound + radius * 1.5
            let blobs = (0..<2).map { k in (x + radius * Float(k) * 0.8, baseY - radius * 0.6, radius) }
            paintFoliage(blobs: blobs, trunk: nil, night: night)
        }
    }

    mutating func paintFoliage(blobs: [(Float, Float, Float)], trunk: (x: Float, bottom: Float, halfWidth: Float, height: Float)?, night: Bool) {
        if let trunk {
            for y in clampedRange(trunk.bottom - trunk.height, trunk.bottom, limit: height) {
                for x in clampedRange(trunk.x - trunk.halfWidth, trunk.x + trunk.halfWidth, limit: width)
                where abs(Float(x) + 0.5 - trunk.x) <= trunk.halfWidth && Float(y) <= trunk.bottom {
                    set(x, y, cls: .vegetation, ir: night ? 0.26 : 0.38, rgb: (0.3, 0.2, 0.12))
                }
            }
        }
        let minX = blobs.map { $0.0 - $0.2 }.min()!, maxX = blobs.map { $0.0 + $0.2 }.max()!
        let minY = blobs.map { $0.1 - $0.2 }.min()!, maxY = blobs.map { $0.1 + $0.2 }.max()!
        for y in clampedRange(minY, maxY, limit: height) {
            for x in clampedRange(minX, maxX, limit: width) {
                let px = Float(x) + 0.5, py = Float(y) + 0.5
                // Ragged outline: the radius wobbles with fine noise.
                let wobble = 1 + 0.15 * (valueNoise(x, y, cell: 3 * scale, salt: 9) - 0.5)
                guard blobs.contains(where: { (px - $0.0) * (px - $0.0) + (py - $0.1) * (py - $0.1) <= $0.2 * $0.2 * wobble * wobble }) else { continue }
                let leaves = hash(x, y, 10) * 0.5 + valueNoise(x, y, cell: 2.5 * scale, salt: 11) * 0.5
                let shade = 0.55 + 0.6 * leaves
                let ir: Float = (night ? 0.18 : 0.3) + 0.05 * valueNoise(x, y, cell: 8 * scale, salt: 12)
                set(x, y, cls: .vegetation, ir: ir, rgb: (0.16 * shade, 0.42 * shade, 0.12 * shade))
            }
        }
    }

    mutating func paintCar(centerX: Float, bottom: Float, carWidth: Float, night: Bool, random: inout RandomGenerator) {
        let id = newInstance(.car)
        let carHeight = carWidth * (0.55 + 0.1 * random.nextUniform())
        let left = centerX - carWidth / 2, top = bottom - carHeight
        let bodyTop = top + carHeight * 0.4
        let cabinInset = carWidth * (0.15 + 0.05 * random.nextUniform())
        let palette: [(Float, Float, Float)] = [(0.75, 0.1, 0.1), (0.1, 0.2, 0.6), (0.85, 0.85, 0.85), (0.08, 0.08, 0.1), (0.5, 0.5, 0.52)]
        let paint = palette[random.nextInt(below: palette.count)]
        let wheelRadius = carHeight * 0.2
        let facingAway = random.nextUniform() < 0.5
        for y in clampedRange(top, bottom, limit: height) {
            for x in clampedRange(left, left + carWidth, limit: width) {
                let px = Float(x) + 0.5, py = Float(y) + 0.5
                guard px >= left, px <= left + carWidth, py >= top, py <= bottom else { continue }
                let wheelCenters = [left + carWidth * 0.22, left + carWidth * 0.78]
                let wheelY = bottom - wheelRadius
                let inWheel = wheelCenters.contains { (px - $0) * (px - $0) + (py - wheelY) * (py - wheelY) <= wheelRadius * wheelRadius }
                let inBody = py >= bodyTop && py <= bottom - wheelRadius * 0.6
                let inCabin = py < bodyTop && px >= left + cabinInset && px <= left + carWidth - cabinInset
                    && (py - top) >= (abs(px - centerX) - (carWidth / 2 - cabinInset * 1.6)) * 0.8
                guard inWheel || inBody || inCabin else { continue }
                if inWheel {
                    set(x, y, cls: .car, instance: id, ir: night ? 0.86 : 0.9, rgb: (0.05, 0.05, 0.05))
                } else if inCabin {
                    let glass = py > top + carHeight * 0.08 && px > left + cabinInset * 1.3 && px < left + carWidth - cabinInset * 1.3
                    set(x, y, cls: .car, instance: id, ir: glass ? 0.5 : 0.66, rgb: glass ? (0.15, 0.2, 0.25) : paint)
                } else {
                    // Engine heat and a lamp at each end of the body.
                    let lampZone = py < bodyTop + carHeight * 0.15 && (px < left + carWidth * 0.12 || px > left + carWidth * 0.88)
                    let heat = 0.1 * (1 - (py - bodyTop) / max(1, bottom - bodyTop))
                    if lampZone {
                        let rgb: (Float, Float, Float) = facingAway ? (1.0, 0.15, 0.1) : (1.0, 1.0, 0.85)
                        set(x, y, cls: .car, instance: id, ir: 0.8, rgb: night ? rgb : (0.9, 0.9, 0.8), lit: night)
                    } else {
                        let shine = 0.08 * hash(x / 2, y / 2, 13)
                        set(x, y, cls: .car, instance: id, ir: (night ? 0.7 : 0.74) + heat,
                            rgb: (paint.0 + shine, paint.1 + shine, paint.2 + shine))
                    }
                }
            }
        }
    }

    mutating func paintPerson(centerX: Float, bottom: Float, personHeight: Float, random: inout RandomGenerator) {
        let id = newInstance(.person)
        let headRadius = personHeight * 0.075
        let headY = bottom - personHeight + headRadius
        let shoulder = personHeight * 0.13
        let torsoTop = headY + headRadius * 1.1, torsoBottom = bottom - personHeight * 0.45
        let legGap = personHeight * 0.02, legWidth = personHeight * 0.06
        let stride = personHeight * 0.06 * (random.nextUniform() - 0.5)
        let shirts: [(Float, Float, Float)] = [(0.8, 0.2, 0.2), (0.2, 0.3, 0.7), (0.9, 0.9, 0.85), (0.15, 0.15, 0.15), (0.3, 0.55, 0.3)]
        let shirt = shirts[random.nextInt(below: shirts.count)]
        let trousers: (Float, Float, Float) = random.nextUniform() < 0.5 ? (0.15, 0.18, 0.35) : (0.25, 0.22, 0.2)
        for y in clampedRange(bottom - personHeight, bottom, limit: height) {
            for x in clampedRange(centerX - shoulder, centerX + shoulder, limit: width) {
                let px = Float(x) + 0.5, py = Float(y) + 0.5
                let dx = px - centerX
                if dx * dx + (py - headY) * (py - headY) <= headRadius * headRadius {
                    set(x, y, cls: .person, instance: id, ir: 0.97, rgb: (0.85, 0.65, 0.5))
                } else if py >= torsoTop && py <= torsoBottom && abs(dx) <= shoulder * (py < torsoTop + headRadius ? 0.8 : 1) {
                    set(x, y, cls: .person, instance: id, ir: 0.84 + 0.04 * hash(x, y, 14), rgb: shirt)
                } else if py > torsoBottom && py <= bottom {
                    let t = (py - torsoBottom) / max(1, bottom - torsoBottom)
                    let leftLeg = abs(dx + legGap + legWidth / 2 + stride * t) <= legWidth / 2
                    let rightLeg = abs(dx - legGap - legWidth / 2 - stride * t) <= legWidth / 2
                    if leftLeg || rightLeg {
                        set(x, y, cls: .person, instance: id, ir: 0.8, rgb: trousers)
                    }
                }
            }
        }
    }

    // MARK: Sensors

    mutating func finish(night: Bool, random: inout RandomGenerator, seed: UInt64) -> SyntheticScene {
        let n = width * height
        // Infrared: slight optical blur, column fixed-pattern noise, temporal noise.
        var blurred = [Float](repeating: 0, count: n)
        for y in 0..<height {
            for x in 0..<width {
                var sum: Float = 0, weight: Float = 0
                for dy in -1...1 {
                    for dx in -1...1 {
                        let xx = x + dx, yy = y + dy
                        guard xx >= 0, yy >= 0, xx < width, yy < height else { continue }
                        let w: Float = (dx == 0 ? 2 : 1) * (dy == 0 ? 2 : 1)
                        sum += w * infrared[yy * width + xx]
                        weight += w
                    }
                }
                blurred[y * width + x] = sum / weight
            }
        }
        let columnOffsets = (0..<width).map { _ in 0.008 * random.nextNormal() }
        var ir = [Float](repeating: 0, count: n)
        for i in 0..<n {
            ir[i] = min(max(blurred[i] + columnOffsets[i % width] + 0.012 * random.nextNormal(), 0), 1)
        }

        // Visible: night gain on reflected light, then shot-like noise.
        let gain: Float = night ? 0.12 + 0.06 * random.nextUniform() : 0.9 + 0.1 * random.nextUniform()
        let noise: Float = night ? 0.018 : 0.01
        var rgb = [Float](repeating: 0, count: 3 * n)
        let channels = [red, green, blue]
        for c in 0..<3 {
            for i in 0..<n {
                let base = channels[c][i]
                let v = emissive[i] ? base : base * gain
                rgb[c * n + i] = min(max(v + noise * random.nextNormal(), 0), 1)
            }
        }

        // Boxes from the visible pixels of each warm instance.
        var minX = [Int](repeating: Int.max, count: instanceClasses.count), maxX = [Int](repeating: -1, count: instanceClasses.count)
        var minY = [Int](repeating: Int.max, count: instanceClasses.count), maxY = [Int](repeating: -1, count: instanceClasses.count)
        var pixels = [Int](repeating: 0, count: instanceClasses.count)
        var warm = [Int32](repeating: 0, count: n)
        for y in 0..<height {
            for x in 0..<width {
                let id = instance[y * width + x]
                guard id >= 0 else { continue }
                let k = Int(id)
                minX[k] = min(minX[k], x)
                maxX[k] = max(maxX[k], x)
                minY[k] = min(minY[k], y)
                maxY[k] = max(maxY[k], y)
                pixels[k] += 1
                warm[y * width + x] = 1
            }
        }
        var boxes: [BoundingBox] = []
        for (k, cls) in instanceClasses.enumerated() where pixels[k] >= 6 {
            guard let detection = cls.detectionIndex else { continue }
            boxes.append(BoundingBox(classIndex: detection, minX: Double(minX[k]) / Double(width), minY: Double(minY[k]) / Double(height),
                                     maxX: Double(maxX[k] + 1) / Double(width), maxY: Double(maxY[k] + 1) / Double(height)))
        }

        return SyntheticScene(infrared: Image(width: width, height: height, channels: 1, pixels: ir),
                              visible: Image(width: width, height: height, channels: 3, pixels: rgb),
                              segmentation: LabelMap(width: width, height: height, values: label),
                              warmMask: LabelMap(width: width, height: height, values: warm),
                              boxes: boxes, timeOfDay: night ? .night : .day, seed: seed)
    }
}
