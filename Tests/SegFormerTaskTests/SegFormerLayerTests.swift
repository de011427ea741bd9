import FuseKit
import SegFormerTask
import Testing

/// Gradient checks (reverse and forward mode against finite differences) of every SegFormer
/// layer on tiny shapes, in evaluation mode unless said otherwise.
@Suite struct SegFormerLayerGradientTests {
    /// Checks `module`'s parameters and its input `x` together.
    static func check(_ name: String, _ module: any Module, input x: Tensor, seed: UInt64 = 1, training: Bool = false,
                      _ apply: @escaping (Tensor, Scope) -> Tensor) -> GradientCheck.Report {
        let state = module.initialState(seed: seed)
        var inputs = state.parameters
        inputs["<input>"] = x
        return GradientCheck.check(name, parameters: inputs) { values in
            var parameters = values
            let input = parameters.removeValue(forKey: "<input>")!
            // A fresh context per call: in training mode the random masks repeat, so the
            // function is deterministic.
            let context = ForwardContext(training: training, rng: RandomGenerator(seed: 5))
            return apply(input, Scope(parameters: parameters, buffers: state.buffers, context: context))
        }
    }

    static func random(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        return Tensor.normal(shape, std: scale, using: &rng)
    }

    /// Finite differences cannot straddle ReLU's kink: a BatchNorm weight of 0.1 and biases of
    /// ±1 put every pre-activation far from 0 (half the channels on, half off).
    static func keepAwayFromReLUKink(_ state: inout ModelState, batchNorm prefix: String, channels: Int) {
        state.parameters[prefix + ".weight"] = Tensor.full([channels], 0.1)
        state.parameters[prefix + ".bias"] = Tensor((0..<channels).map { $0 % 2 == 0 ? 1 : -1 })
    }

    @Test func channelLinear() {
        let layer = ChannelLinear(3, 5)
        let report = Self.check("channel linear", layer, input: Self.random([2, 3, 2, 3], seed: 2)) { layer($0, $1) }
        #expect(report.passed, "\(report)")
    }

    @Test func overlapPatchEmbedding() {
        for (patch, stride) in [(7, 4), (3, 2)] {
            let layer = OverlapPatchEmbedding(inChannels: 2, embedDim: 4, patchSize: patch, stride: stride)
            let report = Self.check("patch embedding \(patch)x\(patch)/\(stride)", layer, input: Self.random([2, 2, 9, 7], seed: 3)) { layer($0, $1) }
            #expect(report.passed, "\(report)")
        }
    }

