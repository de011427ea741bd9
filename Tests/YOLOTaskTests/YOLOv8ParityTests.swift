import Foundation
import FuseKit
import Testing
import YOLOTask

/// Parity with a faithful PyTorch transcription of Ultralytics YOLOv8 (model built from
/// `yolov8.yaml`, `v8DetectionLoss`, `TaskAlignedAssigner`; the script is in
/// `Fixtures/yolov8_reference.py`). Both sides fill every parameter from the same formula, so no weight
/// files are needed; the expected figures below are the script's output (torch 2.15, CPU).
@Suite struct YOLOv8ParityTests {
    /// Width 1/16 of YOLOv8 (widths 8, 8, 16, 32, 64), depth 0.33, 2 classes, one input channel.
    static let model = YOLOv8(scale: YOLOv8Scale(depth: 0.33, width: 0.0625), classes: 2, inputChannels: 1)

    /// The reference's `formula_state`: with k the index of the name among all sorted state_dict
    /// keys (the DFL projection included) and s_i = sin(1.7 i + 0.61 k + 0.3): conv weights
    /// s / sqrt(fan_in), conv biases 0.5 s, BatchNorm weight 1 + 0.2 s, bias and running mean 0.1 s,
    /// running variance 1 + 0.3 |s|, batch counters 0.
    static func formulaState(_ model: YOLOv8) -> ModelState {
        let specs = model.namedSpecs()
        let names = (specs.map(\.name) + ["model.22.dfl.conv.weight"]).sorted()
        let position = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        var state = ModelState()
        for (name, spec) in specs {
            let k = Double(position[name]!)
            let n = Shape.count(spec.shape)
            let s = (0..<n).map { Foundation.sin(1.7 * Double($0) + 0.61 * k + 0.3) }
            let values: [Double]
            if name.hasSuffix("num_batches_tracked") { values = [0] }
            else if name.hasSuffix("bn.weight") { values = s.map { 1 + 0.2 * $0 } }
            else if name.hasSuffix("bn.bias") || name.hasSuffix("running_mean") { values = s.map { 0.1 * $0 } }
            else if name.hasSuffix("running_var") { values = s.map { 1 + 0.3 * Swift.abs($0) } }
            else if name.hasSuffix(".bias") { values = s.map { 0.5 * $0 } }
            else {
                let fanIn = Double(Shape.count(Array(spec.shape.dropFirst())))
                values = s.map { $0 / fanIn.squareRoot() }
            }
            let tensor = Tensor(shape: spec.shape, scalars: values.map { Float($0) })
            if spec.isBuffer { state.buffers[name] = tensor } else { state.parameters[name] = tensor }
        }
        return state
    }

    /// x[n, 0, y, x] = 0.5 + 0.4 sin(0.3 y + 0.7 x + 1.3 n).
    static func formulaImages(batch: Int, height: Int, width: Int) -> Tensor {
        var values: [Float] = []
        for n in 0..<batch {
            for y in 0..<height {
                for x in 0..<width { values.append(Float(0.5 + 0.4 * Foundation.sin(0.3 * Double(y) + 0.7 * Double(x) + 1.3 * Double(n)))) }
            }
        }
        return Tensor(shape: [batch, 1, height, width], scalars: values)
    }

    /// Two overlapping objects in image 0, one in image 1.
    static let boxes: [[BoundingBox]] = [
        [BoundingBox(classIndex: 0, centerX: 0.30, centerY: 0.40, width: 0.25, height: 0.50),
         BoundingBox(classIndex: 1, centerX: 0.40, centerY: 0.45, width: 0.50, height: 0.40)],
        [BoundingBox(classIndex: 1, centerX: 0.70, centerY: 0.60, width: 0.40, height: 0.30)],
    ]

    static func close(_ a: Float, _ b: Double, relative: Double = 2e-4, absolute: Double = 1e-6) -> Bool {
        Swift.abs(Double(a) - b) <= absolute + relative * Swift.abs(b)
    }

    static func norm(_ t: Tensor) -> Double { t.scalars.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot() }

    @Test func stateDictNamesMatchUltralytics() {
        let specs = Self.model.namedSpecs()
        // 355 state_dict entries in PyTorch, one of them the DFL projection this model does not store.
        #expect(specs.count == 354)
        #expect(Self.model.parameterCount == 354_910)
        let names = Set(specs.map(\.name))
        for key in ["model.0.conv.weight", "model.0.bn.num_batches_tracked", "model.2.m.0.cv1.conv.weight",
                    "model.9.cv2.bn.running_var", "model.21.m.0.cv2.bn.bias", "model.22.cv2.0.0.conv.weight",
                    "model.22.cv2.2.2.bias", "model.22.cv3.1.2.weight"] {
            #expect(names.contains(key), "missing \(key)")
        }
    }

