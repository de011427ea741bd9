import FuseKitNN
import FuseKitTensor
import Testing

/// Layers: parameter names and shapes, gradient checks, train/eval behaviour.
@Suite struct LayerTests {
    static func normal(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        return Tensor.normal(shape, std: scale, using: &rng)
    }

    /// Gradient check of a unary layer with respect to its input and all its parameters.
    static func checkLayer(_ name: String, _ layer: some UnaryModule, input: Tensor, seed: UInt64 = 1) -> GradientCheck.Report {
        let state = layer.initialState(seed: seed)
        var inputs = state.parameters
        inputs["input"] = input
        return GradientCheck.check(name, parameters: inputs) { d in
            var params = d
            let x = params.removeValue(forKey: "input")!
            return layer(x, Scope(parameters: params, buffers: state.buffers))
        }
    }

    static func report(_ r: GradientCheck.Report, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.passed, "\(r)", sourceLocation: sourceLocation)
    }

    @Test func namesFollowPyTorch() {
        let attention = TransposedAttention(dim: 16, heads: 8)
        let names = attention.namedSpecs(prefix: "encoder1.0.attn.").map(\.name)
        #expect(names == ["encoder1.0.attn.temperature", "encoder1.0.attn.qkv.weight",
                          "encoder1.0.attn.qkv_dwconv.weight", "encoder1.0.attn.project_out.weight"])
        let shapes = attention.namedSpecs().map(\.spec.shape)
        #expect(shapes == [[8, 1, 1], [48, 16, 1, 1], [48, 1, 3, 3], [16, 16, 1, 1]])
        let seq = Sequential([Conv2d(1, 4, kernelSize: 3), Activation(.relu), BatchNorm2d(4)])
        #expect(seq.namedSpecs().map(\.name) == ["0.weight", "0.bias", "2.weight", "2.bias", "2.running_mean", "2.running_var", "2.num_batches_tracked"])
        #expect(seq.parameterCount == 4 * 9 + 4 + 4 + 4)
    }

    @Test func defaultInitialisationMatchesPyTorchBounds() {
        let conv = Conv2d(8, 16, kernelSize: 3)
        let state = conv.initialState(seed: 3)
        let bound = 1 / Float(8 * 9).squareRoot()
        let w = state.parameters["weight"]!.scalars
        #expect(w.allSatisfy { Swift.abs($0) <= bound })
        #expect(w.map { Swift.abs($0) }.max()! > bound * 0.9)
        #expect(state.parameters["bias"]!.scalars.allSatisfy { Swift.abs($0) <= bound })
        let ln = ChannelLayerNorm(4).initialState(seed: 0)
        #expect(ln.parameters["weight"]!.scalars == [1, 1, 1, 1])
        #expect(ln.parameters["bias"]!.scalars == [0, 0, 0, 0])
    }

    @Test func layerGradients() {
        let image = Self.normal([2, 4, 5, 6], seed: 10)
        Self.report(Self.checkLayer("Conv2d", Conv2d(4, 3, kernelSize: 3), input: image))
        Self.report(Self.checkLayer("Conv2d strided grouped", Conv2d(4, 6, kernelSize: 3, stride: 2, groups: 2), input: image))
        Self.report(Self.checkLayer("ConvTranspose2d", ConvTranspose2d(4, 2, kernelSize: 2, stride: 2), input: image))
        Self.report(Self.checkLayer("Linear", Linear(6, 3), input: Self.normal([2, 5, 6], seed: 11)))
        Self.report(Self.checkLayer("ChannelLayerNorm", ChannelLayerNorm(4), input: image))
        Self.report(Self.checkLayer("LayerNorm", LayerNorm(6), input: Self.normal([2, 5, 6], seed: 12)))
        Self.report(Self.checkLayer("GroupNorm", GroupNorm(groups: 2, channels: 4), input: image))
        Self.report(Self.checkLayer("InstanceNorm2d affine", InstanceNorm2d(4, affine: true), input: image))
        Self.report(Self.checkLayer("PReLU", PReLU(count: 4), input: image + 0.3 * image.sign()))
        Self.report(Self.checkLayer("TransposedAttention", TransposedAttention(dim: 4, heads: 2), input: image))
        Self.report(Self.checkLayer("Sequential", Sequential([Conv2d(4, 4, kernelSize: 1), Activation(.gelu), Conv2d(4, 2, kernelSize: 3)]), input: image))
    }

    @Test func batchNormTrainingUpdatesRunningStatistics() {
        let bn = BatchNorm2d(2, momentum: 0.1)
        var state = bn.initialState(seed: 0)
        let x = Self.normal([4, 2, 3, 3], seed: 13) * 2 + 1
        let context = ForwardContext(training: true)
        let y = bn(x, Scope(state, context: context))
        state.absorb(context)
        // Normalised per channel in training.
        let mean = y.mean(axes: [0, 2, 3]).scalars
        #expect(mean.allSatisfy { Swift.abs($0) < 1e-5 })
        let batchMean = x.mean(axes: [0, 2, 3]).scalars
        let running = state.buffers["running_mean"]!.scalars
        for c in 0..<2 { #expect(Swift.abs(running[c] - 0.1 * batchMean[c]) < 1e-6) }
        let unbiased = x.variance(axes: [0, 2, 3], correction: 1).scalars
        let runningVar = state.buffers["running_var"]!.scalars
        for c in 0..<2 { #expect(Swift.abs(runningVar[c] - (0.9 + 0.1 * unbiased[c])) < 1e-5) }
        #expect(state.buffers["num_batches_tracked"]!.item == 1)
        // Evaluation uses running statistics and records nothing.
        let evalContext = ForwardContext(training: false)
        _ = bn(x, Scope(state, context: evalContext))
        #expect(evalContext.bufferUpdates.isEmpty)
        // Gradient through training-mode batch statistics.
        let params = state.parameters.merging(["input": x]) { a, _ in a }
        Self.report(GradientCheck.check("BatchNorm2d training", parameters: params) { d in
            var p = d
            let input = p.removeValue(forKey: "input")!
            return bn(input, Scope(parameters: p, buffers: state.buffers, context: ForwardContext(training: true)))
        })
    }

    @Test func dropoutAndDropPath() {
        let x = Tensor.ones([4, 1000])
        let drop = Dropout(0.25)
        #expect(drop(x, Scope(parameters: [:])).scalars == x.scalars)
        let context = ForwardContext(training: true, rng: RandomGenerator(seed: 5))
        let y = drop(x, Scope(parameters: [:], context: context)).scalars
        let kept = y.filter { $0 != 0 }
        #expect(kept.allSatisfy { Swift.abs($0 - 1 / 0.75) < 1e-6 })
        #expect(Swift.abs(Double(kept.count) / 4000 - 0.75) < 0.03)
        let path = DropPath(0.5)(Tensor.ones([64, 3, 2, 2]), Scope(parameters: [:], context: context))
        for b in 0..<64 {
            let sample = path.sliced(axis: 0, b..<(b + 1)).scalars
            #expect(Set(sample).count == 1)
        }
    }

    @Test func loadingChecksNamesAndShapes() throws {
        let layer = Sequential([Conv2d(1, 2, kernelSize: 3, bias: false), ChannelLayerNorm(2)])
        let state = layer.initialState(seed: 1)
        var tensors = state.stateDict
        let loaded = try layer.loadState(from: tensors)
        #expect(loaded.parameters["0.weight"]!.scalars == state.parameters["0.weight"]!.scalars)

        tensors["0.conv.weight"] = state.parameters["0.weight"]!
        #expect(throws: StateDictError.unexpected(keys: ["0.conv.weight"])) { try layer.loadState(from: tensors) }
        let alias: (String) -> String? = { $0.hasSuffix(".conv.weight") ? String($0.dropLast(".conv.weight".count)) + ".weight" : nil }
        _ = try layer.loadState(from: tensors, alias: alias)

        tensors["0.conv.weight"] = Tensor.zeros([2, 1, 3, 3])
        #expect(throws: StateDictError.conflictingAlias(alias: "0.conv.weight", key: "0.weight")) { try layer.loadState(from: tensors, alias: alias) }

        var wrong = state.stateDict
        wrong["1.weight"] = Tensor.zeros([3])
        #expect(throws: StateDictError.shapeMismatch(key: "1.weight", expected: [2], found: [3])) { try layer.loadState(from: wrong) }
        wrong.removeValue(forKey: "1.weight")
        let error = #expect(throws: StateDictError.self) { try layer.loadState(from: wrong) }
        #expect(error?.description == "missing key '1.weight' (expected shape [2])")
    }

    @Test func functionalCallWithAVirtualStepStaysDifferentiable() {
        // θ' = θ - η ∇L(θ) run through the same module; d L(θ') / d θ matches finite differences.
        let conv = Conv2d(1, 1, kernelSize: 3, bias: false)
        let theta = conv.initialState(seed: 4).parameters
        let x = Self.normal([1, 1, 5, 5], seed: 15)
        let target = Self.normal([1, 1, 5, 5], seed: 16)
        func loss(_ p: [String: Tensor]) -> Tensor { Losses.mse(conv(x, Scope(parameters: p)), target) }
        var reverseOnly = GradientCheck.Options()
        reverseOnly.checksForwardMode = false
        Self.report(GradientCheck.check("virtual step", parameters: theta, options: reverseOnly) { p in
            let g = gradient(at: p, createGraph: true) { loss($0) }
            let stepped = p.mapValues { $0 }.merging(g) { w, gw in w - 0.5 * gw }
            return loss(stepped)
        })
    }
}
