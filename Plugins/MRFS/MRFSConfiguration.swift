import FuseKit
import SegFormerTask

/// The parameters of `mrfs` (and of its fusion branch, `mrfs-fusion`): the sizes of the two Mix
/// Transformer streams, IGM-Att, PC-Att and the two heads, and the official code's choices that
/// a re-implementation must decide on. The defaults are the official MiT-b4 model; `variant: b0`
/// and `variant: minimal` are the smaller ones of the reference (Tests/MRFSTests/Fixtures).
public struct MRFSConfiguration: PluginConfiguration {
    @Parameter("segmentation classes (MFNet/MSRS 9, FMB 15, PST900 5)", .positive)
    public var classes = 9
    @Parameter("channels of the four stages (both streams, IGM-Att and PC-Att)", .each(.positive, count: 4))
    public var embedDims = [64, 128, 320, 512]
    @Parameter("attention heads of the four stages, in the MiT blocks and in PC-Att (each divides its stage's channels)",
               .each(.positive, count: 4))
    public var heads = [1, 2, 5, 8]
    @Parameter("Mix Transformer blocks of the four stages, per stream", .each(.positive, count: 4))
    public var depths = [3, 8, 27, 3]
    @Parameter("spatial-reduction ratios of the four stages' attention, MiT and PC-Att (1: none)", .each(.positive, count: 4))
    public var reductionRatios = [8, 4, 2, 1]
    @Parameter("hidden width of the Mix-FFN as a multiple of the stage's channels", .positive)
    public var mlpRatio = 4
    @Parameter("channels of the segmentation head (train.py --decoder_embed_dim)", .positive)
    public var decoderEmbed = 512
    @Parameter("channels of the fusion head's point convolutions (hard-coded 16 officially)", .positive)
    public var fusionEmbed = 16
    @Parameter("largest stochastic-depth rate (rises linearly over the blocks of a stream)", .within(0..<1))
    public var dropPath: Float = 0.1
    @Parameter("the official stage-2 stochastic depth: every RGB block at dpr[cur], every infrared block at dpr[cur + 1]")
    public var officialStage2DropPath = true
    @Parameter("channel dropout before the segmentation head's classifier", .within(0..<1))
    public var dropout: Float = 0.1
    @Parameter("epsilon of the heads' BatchNorms (the official training value; eval.py builds them with 1e-5)", .positive)
    public var batchNormEps: Float = 0.01
    @Parameter("momentum of the heads' BatchNorm running statistics (the official training value)", .within(0...1))
    public var batchNormMomentum: Float = 0.01
    @Parameter("IGM-Att gate reduction: its hidden width is 2C // reduction", .positive)
    public var igmReduction = 4

    public init() {}

    /// b4 is the defaults (the official model); b0 and minimal as in the reference's README.
    public static let variants = [
        PluginVariant<Self>("b4", "MiT-b4 streams, decoder 512: the official model (134,963,348 parameters with 9 classes)") { _ in },
        PluginVariant<Self>("b0", "MiT-b0 streams [32, 64, 160, 256], depths 2, decoder 512: the official code with --backbone mit_b0 "
                            + "(10,909,140 parameters with 9 classes)") {
            $0.embedDims = [32, 64, 160, 256]
            $0.depths = [2, 2, 2, 2]
        },
        PluginVariant<Self>("minimal", "stages [16, 32, 64, 128], heads [1, 1, 2, 4], one block each, decoder 64: the minimal faithful "
                            + "configuration (1,554,180 parameters with 9 classes)") {
            $0.embedDims = [16, 32, 64, 128]
            $0.heads = [1, 1, 2, 4]
            $0.depths = [1, 1, 1, 1]
            $0.decoderEmbed = 64
        },
    ]

    public func validate() throws(ParameterProblem) {
        for i in 0..<4 where embedDims[i] % heads[i] != 0 {
            throw ParameterProblem("heads", "stage \(i + 1): \(heads[i]) heads must divide \(embedDims[i]) channels")
        }
        for i in 0..<4 where 2 * embedDims[i] / igmReduction < 1 || 2 * embedDims[i] / 4 < 1 {
            throw ParameterProblem("igm-reduction", "stage \(i + 1): the IGM-Att hidden width 2 x \(embedDims[i]) // \(igmReduction) is 0")
        }
    }

    /// The stochastic-depth rate of every block of both streams, by stage: linspace(0, dropPath,
    /// total blocks) split by stage, except that with ``officialStage2DropPath`` every stage-2
    /// block of the RGB stream gets dpr[cur] and of the infrared stream dpr[cur + 1] (the official
    /// `encoder_agg.py` indexes `dpr[cur]` / `dpr[cur + 1]` instead of `dpr[cur + i]`).
    public var dropPathRates: (rgb: [[Float]], infrared: [[Float]]) {
        let rates = MixVisionTransformer.dropPathRates(depths: depths, maxRate: dropPath)
        guard officialStage2DropPath else { return (rates, rates) }
        let all = rates.flatMap { $0 }
        let first = depths[0]
        var rgb = rates, infrared = rates
        rgb[1] = [Float](repeating: all[first], count: depths[1])
        infrared[1] = [Float](repeating: all[first + 1], count: depths[1])
        return (rgb, infrared)
    }
}
