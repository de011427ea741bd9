import Foundation
import FuseKitMetrics

/// One run's scores on a comparison's test split, as `fusekit compare` keeps them in the run's
/// folder (`scores.json`): a finished run is not trained again when the comparison resumes.
public struct RunScores: Codable, Sendable, Equatable {
    /// The method (its recipe's name).
    public var method: String
    /// The run's folder name under the method: `seed-S` or `weights-K`.
    public var run: String
    /// The training seed (nil for evaluated weights).
    public var seed: UInt64?
    /// The evaluated weights file (nil for a trained run).
    public var weights: String?
    /// The recipe text the run was made from (a changed recipe is not reused).
    public var recipeText: String
    /// Training and evaluation time.
    public var seconds: Double
    /// The test pairs in evaluation order.
    public var images: [String]
    /// Per-image values of each fusion metric (by its name), in `images` order.
    public var fusion: [String: [Double]]
    /// The task scores, when the method has a task.
    public var task: TaskScores?

    /// A task network's scores on the split.
    public struct TaskScores: Codable, Sendable, Equatable {
        /// `segmentation` or `detection`.
        public var kind: String
        public var classes: Int
        /// Whole-split scores in percent: mIoU, mAcc, aAcc (segmentation); mAP50, mAP75, mAP50-95 (detection).
        public var scores: [String: Double]
        /// Per class, in percent: IoU (segmentation) or AP50 (detection); nil where undefined.
        public var classScores: [Double?]
        /// Per image, the confusion matrix counts (segmentation).
        public var imageConfusions: [[Int]]?

        /// The headline score's name: mIoU or mAP50.
        public var headlineName: String { kind == "segmentation" ? "mIoU" : "mAP50" }
        /// The per-class score's name.
        public var classScoreName: String { kind == "segmentation" ? "IoU" : "AP50" }
        /// The columns of the TDFusion paper's Table 2 for this task.
        public var tableColumns: [String] { kind == "segmentation" ? ["mAcc", "mIoU"] : ["mAP50", "mAP75"] }

        /// The per-image confusion matrices, when kept.
        public var confusionMatrices: [ConfusionMatrix]? {
            imageConfusions.map { $0.map { ConfusionMatrix(classCount: classes, counts: $0) } }
        }
    }

    /// The mean of a fusion metric over the images.
    public func fusionMean(_ metric: String) -> Double? {
        guard let values = fusion[metric], !values.isEmpty else { return nil }
        return values.reduce(0, +) / Double(values.count)
    }

    /// The scores of a finished evaluation.
    public init(method: String, run: String, seed: UInt64?, weights: String?, recipeText: String, seconds: Double,
                fusion evaluation: FusionEvaluation, task: TaskEvaluation?) {
        self.method = method
        self.run = run
        self.seed = seed
        self.weights = weights
        self.recipeText = recipeText
        self.seconds = seconds
        images = evaluation.images.map(\.name)
        var fusion: [String: [Double]] = [:]
        for metric in evaluation.metrics {
            let values = evaluation.images.compactMap { $0.values[metric] }
            if values.count == evaluation.images.count { fusion[metric.rawValue] = values }
        }
        self.fusion = fusion
        self.task = task.map { t in
            if let s = t.segmentation {
                return TaskScores(kind: "segmentation", classes: t.kind.classes,
                                  scores: ["mIoU": s.meanIoU, "mAcc": s.meanAccuracy, "aAcc": s.overallAccuracy].compactMapValues { $0.map { $0 * 100 } },
                                  classScores: s.classIoU.map { $0.map { $0 * 100 } },
                                  imageConfusions: t.imageConfusions.isEmpty ? nil : t.imageConfusions.map(\.counts))
            }
            let d = t.detection
            var perClass = [Double?](repeating: nil, count: t.kind.classes)
            for c in d?.classes ?? [] where c.classIndex < perClass.count { perClass[c.classIndex] = c.ap50 * 100 }
            return TaskScores(kind: "detection", classes: t.kind.classes,
                              scores: ["mAP50": d?.mAP50, "mAP75": d?.mAP75, "mAP50-95": d?.mAP50to95].compactMapValues { $0.map { $0 * 100 } },
                              classScores: perClass, imageConfusions: nil)
        }
    }

    static let fileName = "scores.json"

    /// Reads `scores.json` of a run folder; nil when it is missing or unreadable (the run is redone).
    public static func read(in folder: URL) -> RunScores? {
        guard let data = try? Data(contentsOf: folder.appendingPathComponent(fileName)) else { return nil }
        return try? JSONDecoder().decode(RunScores.self, from: data)
    }

    /// Writes `scores.json` into a run folder, atomically.
    public func write(in folder: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: folder.appendingPathComponent(Self.fileName), options: .atomic)
    }
}
