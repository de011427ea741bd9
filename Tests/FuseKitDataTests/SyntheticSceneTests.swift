import Foundation
import FuseKitData
import FuseKitImage
import Testing

@Suite("Synthetic scenes")
struct SyntheticSceneTests {
    @Test("deterministic by seed, any size")
    func determinism() {
        let generator = SyntheticSceneGenerator(width: 97, height: 61)
        let a = generator.scene(seed: 5), b = generator.scene(seed: 5), c = generator.scene(seed: 6)
        #expect(a.infrared == b.infrared && a.visible == b.visible && a.segmentation == b.segmentation && a.boxes == b.boxes)
        #expect(a.infrared != c.infrared)
        #expect(a.infrared.width == 97 && a.infrared.height == 61 && a.visible.channels == 3)
        let batch = generator.scenes(count: 3, seed: 9)
        #expect(batch.map(\.infrared) == generator.scenes(count: 3, seed: 9).map(\.infrared))
        #expect(generator.scene(seed: 5, timeOfDay: .night).timeOfDay == .night)
    }

    static func mean(_ values: [Float], where include: (Int) -> Bool) -> Float {
        var sum: Float = 0, count: Float = 0
        for i in values.indices where include(i) {
            sum += values[i]
            count += 1
        }
        return count > 0 ? sum / count : .nan
    }

    @Test("night: warm objects stand out in infrared but barely in the visible image")
    func nightContrast() {
        let generator = SyntheticSceneGenerator(width: 128, height: 96)
        for seed in UInt64(0)..<6 {
            let scene = generator.scene(seed: seed, timeOfDay: .night)
            let warm = scene.warmMask.values
            let ir = scene.infrared.pixels, vis = scene.visibleGray.pixels
            #expect(warm.contains(1))
            let irWarm = Self.mean(ir) { warm[$0] == 1 }, irRest = Self.mean(ir) { warm[$0] == 0 }
            let visWarm = Self.mean(vis) { warm[$0] == 1 }, visRest = Self.mean(vis) { warm[$0] == 0 }
            #expect(irWarm - irRest > 0.3, "seed \(seed): IR warm \(irWarm) vs \(irRest)")
            #expect(abs(visWarm - visRest) < 0.1, "seed \(seed): VIS warm \(visWarm) vs \(visRest)")
            let day = generator.scene(seed: seed, timeOfDay: .day)
            #expect(Self.mean(day.visibleGray.pixels) { _ in true } > 2 * Self.mean(vis) { _ in true })
        }
    }

    @Test("fine texture is in the visible image, not the infrared one")
    func texture() {
        let scene = SyntheticSceneGenerator(width: 128, height: 128).scene(seed: 3, timeOfDay: .day)
        let labels = scene.segmentation.values
        /// Mean absolute horizontal difference inside one class: texture plus sensor noise.
        func roughness(_ p: [Float], _ cls: SceneClass) -> Float {
            var sum: Float = 0, count: Float = 0
            for y in 1..<127 {
                for x in 1..<127 where labels[y * 128 + x] == cls.rawValue && labels[y * 128 + x + 1] == cls.rawValue
                    && labels[y * 128 + x - 1] == cls.rawValue {
                    sum += abs(p[y * 128 + x + 1] - p[y * 128 + x])
                    count += 1
                }
            }
            return sum / max(count, 1)
        }
        // Texture above each modality's noise floor (the sky is smooth in both).
        let visible = roughness(scene.visibleGray.pixels, .vegetation) - roughness(scene.visibleGray.pixels, .background)
        let infrared = roughness(scene.infrared.pixels, .vegetation) - roughness(scene.infrared.pixels, .background)
        #expect(visible > 0.02 && visible > 4 * infrared, "visible \(visible), infrared \(infrared)")
    }

