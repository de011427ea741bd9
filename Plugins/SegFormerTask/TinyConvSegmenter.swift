import FuseKit

/// The tiny segmentation net of the benchmarks and tests ("tiny-conv-seg"): 3x3 conv to 16
/// channels, ReLU, 3x3 conv 16 -> 16, ReLU, 1x1 conv to the classes, at full resolution. Names
/// follow the PyTorch `nn.Sequential` it transcribes: `0`, `2`, `4` (`.weight`, `.bias`).
public struct TinyConvSegmenter: TaskNet {
    /// Number of classes.
    public let classes: Int
    public let inputChannels: Int
    /// The training loss (cross-entropy ignoring 255 by default).
    public let criterion: SegmentationLoss
    let first: Conv2d
    let second: Conv2d
    let classifier: Conv2d

    /// A tiny net for `classes` classes on images with `inputChannels` channels.
    public init(classes: Int = 9, inputChannels: Int = 1, criterion: SegmentationLoss = SegmentationLoss()) {
        require(classes >= 1 && inputChannels >= 1, "TinyConvSegmenter: classes \(classes) and input channels \(inputChannels) must be positive")
        self.classes = classes
        self.inputChannels = inputChannels
        self.criterion = criterion
        first = Conv2d(inputChannels, 16, kernelSize: 3)
        second = Conv2d(16, 16, kernelSize: 3)
        classifier = Conv2d(16, classes, kernelSize: 1)
    }

    public var kind: TaskKind { .segmentation(classes: classes) }

    public var children: [(name: String, module: any Module)] { [("0", first), ("2", second), ("4", classifier)] }

    /// Class logits [B, classes, H, W].
    public func logits(_ images: Tensor, _ p: Scope) -> Tensor {
        require(images.rank == 4 && images.shape[1] == inputChannels,
                "tiny-conv-seg: input must be [B, \(inputChannels), H, W], got \(Shape.describe(images.shape))")
        let hidden = second(first(images, p.child("0")).relu(), p.child("2")).relu()
        return classifier(hidden, p.child("4"))
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
