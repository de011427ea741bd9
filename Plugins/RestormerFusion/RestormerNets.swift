import FuseKit

/// TDFusion's fusion network F (the authors' ReFusion): per-modality 3x3 embedding and Restormer
/// encoders, the AFM mixing module, a Restormer decoder at twice the width, and a 3x3 conv head
/// with LeakyReLU and a sigmoid. Full resolution throughout, any H x W. With the defaults
/// (dim 16, 2 blocks, 8 heads) it has the official 59,856 parameters and parameter names.
public struct RestormerFusion: FusionNet {
    public let dim: Int
    public let blocks: Int
    public let heads: Int
    let projectIn1, projectIn2: Conv2d
    let encoder1, encoder2: Sequential
    let mixing: AdaptiveFusionModule
    let decoder: Sequential
    let projectOut0, projectOut1: Conv2d

    public init(dim: Int = 16, blocks: Int = 2, heads: Int = 8) {
        self.dim = dim
        self.blocks = blocks
        self.heads = heads
        projectIn1 = plainConv(1, dim, 3)
        projectIn2 = plainConv(1, dim, 3)
        encoder1 = RestormerBlock.stack(blocks, dim: dim, heads: heads)
        encoder2 = RestormerBlock.stack(blocks, dim: dim, heads: heads)
        mixing = AdaptiveFusionModule(dim: dim, heads: heads)
        decoder = RestormerBlock.stack(blocks, dim: 2 * dim, heads: heads)
        projectOut0 = plainConv(2 * dim, dim, 3)
        projectOut1 = plainConv(dim, 1, 3)
    }

    public var children: [(name: String, module: any Module)] {
        [("project_in_1", projectIn1), ("project_in_2", projectIn2), ("encoder1", encoder1), ("encoder2", encoder2),
         ("FM", mixing), ("decoder", decoder), ("project_out_0", projectOut0), ("project_out_1", projectOut1)]
    }

    public func fuse(_ sources: Tensor, _ p: Scope) -> Tensor {
        require(sources.rank == 4 && sources.shape[1] == 2, "restormer-fusion: input must be [B, 2, H, W], got \(Shape.describe(sources.shape))")
        let a = encoder1(projectIn1(sources.sliced(axis: 1, 0..<1), p.child("project_in_1")), p.child("encoder1"))
        let b = encoder2(projectIn2(sources.sliced(axis: 1, 1..<2), p.child("project_in_2")), p.child("encoder2"))
        let y = decoder(mixing(a, b, p.child("FM")), p.child("decoder"))
        return projectOut1(projectOut0(y, p.child("project_out_0")).leakyRelu(slope: 0.01), p.child("project_out_1")).sigmoid()
    }

    /// Maps the duplicated `X.conv.weight` entries of official checkpoints to `X.weight`.
    public static func officialAlias(_ key: String) -> String? { StateDictAliases.convDuplicates(key) }
}

/// TDFusion's loss generator G (LPN): per-modality embedding and Restormer encoders, a joint
/// encoder at twice the width, then 3x3 conv, PReLU, 3x3 conv to two channels and a softmax
/// over them: w_a + w_b = 1 per pixel. Defaults give the official 44,529 parameters.
public struct RestormerLossGenerator: LossGenerator {
    public let dim: Int
    public let blocks: Int
    public let heads: Int
    let patchEmbed1, patchEmbed2: Conv2d
    let encoder1, encoder2, encoder3: Sequential
    let out1: Conv2d
    let out2: PReLU
    let out3: Conv2d

    public init(dim: Int = 16, blocks: Int = 2, heads: Int = 8) {
        self.dim = dim
        self.blocks = blocks
        self.heads = heads
        patchEmbed1 = plainConv(1, dim, 3)
        patchEmbed2 = plainConv(1, dim, 3)
        encoder1 = RestormerBlock.stack(blocks, dim: dim, heads: heads)
        encoder2 = RestormerBlock.stack(blocks, dim: dim, heads: heads)
        encoder3 = RestormerBlock.stack(blocks, dim: 2 * dim, heads: heads)
        out1 = plainConv(2 * dim, dim, 3)
        out2 = PReLU(count: 1, initial: 0.25)
        out3 = plainConv(dim, 2, 3)
    }

    public var children: [(name: String, module: any Module)] {
        [("patch_embed1", patchEmbed1), ("patch_embed2", patchEmbed2), ("encoder1", encoder1), ("encoder2", encoder2),
         ("encoder3", encoder3), ("out1", out1), ("out2", out2), ("out3", out3)]
    }

    public func weights(_ sources: Tensor, _ p: Scope) -> Tensor {
        require(sources.rank == 4 && sources.shape[1] == 2, "restormer-lpn: input must be [B, 2, H, W], got \(Shape.describe(sources.shape))")
        let a = encoder1(patchEmbed1(sources.sliced(axis: 1, 0..<1), p.child("patch_embed1")), p.child("encoder1"))
        let b = encoder2(patchEmbed2(sources.sliced(axis: 1, 1..<2), p.child("patch_embed2")), p.child("encoder2"))
        let y = encoder3(Tensor.concat([a, b], axis: 1), p.child("encoder3"))
        return out3(out2(out1(y, p.child("out1")), p.child("out2")), p.child("out3")).softmax(axis: 1)
    }
}

/// Registers `restormer-fusion` (F) and `restormer-lpn` (G).
public enum RestormerFusionPlugin {
    static let parameters = [
        ParameterDoc("dim", .int, default: "16", "feature channels of the encoders (the decoder uses twice this)"),
        ParameterDoc("blocks", .int, default: "2", "Restormer blocks per encoder/decoder"),
        ParameterDoc("heads", .int, default: "8", "attention heads (must divide dim)"),
    ]

    static func configuration(_ p: PluginParameters) throws -> (dim: Int, blocks: Int, heads: Int) {
        let dim = try p.int("dim", default: 16), blocks = try p.int("blocks", default: 2), heads = try p.int("heads", default: 8)
        try p.require(dim > 0, "dim", "must be positive, got \(dim)")
        try p.require(blocks > 0, "blocks", "must be positive, got \(blocks)")
        try p.require(heads > 0 && dim % heads == 0, "heads", "\(heads) heads must divide dim \(dim)")
        return (dim, blocks, heads)
    }

    public static func register(in registry: inout PluginRegistry) {
        let small = GradcheckSettings(parameters: ["dim": .int(4), "blocks": .int(1), "heads": .int(2)], inputSize: (6, 7))
        registry.registerFusion("restormer-fusion", summary: "TDFusion's fusion net (ReFusion: Restormer encoders, AFM mixing, Restormer decoder)",
                                parameters: parameters, gradcheck: small) { p in
            let c = try configuration(p)
            return RestormerFusion(dim: c.dim, blocks: c.blocks, heads: c.heads)
        }
        registry.registerLossGenerator("restormer-lpn", summary: "TDFusion's loss generator (LPN): Restormer encoders, softmax weights w_a, w_b",
                                       parameters: parameters, gradcheck: small) { p in
            let c = try configuration(p)
            return RestormerLossGenerator(dim: c.dim, blocks: c.blocks, heads: c.heads)
        }
    }
}
