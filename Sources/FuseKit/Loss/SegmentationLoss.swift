#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FuseKitTensor

/// Online hard example mining for pixel-wise cross-entropy, as the OHEM loss of BiSeNet that
/// SeaFusion- and MAFS-style baselines train with: among the labelled pixels, keep those whose
/// loss exceeds -log(`threshold`) (a predicted probability of the true class below `threshold`)
/// when there are more than `minKept` of them; otherwise keep the `minKept` hardest pixels. The
/// loss is the mean over the kept pixels. The selection is not differentiated.
public struct HardExampleMining: Sendable, Equatable {
    /// Probability of the true class below which a pixel counts as hard (0 < threshold <= 1).
    public var threshold: Float
    /// Pixels kept at least, per batch; 0 means one sixteenth of the labelled pixels (BiSeNet's
    /// `n_min = N·H·W / 16`).
    public var minKept: Int

    /// OHEM with a probability threshold and a minimum number of kept pixels.
    public init(threshold: Float = 0.7, minKept: Int = 0) {
        require(threshold > 0 && threshold <= 1, "HardExampleMining: threshold \(threshold) must be in (0, 1]")
        require(minKept >= 0, "HardExampleMining: minimum kept \(minKept) must not be negative")
        self.threshold = threshold
        self.minKept = minKept
    }

    /// The 0/1 selection over per-pixel `losses` of which `labelled` ones count, and the number kept.
    public func selection(losses: [Float], labelled: [Bool]) -> (mask: [Float], kept: Int) {
        precondition(losses.count == labelled.count, "HardExampleMining: \(losses.count) losses for \(labelled.count) flags")
        var mask = [Float](repeating: 0, count: losses.count)
        let labelledCount = labelled.reduce(0) { $0 + ($1 ? 1 : 0) }
        guard labelledCount > 0 else { return (mask, 0) }
        let minimum = Swift.min(labelledCount, minKept > 0 ? minKept : Swift.max(1, labelledCount / 16))
        let hardLoss = -logf(threshold)
        var hard = 0
        for i in 0..<losses.count where labelled[i] && losses[i] > hardLoss { hard += 1 }
        if hard > minimum {
            for i in 0..<losses.count where labelled[i] && losses[i] > hardLoss { mask[i] = 1 }
            return (mask, hard)
        }
        // The `minimum` largest losses (ties at the cut taken in pixel order), found in linear
        // time by selecting the minimum-th largest value.
        var candidates = [Float]()
        candidates.reserveCapacity(labelledCount)
        for i in 0..<losses.count where labelled[i] { candidates.append(losses[i]) }
        let cut = Self.kthLargest(&candidates, minimum)
        var kept = 0
        for i in 0..<losses.count where labelled[i] && losses[i] > cut { mask[i] = 1; kept += 1 }
        for i in 0..<losses.count where kept < minimum && labelled[i] && losses[i] == cut { mask[i] = 1; kept += 1 }
        return (mask, kept)
    }

    /// The k-th largest of `values` (1 <= k <= count), by quickselect (reorders `values`).
    static func kthLargest(_ values: inout [Float], _ k: Int) -> Float {
        let target = k - 1
        var low = 0, high = values.count - 1
        while low < high {
            let pivot = values[(low + high) / 2]
            var i = low, j = high
            // Hoare partition in descending order: [low...j] >= pivot >= [i...high].
            while i <= j {
                while values[i] > pivot { i += 1 }
                while values[j] < pivot { j -= 1 }
                if i <= j {
                    values.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            if target <= j {
                high = j
            } else if target >= i {
                low = i
            } else {
                return values[target]
            }
        }
        return values[target]
    }
}

/// Pixel-wise cross-entropy over class logits, with an ignored label value and optional OHEM.
public struct SegmentationLoss: Sendable, Equatable {
    /// Label value that does not count (255, mmsegmentation's convention).
    public var ignoreIndex: Int
    /// Hard example mining, or nil for the plain mean over labelled pixels (TDFusion).
    public var hardExampleMining: HardExampleMining?

    /// A loss ignoring `ignoreIndex`, with OHEM when given.
    public init(ignoreIndex: Int = 255, hardExampleMining: HardExampleMining? = nil) {
        self.ignoreIndex = ignoreIndex
        self.hardExampleMining = hardExampleMining
    }

    /// The loss of `logits` [B, K, H, W] against `labels` [B, H', W'] (Float class indices):
    /// the logits are first resized bilinearly with aligned corners to the label size (TDFusion's
    /// `F.interpolate(..., align_corners=True)`), unless they already have it.
    public func callAsFunction(logits: Tensor, labels: Tensor) -> Tensor {
        require(logits.rank == 4 && labels.rank == 3 && labels.shape[0] == logits.shape[0],
                "SegmentationLoss: logits \(Shape.describe(logits.shape)) and labels \(Shape.describe(labels.shape)) must be [B, K, H, W] and [B, H', W']")
        let resized = logits.resizedBilinear(to: (labels.shape[1], labels.shape[2]), alignCorners: true)
        guard let hardExampleMining else {
            return Losses.crossEntropy(logits: resized, targets: labels, ignoreIndex: ignoreIndex)
        }
        let perPixel = Losses.crossEntropy(logits: resized, targets: labels, ignoreIndex: ignoreIndex, reduction: .none)
        let ignored = Float(ignoreIndex)
        let labelled = labels.withUnsafeBufferPointer { $0.map { $0 != ignored } }
        let (mask, kept) = hardExampleMining.selection(losses: perPixel.detached().scalars, labelled: labelled)
        guard kept > 0 else { return perPixel.sum() * 0 }
        return Tensor.masked(perPixel, Tensor(shape: labels.shape, scalars: mask)).sum() / Float(kept)
    }
}

/// Class maps from logits: resized (bilinear, aligned corners) to `size`, then the most likely
/// class of each pixel, [B, H, W] as Float indices.
public func classMap(_ logits: Tensor, size: (Int, Int)) -> Tensor {
    logits.resizedBilinear(to: size, alignCorners: true).argmax(axis: 1)
}
