import Foundation
import FuseKit
import Testing
import YOLOTask

/// Architecture (names, shapes, counts as Ultralytics), registration, and the TaskNet interface.
@Suite struct YOLOv8ModelTests {
    /// The registered variant `variant` for `classes` classes.
    static func yolo(_ variant: String, classes: Int, inputChannels: Int = 1) -> YOLOv8 {
        var configuration = YOLOv8Configuration.variant(variant)!
        (configuration.classes, configuration.inputChannels) = (classes, inputChannels)
        return YOLOv8(configuration)
    }

    @Test func parameterCountsMatchUltralytics() {
        // Trainable parameters of Ultralytics' DetectionModel (the "gradients" count of its summary;
        // the DFL projection's 16 fixed values are the only non-trainable parameter). RGB, 80 classes:
        // YOLOv8n 3,157,184 and YOLOv8s 11,166,544, as yolov8.yaml states. One input channel removes
        // 16 x 2 x 9 = 288 (n) or 32 x 2 x 9 = 576 (s) stem weights; fewer classes shrink the class
        // branches (c3 = max(64, min(nc, 100)) for n). Figures from the PyTorch transcription.
        #expect(Self.yolo("n", classes: 80, inputChannels: 3).parameterCount == 3_157_184)
        #expect(Self.yolo("s", classes: 80, inputChannels: 3).parameterCount == 11_166_544)
        #expect(Self.yolo("n", classes: 80).parameterCount == 3_156_896)
        #expect(Self.yolo("n", classes: 6).parameterCount == 3_011_714)
        #expect(Self.yolo("n", classes: 1).parameterCount == 3_010_739)
        #expect(Self.yolo("s", classes: 6).parameterCount == 11_137_330)
        // The defaults are YOLOv8n.
        #expect(YOLOv8().parameterCount == 3_011_714)
    }

