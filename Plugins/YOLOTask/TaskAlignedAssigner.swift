import Foundation
import FuseKit

/// A ground-truth box for the assigner: class and corners in pixels.
public struct LabeledBox: Sendable, Equatable {
    /// Class index (0-based).
    public var classIndex: Int
    /// Left edge.
    public var x1: Float
    /// Top edge.
    public var y1: Float
    /// Right edge.
    public var x2: Float
    /// Bottom edge.
    public var y2: Float

    /// A box from its class and corners.
    public init(classIndex: Int, x1: Float, y1: Float, x2: Float, y2: Float) {
        self.classIndex = classIndex
        self.x1 = x1
        self.y1 = y1
        self.x2 = x2
        self.y2 = y2
    }

    /// A normalised YOLO box (centre, size) in pixels of a `width` x `height` image, computed as
    /// Ultralytics does (scale, then centre/size to corners, in Float).
    public init(_ box: BoundingBox, imageWidth: Int, imageHeight: Int) {
        let cx = Float(box.centerX) * Float(imageWidth), cy = Float(box.centerY) * Float(imageHeight)
        let halfWidth = Float(box.width) * Float(imageWidth) / 2, halfHeight = Float(box.height) * Float(imageHeight) / 2
        self.init(classIndex: box.classIndex, x1: cx - halfWidth, y1: cy - halfHeight, x2: cx + halfWidth, y2: cy + halfHeight)
    }

    var corners: (Float, Float, Float, Float) { (x1, y1, x2, y2) }
}

/// The targets of one image's anchors.
public struct AnchorAssignment: Sendable, Equatable {
    /// Whether each anchor is a positive (foreground) sample.
    public var isForeground: [Bool]
    /// The ground-truth box of each anchor (index into the boxes; 0 for background anchors, as
    /// Ultralytics' argmax gives).
    public var groundTruthIndex: [Int]
    /// Classification targets, anchor-major [anchors x classes]: for a positive anchor, the
    /// normalised alignment at its class, else 0.
    public var targetScores: [Float]
    /// Number of classes (row length of `targetScores`).
    public let classes: Int

    /// Indices of the positive anchors, ascending.
    public var foregroundAnchors: [Int] { isForeground.indices.filter { isForeground[$0] } }

    /// Sum of the target scores of anchor `a` (its weight in the box losses).
    public func targetScoreSum(anchor a: Int) -> Float {
        var s: Float = 0
        for c in 0..<classes { s += targetScores[a * classes + c] }
        return s
    }
}

/// Ultralytics' `TaskAlignedAssigner` (TOOD): for each ground-truth box, the anchors whose
/// centre lies inside it are ranked by the alignment t = s^alpha · u^beta (s the predicted score
/// of the box's class, u the CIoU of the predicted box with it, clamped at 0); the top k are its
/// candidates. An anchor claimed by several boxes keeps the one it overlaps most. Positive
/// anchors get the one-hot class target scaled by t / max t (over the box's positives) times the
/// box's best overlap among them.
///
/// Ties among equal alignments are broken by the lower anchor index (PyTorch's `topk` leaves
/// this unspecified; only zero-alignment candidates tie in practice, and those have a zero target
/// and weight, so the loss does not depend on the choice).
public struct TaskAlignedAssigner: Sendable, Equatable {
    /// Candidates per box.
    public var topK: Int
    /// Number of classes.
    public var classes: Int
    /// Exponent of the classification score.
    public var alpha: Float
    /// Exponent of the overlap.
    public var beta: Float
    /// Small constant of the in-box test and the normalisation (1e-9).
    public var eps: Float

    /// An assigner (``YOLOv8Configuration`` has YOLOv8's settings).
    public init(topK: Int, classes: Int, alpha: Float, beta: Float, eps: Float = 1e-9) {
        self.topK = topK
        self.classes = classes
        self.alpha = alpha
        self.beta = beta
        self.eps = eps
    }

