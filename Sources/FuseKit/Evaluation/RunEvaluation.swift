import Foundation
import FuseKitData
import FuseKitImage
import FuseKitMetrics
import FuseKitNN
import FuseKitTensor

/// Fusion metrics of a set of fused images: per image and the mean.
public struct FusionEvaluation: Sendable {
    public var images: [(name: String, values: [FusionMetric: Double])]
    public var metrics: [FusionMetric]

    /// Mean of each metric over the images.
    public var mean: [FusionMetric: Double] {
        var result: [FusionMetric: Double] = [:]
        for metric in metrics {
            let values = images.compactMap { $0.values[metric] }
            if !values.isEmpty { result[metric] = values.reduce(0, +) / Double(values.count) }
        }
        return result
    }

    /// `{"images": [{"name": ..., "EN": ...}], "mean": {...}}`, as `fusekit eval --json` prints.
    public var jsonObject: [String: Any] {
        func row(_ values: [FusionMetric: Double]) -> [String: Any] {
            Dictionary(uniqueKeysWithValues: metrics.compactMap { m in values[m].map { (m.rawValue, $0 as Any) } })
        }
        return ["images": images.map { ["name": $0.name].merging(row($0.values)) { a, _ in a } }, "mean": row(mean)]
    }
}

/// A task network's score on a set of images.
public struct TaskEvaluation: Sendable {
    public var kind: TaskKind
    public var segmentation: SegmentationReport?
    public var detection: DetectionReport?

    /// The headline number in percent: mIoU for segmentation, mAP@0.5 for detection.
    public var headline: Double? {
        if let s = segmentation { return s.meanIoU.map { $0 * 100 } }
        if let d = detection { return d.mAP50.map { $0 * 100 } }
        return nil
    }

    /// Name of the headline number.
    public var headlineName: String { segmentation != nil ? "mIoU" : "mAP50" }

    public var jsonObject: [String: Any] {
        var o: [String: Any] = ["task": kind.description]
        if let s = segmentation {
            o["mIoU"] = s.meanIoU.map { $0 * 100 } as Any
            o["mAcc"] = s.meanAccuracy.map { $0 * 100 } as Any
            o["aAcc"] = s.overallAccuracy.map { $0 * 100 } as Any
            o["IoU"] = s.classIoU.map { $0.map { $0 * 100 } as Any }
            o["Acc"] = s.classAccuracy.map { $0.map { $0 * 100 } as Any }
        }
        if let d = detection {
            o["mAP50"] = d.mAP50.map { $0 * 100 } as Any
            o["mAP75"] = d.mAP75.map { $0 * 100 } as Any
            o["mAP50-95"] = d.mAP50to95.map { $0 * 100 } as Any
            o["AP50"] = d.classes.map { ["class": $0.classIndex, "AP50": $0.ap50 * 100, "AP75": $0.ap75 * 100] }
        }
        return o
    }
}

/// Fuses evaluation pairs and scores the fused images and a task network on them.
public struct RunEvaluator {
    public var fuser: Fuser
    public var task: (any TaskNet)?
    public var taskState: ModelState?
    public var taskInput: @Sendable (Tensor) -> Tensor
    public var metrics: [FusionMetric]
    public var convention: PairConvention

    public init(fuser: Fuser, task: (any TaskNet)?, taskState: ModelState?, taskInput: @escaping @Sendable (Tensor) -> Tensor,
                metrics: [FusionMetric] = FusionMetric.allCases, convention: PairConvention = .sum) {
        self.fuser = fuser
        self.task = task
        self.taskState = taskState
        self.taskInput = taskInput
        self.metrics = metrics
        self.convention = convention
    }

    /// One detection per line, `class cx cy w h confidence` (normalised), as YOLO's `save_txt`.
    public static func yoloText(_ detections: [Detection]) -> String {
        detections.map { d in
            let b = d.box
            return String(format: "%d %.6f %.6f %.6f %.6f %.6f", b.classIndex, b.centerX, b.centerY, b.width, b.height, d.score)
        }.joined(separator: "\n") + (detections.isEmpty ? "" : "\n")
    }

    /// Evaluates up to `limit` samples of `source`; writes fused images into `outputFolder` and
    /// the task predictions into `predictionFolder` (class-index PNGs or YOLO txt files) when
    /// given; `progress(done, total)` is called after each pair.
    public func evaluate(_ source: any PairedSampleSource, limit: Int? = nil, outputFolder: URL? = nil, predictionFolder: URL? = nil,
                         progress: (Int, Int) -> Void = { _, _ in }) throws -> (fusion: FusionEvaluation, task: TaskEvaluation?) {
        let count = Swift.min(source.count, limit ?? source.count)
        var fusion = FusionEvaluation(images: [], metrics: metrics)
        var confusion = task.map { ConfusionMatrix(classCount: $0.kind.classes) }
        var detections = DetectionEvaluator()
        var sawDetectionLabels = false
        for folder in [outputFolder, predictionFolder].compactMap({ $0 }) {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        }
        for index in 0..<count {
            let sample = try source.sample(at: index, includeColor: false)
            let output = fuser.fuse(infrared: sample.infrared, visible: sample.visible)
            if let outputFolder {
                try output.gray.write(to: outputFolder.appendingPathComponent(sample.name + ".png"))
            }
            if !metrics.isEmpty {
                let values = try FusionMetrics.evaluate(fused: output.gray.grayLevels(), infrared: sample.infrared.grayLevels(),
                                                        visible: sample.visible.grayLevels(), metrics: metrics, convention: convention)
                fusion.images.append((sample.name, values))
            }
            if let task, let taskState {
                let prediction = withoutGradient { task.predict(taskInput(output.raw), Scope(taskState)) }
                switch prediction {
                case .segmentation(let classes):
                    var map = classes
                    if map.shape[1] != sample.height || map.shape[2] != sample.width {
                        map = map.unsqueezed(at: 1).resizedNearest(to: (sample.height, sample.width)).squeezed(at: 1)
                    }
                    let predicted = map.scalars.map { Int32($0) }
                    if let predictionFolder {
                        try LabelMap(width: sample.width, height: sample.height, values: predicted)
                            .write(to: predictionFolder.appendingPathComponent(sample.name + ".png"))
                    }
                    if let label = sample.segmentation { confusion?.add(prediction: predicted, label: label.values) }
                case .detection(let perImage):
                    sawDetectionLabels = true
                    let found = perImage.first ?? []
                    if let predictionFolder {
                        try Self.yoloText(found).write(to: predictionFolder.appendingPathComponent(sample.name + ".txt"), atomically: true, encoding: .utf8)
                    }
                    detections.add(detections: found, groundTruth: sample.boxes)
                }
            }
            progress(index + 1, count)
        }
        var taskResult: TaskEvaluation?
        if let task {
            switch task.kind {
            case .segmentation:
                if let confusion, confusion.counts.contains(where: { $0 > 0 }) {
                    taskResult = TaskEvaluation(kind: task.kind, segmentation: confusion.report(), detection: nil)
                }
            case .detection:
                if sawDetectionLabels { taskResult = TaskEvaluation(kind: task.kind, segmentation: nil, detection: detections.report()) }
            }
        }
        return (fusion, taskResult)
    }
}