    @Test func stateDictNamesAndShapesOfYOLOv8n() {
        let model = Self.yolo("n", classes: 6)
        let specs = model.namedSpecs()
        // Ultralytics' state_dict has 355 entries; the fixed DFL projection is not stored here.
        #expect(specs.count == 354)
        let shapes = Dictionary(uniqueKeysWithValues: specs.map { ($0.name, $0.spec.shape) })
        let expected: [String: [Int]] = [
            "model.0.conv.weight": [16, 1, 3, 3], "model.0.bn.running_var": [16], "model.0.bn.num_batches_tracked": [],
            "model.1.conv.weight": [32, 16, 3, 3], "model.2.cv1.conv.weight": [32, 32, 1, 1], "model.2.m.0.cv1.conv.weight": [16, 16, 3, 3],
            "model.2.cv2.conv.weight": [32, 48, 1, 1], "model.4.m.1.cv2.conv.weight": [32, 32, 3, 3], "model.4.cv2.conv.weight": [64, 128, 1, 1],
            "model.8.cv2.conv.weight": [256, 384, 1, 1], "model.9.cv1.conv.weight": [128, 256, 1, 1], "model.9.cv2.conv.weight": [256, 512, 1, 1],
            "model.12.cv1.conv.weight": [128, 384, 1, 1], "model.15.cv1.conv.weight": [64, 192, 1, 1], "model.16.conv.weight": [64, 64, 3, 3],
            "model.18.cv1.conv.weight": [128, 192, 1, 1], "model.19.conv.weight": [128, 128, 3, 3], "model.21.cv1.conv.weight": [256, 384, 1, 1],
            "model.22.cv2.0.0.conv.weight": [64, 64, 3, 3], "model.22.cv2.2.0.conv.weight": [64, 256, 3, 3], "model.22.cv2.1.2.weight": [64, 64, 1, 1],
            "model.22.cv2.1.2.bias": [64], "model.22.cv3.0.0.conv.weight": [64, 64, 3, 3], "model.22.cv3.2.1.bn.weight": [64],
            "model.22.cv3.0.2.weight": [6, 64, 1, 1], "model.22.cv3.0.2.bias": [6],
        ]
        for (name, shape) in expected { #expect(shapes[name] == shape, "\(name): \(String(describing: shapes[name]))") }
        #expect(shapes["model.4.m.2.cv1.conv.weight"] == nil, "n has 2 bottlenecks in model.4")
        #expect(!shapes.keys.contains { $0.hasPrefix("model.10.") || $0.hasPrefix("model.22.dfl") })
        #expect(ConvBNSiLU(1, 16).norm.eps == 1e-3 && ConvBNSiLU(1, 16).norm.momentum == 0.03)
        // Registration order (and with it the initialisation order) is Ultralytics' module order.
        #expect(specs.prefix(6).map(\.name) == ["model.0.conv.weight", "model.0.bn.weight", "model.0.bn.bias", "model.0.bn.running_mean",
                                                 "model.0.bn.running_var", "model.0.bn.num_batches_tracked"])
        #expect(specs.map(\.name).firstIndex(of: "model.2.cv2.conv.weight")! < specs.map(\.name).firstIndex(of: "model.2.m.0.cv1.conv.weight")!)
        #expect(specs.last?.name == "model.22.cv3.2.2.bias")
    }

    @Test func detectBiasesStartAtUltralyticsPriors() {
        // Box bins 1; class logits log(5 / nc / (640 / s)²): nc 6, s 8 -> log(5 / 6 / 6400) = -8.946375.
        let state = YOLOv8().initialState(seed: 0)
        #expect(state.parameters["model.22.cv2.0.2.bias"]!.scalars.allSatisfy { $0 == 1 })
        let strides: [Double] = [8, 16, 32]
        for (level, s) in strides.enumerated() {
            let prior = Float(Foundation.log(5 / 6 / ((640 / s) * (640 / s))))
            #expect(state.parameters["model.22.cv3.\(level).2.bias"]!.scalars.allSatisfy { Swift.abs($0 - prior) < 1e-6 })
        }
        #expect(Swift.abs(state.parameters["model.22.cv3.0.2.bias"]!.scalars[0] - -8.946375) < 1e-5)
    }

    @Test func officialStyleStateLoadsWithTheDFLProjection() throws {
        let model = YOLOv8(.with { ($0.widthMultiple, $0.classes) = (0.0625, 2) })
        var official = model.initialState(seed: 3).stateDict
        official["model.22.dfl.conv.weight"] = Tensor(shape: [1, 16, 1, 1], scalars: (0..<16).map(Float.init))
        let state = try model.loadOfficialState(from: official)
        #expect(state.parameters.count + state.buffers.count == 354)
        official["model.22.dfl.conv.weight"] = Tensor.zeros([1, 16, 1, 1])
        #expect(throws: StateDictError.unexpected(keys: ["model.22.dfl.conv.weight"])) { _ = try model.loadOfficialState(from: official) }
    }

    @Test func registryBuildsYOLOv8AndRejectsBadParameters() throws {
        var registry = PluginRegistry()
        YOLOTaskPlugin.register(in: &registry)
        let descriptor = try registry.descriptor("yolov8", kind: .task)
        #expect(descriptor.parameters.map(\.name) == ["classes", "input-channels", "depth-multiple", "width-multiple", "max-channels",
                                                      "confidence", "nms-iou", "max-detections", "box-gain", "cls-gain", "dfl-gain",
                                                      "reg-max", "assigner-topk", "assigner-alpha", "assigner-beta"])
        #expect(descriptor.parameters.allSatisfy { !$0.help.isEmpty })
        #expect(descriptor.variants.map(\.name) == ["n", "s"])
        let defaults = try registry.makeTask("yolov8")
        #expect(defaults.kind == .detection(classes: 6) && defaults.inputChannels == 1 && defaults.parameterCount == 3_011_714)
        let small = try registry.makeTask("yolov8", PluginParameters(["variant": .string("s"), "classes": .int(1), "confidence": .double(0.001),
                                                                       "nms-iou": .double(0.6), "box-gain": .int(5), "assigner-topk": .int(13)]))
        let yolo = try #require(small as? YOLOv8)
        #expect(yolo.configuration.widthMultiple == 0.5 && yolo.configuration.depthMultiple == 0.33 && yolo.classes == 1)
        #expect(yolo.parameterCount == Self.yolo("s", classes: 1).parameterCount)
        #expect(yolo.suppression.confidenceThreshold == 0.001 && yolo.suppression.iouThreshold == 0.6)
        #expect(yolo.lossFunction.boxGain == 5 && yolo.lossFunction.assigner.topK == 13 && yolo.lossFunction.classificationGain == 0.5)
        // A given multiple overrides the variant's.
        let wide = try #require(try registry.makeTask("yolov8", PluginParameters(["variant": .string("n"), "width-multiple": .double(0.5)])) as? YOLOv8)
        #expect(wide.parameterCount == Self.yolo("s", classes: 6).parameterCount)

        func failure(_ values: [String: ParameterValue]) -> String? {
            let error = #expect(throws: PluginError.self) { _ = try registry.makeTask("yolov8", PluginParameters(values)) }
            return error?.description
        }
        #expect(failure(["variant": .string("m")]) == "yolov8: parameter 'variant': must be one of n, s, got 'm'")
        #expect(failure(["scale": .string("n")]) == "yolov8: unknown parameter 'scale'")
        #expect(failure(["classes": .int(0)]) == "yolov8: parameter 'classes': must be positive, got 0")
        #expect(failure(["width-multiple": .double(0)]) == "yolov8: parameter 'width-multiple': must be in (0, 2], got 0.0")
        #expect(failure(["confidence": .double(1.5)]) == "yolov8: parameter 'confidence': must be in [0.0, 1.0), got 1.5")
        #expect(failure(["nms-iou": .double(0)]) == "yolov8: parameter 'nms-iou': must be in (0, 1], got 0.0")
        #expect(failure(["reg-max": .int(1)]) == "yolov8: parameter 'reg-max': must be between 2 and 64, got 1")
        #expect(failure(["dfl-gain": .double(-1)]) == "yolov8: parameter 'dfl-gain': must be at least 0, got -1.0")
        #expect(failure(["max-detections": .int(0)]) == "yolov8: parameter 'max-detections': must be positive, got 0")
        #expect(failure(["input-channels": .int(0)]) == "yolov8: parameter 'input-channels': must be positive, got 0")
        #expect(failure(["assigner-topk": .int(0)]) == "yolov8: parameter 'assigner-topk': must be positive, got 0")
        #expect(failure(["classes": .string("two")]) == "yolov8: parameter 'classes' must be an integer, got string two")
        #expect(failure(["clases": .int(2)]) == "yolov8: unknown parameter 'clases'; did you mean 'classes'?")
    }

    /// What `fusekit gradcheck --plugin yolov8` runs: the registered configuration (YOLOv8n, 2
    /// classes, 2x1x64x64), VJP and JVP of the head outputs (running statistics) against finite differences.
    @Test func registeredGradientCheckPasses() throws {
        var registry = PluginRegistry()
        YOLOTaskPlugin.register(in: &registry)
        let report = PluginGradcheck.check(try registry.descriptor("yolov8", kind: .task))
        print(report)
        #expect(report.passed, "\(report)")
    }

    @Test func taskNetLossAndPredictionsOnAnOddSizedBatch() {
        // 64 x 96 input: anchors 8x12 + 4x6 + 2x3 = 126. A reduced width keeps the test fast.
        let model = YOLOv8(.with { ($0.widthMultiple, $0.classes, $0.confidence, $0.maxDetections) = (0.0625, 2, 0.001, 5) })
        let state = model.initialState(seed: 4)
        var rng = RandomGenerator(seed: 2)
        let images = Tensor.uniform([2, 1, 64, 96], using: &rng)
        let head = model.headOutput(images, Scope(state))
        #expect(head.boxDistributions.shape == [2, 64, 126] && head.classLogits.shape == [2, 2, 126])
        #expect(head.anchors.levelSizes == [[8, 12], [4, 6], [2, 3]])
        // The loss reaches the input images (the fusion network trains through them) and is Ultralytics'
        // sum of terms times the batch size; an image without boxes only adds classification loss.
        let boxes = [[BoundingBox(classIndex: 1, centerX: 0.5, centerY: 0.5, width: 0.3, height: 0.4)], []]
        let context = ForwardContext(training: true)
        let (loss, gradient) = valueWithGradient(at: [images]) { x in
            model.loss(x[0], targets: TaskTargets(boxes: boxes), Scope(parameters: state.parameters, buffers: state.buffers, context: context))
        }
        let terms = model.lossTerms(images, boxes: boxes, Scope(parameters: state.parameters, buffers: state.buffers, context: ForwardContext(training: true)))
        #expect(Swift.abs(loss.item - (terms.box + terms.classification + terms.distribution) * 2) <= 1e-4 * loss.item)
        #expect(terms.foregroundCount > 0 && terms.assignments[1].foregroundAnchors.isEmpty)
        #expect(gradient[0].scalars.contains { $0 != 0 })
        #expect(context.bufferUpdates["model.0.bn.running_mean"] != nil)
        guard case .detection(let detections) = model.predict(images, Scope(state)) else {
            Issue.record("yolov8 must predict detections")
            return
        }
        #expect(detections.count == 2 && detections.allSatisfy { $0.count <= 5 })
        for d in detections.flatMap({ $0 }) {
            #expect(d.box.minX >= 0 && d.box.minY >= 0 && d.box.maxX <= 1 + 1e-9 && d.box.maxY <= 1 + 1e-9 && d.score > 0.001)
        }
        // Without boxes at all the loss is the classification term alone.
        let none = model.lossTerms(images, boxes: [[], []], Scope(parameters: state.parameters, buffers: state.buffers, context: ForwardContext(training: true)))
        #expect(none.foregroundCount == 0 && none.box == 0 && none.distribution == 0 && none.targetScoreSum == 1)
    }
}
