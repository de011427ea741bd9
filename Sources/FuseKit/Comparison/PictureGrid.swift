import Foundation
import FuseKitData
import FuseKitImage

/// The same test pairs seen by every method: the sources and the label, then each method's fused
/// image, its w_a map when it learns one, and its segmentation. Each picture is its own PNG
/// (`sources/PAIR-ir.png`, `METHOD/PAIR-fused.png`, …) and `grid.png` puts them side by side.
public final class PictureGrid: @unchecked Sendable {
    public let folder: URL
    public let methods: [String]
    /// The pairs shown, in order (known once the sources are written).
    public private(set) var pairs: [String] = []

    public init(folder: URL, methods: [String]) {
        self.folder = folder
        self.methods = methods
    }

    /// A picture of a grid cell, relative to `folder`.
    public func path(_ owner: String, _ pair: String, _ kind: String) -> String { "\(owner)/\(pair)-\(kind).png" }

    /// The columns that exist for `pair`: a title and the picture's path relative to `folder`.
    public func columns(of pair: String) -> [(title: String, path: String)] {
        var columns = [("infrared", path("sources", pair, "ir")), ("visible", path("sources", pair, "vi")), ("label", path("sources", pair, "label"))]
        for method in methods {
            for kind in ["fused", "w_a", "segmentation"] { columns.append(("\(method) \(kind)", path(method, pair, kind))) }
        }
        return columns.filter { FileManager.default.fileExists(atPath: folder.appendingPathComponent($0.1).path) }
    }

    /// Writes the sources and labels of the first `count` test pairs.
    func writeSources(_ source: any PairedSampleSource, pairs count: Int) throws {
        let sources = folder.appendingPathComponent("sources")
        try FileManager.default.createDirectory(at: sources, withIntermediateDirectories: true)
        pairs = []
        for index in 0..<Swift.min(count, source.count) {
            let sample = try source.sample(at: index, includeColor: true)
            pairs.append(sample.name)
            try sample.infrared.write(to: folder.appendingPathComponent(path("sources", sample.name, "ir")))
            try (sample.visibleColor ?? sample.visible).write(to: folder.appendingPathComponent(path("sources", sample.name, "vi")))
            if let label = sample.segmentation {
                try SegmentationColors.image(label).write(to: folder.appendingPathComponent(path("sources", sample.name, "label")))
            }
        }
    }

    func hasPictures(of method: String) -> Bool {
        guard let first = pairs.first else { return true }
        return FileManager.default.fileExists(atPath: folder.appendingPathComponent(path(method, first, "fused")).path)
    }

    /// Writes a method's pictures of the pairs from its trained models.
    func writePictures(of method: String, setup: TrainingSetup, state: TrainingState, pairs count: Int) throws {
        guard let pipeline = setup.evaluationPipeline(state) else { return }
        try FileManager.default.createDirectory(at: folder.appendingPathComponent(method), withIntermediateDirectories: true)
        for index in 0..<Swift.min(count, setup.testSource.count) {
            let sample = try setup.testSource.sample(at: index, includeColor: pipeline.needsColor)
            let (fused, prediction) = pipeline.run(sample)
            if let fused { try (fused.color ?? fused.gray).write(to: folder.appendingPathComponent(path(method, sample.name, "fused"))) }
            if case .segmentation(let classes)? = prediction {
                try SegmentationColors.image(RunEvaluator.labelMap(classes, for: sample))
                    .write(to: folder.appendingPathComponent(path(method, sample.name, "segmentation")))
            }
            if let wa = setup.infraredWeights(of: sample, state) {
                try HeatMap.render(wa, width: sample.width, height: sample.height, colorBar: false)
                    .write(to: folder.appendingPathComponent(path(method, sample.name, "w_a")))
            }
        }
    }

    /// All pictures in one image: a row per pair, a column per picture, titles on top.
    public func render(tileHeight: Int = 128) throws -> Image {
        let rows = try pairs.map { pair in try columns(of: pair).map { ($0.title, try Image(contentsOf: folder.appendingPathComponent($0.path))) } }
        guard let header = rows.first else { return Image(width: 1, height: 1, channels: 3, repeating: 1) }
        func tile(_ image: Image) -> Image {
            let rgb = image.channels == 3 ? image : Image(planes: [image.plane(0), image.plane(0), image.plane(0)])
            let width = Swift.max(1, rgb.width * tileHeight / Swift.max(rgb.height, 1))
            return rgb.resized(width: width, height: tileHeight, method: rgb.height > tileHeight ? .bilinear : .nearest)
        }
        let tiles = rows.map { $0.map { tile($0.1) } }
        let widths = header.indices.map { c in tiles.map { c < $0.count ? $0[c].width : 0 }.max() ?? 0 }
        let gap = 4, titleHeight = 34
        var canvas = PlotCanvas(width: widths.reduce(0, +) + gap * (widths.count + 1), height: titleHeight + rows.count * (tileHeight + gap) + gap)
        var x = gap
        for (c, (title, _)) in header.enumerated() {
            let words = title.split(separator: " ").map(String.init)
            let lines = words.count > 1 ? [words.dropLast().joined(separator: " "), words.last!] : words
            for (l, line) in lines.enumerated() {
                let scale = PlotCanvas.textWidth(line) <= widths[c] ? 2 : 1
                canvas.text(String(line.prefix(widths[c] / (4 * scale))), x: x, y: 4 + l * 14, scale: scale)
            }
            x += widths[c] + gap
        }
        for (r, row) in tiles.enumerated() {
            var x = gap
            for (c, image) in row.enumerated() {
                canvas.draw(image, x: x, y: titleHeight + r * (tileHeight + gap))
                x += widths[c] + gap
            }
        }
        return canvas.image
    }
}

/// Colours of segmentation classes: six fixed ones for FuseKit's synthetic classes (background,
/// person, car, road, building, vegetation), then hues around the colour wheel; ignored pixels black.
public enum SegmentationColors {
    static let first: [(Float, Float, Float)] = [(0.16, 0.16, 0.16), (0.90, 0.24, 0.24), (0.24, 0.47, 0.90),
                                                 (0.59, 0.59, 0.59), (0.78, 0.63, 0.35), (0.27, 0.71, 0.31)]

    /// The colour of class `index`.
    public static func color(_ index: Int) -> (Float, Float, Float) {
        if index < first.count { return first[index] }
        let hue = Double(index) * 0.618_034, h = (hue - hue.rounded(.down)) * 6
        let f = Float(h - h.rounded(.down)), (p, q, t): (Float, Float, Float) = (0.25, 0.9 - 0.65 * f, 0.25 + 0.65 * f)
        switch Int(h) {
        case 0: return (0.9, t, p)
        case 1: return (q, 0.9, p)
        case 2: return (p, 0.9, t)
        case 3: return (p, q, 0.9)
        case 4: return (t, p, 0.9)
        default: return (0.9, p, q)
        }
    }

    /// The map as an RGB picture.
    public static func image(_ map: LabelMap) -> Image {
        let plane = map.width * map.height
        var pixels = [Float](repeating: 0, count: 3 * plane)
        for (i, value) in map.values.enumerated() where value >= 0 && value != LabelMap.ignoreIndex {
            let (r, g, b) = color(Int(value))
            pixels[i] = r; pixels[plane + i] = g; pixels[2 * plane + i] = b
        }
        return Image(width: map.width, height: map.height, channels: 3, pixels: pixels)
    }
}
