import FuseKit

/// The sizes of a Mix Transformer encoder and its all-MLP decoder.
public struct SegFormerConfiguration: Sendable, Equatable {
    /// Channels of the four stages.
    public var embedDims: [Int]
    /// Attention heads of the four stages.
    public var heads: [Int]
    /// Blocks in each stage.
    public var depths: [Int]
    /// Spatial-reduction ratios of the attention of each stage.
    public var reductionRatios: [Int]
    /// Hidden width of the Mix-FFN relative to the stage's channels.
    public var mlpRatio: Int
    /// Channels of the decoder (each stage is projected to this many, the fused map has them too).
    public var decoderDim: Int
    /// Largest stochastic-depth rate; block i of n gets rate · i / (n - 1), as the official code.
    public var dropPathRate: Float
    /// Channel-dropout rate before the classifier.
    public var dropout: Float
    /// The GELU form of the Mix-FFN.
    public var gelu: GELUForm
    /// Epsilon of the decoder's BatchNorm (TDFusion's ConvModule: 1e-3).
    public var batchNormEpsilon: Float
    /// Momentum of the decoder's BatchNorm running statistics (TDFusion's ConvModule: 0.03).
    public var batchNormMomentum: Float

    /// A configuration; see ``b0`` and ``b1`` for the official ones.
    public init(embedDims: [Int], heads: [Int], depths: [Int], reductionRatios: [Int], mlpRatio: Int = 4,
                decoderDim: Int = 256, dropPathRate: Float = 0.1, dropout: Float = 0.1, gelu: GELUForm = .exact,
                batchNormEpsilon: Float = 1e-3, batchNormMomentum: Float = 0.03) {
        self.embedDims = embedDims
        self.heads = heads
        self.depths = depths
        self.reductionRatios = reductionRatios
        self.mlpRatio = mlpRatio
        self.decoderDim = decoderDim
        self.dropPathRate = dropPathRate
        self.dropout = dropout
        self.gelu = gelu
        self.batchNormEpsilon = batchNormEpsilon
        self.batchNormMomentum = batchNormMomentum
    }

    /// MiT-b0, TDFusion's segmentation network: channels [32, 64, 160, 256], heads [1, 2, 5, 8],
    /// depths [2, 2, 2, 2], reduction [8, 4, 2, 1], MLP ratio 4, decoder 256, drop path 0.1,
    /// dropout 0.1.
    public static let b0 = SegFormerConfiguration(embedDims: [32, 64, 160, 256], heads: [1, 2, 5, 8], depths: [2, 2, 2, 2],
                                                  reductionRatios: [8, 4, 2, 1])

    /// MiT-b1: channels [64, 128, 320, 512], otherwise as b0 (decoder 256).
    public static let b1 = SegFormerConfiguration(embedDims: [64, 128, 320, 512], heads: [1, 2, 5, 8], depths: [2, 2, 2, 2],
                                                  reductionRatios: [8, 4, 2, 1])

    /// The configuration of a named variant (`b0`, `b1`), or nil.
    public static func variant(_ name: String) -> SegFormerConfiguration? {
        switch name {
        case "b0": return .b0
        case "b1": return .b1
        default: return nil
        }
    }

    /// Why the configuration cannot be built, or nil when it can.
    public var problem: String? {
        let lists = [embedDims, heads, depths, reductionRatios]
        if lists.contains(where: { $0.count != 4 }) { return "embedDims, heads, depths and reductionRatios need four entries each" }
        for i in 0..<4 {
            if embedDims[i] <= 0 || heads[i] <= 0 || embedDims[i] % heads[i] != 0 {
                return "stage \(i + 1): \(heads[i]) heads must divide \(embedDims[i]) channels"
            }
            if depths[i] < 1 || reductionRatios[i] < 1 { return "stage \(i + 1): depth and reduction ratio must be at least 1" }
        }
        if mlpRatio < 1 || decoderDim < 1 { return "the MLP ratio and the decoder width must be positive" }
        if !(dropPathRate >= 0 && dropPathRate < 1) { return "the drop-path rate \(dropPathRate) must be in [0, 1)" }
        if !(dropout >= 0 && dropout < 1) { return "the dropout rate \(dropout) must be in [0, 1)" }
        return nil
    }

