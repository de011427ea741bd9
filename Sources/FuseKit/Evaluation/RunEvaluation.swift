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
    /// Each image's own confusion matrix, in evaluation order (segmentation): what resampling
    /// over images (``ComparisonStatistics``) recomputes the scores from.
    public var imageConfusions: [ConfusionMatrix] = []

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

/// What evaluation runs on one pair: the fused images and, when there is a task, its prediction.
public struct EvaluationPipeline: Sendable {
    /// The task, when the pipeline predicts.
    public let taskKind: TaskKind?
    /// Whether it needs the visible image in colour.
    public let needsColor: Bool
    /// The fused output (nil when the pipeline does not fuse) and the prediction of one sample.
    public let run: @Sendable (PairedSample) -> (fused: Fuser.Output?, prediction: TaskPredictions?)

    /// A fusion net F and, optionally, a task net on its fused images.
    public static func cascade(fuser: Fuser, task: (net: any TaskNet, state: ModelState, input: @Sendable (Tensor) -> Tensor)?) -> Self {
        EvaluationPipeline(taskKind: task?.net.kind, needsColor: false) { sample in
            let output = fuser.fuse(infrared: sample.infrared, visible: sample.visible)
            let prediction = task.map { t in withoutGradient { t.net.predict(t.input(output.raw), Scope(t.state)) } }
            return (output, prediction)
        }
    }

    /// A joint model: the fused image and the segmentation from one forward pass.
    public static func joint(_ model: any JointModel, state: ModelState, normalizes: Bool = true) -> Self {
        EvaluationPipeline(taskKind: model.kind, needsColor: model.visibleChannels == 3) { sample in
            let visible = model.visibleChannels == 3 ? (sample.visibleColor ?? sample.visible) : sample.visible
            let input = JointInput(infrared: sample.infrared.tensor(), visible: FusionTargets.withChannels(visible.tensor(), model.visibleChannels))
            let out = withoutGradient { model.forward(input, Scope(state)) }
            let fused = Fuser.output(raw: out.fused, infrared: sample.infrared, visible: visible, normalizes: normalizes)
            return (fused, .segmentation(out.logits.argmax(axis: 1)))
        }
    }

    /// A task net on the visible images (a teacher's own stage).
    public static func visibleTask(_ net: any TaskNet, state: ModelState, input: @escaping @Sendable (Tensor) -> Tensor) -> Self {
        EvaluationPipeline(taskKind: net.kind, needsColor: net.inputChannels == 3) { sample in
            let visible = net.inputChannels == 3 ? (sample.visibleColor ?? sample.visible) : sample.visible
            return (nil, withoutGradient { net.predict(input(visible.tensor()), Scope(state)) })
        }
    }
}

/// Fuses evaluation pairs and scores the fused images and the task predictions on them.
public struct RunEvaluator {
    public var pipeline: EvaluationPipeline
    public var metrics: [FusionMetric]
    public var convention: PairConvention

    public init(pipeline: EvaluationPipeline, metrics: [FusionMetric] = FusionMetric.allCases, convention: PairConvention = .sum) {
        self.pipeline = pipeline
        self.metrics = metrics
        self.convention = convention
    }

    /// A predicted class map [1, h, w] as a label map of the sample's size (nearest-neighbour
    /// resized when the network predicted at another size).
    public static func labelMap(_ classes: Tensor, for sample: PairedSample) -> LabelMap {
        var map = classes
        if map.shape[1] != sample.height || map.shape[2] != sample.width {
            map = map.unsqueezed(at: 1).resizedNearest(to: (sample.height, sample.width)).squeezed(at: 1)
        }
        return LabelMap(width: sample.width, height: sample.height, values: map.scalars.map { Int32($0) })
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
        var confusion = pipeline.taskKind.map { ConfusionMatrix(classCount: $0.classes) }
        var detections = DetectionEvaluator()
        var sawDetectionLabels = false
        var imageConfusions: [ConfusionMatrix] = []
        for folder in [outputFolder, predictionFolder].compactMap({ $0 }) {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        }
        for index in 0..<count {
            let sample = try source.sample(at: index, includeColor: pipeline.needsColor)
            let (output, prediction) = pipeline.run(sample)
            if let output {
                if let outputFolder {
                    try (output.color ?? output.gray).write(to: outputFolder.appendingPathComponent(sample.name + ".png"))
                }
                if !metrics.isEmpty {
                    let values = try FusionMetrics.evaluate(fused: output.gray.grayLevels(), infrared: sample.infrared.grayLevels(),
                                                            visible: sample.visible.grayLevels(), metrics: metrics, convention: convention)
                    fusion.images.append((sample.name, values))
                }
            }
            if let prediction {
                switch prediction {
                case .segmentation(let classes):
                    let labels = Self.labelMap(classes, for: sample)
                    let predicted = labels.values
                    if let predictionFolder { try labels.write(to: predictionFolder.appendingPathComponent(sample.name + ".png")) }
                    if let label = sample.segmentation, var image = confusion.map({ ConfusionMatrix(classCount: $0.classCount) }) {
                        image.add(prediction: predicted, label: label.values)
                        confusion?.merge(image)
                        imageConfusions.append(image)
                    }
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
        if let kind = pipeline.taskKind {
            switch kind {
            case .segmentation:
                if let confusion, confusion.counts.contains(where: { $0 > 0 }) {
                    taskResult = TaskEvaluation(kind: kind, segmentation: confusion.report(), detection: nil, imageConfusions: imageConfusions)
                }
            case .detection:
                if sawDetectionLabels { taskResult = TaskEvaluation(kind: kind, segmentation: nil, detection: detections.report()) }
            }
        }
        return (fusion, taskResult)
    }
}
