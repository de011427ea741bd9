import Foundation
import FuseKit

/// The Detect head's outputs for a batch, every level's anchors concatenated (P3, then P4, P5).
public struct YOLOv8HeadOutput: Sendable {
    /// Box-side distribution logits [B, 4 regMax, A]: channel `side * regMax + bin`, sides left,
    /// top, right, bottom.
    public var boxDistributions: Tensor
    /// Class logits [B, classes, A].
    public var classLogits: Tensor
    /// The anchors (grid units and strides).
    public var anchors: AnchorGrid
    /// Input image height in pixels.
    public var imageHeight: Int
    /// Input image width in pixels.
    public var imageWidth: Int

    /// A head output from its parts.
    public init(boxDistributions: Tensor, classLogits: Tensor, anchors: AnchorGrid, imageHeight: Int, imageWidth: Int) {
        require(boxDistributions.rank == 3 && classLogits.rank == 3 && boxDistributions.shape[0] == classLogits.shape[0]
                && boxDistributions.shape[2] == anchors.count && classLogits.shape[2] == anchors.count
                && boxDistributions.shape[1] % 4 == 0,
                "YOLOv8HeadOutput: distributions \(Shape.describe(boxDistributions.shape)) and logits \(Shape.describe(classLogits.shape)) must be [B, 4 regMax, \(anchors.count)] and [B, classes, \(anchors.count)]")
        self.boxDistributions = boxDistributions
        self.classLogits = classLogits
        self.anchors = anchors
        self.imageHeight = imageHeight
        self.imageWidth = imageWidth
    }

    /// Batch size.
    public var batchSize: Int { classLogits.shape[0] }
    /// Number of classes.
    public var classes: Int { classLogits.shape[1] }
    /// Bins of each box-side distribution.
    public var regMax: Int { boxDistributions.shape[1] / 4 }

    /// Every anchor's predicted box (corners, pixels) and class probabilities of one image,
    /// decoded without gradient as the assigner sees them: anchor-major boxes [A x 4] and scores
    /// [A x classes].
    public func decodedPredictions(image b: Int) -> (boxes: [Float], scores: [Float]) {
        let count = anchors.count, nc = classes, bins = regMax
        var boxes = [Float](repeating: 0, count: count * 4)
        var scores = [Float](repeating: 0, count: count * nc)
        let logits = classLogits.pointer + b * nc * count
        for c in 0..<nc {
            for a in 0..<count { scores[a * nc + c] = 1 / (1 + Foundation.exp(-logits[c * count + a])) }
        }
        let distributions = boxDistributions.pointer + b * 4 * bins * count
        for a in 0..<count {
            let side = Self.expectedDistances(distributions, anchor: a, anchors: count, bins: bins)
            let s = anchors.stride[a]
            boxes[4 * a] = (anchors.x[a] - side.0) * s
            boxes[4 * a + 1] = (anchors.y[a] - side.1) * s
            boxes[4 * a + 2] = (anchors.x[a] + side.2) * s
            boxes[4 * a + 3] = (anchors.y[a] + side.3) * s
        }
        return (boxes, scores)
    }

    /// The expected distance (grid units) of each side of one anchor: the mean of the softmax of
    /// its bins (Ultralytics' DFL projection).
    @inline(__always)
    static func expectedDistances(_ base: UnsafePointer<Float>, anchor a: Int, anchors: Int, bins: Int) -> (Float, Float, Float, Float) {
        var sides: (Float, Float, Float, Float) = (0, 0, 0, 0)
        for k in 0..<4 {
            let row = base + k * bins * anchors + a
            var largest = -Float.infinity
            for j in 0..<bins { largest = Swift.max(largest, row[j * anchors]) }
            var total: Float = 0, weighted: Float = 0
            for j in 0..<bins {
                let e = Foundation.exp(row[j * anchors] - largest)
                total += e
                weighted += e * Float(j)
            }
            let d = weighted / total
            switch k {
            case 0: sides.0 = d
            case 1: sides.1 = d
            case 2: sides.2 = d
            default: sides.3 = d
            }
        }
        return sides
    }
}

