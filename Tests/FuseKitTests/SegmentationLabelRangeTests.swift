import Foundation
import FuseKit
import FuseKitPlugins
import Testing

/// A label mask with a value that is neither a class of the recipe's segmenter nor the ignore
/// index is refused when the sample loads, naming the file, the value and the pixel (before, the
/// cross-entropy's gather stopped the process).
@Suite struct SegmentationLabelRangeTests {
    @Test func aMaskValueBeyondTheSegmentersClassesIsAnErrorNamingTheFileAndPixel() throws {
        let root = try TrainerTests.scratch("seg-range")
        defer { try? FileManager.default.removeItem(at: root) }
        try TinyDataset.write(at: root, infrared: "ir", visible: "vi", labels: "Segmentation_labels") { _, name, folder in
            // Classes 0 to 5 and the ignore index are fine.
            let values = (0..<1024).map { Int32($0 % 7 == 6 ? 255 : $0 % 6) }
            try LabelMap(width: 32, height: 32, values: values).write(to: folder.appendingPathComponent("\(name).png"))
        }
        var bad = [Int32](repeating: 1, count: 1024)
        bad[3 * 32 + 5] = 6
        let label = root.appendingPathComponent("train/Segmentation_labels/2.png")
        try LabelMap(width: 32, height: 32, values: bad).write(to: label)
        let text = TrainerTests.recipeText(epochs: 1).replacingOccurrences(
            of: "  synthetic: { train-count: 6, test-count: 3, width: 32, height: 32, seed: 5 }",
            with: "  root: \(root.path)\n  layout: msrs")
        let setup = try TrainingSetup.make(recipe: try Recipe.parse(text, file: "seg-range.yaml"), registry: TrainerTests.registry())
        #expect(try setup.trainSource.sample(at: 0, includeColor: false).segmentation != nil)
        #expect {
            _ = try setup.trainSource.sample(at: 1, includeColor: false)
        } throws: { error in
            let message = "\(error)"
            print("out-of-range mask value: \(message)")
            return message.contains(label.path) && message.contains("label 6 at pixel (x 5, y 3) is not a class of the 6-class segmenter (0 to 5, or 255 to ignore)")
        }
    }
}
