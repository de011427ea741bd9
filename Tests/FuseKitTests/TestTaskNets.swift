import FuseKit

/// A small, smooth segmentation net for framework tests (GELU instead of ReLU so finite
/// differences have no kinks to straddle).
struct SmoothTinySegmenter: TaskNet {
    let classes: Int
    let conv1: Child<Conv2d>
    let conv2: Child<Conv2d>

    init(classes: Int = 3, width: Int = 4) {
        self.classes = classes
        conv1 = Child("conv1", Conv2d(1, width, kernelSize: 3))
        conv2 = Child("conv2", Conv2d(width, classes, kernelSize: 1))
    }

    var kind: TaskKind { .segmentation(classes: classes) }
    var inputChannels: Int { 1 }

    func logits(_ images: Tensor, _ p: Scope) -> Tensor {
        conv2(conv1(images, p).gelu(), p)
    }

    func loss(_ images: Tensor, targets: TaskTargets, _ p: Scope) -> Tensor {
        var logits = logits(images, p)
        let labels = targets.segmentation!
        if logits.shape[2] != labels.shape[1] || logits.shape[3] != labels.shape[2] {
            logits = logits.resizedBilinear(to: (labels.shape[1], labels.shape[2]), alignCorners: true)
        }
        return Losses.crossEntropy(logits: logits, targets: labels, ignoreIndex: 255)
    }

    func predict(_ images: Tensor, _ p: Scope) -> TaskPredictions {
        .segmentation(logits(images, p).argmax(axis: 1))
    }
}

/// The test segmenter's parameters.
struct TestSegmenterConfiguration: PluginConfiguration {
    @Parameter("classes", .positive) var classes = 3
    init() {}
}

enum TestData {
    static func uniform(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        return Tensor.uniform(shape, using: &rng)
    }

    static func labels(_ shape: [Int], classes: Int, seed: UInt64) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        return Tensor(shape: shape, scalars: (0..<Shape.count(shape)).map { _ in Float(rng.nextInt(below: classes)) })
    }
}