    @Test("boxes enclose pixels of their class; all classes occur")
    func labels() {
        let generator = SyntheticSceneGenerator(width: 160, height: 120)
        var classes = Set<Int32>()
        for scene in generator.scenes(count: 8, seed: 11) {
            classes.formUnion(scene.segmentation.values)
            #expect(!scene.boxes.isEmpty)
            for box in scene.boxes {
                let (x0, y0, x1, y1) = box.pixelCorners(imageWidth: 160, imageHeight: 120)
                let wanted = box.classIndex == 0 ? SceneClass.person.rawValue : SceneClass.car.rawValue
                var found = 0
                for y in Int(y0)..<Int(y1) { for x in Int(x0)..<Int(x1) where scene.segmentation[x: x, y: y] == wanted { found += 1 } }
                #expect(found > 0)
                #expect(x0 >= 0 && y0 >= 0 && x1 <= 160 && y1 <= 120)
            }
        }
        #expect(classes == Set(SceneClass.allCases.map(\.rawValue)))
    }

    @Test("classes are distinguishable from the images: a lookup-table pixel classifier beats the majority class")
    func learnable() {
        // Quantised features of both modalities (IR level, visible level, visible local contrast,
        // row): the most frequent class of each cell on 9 scenes predicts 3 held-out scenes.
        let generator = SyntheticSceneGenerator(width: 96, height: 72)
        let scenes = generator.scenes(count: 12, seed: 21)
        let grays = scenes.map(\.visibleGray)
        func cell(_ index: Int, _ x: Int, _ y: Int) -> Int {
            let gray = grays[index]
            let ir = scenes[index].infrared[x: x, y: y], vis = gray[x: x, y: y]
            var contrast: Float = 0
            if x + 1 < 96 { contrast += abs(gray[x: x + 1, y: y] - vis) }
            if y + 1 < 72 { contrast += abs(gray[x: x, y: y + 1] - vis) }
            let a = min(Int(ir * 10), 9), b = min(Int(vis * 8), 7), c = min(Int(contrast * 20), 3), d = y * 6 / 72
            return ((a * 8 + b) * 4 + c) * 6 + d
        }
        var votes = [[Int]](repeating: [Int](repeating: 0, count: 6), count: 10 * 8 * 4 * 6)
        for index in 0..<9 {
            for y in 0..<72 { for x in 0..<96 { votes[cell(index, x, y)][Int(scenes[index].segmentation[x: x, y: y])] += 1 } }
        }
        let table = votes.map { counts in counts.indices.max { counts[$0] < counts[$1] }! }
        var correct = 0, perClass = [Int](repeating: 0, count: 6), total = 0
        for index in 9..<12 {
            for y in 0..<72 {
                for x in 0..<96 {
                    let truth = Int(scenes[index].segmentation[x: x, y: y])
                    if table[cell(index, x, y)] == truth { correct += 1 }
                    perClass[truth] += 1
                    total += 1
                }
            }
        }
        let accuracy = Double(correct) / Double(total), majority = Double(perClass.max()!) / Double(total)
        #expect(accuracy > majority + 0.15, "accuracy \(accuracy) vs majority \(majority)")
        print("synthetic scenes: lookup-table pixel accuracy \(accuracy), majority class \(majority)")
    }

    @Test("materialised scenes read back as a TDFusion dataset with boxes")
    func writeAndRead() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fusekit-synthetic-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let generator = SyntheticSceneGenerator(width: 64, height: 48)
        let names = try generator.writeDataset(count: 3, to: folder, seed: 4)
        #expect(names == ["00000", "00001", "00002"])
        let dataset = try PairedDataset(root: folder)
        #expect(dataset.layout == .tdfusion && dataset.boxFormat == .yolo && dataset.count == 3)
        #expect(dataset.checkConsistency().isEmpty)
        let scene = generator.scenes(count: 3, seed: 4)[1]
        let sample = try dataset.sample(at: 1, includeColor: true)
        #expect(sample.segmentation == scene.segmentation)
        #expect(sample.infrared == scene.infraredGray)
        #expect(sample.visible == scene.visibleGray)
        #expect(zip(sample.boxes, scene.boxes).allSatisfy { a, b in
            a.classIndex == b.classIndex && abs(a.centerX - b.centerX) < 1e-6 && abs(a.width - b.width) < 1e-6
        })
        let batch = try BatchLoader(source: dataset, options: BatchOptions(batchSize: 3, cropSize: (32, 32), seed: 2)).batch(epoch: 0, index: 0)
        #expect(batch.infrared.shape == [3, 1, 32, 32])
    }
}