    @Test(arguments: [1, 2])
    func spatialReductionAttention(reduction: Int) {
        let layer = SpatialReductionAttention(dim: 4, heads: 2, reduction: reduction)
        #expect(layer.namedSpecs().map(\.name) == ["q.weight", "q.bias", "kv.weight", "kv.bias", "proj.weight", "proj.bias"]
                + (reduction > 1 ? ["sr.weight", "sr.bias", "norm.weight", "norm.bias"] : []))
        // Larger-than-official weights so that the attention is far from uniform.
        var state = layer.initialState(seed: 4)
        for (name, value) in state.parameters where name.hasSuffix("weight") && value.rank == 2 { state.parameters[name] = value * 20 }
        var inputs = state.parameters
        inputs["<input>"] = Self.random([2, 4, 4, 5], seed: 5)
        let report = GradientCheck.check("spatial-reduction attention, reduction \(reduction)", parameters: inputs) { values in
            var parameters = values
            let input = parameters.removeValue(forKey: "<input>")!
            return layer(input, Scope(parameters: parameters))
        }
        #expect(report.passed, "\(report)")
    }

    @Test func spatialReductionAttentionWithoutQueryKeyValueBiases() {
        let layer = SpatialReductionAttention(dim: 6, heads: 3, reduction: 2, qkvBias: false)
        #expect(layer.namedSpecs().map(\.name) == ["q.weight", "kv.weight", "proj.weight", "proj.bias", "sr.weight", "sr.bias",
                                                    "norm.weight", "norm.bias"])
        var state = layer.initialState(seed: 6)
        for (name, value) in state.parameters where value.rank == 2 { state.parameters[name] = value * 20 }
        var inputs = state.parameters
        inputs["<input>"] = Self.random([1, 6, 4, 6], seed: 7)
        let report = GradientCheck.check("spatial-reduction attention, no qkv bias", parameters: inputs) { values in
            var parameters = values
            let input = parameters.removeValue(forKey: "<input>")!
            return layer(input, Scope(parameters: parameters))
        }
        #expect(report.passed, "\(report)")
    }

    @Test(arguments: GELUForm.allCases)
    func mixFeedForward(gelu: GELUForm) {
        let layer = MixFeedForward(dim: 3, hidden: 6, gelu: gelu)
        let report = Self.check("Mix-FFN (\(gelu))", layer, input: Self.random([2, 3, 4, 5], seed: 6, scale: 10)) { layer($0, $1) }
        #expect(report.passed, "\(report)")
    }

    @Test func mixTransformerBlock() {
        let layer = MixTransformerBlock(dim: 4, heads: 2, reduction: 2, mlpRatio: 2, dropPathRate: 0.1, gelu: .exact)
        let report = Self.check("MiT block", layer, input: Self.random([2, 4, 4, 6], seed: 7)) { layer($0, $1) }
        #expect(report.passed, "\(report)")
        // In training, drop path with a fixed random stream is a fixed mask: still differentiable.
        let dropping = MixTransformerBlock(dim: 4, heads: 2, reduction: 2, mlpRatio: 2, dropPathRate: 0.5, gelu: .tanh)
        let training = Self.check("MiT block (training, fixed drop-path mask)", dropping, input: Self.random([4, 4, 4, 6], seed: 8),
                                  training: true) { dropping($0, $1) }
        #expect(training.passed, "\(training)")
    }

    @Test(arguments: [false, true])
    func decoderHead(training: Bool) {
        // Stage 1 takes the composed-projection path (2 channels < 2·8·6 pixels), stage 4 the
        // sequential one (5 channels > 2·1·1 pixels).
        let head = SegFormerHead(inChannels: [2, 3, 4, 5], decoderDim: 4, classes: 3, dropout: training ? 0.5 : 0,
                                 batchNormEpsilon: 1e-3, batchNormMomentum: 0.03)
        let shapes = [[2, 2, 8, 6], [2, 3, 4, 3], [2, 4, 2, 2], [2, 5, 1, 1]]
        var state = head.initialState(seed: 9)
        state.buffers["linear_fuse.bn.running_mean"] = Self.random([4], seed: 10, scale: 0.1)
        state.buffers["linear_fuse.bn.running_var"] = Self.random([4], seed: 11).abs() + 0.5
        Self.keepAwayFromReLUKink(&state, batchNorm: "linear_fuse.bn", channels: 4)
        var inputs = state.parameters
        for (k, shape) in shapes.enumerated() { inputs["<c\(k + 1)>"] = Self.random(shape, seed: 20 + UInt64(k)) }
        let report = GradientCheck.check("decoder head (\(training ? "training: batch statistics, fixed dropout mask" : "evaluation"))",
                                         parameters: inputs) { values in
            var parameters = values
            let features = (1...4).map { parameters.removeValue(forKey: "<c\($0)>")! }
            let context = ForwardContext(training: training, rng: RandomGenerator(seed: 12))
            return head(features, Scope(parameters: parameters, buffers: state.buffers, context: context))
        }
        #expect(report.passed, "\(report)")
    }

    @Test func wholeNetworkLossOnATinyConfiguration() {
        let net = SegFormer(.with {
            $0.classes = 3
            ($0.embedDims, $0.heads, $0.depths, $0.reductionRatios) = ([4, 4, 6, 8], [1, 2, 2, 2], [1, 1, 1, 1], [2, 2, 1, 1])
            ($0.mlpRatio, $0.decoderEmbed, $0.dropPath, $0.dropout) = (2, 4, 0, 0)
        })
        var state = net.initialState(seed: 13)
        Self.keepAwayFromReLUKink(&state, batchNorm: "decode_head.linear_fuse.bn", channels: 4)
        let labels = Tensor(shape: [2, 5, 7], scalars: (0..<70).map { $0 % 9 == 0 ? 255 : Float($0 % 3) })
        var inputs = state.parameters
        inputs["<input>"] = Self.random([2, 1, 16, 20], seed: 14)
        let report = GradientCheck.check("segformer loss (tiny configuration)", parameters: inputs) { values in
            var parameters = values
            let images = parameters.removeValue(forKey: "<input>")!
            return net.loss(images, targets: TaskTargets(segmentation: labels), Scope(parameters: parameters, buffers: state.buffers))
        }
        #expect(report.passed, "\(report)")
    }

    @Test func tinyConvSegmenterLoss() {
        let net = TinyConvSegmenter(.with { $0.classes = 4 })
        var state = net.initialState(seed: 15)
        // Biases of ±3 and ±6 keep the two ReLUs' inputs far from their kink (see above).
        state.parameters["0.bias"] = Tensor((0..<16).map { $0 % 2 == 0 ? 3 : -3 })
        state.parameters["2.bias"] = Tensor((0..<16).map { $0 % 2 == 0 ? 6 : -6 })
        let labels = Tensor(shape: [2, 6, 5], scalars: (0..<60).map { $0 % 7 == 0 ? 255 : Float($0 % 4) })
        var inputs = state.parameters
        inputs["<input>"] = Self.random([2, 1, 6, 5], seed: 16)
        let report = GradientCheck.check("tiny-conv-seg loss", parameters: inputs) { values in
            var parameters = values
            let images = parameters.removeValue(forKey: "<input>")!
            return net.loss(images, targets: TaskTargets(segmentation: labels), Scope(parameters: parameters))
        }
        #expect(report.passed, "\(report)")
    }
}
