import FuseKitImage

/// COCO-protocol average precision (pycocotools' `COCOeval`, bounding boxes, area "all", no
/// crowd regions): per image and class, detections sorted by score (at most
/// `maxDetectionsPerImage`) are matched greedily to the unmatched ground truth of highest IoU at
/// or above the threshold; over the set, precision is made monotone from the right and sampled
/// at recall 0, 0.01, ..., 1 (101 points).
public struct DetectionEvaluator: Sendable {
    /// IoU thresholds, numpy's `linspace(0.5, 0.95, 10)`.
    public static let cocoThresholds: [Double] = linspace(0.5, 0.95, count: 10)
    /// Recall sample points, numpy's `linspace(0, 1, 101)`.
    public static let recallPoints: [Double] = linspace(0, 1, count: 101)

    /// Detections kept per image and class (COCO: 100).
    public let maxDetectionsPerImage: Int

    private struct ImageEntry: Sendable {
        var detections: [Detection]
        var groundTruth: [BoundingBox]
    }

    private var images: [ImageEntry] = []

    /// An evaluator with COCO's settings.
    public init(maxDetectionsPerImage: Int = 100) {
        self.maxDetectionsPerImage = maxDetectionsPerImage
    }

    /// Number of images added.
    public var imageCount: Int { images.count }

    /// Adds one image's detections and ground-truth boxes (same coordinate convention).
    public mutating func add(detections: [Detection], groundTruth: [BoundingBox]) {
        images.append(ImageEntry(detections: detections, groundTruth: groundTruth))
    }

    /// Average precision of one class at one IoU threshold, or nil when the class has no ground truth.
    public func averagePrecision(classIndex: Int, iouThreshold: Double) -> Double? {
        var scores: [Double] = []
        var truePositive: [Bool] = []
        var groundTruthCount = 0
        for image in images {
            let truth = image.groundTruth.filter { $0.classIndex == classIndex }
            groundTruthCount += truth.count
            let sorted = stableSortedByScore(image.detections.filter { $0.box.classIndex == classIndex })
            let kept = sorted.prefix(maxDetectionsPerImage)
            var matched = [Bool](repeating: false, count: truth.count)
            for detection in kept {
                var best = min(iouThreshold, 1 - 1e-10)
                var match = -1
                for (g, box) in truth.enumerated() where !matched[g] {
                    let iou = detection.box.intersectionOverUnion(with: box)
                    if iou < best { continue }
                    best = iou
                    match = g
                }
                if match >= 0 { matched[match] = true }
                scores.append(detection.score)
                truePositive.append(match >= 0)
            }
        }
        guard groundTruthCount > 0 else { return nil }
        // Merge over images: stable sort by descending score (numpy mergesort of -score).
        let order = scores.indices.sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
        var recall: [Double] = [], precision: [Double] = []
        var tp = 0.0, fp = 0.0
        for index in order {
            if truePositive[index] { tp += 1 } else { fp += 1 }
            recall.append(tp / Double(groundTruthCount))
            precision.append(tp / (tp + fp + Double.ulpOfOne))
        }
        if precision.count > 1 {
            for i in stride(from: precision.count - 1, to: 0, by: -1) where precision[i] > precision[i - 1] {
                precision[i - 1] = precision[i]
            }
        }
        var sum = 0.0
        for point in Self.recallPoints {
            // First index where recall >= point (numpy searchsorted, side 'left').
            var low = 0, high = recall.count
            while low < high {
                let mid = (low + high) / 2
                if recall[mid] < point { low = mid + 1 } else { high = mid }
            }
            if low < precision.count { sum += precision[low] }
        }
        return sum / Double(Self.recallPoints.count)
    }

    /// Per-class and mean AP at IoU 0.50, 0.75 and averaged over 0.50:0.95.
    public func report() -> DetectionReport {
        let classes = Set(images.flatMap { $0.groundTruth.map(\.classIndex) }).sorted()
        var perClass: [DetectionReport.ClassScores] = []
        for c in classes {
            let aps = Self.cocoThresholds.map { averagePrecision(classIndex: c, iouThreshold: $0) ?? 0 }
            let groundTruth = images.reduce(0) { $0 + $1.groundTruth.filter { $0.classIndex == c }.count }
            let detections = images.reduce(0) { $0 + $1.detections.filter { $0.box.classIndex == c }.count }
            perClass.append(DetectionReport.ClassScores(classIndex: c, groundTruthCount: groundTruth, detectionCount: detections,
                                                        ap50: aps[0], ap75: aps[5], ap50to95: aps.reduce(0, +) / Double(aps.count)))
        }
        func mean(_ key: KeyPath<DetectionReport.ClassScores, Double>) -> Double? {
            perClass.isEmpty ? nil : perClass.map { $0[keyPath: key] }.reduce(0, +) / Double(perClass.count)
        }
        return DetectionReport(classes: perClass, mAP50: mean(\.ap50), mAP75: mean(\.ap75), mAP50to95: mean(\.ap50to95))
    }

    private func stableSortedByScore(_ detections: [Detection]) -> [Detection] {
        detections.enumerated().sorted { lhs, rhs in
            lhs.element.score > rhs.element.score || (lhs.element.score == rhs.element.score && lhs.offset < rhs.offset)
        }.map(\.element)
    }

    /// numpy's `linspace(start, stop, count)`: `i * step + start`, the last value exactly `stop`.
    static func linspace(_ start: Double, _ stop: Double, count: Int) -> [Double] {
        let step = (stop - start) / Double(count - 1)
        var values = (0..<count).map { Double($0) * step + start }
        values[count - 1] = stop
        return values
    }
}

/// COCO-style detection scores (fractions in [0, 1]) over the classes present in the ground truth.
public struct DetectionReport: Sendable, Equatable {
    /// One class's scores.
    public struct ClassScores: Sendable, Equatable {
        /// Class index.
        public var classIndex: Int
        /// Ground-truth boxes of the class.
        public var groundTruthCount: Int
        /// Detections of the class (before the per-image cap).
        public var detectionCount: Int
        /// AP at IoU 0.50.
        public var ap50: Double
        /// AP at IoU 0.75.
        public var ap75: Double
        /// AP averaged over IoU 0.50, 0.55, ..., 0.95.
        public var ap50to95: Double
    }

    /// Classes present in the ground truth, ascending.
    public var classes: [ClassScores]
    /// Mean AP@0.5 over those classes (nil without ground truth).
    public var mAP50: Double?
    /// Mean AP@0.75.
    public var mAP75: Double?
    /// Mean AP@[.5:.95].
    public var mAP50to95: Double?
}
