import FuseKit
import SegFormerTask

/// PC-Att (the official `PCASC`): the progressive cycle attention that fuses the RGB map x1 and
/// the infrared map x2 of one stage into one map for the segmentation head:
/// a = SA_x1(x1), b = CA_x1toX2(x2, a), c = SA_x2(b), d = CA_x2toX1(a, c), out = proj(d), where
/// SA(x) = proj(attention(q(x), kv(SR(x))) + x) and CA(x, y) = proj(attention(q1(x), kv2(SR(y))) + x)
/// (queries from x, keys and values from y spatially reduced; the residual is added before the
/// projection, there is no LayerNorm before the attention, and q/kv have no bias whatever the
/// official constructor is passed). Names: `SA_x1.{q,kv,proj,sr,norm}`,
/// `CA_x1toX2.{q1,kv2,proj,sr,norm}`, `SA_x2`, `CA_x2toX1`, `proj`.
public struct PCAttention: Layer {
    public let dim: Int
    let selfRGB: Child<SpatialReductionAttention>
    let crossToInfrared: Child<SpatialReductionAttention>
    let selfInfrared: Child<SpatialReductionAttention>
    let crossToRGB: Child<SpatialReductionAttention>
    let proj: Child<ChannelLinear>

    public init(dim: Int, heads: Int, reduction: Int) {
        self.dim = dim
        func selfAttention(_ name: String) -> Child<SpatialReductionAttention> {
            Child(name, SpatialReductionAttention(dim: dim, heads: heads, reduction: reduction, qkvBias: false, addsInputBeforeProjection: true))
        }
        func crossAttention(_ name: String) -> Child<SpatialReductionAttention> {
            Child(name, SpatialReductionAttention(dim: dim, heads: heads, reduction: reduction, qkvBias: false, addsInputBeforeProjection: true,
                                                  queryName: "q1", keyValueName: "kv2"))
        }
        selfRGB = selfAttention("SA_x1")
        crossToInfrared = crossAttention("CA_x1toX2")
        selfInfrared = selfAttention("SA_x2")
        crossToRGB = crossAttention("CA_x2toX1")
        proj = Child("proj", .mit(dim, dim))
    }

    /// The fused map [B, C, H, W] of the stage maps (RGB, infrared).
    public func callAsFunction(_ maps: (Tensor, Tensor), _ p: Scope) -> Tensor {
        let (x1, x2) = maps
        require(x1.rank == 4 && x1.shape == x2.shape && x1.shape[1] == dim,
                "PCAttention: maps \(Shape.describe(x1.shape)) and \(Shape.describe(x2.shape)) must both be [B, \(dim), H, W]")
        let a = selfRGB(x1, p)
        let b = crossToInfrared(x2, keysFrom: a, p)
        let c = selfInfrared(b, p)
        let d = crossToRGB(a, keysFrom: c, p)
        return proj(d, p)
    }
}
