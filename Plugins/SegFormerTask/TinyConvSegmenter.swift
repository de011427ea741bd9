import FuseKit

/// The parameters of `tiny-conv-seg`.
public struct TinyConvSegmenterConfiguration: PluginConfiguration {
    @Parameter("segmentation classes", .positive)
    public var classes = 9
    @Parameter("channels of the input images", .positive)
    public var inputChannels = 1

    public init() {}
}

/// The tiny segmentation net of the benchmarks and tests ("tiny-conv-seg"): 3x3 conv to 16
/// channels, ReLU, 3x3 conv 16 -> 16, ReLU, 1x1 conv to the classes, at full resolution. Names
/// follow the PyTorch `nn.Sequential` it transcribes: `0`, `2`, `4` (`.weight`, `.bias`). The
/// loss is the cross-entropy ignoring label 255.
public struct TinyConvSegmenter: SegmentationLogits {
    /// The parameters it was built from.
    public let configuration: TinyConvSegmenterConfiguration
    /// The training loss.
    public let criterion = SegmentationLoss()
    let first: Child<Conv2d>
    let second: Child<Conv2d>
    let classifier: Child<Conv2d>

    /// A tiny net (9 classes, gray images by default).
    public init(_ configuration: TinyConvSegmenterConfiguration = TinyConvSegmenterConfiguration()) {
        self.configuration = configuration
        first = Child("0", Conv2d(configuration.inputChannels, 16, kernelSize: 3))
        second = Child("2", Conv2d(16, 16, kernelSize: 3))
        classifier = Child("4", Conv2d(16, configuration.classes, kernelSize: 1))
    }

    /// Number of classes.
    public var classes: Int { configuration.classes }
    public var inputChannels: Int { configuration.inputChannels }
    public var kind: TaskKind { .segmentation(classes: classes) }

    /// Class logits [B, classes, H, W].
    public func logits(_ images: Tensor, _ p: Scope) -> Tensor {
        require(images.rank == 4 && images.shape[1] == inputChannels,
                "tiny-conv-seg: input must be [B, \(inputChannels), H, W], got \(Shape.describe(images.shape))")
        return classifier(second(first(images, p).relu(), p).relu(), p)
    }

    /// Cross-entropy against `targets.segmentation` (logits resized to the label size if needed).
    public func loss(_ images: Tensor, targets: TaskTargets, _ p: Scope) -> Tensor {
        guard let labels = targets.segmentation else {
            fatalError("tiny-conv-seg: the batch has no segmentation labels")
        }
        return criterion(logits: logits(images, p), labels: labels)
    }

    /// Class maps [B, H, W].
    public func predict(_ images: Tensor, _ p: Scope) -> TaskPredictions {
        withoutGradient { .segmentation(classMap(logits(images, p), size: (images.shape[2], images.shape[3]))) }
    }
}
