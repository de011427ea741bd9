import FuseKit

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
public struct SegFormer: TaskNet {
    /// The architecture.
    public let configuration: SegFormerConfiguration
    /// Number of classes.
    public let classes: Int
    public let inputChannels: Int
    /// The training loss (cross-entropy with ignore index, optionally OHEM).
    public let criterion: SegmentationLoss
    let backbone: MixVisionTransformer
    let decodeHead: SegFormerHead

    /// A SegFormer of the given configuration.
    public init(configuration: SegFormerConfiguration = .b0, classes: Int = 9, inputChannels: Int = 1,
                criterion: SegmentationLoss = SegmentationLoss()) {
        require(classes >= 1, "SegFormer: classes \(classes) must be positive")
        self.configuration = configuration
        self.classes = classes
        self.inputChannels = inputChannels
        self.criterion = criterion
        backbone = MixVisionTransformer(configuration: configuration, inputChannels: inputChannels)
        decodeHead = SegFormerHead(inChannels: configuration.embedDims, decoderDim: configuration.decoderDim, classes: classes,
                                   dropout: configuration.dropout, batchNormEpsilon: configuration.batchNormEpsilon,
                                   batchNormMomentum: configuration.batchNormMomentum)
    }

    public var kind: TaskKind { .segmentation(classes: classes) }

    public var children: [(name: String, module: any Module)] { [("backbone", backbone), ("decode_head", decodeHead)] }

    /// Class logits [B, classes, ⌈H/4⌉, ⌈W/4⌉] of images [B, inputChannels, H, W].
    public func logits(_ images: Tensor, _ p: Scope) -> Tensor {
        decodeHead(backbone(images, p.child("backbone")), p.child("decode_head"))
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