    /// Assigns the anchors of one image.
    ///
    /// - Parameters:
    ///   - scores: Predicted class probabilities (after the sigmoid), anchor-major [A x classes].
    ///   - boxes: Predicted boxes, corners in pixels, anchor-major [A x 4].
    ///   - anchorX: Anchor x in pixels.
    ///   - anchorY: Anchor y in pixels.
    ///   - groundTruth: The image's boxes in pixels.
    public func assign(scores: [Float], boxes: [Float], anchorX: [Float], anchorY: [Float],
                       groundTruth: [LabeledBox]) -> AnchorAssignment {
        let anchors = anchorX.count
        require(anchorY.count == anchors && scores.count == anchors * classes && boxes.count == anchors * 4,
                "TaskAlignedAssigner: \(anchors) anchors need \(anchors * classes) scores and \(anchors * 4) box values, got \(scores.count) and \(boxes.count)")
        var result = AnchorAssignment(isForeground: [Bool](repeating: false, count: anchors),
                                      groundTruthIndex: [Int](repeating: 0, count: anchors),
                                      targetScores: [Float](repeating: 0, count: anchors * classes), classes: classes)
        let count = groundTruth.count
        guard count > 0, anchors > 0 else { return result }
        for box in groundTruth {
            require(box.classIndex >= 0 && box.classIndex < classes, "TaskAlignedAssigner: class \(box.classIndex) out of range for \(classes) classes")
        }

        // Alignment and overlap of every (box, anchor) pair with the anchor inside the box.
        var overlaps = [Float](repeating: 0, count: count * anchors)
        var alignment = [Float](repeating: 0, count: count * anchors)
        var positives = [[Int]](repeating: [], count: count)
        for (g, box) in groundTruth.enumerated() {
            var inside: [Int] = []
            for a in 0..<anchors {
                let delta = Swift.min(anchorX[a] - box.x1, anchorY[a] - box.y1, box.x2 - anchorX[a], box.y2 - anchorY[a])
                guard delta > eps else { continue }
                inside.append(a)
                let predicted = (boxes[4 * a], boxes[4 * a + 1], boxes[4 * a + 2], boxes[4 * a + 3])
                let overlap = Swift.max(BoxGeometry.completeIoU(box.corners, predicted), 0)
                let score = scores[a * classes + box.classIndex]
                overlaps[g * anchors + a] = overlap
                alignment[g * anchors + a] = Self.power(score, alpha) * Self.power(overlap, beta)
            }
            // Top k by alignment (ties: lower index first).
            let row = g * anchors
            inside.sort { alignment[row + $0] > alignment[row + $1] || (alignment[row + $0] == alignment[row + $1] && $0 < $1) }
            positives[g] = Array(inside.prefix(Swift.min(topK, anchors)))
        }

        // An anchor claimed by several boxes keeps the box of highest overlap (first on ties).
        var claims = [Int](repeating: 0, count: anchors)
        var owner = [Int](repeating: -1, count: anchors)
        for g in 0..<count {
            for a in positives[g] {
                claims[a] += 1
                if owner[a] < 0 { owner[a] = g }
            }
        }
        for a in 0..<anchors where claims[a] > 1 {
            var best = 0
            for g in 1..<count where overlaps[g * anchors + a] > overlaps[best * anchors + a] { best = g }
            owner[a] = best
        }

        // Per box: the largest alignment and overlap over its final positives.
        var bestAlignment = [Float](repeating: 0, count: count)
        var bestOverlap = [Float](repeating: 0, count: count)
        for a in 0..<anchors where owner[a] >= 0 {
            let g = owner[a]
            bestAlignment[g] = Swift.max(bestAlignment[g], alignment[g * anchors + a])
            bestOverlap[g] = Swift.max(bestOverlap[g], overlaps[g * anchors + a])
        }
        for a in 0..<anchors where owner[a] >= 0 {
            let g = owner[a]
            result.isForeground[a] = true
            result.groundTruthIndex[a] = g
            let normalized = alignment[g * anchors + a] * bestOverlap[g] / (bestAlignment[g] + eps)
            result.targetScores[a * classes + groundTruth[g].classIndex] = normalized
        }
        return result
    }

    @inline(__always)
    static func power(_ x: Float, _ e: Float) -> Float {
        e == 0.5 ? x.squareRoot() : Foundation.pow(x, e)
    }
}
