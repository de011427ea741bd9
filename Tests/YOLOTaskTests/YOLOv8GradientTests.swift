import FuseKit
import Testing
import YOLOTask

/// Gradient checks (reverse mode against finite differences, forward mode, and their
/// consistency) of every YOLOv8 layer on tiny shapes, BatchNorm in training mode.
@Suite struct YOLOv8GradientTests {
    /// Checks `module` with respect to its parameters and its input. BatchNorm affine parameters are
    /// moved off their (1, 0) start so that they are exercised.
    static func check(_ name: String, _ module: any UnaryModule, input shape: [Int], training: Bool = true,
                      options: GradientCheck.Options = GradientCheck.Options()) -> GradientCheck.Report {
        var rng = RandomGenerator(seed: 17)
        let state = module.initialState(using: &rng)
        var parameters = state.parameters
        for (key, value) in parameters where key.hasSuffix("bn.weight") || key.hasSuffix("bn.bias") {
            let offset: Float = key.hasSuffix("weight") ? 1 : 0
            parameters[key] = Tensor.uniform(value.shape, low: offset - 0.3, high: offset + 0.3, using: &rng)
        }
        let x = Tensor.uniform(shape, low: -1, high: 1, using: &rng)
        let report = GradientCheck.check(name, parameters: parameters.merging(["input": x]) { a, _ in a }, options: options) { d in
            var p = d
            let input = p.removeValue(forKey: "input")!
            return module(input, Scope(parameters: p, buffers: state.buffers, context: ForwardContext(training: training)))
        }
        print(report)
        return report
    }

    @Test func convBNSiLU() {
        #expect(Self.check("ConvBNSiLU 3x3/2 (train)", ConvBNSiLU(2, 3, kernelSize: 3, stride: 2), input: [2, 2, 5, 5]).passed)
        #expect(Self.check("ConvBNSiLU 1x1 (eval)", ConvBNSiLU(3, 2), input: [1, 3, 3, 4], training: false).passed)
    }

