import FuseKit

/// ReFusion's feature-mixing module (AFM): cross channel-attention between the two encoders'
/// features (queries of one modality attend to the other's keys and values), then a gated
/// mixing of the concatenation. Names follow the official code (`FM.*`).
struct AdaptiveFusionModule: Layer {
    let dim: Int
    let heads: Int
    let temperature1, temperature2: ParameterSpec
    let qkv1, qkv1Depthwise, qkv2, qkv2Depthwise: Child<Conv2d>
    let projectMid1, projectMid2: Child<Conv2d>
    let projectE, projectEDepthwise: Child<Conv2d>
    let projectE1, projectE1Depthwise, projectE2, projectE2Depthwise: Child<Conv2d>
    let projectOut1, projectOut2: Child<Conv2d>

    init(dim: Int, heads: Int) {
        self.dim = dim
        self.heads = heads
        temperature1 = TransposedAttention.temperature(heads: heads, name: "temperature1")
        temperature2 = TransposedAttention.temperature(heads: heads, name: "temperature2")
        (qkv1, qkv1Depthwise) = TransposedAttention.queryKeyValueConvs(dim: dim, bias: false, prefix: "qkv1")
        (qkv2, qkv2Depthwise) = TransposedAttention.queryKeyValueConvs(dim: dim, bias: false, prefix: "qkv2")
        projectMid1 = plainConv("project_mid1", dim, dim, 1)
        projectMid2 = plainConv("project_mid2", dim, dim, 1)
        projectE = plainConv("project_E", 2 * dim, 8 * dim, 1)
        projectEDepthwise = plainConv("project_E_d", 8 * dim, 8 * dim, 3, groups: 8 * dim)
        projectE1 = plainConv("project_E1", dim, 4 * dim, 1)
        projectE1Depthwise = plainConv("project_E1_d", 4 * dim, 4 * dim, 3, groups: 4 * dim)
        projectE2 = plainConv("project_E2", dim, 4 * dim, 1)
        projectE2Depthwise = plainConv("project_E2_d", 4 * dim, 4 * dim, 3, groups: 4 * dim)
        projectOut1 = plainConv("project_out1", 4 * dim, 2 * dim, 1)
        projectOut2 = plainConv("project_out2", 4 * dim, 2 * dim, 1)
    }

    /// The two encoders' features (infrared, visible) mixed into 2·dim channels.
    func callAsFunction(_ x: (Tensor, Tensor), _ p: Scope) -> Tensor {
        let (x1, x2) = x
        let a = TransposedAttention.queriesKeysValues(x1, qkv1, qkv1Depthwise, p, dim: dim)
        let b = TransposedAttention.queriesKeysValues(x2, qkv2, qkv2Depthwise, p, dim: dim)
        let out1 = AttentionFunctions.channelAttention(q: b[0], k: a[1], v: a[2], heads: heads, temperature: p[temperature1])
        let out2 = AttentionFunctions.channelAttention(q: a[0], k: b[1], v: b[2], heads: heads, temperature: p[temperature2])
        let y1 = x1 + projectMid1(out1, p)
        let y2 = x2 + projectMid2(out2, p)
        let out = Tensor.concat([y1, y2], axis: 1)
        let gates = (0..<2).map { part -> Tensor in
            let range = (part * 4 * dim)..<((part + 1) * 4 * dim)
            return projectEDepthwise(projectE(out, p, outputs: range), p, outputs: range)
        }
        let e1 = Tensor.geluGate(gates[0], projectE1Depthwise(projectE1(y1, p), p))
        let e2 = Tensor.geluGate(gates[1], projectE2Depthwise(projectE2(y2, p), p))
        return out + projectOut1(e1, p) + projectOut2(e2, p)
    }
}
