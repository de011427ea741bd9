import FuseKit

/// The size of TDFusion's Restormer networks F and G; the defaults are the official ones.
public struct RestormerConfiguration: PluginConfiguration {
    @Parameter("feature channels of the encoders (the decoder uses twice this)", .positive)
    public var dim = 16
    @Parameter("Restormer blocks per encoder/decoder", .positive)
    public var blocks = 2
    @Parameter("attention heads (must divide dim)", .positive)
    public var heads = 8

    public init() {}

    public func validate() throws(ParameterProblem) {
        guard dim % heads == 0 else { throw ParameterProblem("heads", "\(heads) heads must divide dim \(dim)") }
    }
}

/// TDFusion's fusion network F (the authors' ReFusion): per-modality 3x3 embedding and Restormer
/// encoders, the AFM mixing module, a Restormer decoder at twice the width, and a 3x3 conv head
/// with LeakyReLU and a sigmoid. Full resolution throughout, any H x W. With the defaults
/// (dim 16, 2 blocks, 8 heads) it has the official 59,856 parameters and parameter names.
public struct RestormerFusion: FusionNet {
    public let configuration: RestormerConfiguration
    let projectIn1, projectIn2: Child<Conv2d>
    let encoder1, encoder2: Child<ModuleList<RestormerBlock>>
    let mixing: Child<AdaptiveFusionModule>
    let decoder: Child<ModuleList<RestormerBlock>>
    let projectOut0, projectOut1: Child<Conv2d>

    public init(_ configuration: RestormerConfiguration = RestormerConfiguration()) {
        self.configuration = configuration
        let (dim, blocks, heads) = (configuration.dim, configuration.blocks, configuration.heads)
        projectIn1 = plainConv("project_in_1", 1, dim, 3)
        projectIn2 = plainConv("project_in_2", 1, dim, 3)
        encoder1 = RestormerBlock.stack("encoder1", blocks, dim: dim, heads: heads)
        encoder2 = RestormerBlock.stack("encoder2", blocks, dim: dim, heads: heads)
        mixing = Child("FM", AdaptiveFusionModule(dim: dim, heads: heads))
        decoder = RestormerBlock.stack("decoder", blocks, dim: 2 * dim, heads: heads)
        projectOut0 = plainConv("project_out_0", 2 * dim, dim, 3)
        projectOut1 = plainConv("project_out_1", dim, 1, 3)
    }

    public func fuse(_ sources: Tensor, _ p: Scope) -> Tensor {
        require(sources.rank == 4 && sources.shape[1] == 2, "restormer-fusion: input must be [B, 2, H, W], got \(Shape.describe(sources.shape))")
        // The encoders' outputs live only until the mixing returns (at full resolution each is as
        // large as a decoder activation).
        let mixed: Tensor = {
            let a = encoder1(projectIn1(sources.sliced(axis: 1, 0..<1), p), p)
            let b = encoder2(projectIn2(sources.sliced(axis: 1, 1..<2), p), p)
            return mixing((a, b), p)
        }()
        let y = decoder(mixed, p)
        return projectOut1(projectOut0(y, p).leakyRelu(slope: 0.01), p).sigmoid()
    }

    /// Maps the duplicated `X.conv.weight` entries of official checkpoints to `X.weight`.
    public static func officialAlias(_ key: String) -> String? { StateDictAliases.convDuplicates(key) }
}

/// TDFusion's loss generator G (LPN): per-modality embedding and Restormer encoders, a joint
/// encoder at twice the width, then 3x3 conv, PReLU, 3x3 conv to two channels and a softmax
/// over them: w_a + w_b = 1 per pixel. Defaults give the official 44,529 parameters.
public struct RestormerLossGenerator: LossGenerator {
    public let configuration: RestormerConfiguration
    let patchEmbed1, patchEmbed2: Child<Conv2d>
    let encoder1, encoder2, encoder3: Child<ModuleList<RestormerBlock>>
    let out1: Child<Conv2d>
    let out2: Child<PReLU>
    let out3: Child<Conv2d>

    public init(_ configuration: RestormerConfiguration = RestormerConfiguration()) {
        self.configuration = configuration
        let (dim, blocks, heads) = (configuration.dim, configuration.blocks, configuration.heads)
        patchEmbed1 = plainConv("patch_embed1", 1, dim, 3)
        patchEmbed2 = plainConv("patch_embed2", 1, dim, 3)
        encoder1 = RestormerBlock.stack("encoder1", blocks, dim: dim, heads: heads)
        encoder2 = RestormerBlock.stack("encoder2", blocks, dim: dim, heads: heads)
        encoder3 = RestormerBlock.stack("encoder3", blocks, dim: 2 * dim, heads: heads)
        out1 = plainConv("out1", 2 * dim, dim, 3)
        out2 = Child("out2", PReLU(count: 1, initial: 0.25))
        out3 = plainConv("out3", dim, 2, 3)
    }

    public func weights(_ sources: Tensor, _ p: Scope) -> Tensor {
        require(sources.rank == 4 && sources.shape[1] == 2, "restormer-lpn: input must be [B, 2, H, W], got \(Shape.describe(sources.shape))")
        let a = encoder1(patchEmbed1(sources.sliced(axis: 1, 0..<1), p), p)
        let b = encoder2(patchEmbed2(sources.sliced(axis: 1, 1..<2), p), p)
        let y = encoder3(Tensor.concat([a, b], axis: 1), p)
        return out3(out2(out1(y, p), p), p).softmax(axis: 1)
    }
}

/// Registers `restormer-fusion` (F) and `restormer-lpn` (G).
public enum RestormerFusionPlugin {
    public static func register(in registry: inout PluginRegistry) {
        let small = GradcheckSettings<RestormerConfiguration>(configure: { $0.dim = 4; $0.blocks = 1; $0.heads = 2 }, inputSize: (6, 7))
        registry.registerFusion("restormer-fusion", summary: "TDFusion's fusion net (ReFusion: Restormer encoders, AFM mixing, Restormer decoder)",
                                configuration: RestormerConfiguration.self, gradcheck: small) { RestormerFusion($0) }
        registry.registerLossGenerator("restormer-lpn", summary: "TDFusion's loss generator (LPN): Restormer encoders, softmax weights w_a, w_b",
                                       configuration: RestormerConfiguration.self, gradcheck: small) { RestormerLossGenerator($0) }
    }
}
