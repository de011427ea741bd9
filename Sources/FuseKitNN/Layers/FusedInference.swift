import FuseKitTensor

// The layers' fused inference paths: when nothing records a graph or tangents, a layer may run
// a memory-bound sequence of its ops as one row-tiled kernel (FuseKitTensor's FusedInference)
// instead of writing every intermediate to memory. Each path returns nil where the ordinary
// ops must run; callers then call the layers as usual.

extension Scope {
    /// Whether layers may run fused inference kernels on `tensors` here: no graph or tangents
    /// are being recorded through them, and no ``ModuleTrace`` is attached (`fusekit inspect`
    /// records every child's call, which a fused kernel skips).
    public func canFuseInference(_ tensors: [Tensor?]) -> Bool {
        context.trace == nil && Tensor.canFuseInference(tensors)
    }
}

extension Child {
    /// `body` with the module and its own scope inside `parent`, not recorded for a
    /// ``ModuleTrace``: for fused paths that read a child's parameters instead of calling it.
    public func withScope<R>(in parent: Scope, _ body: (M, Scope) -> R) -> R {
        body(module, parent.child(name))
    }
}

extension Child where M == Conv2d {
    /// The convolution's weight in `parent`'s scope.
    public func weight(in parent: Scope) -> Tensor { withScope(in: parent) { conv, p in p[conv.weight] } }
}

extension ChannelLayerNorm {
    /// A channel LayerNorm's values as fused kernels take them.
    public typealias Weights = (weight: Tensor, bias: Tensor?, eps: Float)

    /// The weight, bias and eps in scope `p`.
    public func weights(_ p: Scope) -> Weights { (p[weight], bias.map { p[$0] }, eps) }
}

extension Child where M == ChannelLayerNorm {
    /// The norm's weight, bias and eps in `parent`'s scope.
    public func weights(in parent: Scope) -> ChannelLayerNorm.Weights { withScope(in: parent) { norm, p in norm.weights(p) } }
}

extension TransposedAttention {
    /// `residual + self(norm(x))` as one row-tiled kernel (LayerNorm → qkv 1x1 → depthwise 3x3,
    /// q·kᵀ statistics per tile, only v kept whole, then the mixing and output projection), or
    /// nil where the ordinary ops must run (a graph or tangents recorded, a bias, a trace).
    /// - Parameters:
    ///   - norm: the channel LayerNorm applied to `x` first, or nil for none.
    ///   - p: the attention's own scope.
    public func fusedInference(_ x: Tensor, norm: ChannelLayerNorm.Weights?, adding residual: Tensor, _ p: Scope) -> Tensor? {
        guard !qkv.hasBias && !qkvDepthwise.hasBias && !projectOut.hasBias && x.rank == 4 else { return nil }
        let pointwise = qkv.weight(in: p), depthwise = qkvDepthwise.weight(in: p), projection = projectOut.weight(in: p)
        let temperature = p[self.temperature]
        guard p.canFuseInference([x, residual, pointwise, depthwise, projection, temperature, norm?.weight, norm?.bias]) else { return nil }
        return Tensor.channelAttentionInference(x, qkv: PointwiseDepthwise(norm: norm, pointwise: pointwise, depthwise: depthwise), heads: heads,
                                                temperature: temperature, projectOut: projection, residual: residual)
    }
}

extension Child where M == TransposedAttention {
    /// `residual + attention(norm(x))` fused; see ``TransposedAttention/fusedInference(_:norm:adding:_:)``.
    public func fusedInference(_ x: Tensor, norm: ChannelLayerNorm.Weights?, adding residual: Tensor, _ parent: Scope) -> Tensor? {
        withScope(in: parent) { attention, p in attention.fusedInference(x, norm: norm, adding: residual, p) }
    }
}
