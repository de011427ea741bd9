import FuseKit

/// Restormer's per-pixel LayerNorm wrapper; the official code nests it as `norm.body`.
struct RestormerNorm: UnaryModule {
    let body: ChannelLayerNorm
    init(_ dim: Int) { body = ChannelLayerNorm(dim) }
    var children: [(name: String, module: any Module)] { [("body", body)] }
    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor { body(x, p.child("body")) }
}

/// Gated-Dconv feed-forward network (GDFN): 1x1 conv to 2·hidden, depthwise 3x3, split,
/// gelu(x1) · x2, 1x1 conv back. Names: `project_in`, `dwconv`, `project_out`.
struct GatedFeedForward: UnaryModule {
    let projectIn: Conv2d
    let depthwise: Conv2d
    let projectOut: Conv2d

    init(dim: Int, expansion: Int = 2) {
        let hidden = dim * expansion
        projectIn = Conv2d(dim, hidden * 2, kernelSize: 1, bias: false)
        depthwise = Conv2d(hidden * 2, hidden * 2, kernelSize: 3, groups: hidden * 2, bias: false)
        projectOut = Conv2d(hidden, dim, kernelSize: 1, bias: false)
    }

    var children: [(name: String, module: any Module)] {
        [("project_in", projectIn), ("dwconv", depthwise), ("project_out", projectOut)]
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let hidden = projectOut.inChannels
        let halves = (0..<2).map { part -> Tensor in
            let range = (part * hidden)..<((part + 1) * hidden)
            return depthwise(projectIn(x, p.child("project_in"), outputs: range), p.child("dwconv"), outputs: range)
        }
        return projectOut(Tensor.geluGate(halves[0], halves[1]), p.child("project_out"))
    }
}

/// A Restormer transformer block: x + Attn(LN1(x)), then x + FFN(LN2(x)).
/// Names: `norm1`, `attn`, `norm2`, `ffn`.
struct RestormerBlock: UnaryModule {
    let norm1: RestormerNorm
    let attention: TransposedAttention
    let norm2: RestormerNorm
    let feedForward: GatedFeedForward

    init(dim: Int, heads: Int) {
        norm1 = RestormerNorm(dim)
        attention = TransposedAttention(dim: dim, heads: heads, bias: false)
        norm2 = RestormerNorm(dim)
        feedForward = GatedFeedForward(dim: dim)
    }

    var children: [(name: String, module: any Module)] {
        [("norm1", norm1), ("attn", attention), ("norm2", norm2), ("ffn", feedForward)]
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let y = x + attention(norm1(x, p.child("norm1")), p.child("attn"))
        return y + feedForward(norm2(y, p.child("norm2")), p.child("ffn"))
    }

    /// `count` blocks in an `nn.Sequential` (children "0", "1", ...).
    static func stack(_ count: Int, dim: Int, heads: Int) -> Sequential {
        Sequential((0..<count).map { _ in RestormerBlock(dim: dim, heads: heads) })
    }
}

/// A bias-free convolution with "same" padding, as every conv of F and G.
func plainConv(_ inChannels: Int, _ outChannels: Int, _ kernel: Int, groups: Int = 1) -> Conv2d {
    Conv2d(inChannels, outChannels, kernelSize: kernel, groups: groups, bias: false)
}
