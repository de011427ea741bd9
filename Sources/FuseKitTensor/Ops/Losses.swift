// Loss functions, composed of differentiable operations.

/// How a loss is reduced over its elements.
public enum LossReduction: Sendable {
    /// Mean over elements (over non-ignored ones for cross-entropy).
    case mean
    /// Sum over elements.
    case sum
    /// Sum divided by the batch size (KL divergence's mathematically correct mean).
    case batchMean
    /// No reduction: the per-element loss.
    case none
}

/// Standard losses (PyTorch conventions).
public enum Losses {
    static func reduce(_ loss: Tensor, _ reduction: LossReduction) -> Tensor {
        switch reduction {
        case .mean: return loss.mean()
        case .sum: return loss.sum()
        case .batchMean: return loss.sum() / Float(max(loss.shape.first ?? 1, 1))
        case .none: return loss
        }
    }

    /// Cross-entropy of `logits` [N, C, ...] (classes on axis 1) against integral class indices
    /// `targets` [N, ...]. Elements whose target is `ignoreIndex` do not count; the mean is over
    /// the counted elements, weighted by `classWeights` when given (as PyTorch). A batch with
    /// every element ignored has loss 0.
    public static func crossEntropy(logits: Tensor, targets: Tensor, ignoreIndex: Int = -100,
                                    classWeights: Tensor? = nil, reduction: LossReduction = .mean) -> Tensor {
        require(logits.rank >= 2, "crossEntropy: logits must be [N, C, ...], got \(Shape.describe(logits.shape))")
        var expected = logits.shape
        expected.remove(at: 1)
        require(targets.shape == expected,
                "crossEntropy: targets \(Shape.describe(targets.shape)) do not match logits \(Shape.describe(logits.shape)) (expected \(Shape.describe(expected)))")
        let classes = logits.shape[1]
        let valid = targets.notEqual(Float(ignoreIndex))
        let safeTargets = Tensor.select(valid, targets, Tensor(0))
        let logProbabilities = logits.logSoftmax(axis: 1)
        let picked = logProbabilities.gather(axis: 1, index: safeTargets.unsqueezed(at: 1)).squeezed(at: 1)
        var weights = valid
        if let classWeights {
            require(classWeights.shape == [classes], "crossEntropy: class weights \(Shape.describe(classWeights.shape)) for \(classes) classes")
            weights = classWeights.detached().gather(axis: 0, index: safeTargets.flattened()).reshaped(targets.shape) * valid
        }
        let perElement = -Tensor.masked(picked, valid) * weights
        switch reduction {
        case .mean:
            let total = weights.sum().item
            return perElement.sum() / Swift.max(total, Float.leastNormalMagnitude)
        case .sum, .batchMean, .none:
            return reduce(perElement, reduction)
        }
    }

    /// Binary cross-entropy on logits, `(1 - y) x + (1 + (p - 1) y) softplus(-x)`, stable for
    /// any x; `positiveWeight` p (broadcast over the last axis, as PyTorch's `pos_weight`).
    public static func binaryCrossEntropyWithLogits(logits: Tensor, targets: Tensor, weight: Tensor? = nil,
                                                    positiveWeight: Tensor? = nil, reduction: LossReduction = .mean) -> Tensor {
        require(logits.shape == targets.shape,
                "binaryCrossEntropyWithLogits: logits \(Shape.describe(logits.shape)) and targets \(Shape.describe(targets.shape)) differ")
        var loss: Tensor
        if let positiveWeight {
            let logWeight = 1 + (positiveWeight - 1) * targets
            loss = (1 - targets) * logits + logWeight * (-logits).softplus()
        } else {
            loss = logits.softplus() - logits * targets
        }
        if let weight { loss = loss * weight }
        return reduce(loss, reduction)
    }

    /// KL divergence `target * (log target - input)` with `input` given as log-probabilities
    /// (PyTorch `kl_div`, `log_target=False`); zero where the target is zero.
    public static func klDivergence(logInput: Tensor, target: Tensor, reduction: LossReduction = .batchMean) -> Tensor {
        let positive = target.greater(0)
        let safeTarget = Tensor.select(positive, target, Tensor(1))
        let loss = Tensor.masked(target * safeTarget.log(), positive) - target * logInput
        return reduce(loss, reduction)
    }

    /// Mean (or other reduction) of |a - b|.
    public static func l1(_ a: Tensor, _ b: Tensor, reduction: LossReduction = .mean) -> Tensor {
        reduce((a - b).abs(), reduction)
    }

    /// Mean (or other reduction) of (a - b)².
    public static func mse(_ a: Tensor, _ b: Tensor, reduction: LossReduction = .mean) -> Tensor {
        let d = a - b
        return reduce(d * d, reduction)
    }
}