    @Test func fusedTrainingBatchNormSiLUEqualsBatchNorm2dThenSiLU() {
        // ConvBNSiLU fuses BatchNorm (training) and SiLU; compare with the engine's layers composed.
        let layer = ConvBNSiLU(3, 4, kernelSize: 3)
        var rng = RandomGenerator(seed: 21)
        var state = layer.initialState(using: &rng)
        state.parameters["bn.weight"] = Tensor.uniform([4], low: 0.5, high: 1.5, using: &rng)
        state.parameters["bn.bias"] = Tensor.uniform([4], low: -0.3, high: 0.3, using: &rng)
        let x = Tensor.uniform([2, 3, 5, 7], low: -1, high: 1, using: &rng)
        let seed = Tensor.normal([2, 4, 5, 7], using: &rng)
        func run(_ fused: Bool) -> (y: Tensor, grads: [Tensor], buffers: [String: Tensor]) {
            let context = ForwardContext(training: true)
            let inputs = [x, state.parameters["conv.weight"]!, state.parameters["bn.weight"]!, state.parameters["bn.bias"]!]
            let (values, pullback) = vjp(at: inputs) { v in
                let p = Scope(parameters: ["conv.weight": v[1], "bn.weight": v[2], "bn.bias": v[3]], buffers: state.buffers, context: context)
                return [fused ? layer(v[0], p) : layer.norm(layer.conv(v[0], p), p).silu()]
            }
            return (values[0], pullback([seed]), context.bufferUpdates)
        }
        let (fused, composed) = (run(true), run(false))
        func maxDifference(_ a: Tensor, _ b: Tensor) -> Float { zip(a.scalars, b.scalars).map { Swift.abs($0 - $1) }.max() ?? 0 }
        #expect(maxDifference(fused.y, composed.y) < 1e-5)
        for (a, b) in zip(fused.grads, composed.grads) { #expect(maxDifference(a, b) < 1e-4 * Swift.max(1, b.scalars.map(Swift.abs).max()!)) }
        #expect(Set(fused.buffers.keys) == Set(composed.buffers.keys) && fused.buffers.count == 3)
        for (key, value) in composed.buffers { #expect(maxDifference(fused.buffers[key]!, value) < 1e-6, "\(key)") }
    }

    @Test func fusedBatchNormSiLUSecondOrder() {
        // Gradients of gradients take the fused operation's composite rules.
        let layer = ConvBNSiLU(2, 2)
        var rng = RandomGenerator(seed: 23)
        let state = layer.initialState(using: &rng)
        let inputs = [Tensor.uniform([2, 2, 3, 3], low: -1, high: 1, using: &rng), Tensor.uniform([2, 2, 1, 1], low: -1, high: 1, using: &rng),
                      Tensor.uniform([2], low: 0.5, high: 1.5, using: &rng), Tensor.uniform([2], low: -0.3, high: 0.3, using: &rng)]
        let report = GradientCheck.checkSecondOrder("ConvBNSiLU (train), second order", inputs: inputs) { v in
            let p = Scope(parameters: ["conv.weight": v[1], "bn.weight": v[2], "bn.bias": v[3]], buffers: state.buffers,
                          context: ForwardContext(training: true))
            return (layer(v[0], p) * Tensor.linearRamp(v[0].shape[0] * 2 * 9).reshaped([2, 2, 3, 3])).sum()
        }
        print(report)
        #expect(report.passed)
    }

    @Test func bottleneckWithAndWithoutShortcut() {
        #expect(Self.check("Bottleneck (shortcut)", YOLOBottleneck(channels: 3, shortcut: true), input: [2, 3, 4, 4]).passed)
        #expect(Self.check("Bottleneck", YOLOBottleneck(channels: 2, shortcut: false), input: [2, 2, 3, 3]).passed)
    }

    @Test func c2f() {
        #expect(Self.check("C2f n=2 (shortcut)", C2f(3, 4, repeats: 2, shortcut: true), input: [2, 3, 4, 4]).passed)
    }

    @Test func sppf() {
        // Max-pooling is piecewise linear: a smaller step keeps finite differences on one piece.
        var options = GradientCheck.Options()
        options.epsilon = 1e-3
        options.relativeTolerance = 2e-2
        #expect(Self.check("SPPF", SPPF(4, 3), input: [2, 4, 5, 5], options: options).passed)
    }

    @Test func detectHeadBranches() {
        // Two levels (widths 4 and 8, strides 8 and 16), 2 classes, regMax 4: box branches of width
        // max(16, 4 / 4, 16) = 16, class branches of width max(4, 2) = 4.
        let head = DetectHead(classes: 2, inputChannels: [4, 8], strides: [8, 16], regMax: 4)
        var rng = RandomGenerator(seed: 5)
        let state = head.initialState(using: &rng)
        var inputs = state.parameters
        inputs["p3"] = Tensor.uniform([2, 4, 3, 3], low: -1, high: 1, using: &rng)
        inputs["p4"] = Tensor.uniform([2, 8, 2, 2], low: -1, high: 1, using: &rng)
        let report = GradientCheck.check("Detect head", parameters: inputs) { d in
            var p = d
            let features = [p.removeValue(forKey: "p3")!, p.removeValue(forKey: "p4")!]
            let levels = head(features, Scope(parameters: p, buffers: state.buffers, context: ForwardContext(training: true)))
            return Tensor.concat(levels.flatMap { [$0.boxDistributions.reshaped([-1]), $0.classLogits.reshaped([-1])] }, axis: 0)
        }
        print(report)
        #expect(report.passed)
    }

    @Test func arctangentAndDistributionFocalLoss() {
        var rng = RandomGenerator(seed: 9)
        let x = Tensor.uniform([3, 4], low: -3, high: 3, using: &rng)
        let atan = GradientCheck.check("atan", inputs: [x]) { BoxGeometry.arctangent($0[0]) }
        print(atan)
        #expect(atan.passed)
        let second = GradientCheck.checkSecondOrder("atan (second order)", inputs: [x]) { BoxGeometry.arctangent($0[0]).squared().sum() }
        #expect(second.passed, "\(second)")
        let logits = Tensor.normal([6, 8], using: &rng)
        let dfl = GradientCheck.check("DFL", inputs: [logits]) { DistributionFocalLoss.loss(logits: $0[0], targets: [0, 0.5, 3.25, 6.99, 7, 2]) }
        print(dfl)
        #expect(dfl.passed)
    }
}

extension Tensor {
    /// 0.1, 0.2, ... (a fixed, non-constant weighting for scalar test objectives).
    static func linearRamp(_ count: Int) -> Tensor { Tensor((1...count).map { Float($0) / 10 }) }
}
