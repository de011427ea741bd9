import Foundation
import FuseKitMetrics

/// Plain-text renderings of evaluation results.
public enum MetricsTable {
    static func format(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "-" }

    /// A Markdown table of per-image fusion metrics with the mean, then the task metrics.
    public static func markdown(fusion: FusionEvaluation, task: TaskEvaluation?) -> String {
        var lines: [String] = []
        if !fusion.images.isEmpty {
            let names = fusion.metrics.map(\.rawValue)
            lines.append("| image | " + names.joined(separator: " | ") + " |")
            lines.append("|---|" + names.map { _ in "---:" }.joined(separator: "|") + "|")
            for (name, values) in fusion.images {
                lines.append("| \(name) | " + fusion.metrics.map { format(values[$0]) }.joined(separator: " | ") + " |")
            }
            let mean = fusion.mean
            lines.append("| **mean** | " + fusion.metrics.map { "**\(format(mean[$0]))**" }.joined(separator: " | ") + " |")
        }
        if let task {
            lines.append("")
            lines.append("Task: \(task.kind)")
            if let s = task.segmentation {
                lines.append("")
                lines.append("mIoU \(format(s.meanIoU.map { $0 * 100 }))%, mAcc \(format(s.meanAccuracy.map { $0 * 100 }))%")
                lines.append("")
                lines.append("| class | IoU % | Acc % |")
                lines.append("|---:|---:|---:|")
                for c in s.classIoU.indices {
                    lines.append("| \(c) | \(format(s.classIoU[c].map { $0 * 100 })) | \(format(s.classAccuracy[c].map { $0 * 100 })) |")
                }
            }
            if let d = task.detection {
                lines.append("")
                lines.append("mAP50 \(format(d.mAP50.map { $0 * 100 }))%, mAP75 \(format(d.mAP75.map { $0 * 100 }))%, mAP50-95 \(format(d.mAP50to95.map { $0 * 100 }))%")
                lines.append("")
                lines.append("| class | AP50 % | AP75 % | ground truth | detections |")
                lines.append("|---:|---:|---:|---:|---:|")
                for c in d.classes {
                    lines.append("| \(c.classIndex) | \(format(c.ap50 * 100)) | \(format(c.ap75 * 100)) | \(c.groundTruthCount) | \(c.detectionCount) |")
                }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
