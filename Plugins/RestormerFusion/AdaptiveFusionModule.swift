import FuseKit

/// ReFusion's feature-mixing module (AFM): cross channel-attention between the two encoders'
/// features (queries of one modality attend to the other's keys and values), then a gated
/// mixing of the concatenation. Names follow the official code (`FM.*`).
struct AdaptiveFusionModule: Module {
    let dim: Int
    let heads: Int
    let qkv1, qkv1Depthwise, qkv2, qkv2Depthwise: Conv2d
    let projectMid1, projectMid2: Conv2d
    let projectE, projectEDepthwise: Conv2d
    let projectE1, projectE1Depthwise, projectE2, projectE2Depthwise: Conv2d
    let projectOut1, projectOut2: Conv2d

    init(dim: Int, heads: Int) {
        self.dim = dim
        self.heads = heads
        qkv1 = plainConv(dim, dim * 3, 1)
        qkv1Depthwise = plainConv(dim * 3, dim * 3, 3, groups: dim * 3)
        qkv2 = plainConv(dim, dim * 3, 1)
        qkv2Depthwise = plainConv(dim * 3, dim * 3, 3, groups: dim * 3)
        projectMid1 = plainConv(dim, dim, 1)
        projectMid2 = plainConv(dim, dim, 1)
        projectE = plainConv(2 * dim, 8 * dim, 1)
        projectEDepthwise = plainConv(8 * dim, 8 * dim, 3, groups: 8 * dim)
        projectE1 = plainConv(dim, 4 * dim, 1)
        projectE1Depthwise = plainConv(4 * dim, 4 * dim, 3, groups: 4 * dim)
        projectE2 = plainConv(dim, 4 * dim, 1)
        projectE2Depthwise = plainConv(4 * dim, 4 * dim, 3, groups: 4 * dim)
        projectOut1 = plainConv(4 * dim, 2 * dim, 1)
        projectOut2 = plainConv(4 * dim, 2 * dim, 1)
    }

    var ownParameters: [ParameterSpec] {
        [ParameterSpec("temperature1", [heads, 1, 1], .constant(1), decays: false),
         ParameterSpec("temperature2", [heads, 1, 1], .constant(1), decays: false)]
    }

    var children: [(name: String, module: any Module)] {
        [("qkv1", qkv1), ("qkv1_dwconv", qkv1Depthwise), ("qkv2", qkv2), ("qkv2_dwconv", qkv2Depthwise),
         ("project_mid1", projectMid1), ("project_mid2", projectMid2),
         ("project_E", projectE), ("project_E_d", projectEDepthwise),
         ("project_E1", projectE1), ("project_E1_d", projectE1Depthwise),
         ("project_E2", projectE2), ("project_E2_d", projectE2Depthwise),
         ("project_out1", projectOut1), ("project_out2", projectOut2)]
    }

    func callAsFunction(_ x1: Tensor, _ x2: Tensor, _ p: Scope) -> Tensor {
        let a = TransposedAttention.queriesKeysValues(x1, qkv1, qkv1Depthwise, p.child("qkv1"), p.child("qkv1_dwconv"), dim: dim)
        let b = TransposedAttention.queriesKeysValues(x2, qkv2, qkv2Depthwise, p.child("qkv2"), p.child("qkv2_dwconv"), dim: dim)
        let out1 = AttentionFunctions.channelAttention(q: b[0], k: a[1], v: a[2], heads: heads, temperature: p["temperature1"])
        let out2 = AttentionFunctions.channelAttention(q: a[0], k: b[1], v: b[2], heads: heads, temperature: p["temperature2"])
        let y1 = x1 + projectMid1(out1, p.child("project_mid1"))
        let y2 = x2 + projectMid2(out2, p.child("project_mid2"))
        let out = Tensor.concat([y1, y2], axis: 1)
        let gates = (0..<2).map { part -> Tensor in
            let range = (part * 4 * dim)..<((part + 1) * 4 * dim)
            return projectEDepthwise(projectE(out, p.child("project_E"), outputs: range), p.child("project_E_d"), outputs: range)
        }
        let e1 = Tensor.geluGate(gates[0], projectE1Depthwise(projectE1(y1, p.child("project_E1")), p.child("project_E1_d")))
        let e2 = Tensor.geluGate(gates[1], projectE2Depthwise(projectE2(y2, p.child("project_E2")), p.child("project_E2_d")))
        return out + projectOut1(e1, p.child("project_out1")) + projectOut2(e2, p.child("project_out2"))
    }
}
