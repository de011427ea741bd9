import FuseKit

/// The ResNet block of the backbone stages (torchvision's).
public enum ResNetBlockKind: String, ParameterChoice {
    /// Two 3x3 convolutions (expansion 1): the minimal configuration.
    case basic
    /// 1x1, 3x3, 1x1 (expansion 4, stride on the 3x3: torchvision v1.5): ResNet-152.
    case bottleneck

    /// Output channels per plane.
    public var expansion: Int { self == .bottleneck ? 4 : 1 }
}

/// How EAEF's cross gate takes the diagonal of the (B, d, d) matrix sigmoid(T_c r tᵀ).
public enum EAEFGate: String, ParameterChoice {
    /// The intended per-channel diagonal, sigmoid(T_c r[b, k] t[b, k]) per sample (the paper's and
    /// upstream EAEF's description).
    case perSample = "per-sample"
    /// What the release computes: `torch.diagonal` over dims 0 and 1 (batch and channel), reshaped
    /// to (B, d); it mixes the samples of a batch and needs batch <= channels. The authors'
    /// checkpoints were trained with it.
    case released
}

/// The second reconstruction head of stage I (the release decodes both sources with one shared
/// FusionDecoder on one feature, so its two reconstructions are identical; that bug is not
/// reproduced).
public enum InfraredHead: String, ParameterChoice {
    /// No second head: the official stage-II network and parameter count (the default; the
    /// network then cannot run masked reconstruction).
    case none
    /// A second FusionDecoder `fuse_decoder_ir` of the same widths on the same feature: the
    /// smallest change to the release and Algorithm 1's De_rec(F^f) form (what stage I uses).
    case inn
    /// The release's unused RecDecoder `rec_decoder_ir` (SIM3, DSRM, S2M, conv3x3, tanh) on the
    /// feature and the encoder's ARM output (which then is computed and trained).
    case recDecoder = "rec-decoder"
}

/// Stage I's visible reconstruction head. The paper's stage II starts from the stage-I weights
/// "not De_rec" (`../shared/docs/mafs.md`, Training): the reconstruction decoder is stage I's own.
public enum VisibleHead: String, ParameterChoice {
    /// A FusionDecoder of its own, `rec_decoder_vi` (De_rec); stage II's `fuse_decoder` is not
    /// trained in stage I and starts stage II from its initialisation.
    case own
    /// The stage-II `fuse_decoder` itself, which stage II then starts from pretrained.
    case fusionDecoder = "fusion-decoder"
}

/// The parameters of `mafs`, every width of the network (`Tests/MAFSTests/Fixtures/README.md`,
/// section 1; the names mirror the reference transcription's `MAFSConfig`). The defaults are the
/// official network (ResNet-152 streams, 15 classes: 129,187,828 parameters); `variant: minimal`
/// is the small faithful configuration the parity fixtures use (571,535 parameters, 9 classes).
public struct MAFSConfiguration: PluginConfiguration {
    @Parameter("segmentation classes K (the official code hard-codes 15, FMB)", .positive)
    public var numClasses = 15
    @Parameter("ResNet block of the backbone stages")
    public var resnetBlock = ResNetBlockKind.bottleneck
    @Parameter("blocks of the four backbone stages (layer1..4, keys layer3..6)", .each(.positive, count: 4))
    public var resnetLayers = [3, 8, 36, 3]
    @Parameter("planes of the four backbone stages (stage output = planes x expansion)", .each(.positive, count: 4))
    public var resnetPlanes = [64, 128, 256, 512]
    @Parameter("SFM output channels (SFEB2; SFEB1 gives half)", .positive)
    public var sfmChannels = 64
    @Parameter("EAEF feature-pool hidden width as a multiple of the channels", .positive)
    public var eaefMlpRatio = 2
    @Parameter("EAEF channel-attention reduction (hidden = 2d / this)", .positive)
    public var eaefAttentionReduction = 16
    @Parameter("EAEF cross-gate diagonal: per-sample (intended) or released (for the authors' checkpoints)")
    public var eaefGate = EAEFGate.perSample
    @Parameter("CAM output channels (f3..f6)", .positive)
    public var camChannels = 64
    @Parameter("channels of f2 and rec_f1 (low_fuse2, SIM1)", .positive)
    public var phfChannels = 32
    @Parameter("channels of f1, rec_f, DSRM and the INN decoder", .positive)
    public var recChannels = 32
    @Parameter("SDFM Fusion_module reduction r", .positive)
    public var fusionModuleReduction = 4
    @Parameter("SIM hidden width", .positive)
    public var simHidden = 32
    @Parameter("INN channel split (first part; the rest is rec-channels - split)", .positive)
    public var innSplit = 16
    @Parameter("INN blocks (outputs of blocks 2.. are collected)", .atLeast(2))
    public var innBlocks = 5
    @Parameter("INN DenseBlock width gc", .positive)
    public var innDenseWidth = 16
    @Parameter("INN scale bound: s = clamp (2 sigmoid(H) - 1)", .positive)
    public var innClamp = 0.8
    @Parameter("segmentation decoder width (FPN, ASPP, InvPT, ARM chain, heads)", .positive)
    public var segChannels = 64
    @Parameter("GroupNorm groups of the pixel decoder", .positive)
    public var fpnGroups = 32
    @Parameter("MDTA heads of the three InvPT stages", .each(.positive, count: 3))
    public var invptHeads = [2, 2, 2]
    @Parameter("LeFF hidden width (official LeFF() default 64)", .positive)
    public var leffHidden = 64
    @Parameter("outputs of the unused intermediate head (hard-coded 9 upstream)", .positive)
    public var intermediateHeadOutputs = 9
    @Parameter("stage I's infrared reconstruction head: none (stage II only, the official parameter set), inn (a second FusionDecoder) or rec-decoder (the release's unused RecDecoder)")
    public var irHead = InfraredHead.none
    @Parameter("stage I's visible reconstruction head (with an ir-head): own (a FusionDecoder rec_decoder_vi, so that stage II starts from a fresh fuse_decoder, as the paper's stage II loads the stage-I weights but not De_rec) or fusion-decoder (stage II's fuse_decoder, which stage II then starts from)")
    public var visibleHead = VisibleHead.own

