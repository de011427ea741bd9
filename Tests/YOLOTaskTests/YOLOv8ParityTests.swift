import Foundation
import FuseKit
import ParityTestSupport
import Testing
import YOLOTask


/// Parity with a faithful PyTorch transcription of Ultralytics YOLOv8 (model built from
/// `yolov8.yaml`, `v8DetectionLoss`, `TaskAlignedAssigner`): the committed fixture
/// (Fixtures/yolov8_reference.py --write, computed in float64) holds the weights, two images and
/// their boxes, and for a training pass the head outputs, the loss and its terms, the assignment,
/// the gradient of the loss with respect to every parameter and the input, and the BatchNorm
/// statistics afterwards; for an evaluation pass the head outputs and decoded predictions. Every
/// element is compared. The model is reduced (width 1/32, 8 DFL bins) but has every block.
@Suite struct YOLOv8ParityTests {
    static let fixtureURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/yolov8_parity.safetensors")

    /// Head outputs, predictions, the loss and its terms, statistics, target scores.
    static let outputTolerance = TensorTolerance(relative: 1e-5, absolute: 2e-6)
    /// Gradients through the whole network (float32 against float64).
    static let gradientTolerance = TensorTolerance(relative: 1e-4, absolute: 2e-5)

    struct Fixture {
        struct Unreadable: Error { let what: String }
        let tensors: [String: Tensor]
        let configuration: YOLOv8Configuration
        let boxes: [[BoundingBox]]

        init() throws {
            let (tensors, metadata) = try SafeTensors.read(from: YOLOv8ParityTests.fixtureURL)
            self.tensors = tensors
            guard let text = metadata["configuration"], let c = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                  let depth = c["depth"] as? Double, let width = c["width"] as? Double, let maxChannels = c["max_channels"] as? Int,
                  let channels = c["ch"] as? Int, let classes = c["nc"] as? Int, let regMax = c["reg_max"] as? Int else {
                throw Unreadable(what: "metadata 'configuration'")
            }
            configuration = YOLOv8Configuration.with {
                ($0.depthMultiple, $0.widthMultiple, $0.maxChannels) = (depth, width, maxChannels)
                ($0.inputChannels, $0.classes, $0.regMax) = (channels, classes, regMax)
            }
            guard let rows = tensors["boxes"], let images = tensors["input"]?.shape[0] else { throw Unreadable(what: "boxes") }
            var boxes = [[BoundingBox]](repeating: [], count: images)
            let v = rows.scalars.map(Double.init)
            for r in 0..<rows.shape[0] {
                let row = Array(v[(6 * r)..<(6 * r + 6)])
                boxes[Int(row[0])].append(BoundingBox(classIndex: Int(row[1]), centerX: row[2], centerY: row[3], width: row[4], height: row[5]))
            }
            self.boxes = boxes
        }

        func prefixed(_ prefix: String) -> [String: Tensor] {
            Dictionary(uniqueKeysWithValues: tensors.compactMap { key, value in
                key.hasPrefix(prefix) ? (String(key.dropFirst(prefix.count)), value) : nil
            })
        }

        /// The model and its state, loaded from the official-style state dict of the fixture.
        func model() throws -> (YOLOv8, ModelState) {
            let model = YOLOv8(configuration)
            return (model, try model.loadOfficialState(from: prefixed("state.")))
        }
    }

    @Test func stateDictNamesMatchUltralytics() throws {
        let fixture = try Fixture()
        let (model, _) = try fixture.model()
        let official = Set(fixture.prefixed("state.").keys)
        // Ultralytics' state dict has the fixed DFL projection too, which this model does not store.
        #expect(official.subtracting(model.namedSpecs().map(\.name)) == ["model.22.dfl.conv.weight"])
        #expect(Set(model.namedSpecs().map(\.name)).isSubset(of: official))
        #expect(model.parameterCount == fixture.prefixed("train.grad.").filter { $0.key != "input" }.values.reduce(0) { $0 + $1.count })
    }

