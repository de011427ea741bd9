import FuseKit

/// The Mix Transformer (MiT) encoder of SegFormer: four stages, each an overlapping patch
/// embedding (7x7/4 then 3x3/2), Mix Transformer blocks and a LayerNorm (eps 1e-6). It returns
/// the four feature maps at 1/4, 1/8, 1/16 and 1/32 of the input size (rounded up).
///
/// Official names: `patch_embed{1..4}.{proj,norm}`, `block{1..4}.{i}.{norm1,attn,norm2,mlp}`,
/// `norm{1..4}`, registered stage by stage (the official initialisation order).
public struct MixVisionTransformer: Layer {
    public let inputChannels: Int
    let patchEmbed1: Child<OverlapPatchEmbedding>, block1: Child<ModuleList<MixTransformerBlock>>, norm1: Child<ChannelLayerNorm>
    let patchEmbed2: Child<OverlapPatchEmbedding>, block2: Child<ModuleList<MixTransformerBlock>>, norm2: Child<ChannelLayerNorm>
    let patchEmbed3: Child<OverlapPatchEmbedding>, block3: Child<ModuleList<MixTransformerBlock>>, norm3: Child<ChannelLayerNorm>
    let patchEmbed4: Child<OverlapPatchEmbedding>, block4: Child<ModuleList<MixTransformerBlock>>, norm4: Child<ChannelLayerNorm>

    /// An encoder for images with `inputChannels` channels; the lists give the four stages'
    /// channels, heads, blocks and spatial-reduction ratios. Block i of all n blocks has the
    /// stochastic-depth rate `dropPathRate` · i / (n - 1), as the official code.
    public init(inputChannels: Int, embedDims: [Int], heads: [Int], depths: [Int], reductionRatios: [Int],
                mlpRatio: Int, dropPathRate: Float, gelu: GELUForm) {
        require([embedDims, heads, depths, reductionRatios].allSatisfy { $0.count == 4 },
                "MixVisionTransformer: embedDims, heads, depths and reductionRatios need four entries each")
        self.init(inputChannels: inputChannels, embedDims: embedDims, heads: heads, reductionRatios: reductionRatios, mlpRatio: mlpRatio,
                  dropPathRates: Self.dropPathRates(depths: depths, maxRate: dropPathRate), gelu: gelu)
    }

    /// An encoder whose stages have one block per entry of `dropPathRates[stage]`, with that
    /// stochastic-depth rate. `namePrefix` goes before every child name (`extra_` names MRFS's
    /// infrared stream `extra_patch_embed1`, `extra_block1`, `extra_norm1`, ...).
    public init(inputChannels: Int, embedDims: [Int], heads: [Int], reductionRatios: [Int], mlpRatio: Int,
                dropPathRates rates: [[Float]], gelu: GELUForm, namePrefix: String = "") {
        require(inputChannels >= 1, "MixVisionTransformer: input channels \(inputChannels) must be positive")
        require([embedDims, heads, reductionRatios].allSatisfy { $0.count == 4 } && rates.count == 4,
                "MixVisionTransformer: embedDims, heads, depths and reductionRatios need four entries each")
        self.inputChannels = inputChannels
        func stage(_ i: Int) -> (Child<OverlapPatchEmbedding>, Child<ModuleList<MixTransformerBlock>>, Child<ChannelLayerNorm>) {
            let embedding = OverlapPatchEmbedding(stage: i, inChannels: i == 0 ? inputChannels : embedDims[i - 1], embedDim: embedDims[i])
            let blocks = rates[i].map { rate in
                MixTransformerBlock(dim: embedDims[i], heads: heads[i], reduction: reductionRatios[i], mlpRatio: mlpRatio,
                                    dropPathRate: rate, gelu: gelu)
            }
            return (Child("\(namePrefix)patch_embed\(i + 1)", embedding), Child("\(namePrefix)block\(i + 1)", ModuleList(blocks)),
                    Child("\(namePrefix)norm\(i + 1)", ChannelLayerNorm(embedDims[i], eps: 1e-6)))
        }
        (patchEmbed1, block1, norm1) = stage(0)
        (patchEmbed2, block2, norm2) = stage(1)
        (patchEmbed3, block3, norm3) = stage(2)
        (patchEmbed4, block4, norm4) = stage(3)
    }

    /// Stochastic-depth rates of the blocks of each stage: linspace(0, maxRate, total blocks),
    /// split by stage.
    public static func dropPathRates(depths: [Int], maxRate: Float) -> [[Float]] {
        let total = depths.reduce(0, +)
        var first = 0
        return depths.map { depth in
            defer { first += depth }
            return (first..<(first + depth)).map { total > 1 ? maxRate * Float($0) / Float(total - 1) : 0 }
        }
    }

    /// The stages in order: embedding, blocks, norm.
    var stages: [(embedding: Child<OverlapPatchEmbedding>, blocks: Child<ModuleList<MixTransformerBlock>>, norm: Child<ChannelLayerNorm>)] {
        [(patchEmbed1, block1, norm1), (patchEmbed2, block2, norm2), (patchEmbed3, block3, norm3), (patchEmbed4, block4, norm4)]
    }

    /// Channels of the four stage outputs.
    public var embedDims: [Int] { stages.map(\.embedding.embedDim) }

    /// The four stage outputs for images `x` [B, inputChannels, H, W].
    public func callAsFunction(_ x: Tensor, _ p: Scope) -> [Tensor] {
        require(x.rank == 4 && x.shape[1] == inputChannels,
                "MixVisionTransformer: input must be [B, \(inputChannels), H, W], got \(Shape.describe(x.shape))")
        var features: [Tensor] = []
        var y = x
        for index in stages.indices {
            y = stage(index, y, p)
            features.append(y)
        }
        return features
    }

    /// Stage `index` (0-based) alone: embedding, blocks and norm of `x` (the images for the
    /// first stage, the previous stage's output after), in the encoder's own scope `p`.
    public func stage(_ index: Int, _ x: Tensor, _ p: Scope) -> Tensor {
        let stage = stages[index]
        return stage.norm(stage.blocks(stage.embedding(x, p), p), p)
    }
}
