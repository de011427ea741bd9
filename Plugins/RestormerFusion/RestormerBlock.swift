import FuseKit

/// Restormer's per-pixel LayerNorm wrapper; the official code nests it as `norm.body`.
struct RestormerNorm: UnaryModule {
    let body: Child<ChannelLayerNorm>
    init(_ dim: Int) { body = Child("body", ChannelLayerNorm(dim)) }
    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor { body(x, p) }
}

extension Child where M == RestormerNorm {
    /// The wrapped LayerNorm's weight, bias and eps in `parent`'s scope (for the fused paths).
    func weights(in parent: Scope) -> ChannelLayerNorm.Weights { withScope(in: parent) { norm, p in norm.body.weights(in: p) } }
}

/// Gated-Dconv feed-forward network (GDFN): 1x1 conv to 2·hidden, depthwise 3x3, split,
/// gelu(x1) · x2, 1x1 conv back. Names: `project_in`, `dwconv`, `project_out`.
struct GatedFeedForward: UnaryModule {
    let projectIn: Child<Conv2d>
    let depthwise: Child<Conv2d>
    let projectOut: Child<Conv2d>

    init(dim: Int, expansion: Int = 2) {
        let hidden = dim * expansion
        projectIn = plainConv("project_in", dim, hidden * 2, 1)
        depthwise = plainConv("dwconv", hidden * 2, hidden * 2, 3, groups: hidden * 2)
        projectOut = plainConv("project_out", hidden, dim, 1)
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let hidden = projectOut.inChannels
        let halves = (0..<2).map { part -> Tensor in
            let range = (part * hidden)..<((part + 1) * hidden)
            return depthwise(projectIn(x, p, outputs: range), p, outputs: range)
        }
        return projectOut(Tensor.geluGate(halves[0], halves[1]), p)
    }

    /// `residual + self(norm(x))` as one row-tiled kernel (LayerNorm → 1x1 → depthwise 3x3 →
    /// GELU gate → 1x1 → residual), or nil where the ordinary ops must run.
    /// - Parameters:
    ///   - norm: the channel LayerNorm applied to `x` first, or nil for none.
    ///   - p: this module's own scope.
    func fusedInference(_ x: Tensor, norm: ChannelLayerNorm.Weights?, adding residual: Tensor, _ p: Scope) -> Tensor? {
        let pointwise = projectIn.weight(in: p), depthwise = self.depthwise.weight(in: p), projection = projectOut.weight(in: p)
        guard x.rank == 4, p.canFuseInference([x, residual, pointwise, depthwise, projection, norm?.weight, norm?.bias]) else { return nil }
        return Tensor.gatedFeedForwardInference(x, front: PointwiseDepthwise(norm: norm, pointwise: pointwise, depthwise: depthwise),
                                                projectOut: projection, residual: residual)
    }
}

/// A Restormer transformer block: x + Attn(LN1(x)), then x + FFN(LN2(x)).
/// Names: `norm1`, `attn`, `norm2`, `ffn`.
struct RestormerBlock: UnaryModule {
    let norm1: Child<RestormerNorm>
    let attention: Child<TransposedAttention>
    let norm2: Child<RestormerNorm>
    let feedForward: Child<GatedFeedForward>

    init(dim: Int, heads: Int) {
        norm1 = Child("norm1", RestormerNorm(dim))
        attention = Child("attn", TransposedAttention(dim: dim, heads: heads, bias: false))
        norm2 = Child("norm2", RestormerNorm(dim))
        feedForward = Child("ffn", GatedFeedForward(dim: dim))
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let y = attention.fusedInference(x, norm: norm1.weights(in: p), adding: x, p) ?? (x + attention(norm1(x, p), p))
        return feedForward.withScope(in: p) { ffn, scope in ffn.fusedInference(y, norm: norm2.weights(in: p), adding: y, scope) }
            ?? (y + feedForward(norm2(y, p), p))
    }

    /// `count` blocks in an `nn.Sequential` named `name` (items "0", "1", ...).
    static func stack(_ name: String, _ count: Int, dim: Int, heads: Int) -> Child<ModuleList<RestormerBlock>> {
        Child(name, ModuleList((0..<count).map { _ in RestormerBlock(dim: dim, heads: heads) }))
    }
}

/// A bias-free convolution with "same" padding, as every conv of F and G.
func plainConv(_ name: String, _ inChannels: Int, _ outChannels: Int, _ kernel: Int, groups: Int = 1) -> Child<Conv2d> {
    Child(name, Conv2d(inChannels, outChannels, kernelSize: kernel, groups: groups, bias: false))
}
