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
            does (see docs/metrics.md). MI, VIF and SSIM are sums over the two sources unless \
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
        let chosen = try selectedMetrics()
        let fusedFolder = try ImageFolder(URL(fileURLWithPath: fused))
        let infraredFolder = try ImageFolder(URL(fileURLWithPath: infrared))
        let visibleFolder = try ImageFolder(URL(fileURLWithPath: visible))

        var jobs: [(name: String, fused: URL, infrared: URL, visible: URL)] = []
        var warnings: [String] = []
        for stem in fusedFolder.sortedStems {
            let fusedURL = fusedFolder.filesByStem[stem]!
            guard let ir = infraredFolder.filesByStem[stem] else {
                warnings.append("warning: skipping '\(stem)': \(fusedURL.path) has no infrared source in \(infraredFolder.url.path)")
                continue
            }
            guard let vis = visibleFolder.filesByStem[stem] else {
                warnings.append("warning: skipping '\(stem)': \(fusedURL.path) has no visible source in \(visibleFolder.url.path)")
                continue
            }
            jobs.append((stem, fusedURL, ir, vis))
        }
        let unfused = Set(infraredFolder.filesByStem.keys).intersection(visibleFolder.filesByStem.keys)
            .subtracting(fusedFolder.filesByStem.keys)
        if !unfused.isEmpty {
            warnings.append("note: \(unfused.count) source pair(s) have no fused image (e.g. '\(unfused.sorted(by: ImageFolder.naturalOrder)[0])')")
        }
        for warning in warnings { EvalOutput.warn(warning) }
        guard !jobs.isEmpty else {
            throw EvalFailure("no fused image in \(fusedFolder.url.path) has both sources")
        }

        let convention: PairConvention = perPair ? .perPairMean : .sum
        let progress = ProgressBar(total: jobs.count, label: "eval", unit: "img")
        var rows: [(name: String, values: [FusionMetric: Double])] = []
        for (index, job) in jobs.enumerated() {
            do {
                let f = try GrayImage(contentsOf: job.fused)
                let a = try GrayImage(contentsOf: job.infrared)
                let b = try GrayImage(contentsOf: job.visible)
                guard f.width == a.width, f.height == a.height, f.width == b.width, f.height == b.height else {
                    progress.log("warning: skipping '\(job.name)': sizes differ: \(job.fused.path) is \(f.width)x\(f.height), "
                                 + "\(job.infrared.path) is \(a.width)x\(a.height), \(job.visible.path) is \(b.width)x\(b.height)")
                    progress.update(completed: index + 1)
                    continue
                }
                let values = try FusionMetrics.evaluate(fused: f, infrared: a, visible: b, metrics: chosen, convention: convention)
                rows.append((job.name, values))
            } catch {
                progress.log("warning: skipping '\(job.name)': \(error)")
            }
            progress.update(completed: index + 1, status: job.name)
        }
        progress.finish()
        guard !rows.isEmpty else { throw EvalFailure("no image could be evaluated") }

        var mean: [FusionMetric: Double] = [:]
        for metric in chosen {
            mean[metric] = rows.map { $0.values[metric]! }.reduce(0, +) / Double(rows.count)
        }

        if let csv {
            var text = (["name"] + chosen.map(\.rawValue)).joined(separator: ",") + "\n"
            for row in rows {
                text += ([EvalOutput.csvField(row.name)] + chosen.map { EvalOutput.csvNumber(row.values[$0]!) }).joined(separator: ",") + "\n"
            }
            text += (["mean"] + chosen.map { EvalOutput.csvNumber(mean[$0]!) }).joined(separator: ",") + "\n"
            do {
                try text.write(to: URL(fileURLWithPath: csv), atomically: true, encoding: .utf8)
            } catch {
                throw EvalFailure("cannot write \(csv): \(error.localizedDescription)")
            }
        }

        if json {
            let images = rows.map { row in
                EvalOutput.JSON.object([("name", EvalOutput.JSON.string(row.name))] + chosen.map { ($0.rawValue, EvalOutput.JSON.number(row.values[$0]!)) })
            }
            let meanObject = EvalOutput.JSON.object(chosen.map { ($0.rawValue, EvalOutput.JSON.number(mean[$0]!)) })
            print(EvalOutput.JSON.object([("images", EvalOutput.JSON.array(images)), ("mean", meanObject)]))
        } else {
            let header = ["image"] + chosen.map(\.rawValue)
            var table = rows.map { row in [row.name] + chosen.map { String(format: "%.4f", row.values[$0]!) } }
            table.append(["mean"] + chosen.map { String(format: "%.4f", mean[$0]!) })
            print(EvalOutput.table(header: header, rows: table, separatorBeforeLast: true))
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
        let predictions = try ImageFolder(URL(fileURLWithPath: pred))
        let labelFolder = try ImageFolder(URL(fileURLWithPath: labels))
        let names = classNames.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            ?? (0..<classes).map { "class \($0)" }
        var matrix = ConfusionMatrix(classCount: classes, ignoreIndex: Int32(ignoreIndex))
        let stems = labelFolder.sortedStems
        let progress = ProgressBar(total: stems.count, label: "eval-seg", unit: "img")
        var evaluated = 0
        for (index, stem) in stems.enumerated() {
            defer { progress.update(completed: index + 1, status: stem) }
            let labelURL = labelFolder.filesByStem[stem]!
            guard let predURL = predictions.filesByStem[stem] else {
                progress.log("warning: skipping '\(stem)': \(labelURL.path) has no prediction in \(predictions.url.path)")
                continue
            }
            do {
                let label = try LabelMap(contentsOf: labelURL)
                let prediction = try LabelMap(contentsOf: predURL)
                guard label.width == prediction.width, label.height == prediction.height else {
                    progress.log("warning: skipping '\(stem)': sizes differ: \(predURL.path) is \(prediction.width)x\(prediction.height), "
                                 + "\(labelURL.path) is \(label.width)x\(label.height)")
                    continue
                }
                matrix.add(prediction: prediction, label: label)
                evaluated += 1
            } catch {
                progress.log("warning: skipping '\(stem)': \(error)")
            }
        }
        progress.finish()
        let extra = Set(predictions.filesByStem.keys).subtracting(labelFolder.filesByStem.keys)
        if !extra.isEmpty { EvalOutput.warn("note: \(extra.count) prediction(s) have no label and were ignored") }
        guard evaluated > 0 else { throw EvalFailure("no prediction could be paired with a label") }

        let report = matrix.report()
        let percent = SegmentationReport.percent
        if json {
            let classObjects = (0..<classes).map { c in
                EvalOutput.JSON.object([("index", "\(c)"), ("name", EvalOutput.JSON.string(names[c])),
                                 ("IoU", EvalOutput.JSON.number(percent(report.classIoU[c]))),
                                 ("Acc", EvalOutput.JSON.number(percent(report.classAccuracy[c])))])
            }
            print(EvalOutput.JSON.object([("images", "\(evaluated)"), ("classes", EvalOutput.JSON.array(classObjects)),
                                   ("mIoU", EvalOutput.JSON.number(percent(report.meanIoU))),
                                   ("mAcc", EvalOutput.JSON.number(percent(report.meanAccuracy))),
                                   ("aAcc", EvalOutput.JSON.number(percent(report.overallAccuracy)))]))
        } else {
            func text(_ value: Double?) -> String { percent(value).map { String(format: "%.2f", $0) } ?? "n/a" }
            var rows = (0..<classes).map { c in [names[c], text(report.classIoU[c]), text(report.classAccuracy[c])] }
            rows.append(["mean", text(report.meanIoU), text(report.meanAccuracy)])
            print(EvalOutput.table(header: ["class", "IoU", "Acc"], rows: rows, separatorBeforeLast: true))
            print("mIoU \(text(report.meanIoU))  mAcc \(text(report.meanAccuracy))  aAcc \(text(report.overallAccuracy))  (\(evaluated) images, percent)")
        }
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

    func run() throws {
        let labelFolder = URL(fileURLWithPath: labels)
        let labelFiles = try textFiles(in: labelFolder)
        guard !labelFiles.isEmpty else { throw EvalFailure("no .txt label files in \(labelFolder.path)") }
        let predictions = try loadPredictions()
        let names = classNames.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []

        var evaluator = DetectionEvaluator(maxDetectionsPerImage: maxDetections)
        let stems = labelFiles.keys.sorted(by: ImageFolder.naturalOrder)
        let progress = ProgressBar(total: stems.count, label: "eval-det", unit: "img")
        for (index, stem) in stems.enumerated() {
            let truth = try YOLOLabels.readBoxes(labelFiles[stem]!)
            evaluator.add(detections: predictions[stem] ?? [], groundTruth: truth)
            progress.update(completed: index + 1, status: stem)
        }
        progress.finish()
        let unmatched = Set(predictions.keys).subtracting(labelFiles.keys)
        if !unmatched.isEmpty {
            EvalOutput.warn("warning: predictions for \(unmatched.count) image(s) without a label file were ignored (e.g. '\(unmatched.sorted()[0])')")
        }

        let report = evaluator.report()
        func name(_ c: Int) -> String { c < names.count ? names[c] : "class \(c)" }
        func percent(_ value: Double?) -> Double? { value.map { ($0 * 10_000).rounded() / 100 } }
        if json {
            let classObjects = report.classes.map { s in
                EvalOutput.JSON.object([("index", "\(s.classIndex)"), ("name", EvalOutput.JSON.string(name(s.classIndex))),
                                 ("groundTruth", "\(s.groundTruthCount)"), ("detections", "\(s.detectionCount)"),
                                 ("AP50", EvalOutput.JSON.number(percent(s.ap50))), ("AP75", EvalOutput.JSON.number(percent(s.ap75))),
                                 ("AP50_95", EvalOutput.JSON.number(percent(s.ap50to95)))])
            }
            print(EvalOutput.JSON.object([("images", "\(evaluator.imageCount)"), ("classes", EvalOutput.JSON.array(classObjects)),
                                   ("mAP50", EvalOutput.JSON.number(percent(report.mAP50))), ("mAP75", EvalOutput.JSON.number(percent(report.mAP75))),
                                   ("mAP50_95", EvalOutput.JSON.number(percent(report.mAP50to95)))]))
        } else {
            func text(_ value: Double?) -> String { percent(value).map { String(format: "%.2f", $0) } ?? "n/a" }
            var rows = report.classes.map { s in
                [name(s.classIndex), "\(s.groundTruthCount)", "\(s.detectionCount)", text(s.ap50), text(s.ap75), text(s.ap50to95)]
            }
            rows.append(["mean", "", "", text(report.mAP50), text(report.mAP75), text(report.mAP50to95)])
            print(EvalOutput.table(header: ["class", "boxes", "detections", "AP50", "AP75", "AP50:95"], rows: rows, separatorBeforeLast: true))
            print("(\(evaluator.imageCount) images, percent, COCO 101-point interpolation)")
        }
    }

    func textFiles(in folder: URL) throws -> [String: URL] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw EvalFailure("folder \(folder.path) does not exist")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        var files: [String: URL] = [:]
        for name in names where name.lowercased().hasSuffix(".txt") && !name.hasPrefix(".") {
            files[String(name.dropLast(4))] = folder.appendingPathComponent(name)
        }
        return files
    }

    func loadPredictions() throws -> [String: [Detection]] {
        let url = URL(fileURLWithPath: pred)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw EvalFailure("predictions \(url.path) do not exist")
        }
        if isDirectory.boolValue {
            var result: [String: [Detection]] = [:]
            for (stem, file) in try textFiles(in: url) { result[stem] = try YOLOLabels.readDetections(file) }
            return result
        }
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw EvalFailure("cannot read \(url.path): \(error.localizedDescription)")
        }
        var result: [String: [Detection]] = [:]
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," })
            guard fields.count == 7 else {
                throw EvalFailure("cannot read \(url.path): line \(number + 1): expected 'stem class cx cy w h score'")
            }
            let detections = try YOLOLabels.parse(fields.dropFirst().joined(separator: " "), path: "\(url.path) line \(number + 1)")
            result[String(fields[0]), default: []] += detections
        }
        return result
    }
}

