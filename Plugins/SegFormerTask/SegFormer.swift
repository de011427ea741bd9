import FuseKit

/// The parameters of `segformer`: the sizes of the Mix Transformer encoder and its all-MLP
/// decoder, and the loss. The defaults are MiT-b0, TDFusion's segmentation network for MSRS;
/// `variant: b1` widens the stages.
public struct SegFormerConfiguration: PluginConfiguration {
    @Parameter("segmentation classes (MSRS 9, FMB 15)", .positive)
    public var classes = 9
    @Parameter("channels of the input images (1 for fused gray images)", .positive)
    public var inputChannels = 1
    @Parameter("channels of the four encoder stages", .each(.positive, count: 4))
    public var embedDims = [32, 64, 160, 256]
    @Parameter("attention heads of the four stages (each divides its stage's channels)", .each(.positive, count: 4))
    public var heads = [1, 2, 5, 8]
    @Parameter("Mix Transformer blocks of the four stages", .each(.positive, count: 4))
    public var depths = [2, 2, 2, 2]
    @Parameter("spatial-reduction ratios of the four stages' attention (1: none)", .each(.positive, count: 4))
    public var reductionRatios = [8, 4, 2, 1]
    @Parameter("hidden width of the Mix-FFN as a multiple of the stage's channels", .positive)
    public var mlpRatio = 4
    @Parameter("channels of the decoder (each stage is projected to this many)", .positive)
    public var decoderEmbed = 256
    @Parameter("largest stochastic-depth rate (rises linearly over the blocks)", .within(0..<1))
    public var dropPath: Float = 0.1
    @Parameter("channel dropout before the decoder's classifier", .within(0..<1))
    public var dropout: Float = 0.1
    @Parameter("GELU of the Mix-FFN: exact (NVlabs) or tanh (TDFusion's copy)")
    public var gelu = GELUForm.exact
    @Parameter("epsilon of the decoder's BatchNorm (TDFusion's ConvModule)", .positive)
    public var batchNormEps: Float = 1e-3
    @Parameter("momentum of the decoder's BatchNorm running statistics (TDFusion's ConvModule)", .within(0...1))
    public var batchNormMomentum: Float = 0.03
    @Parameter("online hard example mining cross-entropy instead of the plain mean")
    public var ohem = false
    @Parameter("OHEM: pixels whose true-class probability is below this are hard",
               .require("in (0, 1]") { $0 > 0 && $0 <= 1 })
    public var ohemThreshold = HardExampleMining().threshold
    @Parameter("OHEM: pixels kept at least per batch (0: 1/16 of the labelled pixels)", .nonNegative)
    public var ohemMinKept = HardExampleMining().minKept
    @Parameter("label value excluded from the loss")
    public var ignoreIndex = SegmentationLoss().ignoreIndex

    public init() {}

    /// b0 is the defaults (TDFusion's setting); b1 doubles the stage widths.
    public static let variants = [
        PluginVariant<Self>("b0", "MiT-b0 (the defaults, TDFusion's setting)") { _ in },
        PluginVariant<Self>("b1", "MiT-b1: stage channels [64, 128, 320, 512]") { $0.embedDims = [64, 128, 320, 512] },
    ]

    public func validate() throws(ParameterProblem) {
        for i in 0..<4 where embedDims[i] % heads[i] != 0 {
            throw ParameterProblem("heads", "stage \(i + 1): \(heads[i]) heads must divide \(embedDims[i]) channels")
        }
        if ignoreIndex >= 0 && ignoreIndex < classes {
            throw ParameterProblem("ignore-index", "\(ignoreIndex) is one of the \(classes) class indices")
        }
    }

    /// The training loss these parameters describe.
    public var criterion: SegmentationLoss {
        SegmentationLoss(ignoreIndex: ignoreIndex,
                         hardExampleMining: ohem ? HardExampleMining(threshold: ohemThreshold, minKept: ohemMinKept) : nil)
    }
}

/// SegFormer (Mix Transformer encoder and all-MLP decoder) as a segmentation task network:
/// TDFusion's task net T for MSRS and FMB, with variants b0 (the official setting) and b1 and a
/// configurable number of input channels (1 for fused gray images).
///
/// The network sees images at whatever size it is given (the trainer resizes the fused images to
/// the task size, e.g. 240x320 for MSRS, before calling it); its logits come out at 1/4 of that
/// size and are resized bilinearly with aligned corners to the label size for the loss, and to
/// the input size for predictions. Inputs should be at least 32 pixels on each side (the first
/// stage's 8x8 spatial reduction needs an 8x8 map).
///
/// Parameter names are the official ones under `backbone.` and `decode_head.` (e.g.
/// `backbone.block1.0.attn.kv.weight`, `decode_head.linear_fuse.bn.running_mean`), so
/// converted official weights load with `loadState(from:)`. MiT-b0 with one input channel and 9
/// classes has 3,713,321 parameters (PyTorch's count of the same modules).
public struct SegFormer: SegmentationLogits {
    /// The parameters it was built from.
    public let configuration: SegFormerConfiguration
    /// The training loss (cross-entropy with ignore index, optionally OHEM).
    public let criterion: SegmentationLoss
    let backbone: Child<MixVisionTransformer>
    let decodeHead: Child<SegFormerHead>

    /// A SegFormer of the given configuration (MiT-b0 for 9 classes and gray images by default).
    public init(_ configuration: SegFormerConfiguration = SegFormerConfiguration()) {
        let c = configuration
        self.configuration = c
        criterion = c.criterion
        backbone = Child("backbone", MixVisionTransformer(inputChannels: c.inputChannels, embedDims: c.embedDims, heads: c.heads,
                                                          depths: c.depths, reductionRatios: c.reductionRatios, mlpRatio: c.mlpRatio,
                                                          dropPathRate: c.dropPath, gelu: c.gelu))
        decodeHead = Child("decode_head", SegFormerHead(inChannels: c.embedDims, decoderDim: c.decoderEmbed, classes: c.classes,
                                                        dropout: c.dropout, batchNormEpsilon: c.batchNormEps,
                                                        batchNormMomentum: c.batchNormMomentum))
    }

    /// Number of classes.
    public var classes: Int { configuration.classes }
    public var inputChannels: Int { configuration.inputChannels }
    public var kind: TaskKind { .segmentation(classes: classes) }

    /// Class logits [B, classes, ⌈H/4⌉, ⌈W/4⌉] of images [B, inputChannels, H, W].
    public func logits(_ images: Tensor, _ p: Scope) -> Tensor {
        decodeHead(backbone(images, p), p)
    }

    /// Cross-entropy of the logits, resized to the label size, against `targets.segmentation`.
    public func loss(_ images: Tensor, targets: TaskTargets, _ p: Scope) -> Tensor {
        guard let labels = targets.segmentation else {
            fatalError("segformer: the batch has no segmentation labels")
        }
        return criterion(logits: logits(images, p), labels: labels)
    }

    /// Class maps [B, H, W] at the input size.
    public func predict(_ images: Tensor, _ p: Scope) -> TaskPredictions {
        withoutGradient { .segmentation(classMap(logits(images, p), size: (images.shape[2], images.shape[3]))) }
    }
}
