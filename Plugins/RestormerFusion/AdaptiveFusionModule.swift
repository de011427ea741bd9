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
        if let fused = fusedInference(x1, x2, p) { return fused }
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

    /// The same mixing as one pass of row-tiled kernels, or nil where the ordinary ops must run.
    func fusedInference(_ x1: Tensor, _ x2: Tensor, _ p: Scope) -> Tensor? {
        let pair = { (pointwise: Child<Conv2d>, depthwise: Child<Conv2d>) in
            PointwiseDepthwise(pointwise: pointwise.weight(in: p), depthwise: depthwise.weight(in: p))
        }
        let weights = FusedMixing(
            dim: dim, heads: heads, queryKeyValue: (pair(qkv1, qkv1Depthwise), pair(qkv2, qkv2Depthwise)),
            temperature: (p[temperature1], p[temperature2]), projectMid: (projectMid1.weight(in: p), projectMid2.weight(in: p)),
            gates: pair(projectE, projectEDepthwise), fromY: (pair(projectE1, projectE1Depthwise), pair(projectE2, projectE2Depthwise)),
            projectOut: (projectOut1.weight(in: p), projectOut2.weight(in: p)))
        guard x1.rank == 4, x2.shape == x1.shape, p.canFuseInference([x1, x2] + weights.tensors) else { return nil }
        return Profiler.measure("fused mixing") { weights(x1, x2) }
    }
}

/// The AFM's weights for its fused inference: the cross attention's q·kᵀ statistics are
/// gathered tile by tile (only each modality's v is kept whole), and the gated mixing (1x1 →
/// depthwise → GELU gate → 1x1) never writes its 4·dim-channel maps to memory.
struct FusedMixing {
    let dim: Int, heads: Int
    let queryKeyValue: (PointwiseDepthwise, PointwiseDepthwise)
    let temperature: (Tensor, Tensor)
    let projectMid: (Tensor, Tensor)
    let gates: PointwiseDepthwise
    /// The 1x1 → depthwise of e₁ (from y1) and e₂ (from y2).
    let fromY: (PointwiseDepthwise, PointwiseDepthwise)
    let projectOut: (Tensor, Tensor)

    var tensors: [Tensor] {
        [queryKeyValue.0, queryKeyValue.1, gates, fromY.0, fromY.1].flatMap { [$0.pointwise, $0.depthwise] }
            + [temperature.0, temperature.1, projectMid.0, projectMid.1, projectOut.0, projectOut.1]
    }

    func callAsFunction(_ x1: Tensor, _ x2: Tensor) -> Tensor {
        let (n, h, w) = (x1.shape[0], x1.shape[2], x1.shape[3])
        // Cross attention: queries of one modality against the other's keys and values, written
        // with the residuals into the two channel halves of the concatenation [y1, y2].
        let concatenated = Tensor(uninitializedShape: [n, 2 * dim, h, w])
        do {
            let statistics1 = ChannelAttentionStatistics(batch: n, height: h, channels: dim, heads: heads)
            let statistics2 = ChannelAttentionStatistics(batch: n, height: h, channels: dim, heads: heads)
            let v1 = Tensor(uninitializedShape: x1.shape), v2 = Tensor(uninitializedShape: x2.shape)
            RowTiles.run([(x1, queryKeyValue.0), (x2, queryKeyValue.1)]) { chunk in
                let a = chunk.tiles[0], b = chunk.tiles[1], pixels = chunk.pixels
                statistics1.add(chunk, queries: b, keys: a + dim * pixels)
                statistics2.add(chunk, queries: a, keys: b + dim * pixels)
                chunk.store(a + 2 * dim * pixels, into: v1)
                chunk.store(b + 2 * dim * pixels, into: v2)
            }
            _ = statistics1.mix(v1, temperature: temperature.0, projection: projectMid.0, residual: x1, into: concatenated, channelOffset: 0)
            _ = statistics2.mix(v2, temperature: temperature.1, projection: projectMid.1, residual: x2, into: concatenated, channelOffset: dim)
        }
        // Gated mixing: out + W₁(gelu(g₁) · e₁) + W₂(gelu(g₂) · e₂).
        let result = Tensor(uninitializedShape: concatenated.shape)
        let half = gates.outChannels / 2
        var (fromY1, fromY2) = fromY
        (fromY1.inputOffset, fromY2.inputOffset) = (0, dim)
        RowTiles.run([(concatenated, gates), (concatenated, fromY1), (concatenated, fromY2)]) { chunk in
            let g = chunk.tiles[0], e1 = chunk.tiles[1], e2 = chunk.tiles[2]
            chunk.geluGate(g, e1, into: e1, channels: half)
            chunk.geluGate(g + half * chunk.pixels, e2, into: e2, channels: half)
            chunk.copyRows(of: concatenated, into: result)
            chunk.project(projectOut.0, e1, into: result, accumulate: true)
            chunk.project(projectOut.1, e2, into: result, accumulate: true)
        }
        return result
    }
}