/// Distribution focal loss (Li et al., Generalized Focal Loss; Ultralytics `DFLoss`): a side's
/// continuous target t in [0, regMax - 1 - 0.01] is split between its two neighbouring bins,
/// loss = CE(logits, ⌊t⌋) (⌊t⌋ + 1 - t) + CE(logits, ⌊t⌋ + 1) (t - ⌊t⌋).
public enum DistributionFocalLoss {
    /// The loss of each row of `logits` [M, regMax] against its target (targets are clamped to
    /// [0, regMax - 1 - 0.01] first) -> [M].
    public static func loss(logits: Tensor, targets: [Float]) -> Tensor {
        require(logits.rank == 2 && logits.shape[0] == targets.count,
                "DistributionFocalLoss: logits \(Shape.describe(logits.shape)) must be [\(targets.count), regMax]")
        let bins = logits.shape[1]
        let weights = Tensor.zeros(logits.shape)
        let w = weights.mutablePointer
        for (i, raw) in targets.enumerated() {
            let t = Swift.min(Swift.max(raw, 0), Float(bins - 1) - 0.01)
            let left = Int(t)
            let leftWeight = Float(left + 1) - t
            w[i * bins + left] = leftWeight
            w[i * bins + left + 1] = 1 - leftWeight
        }
        return -(logits.logSoftmax(axis: 1) * weights).sum(axis: 1)
    }
}

/// The terms of a YOLOv8 loss evaluation.
public struct YOLOv8LossTerms: Sendable {
    /// The training loss, Ultralytics' `loss.sum() * batch_size`: (box + classification +
    /// distribution) times the batch size, each term already multiplied by its gain.
    public var total: Tensor
    /// CIoU box term (times its gain), per batch.
    public var box: Float
    /// BCE classification term (times its gain), per batch.
    public var classification: Float
    /// DFL term (times its gain), per batch.
    public var distribution: Float
    /// Number of positive anchors over the batch.
    public var foregroundCount: Int
    /// The normaliser: max(sum of the target scores, 1).
    public var targetScoreSum: Float
    /// The assignment of each image's anchors.
    public var assignments: [AnchorAssignment]
}

/// Ultralytics' `v8DetectionLoss`: the TaskAlignedAssigner picks positive anchors from the
/// detached predictions; BCE of every class logit against the assigned soft targets; for the
/// positives, CIoU loss and DFL on the box-side distributions, both weighted by the anchors'
/// target scores; each term divided by max(sum of target scores, 1), multiplied by its gain
/// (box 7.5, cls 0.5, DFL 1.5) and the sum multiplied by the batch size.
public struct YOLOv8Loss: Sendable, Equatable {
    /// The assigner.
    public var assigner: TaskAlignedAssigner
    /// Gain of the CIoU term.
    public var boxGain: Float
    /// Gain of the BCE term.
    public var classificationGain: Float
    /// Gain of the DFL term.
    public var distributionGain: Float

    /// YOLOv8's loss for `classes` classes (``YOLOv8Configuration/loss`` has Ultralytics' settings).
    public init(classes: Int, topK: Int, alpha: Float, beta: Float, boxGain: Float, classificationGain: Float, distributionGain: Float) {
        assigner = TaskAlignedAssigner(topK: topK, classes: classes, alpha: alpha, beta: beta)
        self.boxGain = boxGain
        self.classificationGain = classificationGain
        self.distributionGain = distributionGain
    }

