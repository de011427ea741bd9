import Foundation
import FuseKit
import FuseKitPlugins
import Testing
import MAFS

/// VJP and JVP checks of MAFS's blocks against finite differences (GradientCheck), the INN
/// block's invertibility as a property, and the plugin's own `gradcheck`.
@Suite struct MAFSGradientTests {
    /// Parameters and inputs of a block: its from-scratch initialisation plus N(0, 0.05²) on every
    /// parameter (so that CAM's gamma, the Glow factors and the zero biases are not at their
    /// special starting values) and random inputs, checked in eval mode. (The fixtures'
    /// deterministic weights are rank 2 and make the INN's InstanceNorms act on near-constant
    /// maps, where finite differences in float32 are meaningless; their analytic gradients are
    /// compared with PyTorch's in MAFSParityTests.)
    static func check(_ name: String, epsilon: Float = 1e-2) throws -> GradientCheck.Report {
        let block = try MAFSParityTests.blockCases()[name]!
        var state = block.module.initialState(seed: 21)
        var noise = RandomGenerator(seed: 22)
        // In name order: a dictionary's own order changes from process to process.
        for key in state.parameters.keys.sorted() {
            state.parameters[key]! = state.parameters[key]! + Tensor.normal(state.parameters[key]!.shape, std: 0.05, using: &noise)
        }
        let f = try MAFSFixture.tensors()
        var rng = RandomGenerator(seed: 11)
        var leaves = state.parameters
        // Batch 1 and maps of 2x2 to 4x4: few units, so that few ReLU kinks fall inside a finite-difference
        // step (on 16x16 maps the SDFM and InvBlock checks land on kinks and flip with summation order).
        let shapes = (0..<2).compactMap { f["block.\(name).input.\($0)"]?.shape }.map { s in [1, s[1], Swift.max(2, s[2] / 8), Swift.max(2, s[3] / 8)] }
        for (i, shape) in shapes.enumerated() { leaves["input.\(i)"] = Tensor.normal(shape, using: &rng) }
        var options = GradientCheck.Options()
        options.epsilon = epsilon
        return GradientCheck.check(name, parameters: leaves, options: options) { p in
            var parameters = p
            let xs = shapes.indices.map { parameters.removeValue(forKey: "input.\($0)")! }
            return block.run(xs, Scope(parameters: parameters, buffers: state.buffers))
        }
    }

    /// Smooth blocks with the default steps; those with many ReLU/LeakyReLU units or a sharp
    /// softmax (CAM's energy Y Yᵀ) with steps of 1e-3 of each input's RMS, which cross fewer kinks.
    @Test(arguments: [("eaef_per_sample", 1e-2), ("eaef_released", 1e-2), ("mdta", 1e-2), ("leff", 1e-2),
                      ("cam", 1e-3), ("sdfm", 1e-3), ("sim", 1e-3), ("invblock", 1e-3)] as [(String, Float)])
    func blockGradients(_ name: String, _ epsilon: Float) throws {
        let report = try Self.check(name, epsilon: epsilon)
        #expect(report.passed, "\(report)")
    }

    /// inverse(forward(x)) = x to 1e-5 (largest absolute error over x of scale 1), for random
    /// inputs and random weights around the deterministic ones (each parameter perturbed by
    /// N(0, 0.1²) times its RMS), several seeds.
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64]) func invBlockIsInvertible(_ seed: UInt64) throws {
        let block = try MAFSParityTests.blockCases()["invblock"]!
        let inv = block.module as! InvBlock
        var state = MAFSParityTests.state(for: inv, prefix: block.prefix)
        var rng = RandomGenerator(seed: seed)
        for name in state.parameters.keys.sorted() {
            let value = state.parameters[name]!
            let rms = Swift.max((value * value).mean().item.squareRoot(), 1e-3)
            state.parameters[name] = value + Tensor.normal(value.shape, std: 0.1 * rms, using: &rng)
        }
        let scope = Scope(state)
        let x = Tensor.normal([2, inv.invconv.channels, 8, 8], using: &rng)
        let y = inv(x, scope)
        let back = inv.inverse(y, scope)
        let error = (back - x).abs().max().item
        #expect(error <= 1e-5, "max |inverse(forward(x)) - x| = \(error)")
        // And the forward of the inverse.
        let again = inv(inv.inverse(x, scope), scope)
        #expect((again - x).abs().max().item <= 1e-5)
    }

    /// From scratch the 1x1 convolution is the identity and the block still invertible.
    @Test func freshInvBlockIsInvertible() throws {
        let inv = InvBlock(channels: 8, split: 4, width: 4, clamp: 0.8)
        let scope = Scope(inv.initialState(seed: 9))
        var rng = RandomGenerator(seed: 10)
        let x = Tensor.normal([2, 8, 8, 8], using: &rng)
        #expect((inv.inverse(inv(x, scope), scope) - x).abs().max().item <= 1e-5)
        let w = inv.invconv.run(in: scope) { conv, p in conv.weight(p) }
        #expect((w - Tensor.eye(8)).abs().max().item == 0)
    }

    /// `fusekit gradcheck --plugin mafs`: the whole network (its smallest configuration, batch 2,
    /// 64x64) in training mode, every output element against its own finite difference, every
    /// parameter and the input, at the plugin's check point
    /// (``GradcheckPoint/awayFromNormalizationKinks(_:_:)``). Among ~25k outputs fed by thousands
    /// of ReLU-like units (LeakyReLUs after plain convolutions in the INN decoder, ReLUs after
    /// unnormalised 1x1 convolutions, the channel max, ReLU6), some unit always crosses its kink
    /// within a step, and the elements it feeds then get a one-sided slope; so the finite
    /// differences hold the check point's side of every kink (``KinkPattern``). Unheld, the worst
    /// element missed by 2.4e-2 at every step size; held, it agrees to about 2e-3.
    @Test func pluginGradcheck() throws {
        let registry = StandardPlugins.registry()
        let report = PluginGradcheck.check(try registry.descriptor("mafs", kind: .joint))
        #expect(report.passed, "\(report)")
        #expect(report.identityError < 1e-5, "reverse and forward mode disagree: \(report)")
        #expect(report.kinkCrossings > 0, "the check no longer crosses kinks; the comment above is out of date")
    }
}

@Suite struct MAFSInferencePathTests {
    /// The blocks give the same output whether or not gradients are recorded (inference may take
    /// fused kernels).
    @Test(arguments: ["eaef_per_sample", "cam", "sdfm", "sim", "invblock", "mdta", "leff"])
    func recordedAndInferenceOutputsAgree(_ name: String) throws {
        let block = try MAFSParityTests.blockCases()[name]!
        let state = block.module.initialState(seed: 21)
        let f = try MAFSFixture.tensors()
        let inputs = (0..<2).compactMap { f["block.\(name).input.\($0)"] }
        let plain = withoutGradient { block.run(inputs, Scope(state)) }
        var recorded = Tensor(0)
        _ = valueWithGradient(at: inputs) { xs in
            recorded = block.run(xs, Scope(state))
            return recorded.sum()
        }
        let difference = (plain - recorded).abs().max().item, scale = recorded.abs().max().item
        print("\(name): max |inference - recorded| = \(difference) (scale \(scale))")
        #expect(difference <= 1e-5 * scale)
    }
}
