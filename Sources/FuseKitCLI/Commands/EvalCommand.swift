import ArgumentParser
import Foundation
import FuseKit

// MARK: - fusekit eval

/// `fusekit eval`: the fusion metrics of a folder of fused images against their sources.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Fusion metrics (EN, SD, SF, AG, MI, SCD, VIF, Qabf, SSIM) of fused images against their sources.",
        discussion: """
            The three folders are paired by file stem (PNG, JPEG or BMP). Images are converted to \
            gray levels (0.299 R + 0.587 G + 0.114 B, rounded) and measured as the CDDFuse evaluator \
            does (the conventions are listed in the README, \"Evaluating\"). MI, VIF and SSIM are sums over the two sources unless \
            --per-pair is given. Pairs that are missing or differ in size are skipped with a warning.
            """)

    @Option(name: .customLong("ir"), help: "Folder of infrared source images.")
    var infrared: String

    @Option(name: .customLong("vis"), help: "Folder of visible source images.")
    var visible: String

    @Option(name: .customLong("fused"), help: "Folder of fused images.")
    var fused: String

    @Flag(help: "Print one JSON object {\"images\": [...], \"mean\": {...}} to standard output instead of a table.")
    var json = false

    @Option(help: "Also write per-image values and the mean to this CSV file.")
    var csv: String?

    @Option(help: "Comma-separated metrics to compute (default: all): EN,SD,SF,AG,MI,SCD,VIF,Qabf,SSIM.")
    var metrics: String?

    @Flag(name: .customLong("per-pair"), help: "Report MI, VIF and SSIM as the mean over the two sources (sum / 2), as TDFusion's paper prints them.")
    var perPair = false

    func validate() throws {
        _ = try selectedMetrics()
    }

    func selectedMetrics() throws -> [FusionMetric] {
        guard let metrics else { return FusionMetric.allCases }
        var selected: [FusionMetric] = []
        for name in metrics.split(separator: ",").map(String.init) where !name.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let metric = FusionMetric(name: name) else {
                throw ValidationError("unknown metric '\(name)'; choose from \(FusionMetric.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if !selected.contains(metric) { selected.append(metric) }
        }
        guard !selected.isEmpty else { throw ValidationError("--metrics lists no metric") }
        return selected
    }

    func run() throws {
        let progress = ProgressBar(total: 0, label: "eval", unit: "img")
        let (evaluation, warnings) = try FolderEvaluation.fusion(
            infrared: URL(fileURLWithPath: infrared), visible: URL(fileURLWithPath: visible), fused: URL(fileURLWithPath: fused),
            metrics: try selectedMetrics(), convention: perPair ? .perPairMean : .sum) { done, total, name in
            progress.update(completed: done, total: total, status: name)
        }
        progress.finish()
        for warning in warnings { warn(warning) }
        if let csv {
            do {
                try evaluation.csv.write(to: URL(fileURLWithPath: csv), atomically: true, encoding: .utf8)
            } catch {
                throw FolderEvaluation.Failure("cannot write \(csv): \(error.localizedDescription)")
            }
        }
        if json {
            print(evaluation.json)
        } else {
            print(evaluation.table)
            if perPair { print("(MI, VIF and SSIM are per-pair means: sum over the two sources / 2)") }
        }
    }
}

// MARK: - fusekit eval-seg

/// `fusekit eval-seg`: mIoU and mAcc of predicted masks against label masks.
struct EvalSegmentationCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval-seg",
        abstract: "Segmentation scores (mIoU, mAcc, aAcc, per-class IoU and accuracy) of predicted masks.",
        discussion: """
            Predictions and labels are PNG (or BMP) images of class indices, paired by file stem. \
            Pixels labelled with the ignore index are skipped. Scores accumulate over all images, as \
            mmsegmentation computes them, and are printed in percent.
            """)

    @Option(help: "Folder of predicted masks (class indices).")
    var pred: String

    @Option(help: "Folder of label masks (class indices).")
    var labels: String

    @Option(help: "Number of classes.")
    var classes: Int

    @Option(name: .customLong("ignore-index"), help: "Label value to ignore.")
    var ignoreIndex: Int = 255

    @Option(name: .customLong("class-names"), help: "Comma-separated class names for the report.")
    var classNames: String?

    @Flag(help: "Print one JSON object to standard output instead of a table.")
    var json = false

    func validate() throws {
        guard classes > 0 else { throw ValidationError("--classes must be positive") }
        if let names = classNames?.split(separator: ","), names.count != classes {
            throw ValidationError("--class-names lists \(names.count) names for \(classes) classes")
        }
    }

    func run() throws {
        let names = classNames.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            ?? (0..<classes).map { "class \($0)" }
        let progress = ProgressBar(total: 0, label: "eval-seg", unit: "img")
        let (report, images, warnings) = try FolderEvaluation.segmentation(
            predictions: URL(fileURLWithPath: pred), labels: URL(fileURLWithPath: labels), classes: classes, ignoreIndex: ignoreIndex) { done, total, name in
            progress.update(completed: done, total: total, status: name)
        }
        progress.finish()
        for warning in warnings { warn(warning) }
        print(json ? report.json(classNames: names, images: images) : report.table(classNames: names, images: images))
    }
}

// MARK: - fusekit eval-det

/// `fusekit eval-det`: COCO-style AP of YOLO-format detections against YOLO labels.
struct EvalDetectionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval-det",
        abstract: "Detection AP@0.5, AP@0.75 and AP@[.5:.95] (COCO protocol) of YOLO-format predictions.",
        discussion: """
            --labels is a folder of YOLO label files (stem.txt, lines 'class cx cy w h', normalised). \
            --pred is either a folder of prediction files (stem.txt, lines 'class cx cy w h score') or \
            one text file whose lines are 'stem class cx cy w h score'. Images are those of the label \
            folder; an image without predictions has no detections. Scores are printed in percent.
            """)

    @Option(help: "Folder of YOLO prediction files, or one file of 'stem class cx cy w h score' lines.")
    var pred: String

    @Option(help: "Folder of YOLO label files.")
    var labels: String

    @Option(name: .customLong("class-names"), help: "Comma-separated class names for the report (index order).")
    var classNames: String?

    @Option(name: .customLong("max-detections"), help: "Detections kept per image and class (COCO: 100).")
    var maxDetections: Int = 100

    @Flag(help: "Print one JSON object to standard output instead of a table.")
    var json = false

    func validate() throws {
        guard maxDetections >= 1 else { throw ValidationError("--max-detections must be at least 1") }
    }

    func run() throws {
        let names = classNames.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []
        let progress = ProgressBar(total: 0, label: "eval-det", unit: "img")
        let (report, images, warnings) = try FolderEvaluation.detection(
            predictions: URL(fileURLWithPath: pred), labels: URL(fileURLWithPath: labels), maxDetections: maxDetections,
            classCount: classNames == nil ? nil : names.count) { done, total, name in
            progress.update(completed: done, total: total, status: name)
        }
        progress.finish()
        for warning in warnings { warn(warning) }
        print(json ? report.json(classNames: names, images: images) : report.table(classNames: names, images: images))
    }
}

/// Prints a line to standard error.
func warn(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