    /// The loss of a batch's head outputs against its boxes (normalised, one list per image).
    public func callAsFunction(_ head: YOLOv8HeadOutput, targets: [[BoundingBox]]) -> YOLOv8LossTerms {
        let batch = head.batchSize, nc = head.classes, bins = head.regMax, count = head.anchors.count
        require(targets.count == batch, "YOLOv8Loss: \(targets.count) box lists for a batch of \(batch)")
        require(nc == assigner.classes, "YOLOv8Loss: head has \(nc) classes, the assigner \(assigner.classes)")
        let anchors = head.anchors
        let anchorX = zip(anchors.x, anchors.stride).map { $0 * $1 }, anchorY = zip(anchors.y, anchors.stride).map { $0 * $1 }

        // Assignment from the detached predictions.
        var assignments: [AnchorAssignment] = []
        var groundTruths: [[LabeledBox]] = []
        for b in 0..<batch {
            let truth = targets[b].map { LabeledBox($0, imageWidth: head.imageWidth, imageHeight: head.imageHeight) }
                .filter { $0.x1 + $0.y1 + $0.x2 + $0.y2 > 0 }
            for box in truth {
                require(box.classIndex >= 0 && box.classIndex < nc, "YOLOv8Loss: box class \(box.classIndex) out of range for \(nc) classes")
            }
            let (boxes, scores) = head.decodedPredictions(image: b)
            assignments.append(assigner.assign(scores: scores, boxes: boxes, anchorX: anchorX, anchorY: anchorY, groundTruth: truth))
            groundTruths.append(truth)
        }

        // Classification: BCE over every logit, targets in the logits' [B, classes, A] layout.
        let targetScores = Tensor(uninitializedShape: [batch, nc, count])
        var scoreSum: Float = 0
        do {
            let t = targetScores.mutablePointer
            for b in 0..<batch {
                let scores = assignments[b].targetScores
                for c in 0..<nc {
                    let row = t + (b * nc + c) * count
                    for a in 0..<count {
                        let v = scores[a * nc + c]
                        row[a] = v
                        scoreSum += v
                    }
                }
            }
        }
        let normalizer = Swift.max(scoreSum, 1)
        let classification = Losses.binaryCrossEntropyWithLogits(logits: head.classLogits, targets: targetScores, reduction: .sum) / normalizer

        // Box terms on the positives.
        var positives: [(image: Int, anchor: Int)] = []
        for b in 0..<batch {
            for a in 0..<count where assignments[b].isForeground[a] { positives.append((b, a)) }
        }
        var boxTerm = Tensor(0), distributionTerm = Tensor(0)
        if !positives.isEmpty {
            let n = positives.count
            var gatherIndex = [Int](repeating: 0, count: n * 4 * bins)
            var anchorPoints = [Float](repeating: 0, count: n * 2)
            var targetBoxes = [Float](repeating: 0, count: n * 4)
            var targetDistances = [Float](repeating: 0, count: n * 4)
            var weights = [Float](repeating: 0, count: n)
            for (i, (b, a)) in positives.enumerated() {
                for k in 0..<(4 * bins) { gatherIndex[i * 4 * bins + k] = (b * 4 * bins + k) * count + a }
                let stride = anchors.stride[a], ax = anchors.x[a], ay = anchors.y[a]
                let box = groundTruths[b][assignments[b].groundTruthIndex[a]]
                let corners = [box.x1 / stride, box.y1 / stride, box.x2 / stride, box.y2 / stride]
                anchorPoints[2 * i] = ax
                anchorPoints[2 * i + 1] = ay
                for k in 0..<4 { targetBoxes[4 * i + k] = corners[k] }
                let limit = Float(bins - 1) - 0.01
                let distances = [ax - corners[0], ay - corners[1], corners[2] - ax, corners[3] - ay]
                for k in 0..<4 { targetDistances[4 * i + k] = Swift.min(Swift.max(distances[k], 0), limit) }
                weights[i] = assignments[b].targetScoreSum(anchor: a)
            }
            let logits = head.boxDistributions.gatherFlat(IndexBuffer(gatherIndex), shape: [n, 4, bins])
            let projection = Tensor(shape: [1, 1, bins], scalars: (0..<bins).map(Float.init))
            let expected = (logits.softmax(axis: 2) * projection).sum(axis: 2)
            let predicted = BoxGeometry.distancesToBoxes(expected, anchors: Tensor(shape: [n, 2], scalars: anchorPoints))
            let iou = BoxGeometry.completeIoU(predicted, Tensor(shape: [n, 4], scalars: targetBoxes))
            let weight = Tensor(weights)
            boxTerm = ((1 - iou) * weight).sum() / normalizer
            let perSide = DistributionFocalLoss.loss(logits: logits.reshaped([n * 4, bins]), targets: targetDistances)
            distributionTerm = (perSide.reshaped([n, 4]).mean(axis: 1) * weight).sum() / normalizer
        }

        let box = boxTerm * boxGain, cls = classification * classificationGain, dfl = distributionTerm * distributionGain
        let total = (box + cls + dfl) * Float(batch)
        return YOLOv8LossTerms(total: total, box: box.item, classification: cls.item, distribution: dfl.item,
                               foregroundCount: positives.count, targetScoreSum: normalizer, assignments: assignments)
    }
}