    @Test func trainingLossAndGradientsMatchPyTorch() {
        let state = Self.formulaState(Self.model)
        let images = Self.formulaImages(batch: 2, height: 64, width: 64)
        let names = ["model.0.conv.weight", "model.22.cv3.0.2.bias", "model.9.cv2.bn.weight", "model.12.m.0.cv1.conv.weight"]
        var terms: YOLOv8LossTerms?
        let context = ForwardContext(training: true)
        let (loss, gradient) = valueWithGradient(at: state.parameters.merging(["input": images]) { a, _ in a }) { p in
            var parameters = p
            let x = parameters.removeValue(forKey: "input")!
            let result = Self.model.lossTerms(x, boxes: Self.boxes, Scope(parameters: parameters, buffers: state.buffers, context: context))
            terms = result
            return result.total
        }
        // Reference: loss 257.517333984375, items [3.2374155521392822, 123.5617904663086, 1.9594604969024658],
        // 24 positives, target-score sum max(…, 1) = 1.
        #expect(Self.close(loss.item, 257.517333984375), "loss \(loss.item)")
        #expect(Self.close(terms!.box, 3.2374155521392822, relative: 1e-3), "box \(terms!.box)")
        #expect(Self.close(terms!.classification, 123.5617904663086), "cls \(terms!.classification)")
        #expect(Self.close(terms!.distribution, 1.9594604969024658, relative: 1e-3), "dfl \(terms!.distribution)")
        #expect(terms!.foregroundCount == 24)
        #expect(terms!.targetScoreSum == 1)
        #expect(terms!.assignments[0].foregroundAnchors == [9, 10, 17, 18, 19, 20, 25, 26, 27, 28, 33, 34, 35, 36, 69, 73])
        #expect(terms!.assignments[1].foregroundAnchors == [36, 37, 38, 44, 45, 46, 74, 75])

        // Input gradient: norm 83.29511260986328, sum 1.1983394622802734, two elements.
        let dx = gradient["input"]!
        #expect(Self.close(Float(Self.norm(dx)), 83.29511260986328, relative: 1e-3), "dx norm \(Self.norm(dx))")
        #expect(Self.close(dx[0, 0, 10, 20], -0.28704583644866943, relative: 2e-3, absolute: 1e-4), "dx[0,0,10,20] \(dx[0, 0, 10, 20])")
        #expect(Self.close(dx[1, 0, 40, 45], 0.594167172908783, relative: 2e-3, absolute: 1e-4), "dx[1,0,40,45] \(dx[1, 0, 40, 45])")
        // Parameter gradients: norms and first elements.
        let expected: [String: (norm: Double, first: [Double])] = [
            "model.0.conv.weight": (44.99167251586914, [-1.6452140808105469, -2.4545083045959473, -1.0686821937561035]),
            "model.22.cv3.0.2.bias": (97.59770965576172, [78.27486419677734, 58.295433044433594]),
            "model.9.cv2.bn.weight": (0.5482399463653564, [0.00866914726793766, -0.006539414171129465, -0.017997337505221367]),
            "model.12.m.0.cv1.conv.weight": (302.9212646484375, [-0.484022319316864, 0.13113164901733398, 1.4343806505203247]),
        ]
        for name in names {
            let g = gradient[name]!, e = expected[name]!
            #expect(Self.close(Float(Self.norm(g)), e.norm, relative: 1e-3), "\(name): norm \(Self.norm(g)) vs \(e.norm)")
            for (i, value) in e.first.enumerated() {
                #expect(Self.close(g.scalars[i], value, relative: 2e-3, absolute: 1e-4 * e.norm), "\(name)[\(i)]: \(g.scalars[i]) vs \(value)")
            }
        }
        // BatchNorm running statistics after the pass (momentum 0.03, unbiased variance).
        var updated = state
        updated.absorb(context)
        let mean = updated.buffers["model.0.bn.running_mean"]!.scalars, variance = updated.buffers["model.0.bn.running_var"]!.scalars
        for (i, e) in [0.09243113547563553, -0.005410199519246817, -0.09448926150798798].enumerated() { #expect(Self.close(mean[i], e, absolute: 1e-6)) }
        for (i, e) in [1.2172868251800537, 1.1557291746139526, 1.1699250936508179].enumerated() { #expect(Self.close(variance[i], e, absolute: 1e-6)) }
    }

    @Test func inferenceDecodingMatchesPyTorch() {
        let state = Self.formulaState(Self.model)
        let images = Self.formulaImages(batch: 2, height: 64, width: 64)
        let head = withoutGradient { Self.model.headOutput(images, Scope(state)) }
        #expect(head.anchors.count == 84)
        // Reference eval output y [2, 6, 84] (cx, cy, w, h in pixels, then class probabilities).
        let expected: [(image: Int, anchor: Int, values: [Double])] = [
            (0, 0, [4.862762451171875, 2.736288070678711, 116.97313690185547, 118.872802734375, 0.6315208673477173, 0.48377934098243713]),
            (1, 83, [53.39158630371094, 51.12530517578125, 473.7551574707031, 467.909912109375, 0.5041554570198059, 0.6368552446365356]),
            (0, 70, [36.37738037109375, 25.396270751953125, 237.96636962890625, 237.44021606445312, 0.4221416413784027, 0.4409552812576294]),
        ]
        for item in expected {
            let (boxes, scores) = head.decodedPredictions(image: item.image)
            let a = item.anchor
            let x1 = boxes[4 * a], y1 = boxes[4 * a + 1], x2 = boxes[4 * a + 2], y2 = boxes[4 * a + 3]
            let actual = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, scores[2 * a], scores[2 * a + 1]]
            for (value, reference) in zip(actual, item.values) {
                #expect(Self.close(value, reference, relative: 5e-4, absolute: 1e-4), "image \(item.image) anchor \(a): \(actual) vs \(item.values)")
            }
        }
    }
}