    public init() {}

    /// `official` is the defaults; `minimal` the reduced configuration of the parity fixtures.
    public static let variants = [
        PluginVariant<Self>("official", "ResNet-152 streams, 15 classes (the defaults): 129,187,828 parameters") { _ in },
        PluginVariant<Self>("minimal", "BasicBlock stages [16, 32, 48, 64], small widths, 9 classes: 571,535 parameters") {
            $0.numClasses = 9
            $0.resnetBlock = .basic
            $0.resnetLayers = [1, 1, 1, 1]
            $0.resnetPlanes = [16, 32, 48, 64]
            $0.sfmChannels = 16
            $0.camChannels = 16
            $0.phfChannels = 8
            $0.recChannels = 8
            $0.simHidden = 8
            $0.innSplit = 4
            $0.innBlocks = 3
            $0.innDenseWidth = 4
            $0.segChannels = 16
            $0.fpnGroups = 4
            $0.invptHeads = [1, 1, 1]
            $0.leffHidden = 16
        },
    ]

    public func validate() throws(ParameterProblem) {
        guard sfmChannels % 2 == 0 else { throw ParameterProblem("sfm-channels", "must be even (SFEB1 gives half), got \(sfmChannels)") }
        guard innSplit < recChannels else {
            throw ParameterProblem("inn-split", "must be below rec-channels \(recChannels), got \(innSplit)")
        }
        guard innDenseWidth % 2 == 0 else { throw ParameterProblem("inn-dense-width", "must be even (half is instance-normalised), got \(innDenseWidth)") }
        guard innSplit % 2 == 0 && (recChannels - innSplit) % 2 == 0 else {
            throw ParameterProblem("inn-split", "both parts of rec-channels must be even (UNetConvBlock normalises half), got \(innSplit) and \(recChannels - innSplit)")
        }
        guard segChannels % fpnGroups == 0 else {
            throw ParameterProblem("fpn-groups", "\(fpnGroups) groups must divide seg-channels \(segChannels)")
        }
        guard camChannels == segChannels else {
            throw ParameterProblem("cam-channels", "must equal seg-channels \(segChannels) (the ARM chain concatenates f3..f6 with decoder features of that width, as released), got \(camChannels)")
        }
        guard segChannels % 4 == 0 else { throw ParameterProblem("seg-channels", "must be a multiple of 4 (SegHead's C/4), got \(segChannels)") }
        for heads in invptHeads where segChannels % heads != 0 {
            throw ParameterProblem("invpt-heads", "\(heads) heads must divide seg-channels \(segChannels)")
        }
        for d in [sfmChannels] + stageChannels.prefix(3) where 2 * d / eaefAttentionReduction < 1 {
            throw ParameterProblem("eaef-attention-reduction", "\(eaefAttentionReduction) leaves no hidden unit for EAEF(\(d)) (2d / r < 1)")
        }
        for c in [phfChannels, recChannels] where c / fusionModuleReduction < 1 {
            throw ParameterProblem("fusion-module-reduction", "\(fusionModuleReduction) leaves no hidden unit for \(c) channels")
        }
    }

    /// Output channels of the four backbone stages.
    public var stageChannels: [Int] { resnetPlanes.map { $0 * resnetBlock.expansion } }
}