// MARK: - Output helpers

/// A command failure with a plain message (printed as `Error: ...`).
struct EvalFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Output helpers of the eval commands.
enum EvalOutput {
    /// Prints a line to standard error.
    static func warn(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    /// Minimal JSON text with keys in a fixed order.
    enum JSON {
        static func string(_ value: String) -> String {
            var out = "\""
            for scalar in value.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                default:
                    if scalar.value < 0x20 {
                        out += String(format: "\\u%04x", scalar.value)
                    } else {
                        out.unicodeScalars.append(scalar)
                    }
                }
            }
            return out + "\""
        }

        /// A number in the shortest form that reads back exactly; `null` for nil, NaN and infinities.
        static func number(_ value: Double?) -> String {
            guard let value, value.isFinite else { return "null" }
            return "\(value)"
        }

        static func object(_ members: [(String, String)]) -> String {
            "{" + members.map { "\(string($0.0)): \($0.1)" }.joined(separator: ", ") + "}"
        }

        static func array(_ items: [String]) -> String { "[" + items.joined(separator: ", ") + "]" }
    }

    static func csvNumber(_ value: Double) -> String { value.isFinite ? "\(value)" : "nan" }

    static func csvField(_ field: String) -> String {
        guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) else { return field }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// A plain text table: first column left-aligned, the others right-aligned.
    static func table(header: [String], rows: [[String]], separatorBeforeLast: Bool = false) -> String {
        let columns = header.count
        var widths = header.map(\.count)
        for row in rows { for c in 0..<columns { widths[c] = max(widths[c], row[c].count) } }
        func format(_ row: [String]) -> String {
            (0..<columns).map { c in
                let pad = String(repeating: " ", count: widths[c] - row[c].count)
                return c == 0 ? row[c] + pad : pad + row[c]
            }.joined(separator: "  ")
        }
        let rule = String(repeating: "-", count: widths.reduce(0, +) + 2 * (columns - 1))
        var lines = [format(header), rule]
        for (i, row) in rows.enumerated() {
            if separatorBeforeLast && i == rows.count - 1 && rows.count > 1 { lines.append(rule) }
            lines.append(format(row))
        }
        return lines.joined(separator: "\n")
    }
}
