import Foundation
import FuseKit
import FuseKitPlugins
import Testing

/// A training set whose YOLO label names a class the recipe's detector does not have is refused
/// when the sample loads, naming the file and line (before, the detector's loss stopped the
/// process with a fatal error).
@Suite struct DetectionLabelRangeTests {
    @Test func aLabelBeyondTheDetectorsClassesIsAnErrorNamingTheFileAndLine() throws {
        let root = try TrainerTests.scratch("det-range")
        defer { try? FileManager.default.removeItem(at: root) }
        try TinyDataset.write(at: root, infrared: "Ir", visible: "Vis", labels: "labels") { _, name, folder in
            try "0 0.5 0.5 0.2 0.2\r\n".write(to: folder.appendingPathComponent("\(name).txt"), atomically: true, encoding: .utf8)
        }
        let label = root.appendingPathComponent("train/labels/2.txt")
        try "0 0.5 0.5 0.2 0.2\r\n1 0.3 0.3 0.1 0.1\r\n3 0.6 0.6 0.2 0.1\r\n".write(to: label, atomically: true, encoding: .utf8)
        let text = """
            name: det-range
            seed: 1
            data:
              root: \(root.path)
              layout: m3fd
              train-split: train
              test-split: test
              batch-size: 1
              crop: [32, 32]
            fusion:
              plugin: restormer-fusion
              parameters: { dim: 4, blocks: 1, heads: 2 }
              optimizer: { kind: adam, learning-rate: 0.001 }
            loss-generator:
              plugin: restormer-lpn
              parameters: { dim: 4, blocks: 1, heads: 2 }
              optimizer: { kind: normalized-sgd, learning-rate: 0.001 }
            task:
              plugin: yolov8
              parameters: { variant: n, classes: 3, input-channels: 1 }
              optimizer: { kind: adam, learning-rate: 0.001 }
            training:
              epochs: 1
              meta-steps: 1

            """
        let setup = try TrainingSetup.make(recipe: try Recipe.parse(text, file: "det-range.yaml"), registry: StandardPlugins.registry())
        #expect(try setup.trainSource.sample(at: 0, includeColor: false).boxes.map(\.classIndex) == [0])
        #expect {
            _ = try setup.trainSource.sample(at: 1, includeColor: false)
        } throws: { error in
            let message = "\(error)"
            print("out-of-range label: \(message)")
            return message.contains(label.path) && message.contains("line 3: class 3 is out of range for 3 classes (0 to 2)")
        }
    }
}