    /// Stochastic-depth rates of all blocks in order: linspace(0, dropPathRate, total blocks).
    public var blockDropPathRates: [Float] {
        let total = depths.reduce(0, +)
        guard total > 1 else { return [Float](repeating: 0, count: total) }
        return (0..<total).map { dropPathRate * Float($0) / Float(total - 1) }
    }
}

/// The Mix Transformer (MiT) encoder of SegFormer: four stages, each an overlapping patch
/// embedding (7x7/4 then 3x3/2), Mix Transformer blocks and a LayerNorm (eps 1e-6). It returns
/// the four feature maps at 1/4, 1/8, 1/16 and 1/32 of the input size (rounded up).
///
/// Official names: `patch_embed{1..4}.{proj,norm}`, `block{1..4}.{i}.{norm1,attn,norm2,mlp}`,
/// `norm{1..4}`.
public struct MixVisionTransformer: Module {
    public let configuration: SegFormerConfiguration
    public let inputChannels: Int
    let patchEmbeddings: [OverlapPatchEmbedding]
    let stages: [[MixTransformerBlock]]
    let norms: [ChannelLayerNorm]

    /// An encoder for images with `inputChannels` channels.
    public init(configuration c: SegFormerConfiguration, inputChannels: Int) {
        require(c.problem == nil, "MixVisionTransformer: \(c.problem ?? "")")
        require(inputChannels >= 1, "MixVisionTransformer: input channels \(inputChannels) must be positive")
        configuration = c
        self.inputChannels = inputChannels
        patchEmbeddings = (0..<4).map { i in
            OverlapPatchEmbedding(inChannels: i == 0 ? inputChannels : c.embedDims[i - 1], embedDim: c.embedDims[i],
                                  patchSize: i == 0 ? 7 : 3, stride: i == 0 ? 4 : 2)
        }
        let rates = c.blockDropPathRates
        var first = 0
        var stages: [[MixTransformerBlock]] = []
        for i in 0..<4 {
            stages.append((0..<c.depths[i]).map { j in
                MixTransformerBlock(dim: c.embedDims[i], heads: c.heads[i], reduction: c.reductionRatios[i], mlpRatio: c.mlpRatio,
                                    dropPathRate: rates[first + j], gelu: c.gelu)
            })
            first += c.depths[i]
        }
        self.stages = stages
        norms = c.embedDims.map { ChannelLayerNorm($0, eps: 1e-6) }
    }

    public var children: [(name: String, module: any Module)] {
        var list: [(name: String, module: any Module)] = []
        for i in 0..<4 {
            list.append(("patch_embed\(i + 1)", patchEmbeddings[i]))
            list.append(("block\(i + 1)", BlockList(blocks: stages[i])))
            list.append(("norm\(i + 1)", norms[i]))
        }
        return list
    }

    /// The four stage outputs for images `x` [B, inputChannels, H, W].
    public func callAsFunction(_ x: Tensor, _ p: Scope) -> [Tensor] {
        require(x.rank == 4 && x.shape[1] == inputChannels,
                "MixVisionTransformer: input must be [B, \(inputChannels), H, W], got \(Shape.describe(x.shape))")
        var features: [Tensor] = []
        var y = x
        for i in 0..<4 {
            y = patchEmbeddings[i](y, p.child("patch_embed\(i + 1)"))
            let blocks = p.child("block\(i + 1)")
            for (j, block) in stages[i].enumerated() { y = block(y, blocks.child(j)) }
            y = norms[i](y, p.child("norm\(i + 1)"))
            features.append(y)
        }
        return features
    }
}

/// The blocks of one stage, named "0", "1", ... as an `nn.ModuleList`.
struct BlockList: Module {
    let blocks: [MixTransformerBlock]
    var children: [(name: String, module: any Module)] { blocks.enumerated().map { (String($0.offset), $0.element as any Module) } }
}
