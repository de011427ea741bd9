import FuseKitImage

/// A confusion matrix over a whole evaluation set, with mmsegmentation's IoU and accuracy.
///
/// Pixels labelled with the ignore index are dropped; other labels or predictions outside
/// `0..<classCount` are ignored for the per-class areas (as mmsegmentation's histogram does).
public struct ConfusionMatrix: Sendable, Equatable {
    /// Number of classes.
    public let classCount: Int
    /// Label value that marks pixels to skip (255 by default).
    public let ignoreIndex: Int32
    /// Counts indexed `[label * classCount + prediction]`.
    public private(set) var counts: [Int]

    /// An empty matrix.
    public init(classCount: Int, ignoreIndex: Int32 = LabelMap.ignoreIndex) {
        precondition(classCount > 0, "ConfusionMatrix: classCount must be positive")
        self.classCount = classCount
        self.ignoreIndex = ignoreIndex
        self.counts = [Int](repeating: 0, count: classCount * classCount)
    }

    /// A matrix with these counts (`[label * classCount + prediction]`), e.g. read back from a report.
    public init(classCount: Int, counts: [Int], ignoreIndex: Int32 = LabelMap.ignoreIndex) {
        precondition(counts.count == classCount * classCount, "ConfusionMatrix: \(counts.count) counts for \(classCount) classes")
        self.init(classCount: classCount, ignoreIndex: ignoreIndex)
        self.counts = counts
    }

    /// Adds one image's prediction and label (same length, row-major class indices).
    public mutating func add(prediction: [Int32], label: [Int32]) {
        precondition(prediction.count == label.count, "ConfusionMatrix.add: \(prediction.count) predictions for \(label.count) labels")
        let n = Int32(classCount)
        for i in 0..<label.count {
            let l = label[i], p = prediction[i]
            guard l != ignoreIndex, l >= 0, l < n, p >= 0, p < n else { continue }
            counts[Int(l) * classCount + Int(p)] += 1
        }
    }

    /// Adds one image's prediction and label maps.
    public mutating func add(prediction: LabelMap, label: LabelMap) {
        precondition(prediction.width == label.width && prediction.height == label.height,
                     "ConfusionMatrix.add: prediction \(prediction.width)x\(prediction.height) vs label \(label.width)x\(label.height)")
        add(prediction: prediction.values, label: label.values)
    }

    /// Merges another matrix over the same classes.
    public mutating func merge(_ other: ConfusionMatrix) {
        precondition(other.classCount == classCount, "ConfusionMatrix.merge: class counts differ")
        for i in 0..<counts.count { counts[i] += other.counts[i] }
    }

    /// The scores of the accumulated pixels.
    public func report() -> SegmentationReport {
        var intersection = [Int](repeating: 0, count: classCount)
        var labelArea = [Int](repeating: 0, count: classCount)
        var predictionArea = [Int](repeating: 0, count: classCount)
        for l in 0..<classCount {
            for p in 0..<classCount {
                let count = counts[l * classCount + p]
                labelArea[l] += count
                predictionArea[p] += count
                if l == p { intersection[l] += count }
            }
        }
        var iou = [Double?](), accuracy = [Double?]()
        for c in 0..<classCount {
            let union = labelArea[c] + predictionArea[c] - intersection[c]
            iou.append(union > 0 ? Double(intersection[c]) / Double(union) : nil)
            accuracy.append(labelArea[c] > 0 ? Double(intersection[c]) / Double(labelArea[c]) : nil)
        }
        func mean(_ values: [Double?]) -> Double? {
            let defined = values.compactMap { $0 }
            return defined.isEmpty ? nil : defined.reduce(0, +) / Double(defined.count)
        }
        let totalLabelled = labelArea.reduce(0, +)
        return SegmentationReport(classIoU: iou, classAccuracy: accuracy, meanIoU: mean(iou), meanAccuracy: mean(accuracy),
                                  overallAccuracy: totalLabelled > 0 ? Double(intersection.reduce(0, +)) / Double(totalLabelled) : nil,
                                  intersection: intersection, union: (0..<classCount).map { labelArea[$0] + predictionArea[$0] - intersection[$0] },
                                  labelArea: labelArea, predictionArea: predictionArea)
    }
}

/// Segmentation scores as fractions in [0, 1]; nil where a value is undefined (a class absent
/// from both labels and predictions has no IoU; one absent from the labels has no accuracy).
/// Means skip undefined classes, as mmsegmentation's `nanmean`.
public struct SegmentationReport: Sendable, Equatable {
    /// IoU of each class.
    public var classIoU: [Double?]
    /// Accuracy (recall) of each class.
    public var classAccuracy: [Double?]
    /// mIoU over classes whose IoU is defined.
    public var meanIoU: Double?
    /// mAcc over classes whose accuracy is defined.
    public var meanAccuracy: Double?
    /// aAcc: correctly labelled pixels over all labelled pixels.
    public var overallAccuracy: Double?
    /// Pixels predicted and labelled as each class.
    public var intersection: [Int]
    /// Pixels predicted or labelled as each class.
    public var union: [Int]
    /// Pixels labelled as each class.
    public var labelArea: [Int]
    /// Pixels predicted as each class.
    public var predictionArea: [Int]

    /// A fraction as a percentage rounded to two decimals, as mmsegmentation prints it.
    public static func percent(_ value: Double?) -> Double? {
        value.map { ($0 * 10_000).rounded() / 100 }
    }
}