    @Test func trainingPassMatchesPyTorch() throws {
        let fixture = try Fixture()
        let (model, state) = try fixture.model()
        let compare = ParityComparison(fixture.tensors)
        let images = try #require(fixture.tensors["input"])
        let context = ForwardContext(training: true)
        var head: YOLOv8HeadOutput?
        var terms: YOLOv8LossTerms?
        let (loss, gradient) = valueWithGradient(at: state.parameters.merging(["<input>": images]) { a, _ in a }) { values in
            var parameters = values
            let x = parameters.removeValue(forKey: "<input>")!
            let output = model.headOutput(x, Scope(parameters: parameters, buffers: state.buffers, context: context))
            let result = model.lossFunction(output, targets: fixture.boxes)
            (head, terms) = (output, result)
            return result.total
        }
        let output = try #require(head), parts = try #require(terms)
        compare("head outputs", output.boxDistributions, "train.head.box", Self.outputTolerance)
        compare("head outputs", output.classLogits, "train.head.cls", Self.outputTolerance)
        compare("loss", loss.reshaped([1]), "train.loss", Self.outputTolerance)
        compare("loss", Tensor([parts.box, parts.classification, parts.distribution]), "train.terms", Self.outputTolerance)
        compare("loss", Tensor([parts.targetScoreSum]), "train.target_score_sum", Self.outputTolerance)

        // The assignment: the same positive anchors and boxes, the same target scores.
        let anchors = output.anchors.count, classes = model.classes
        let foreground = Tensor(shape: [parts.assignments.count, anchors],
                                scalars: parts.assignments.flatMap { $0.isForeground.map { $0 ? 1 : 0 } })
        #expect(foreground.scalars == fixture.tensors["train.foreground"]?.scalars, "positive anchors")
        #expect(parts.foregroundCount == Int(foreground.scalars.reduce(0, +)))
        let expectedIndex = try #require(fixture.tensors["train.ground_truth_index"]).scalars
        for (b, assignment) in parts.assignments.enumerated() {
            for a in assignment.foregroundAnchors {
                #expect(Float(assignment.groundTruthIndex[a]) == expectedIndex[b * anchors + a], "image \(b) anchor \(a): box")
            }
        }
        compare("target scores", Tensor(shape: [parts.assignments.count, anchors, classes], scalars: parts.assignments.flatMap(\.targetScores)),
                "train.target_scores", Self.outputTolerance)

        let expectedGradients = fixture.prefixed("train.grad.")
        #expect(Set(expectedGradients.keys) == Set(state.parameters.keys).union(["input"]))
        for (key, g) in gradient { compare("gradients", g, "train.grad.\(key == "<input>" ? "input" : key)", Self.gradientTolerance) }
        var updated = state
        updated.absorb(context)
        let expectedBuffers = fixture.prefixed("train.buffer.")
        #expect(Set(expectedBuffers.keys) == Set(state.buffers.keys))
        for key in expectedBuffers.keys { compare("statistics", updated.buffers[key]!, "train.buffer.\(key)", Self.outputTolerance) }
        print("yolov8 parity (training pass, \(parts.foregroundCount) positives): largest error / allowed error per kind: \(compare.summary)")
    }

    @Test func evaluationPassMatchesPyTorch() throws {
        let fixture = try Fixture()
        let (model, state) = try fixture.model()
        let compare = ParityComparison(fixture.tensors)
        let images = try #require(fixture.tensors["input"])
        let head = withoutGradient { model.headOutput(images, Scope(state)) }
        compare("head outputs", head.boxDistributions, "eval.head.box", Self.outputTolerance)
        compare("head outputs", head.classLogits, "eval.head.cls", Self.outputTolerance)
        // Decoded predictions [B, 4 + classes, anchors]: centre, size (pixels), class probabilities.
        let anchors = head.anchors.count, classes = model.classes
        var decoded = [Float](repeating: 0, count: images.shape[0] * (4 + classes) * anchors)
        for b in 0..<images.shape[0] {
            let (boxes, scores) = head.decodedPredictions(image: b)
            for a in 0..<anchors {
                let (x1, y1, x2, y2) = (boxes[4 * a], boxes[4 * a + 1], boxes[4 * a + 2], boxes[4 * a + 3])
                let row = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1] + (0..<classes).map { scores[a * classes + $0] }
                for (k, value) in row.enumerated() { decoded[(b * (4 + classes) + k) * anchors + a] = value }
            }
        }
        compare("predictions", Tensor(shape: [images.shape[0], 4 + classes, anchors], scalars: decoded), "eval.predictions", Self.outputTolerance)
        print("yolov8 parity (evaluation pass): largest error / allowed error per kind: \(compare.summary)")
    }
}
