import Foundation
import FuseKitData
import FuseKitImage
import FuseKitMetrics

/// Scores of result folders (what `fusekit eval`, `eval-seg` and `eval-det` print): fused images
/// against their sources, predicted masks against labels, detections against boxes. Files are
/// paired by stem; a missing partner or a size mismatch is a warning and the file is skipped.
public enum FolderEvaluation {
    /// Called after each file with (files done, files in all, the file's name).
    public typealias Progress = (_ completed: Int, _ total: Int, _ name: String) -> Void

    /// A failure that stops an evaluation (no usable pair at all, an unreadable folder).
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// The fusion metrics of every fused image in `fused` that has both sources.
    public static func fusion(infrared: URL, visible: URL, fused: URL, metrics: [FusionMetric] = FusionMetric.allCases,
                              convention: PairConvention = .sum, progress: Progress? = nil) throws
        -> (evaluation: FusionEvaluation, warnings: [String]) {
        let fusedFolder = try ImageFolder(fused)
        let sources = try PairedDataset(infraredFolder: infrared, visibleFolder: visible)
        let pairsByName = Dictionary(uniqueKeysWithValues: sources.pairs.map { ($0.name, $0) })
        var warnings: [String] = []
        var jobs: [(fused: URL, pair: ImagePair)] = []
        for stem in fusedFolder.sortedStems {
            let fusedURL = fusedFolder.filesByStem[stem]!
            guard let pair = pairsByName[stem] else {
                warnings.append("warning: skipping '\(stem)': \(fusedURL.path) has no infrared and visible pair in \(infrared.path), \(visible.path)")
                continue
            }
            jobs.append((fusedURL, pair))
        }
        let unfused = Set(pairsByName.keys).subtracting(fusedFolder.filesByStem.keys)
        if !unfused.isEmpty {
            warnings.append("note: \(unfused.count) source pair(s) have no fused image (e.g. '\(unfused.sorted(by: ImageFolder.naturalOrder)[0])')")
        }
        guard !jobs.isEmpty else { throw Failure("no fused image in \(fused.path) has both sources") }
        var evaluation = FusionEvaluation(images: [], metrics: metrics)
        for (index, job) in jobs.enumerated() {
            defer { progress?(index + 1, jobs.count, job.pair.name) }
            do {
                let f = try GrayImage(contentsOf: job.fused)
                let a = try GrayImage(contentsOf: job.pair.infrared), b = try GrayImage(contentsOf: job.pair.visible)
                guard f.width == a.width, f.height == a.height, f.width == b.width, f.height == b.height else {
                    warnings.append("warning: skipping '\(job.pair.name)': sizes differ: \(job.fused.path) is \(f.width)x\(f.height), "
                                    + "\(job.pair.infrared.path) is \(a.width)x\(a.height), \(job.pair.visible.path) is \(b.width)x\(b.height)")
                    continue
                }
                evaluation.images.append((job.pair.name, try FusionMetrics.evaluate(fused: f, infrared: a, visible: b, metrics: metrics,
                                                                                    convention: convention)))
            } catch {
                warnings.append("warning: skipping '\(job.pair.name)': \(error)")
            }
        }
        guard !evaluation.images.isEmpty else { throw Failure("no image could be evaluated") }
        return (evaluation, warnings)
    }

    /// The segmentation scores of predicted class maps against label maps (PNG/BMP class indices).
    public static func segmentation(predictions: URL, labels: URL, classes: Int, ignoreIndex: Int = 255,
                                    progress: Progress? = nil) throws -> (report: SegmentationReport, images: Int, warnings: [String]) {
        let predictionFolder = try ImageFolder(predictions), labelFolder = try ImageFolder(labels)
        var matrix = ConfusionMatrix(classCount: classes, ignoreIndex: Int32(ignoreIndex))
        var warnings: [String] = []
        var evaluated = 0
        let stems = labelFolder.sortedStems
        for (index, stem) in stems.enumerated() {
            defer { progress?(index + 1, stems.count, stem) }
            let labelURL = labelFolder.filesByStem[stem]!
            guard let predictionURL = predictionFolder.filesByStem[stem] else {
                warnings.append("warning: skipping '\(stem)': \(labelURL.path) has no prediction in \(predictions.path)")
                continue
            }
            do {
                let label = try LabelMap(contentsOf: labelURL), prediction = try LabelMap(contentsOf: predictionURL)
                guard label.width == prediction.width, label.height == prediction.height else {
                    warnings.append("warning: skipping '\(stem)': sizes differ: \(predictionURL.path) is \(prediction.width)x\(prediction.height), "
                                    + "\(labelURL.path) is \(label.width)x\(label.height)")
                    continue
                }
                matrix.add(prediction: prediction, label: label)
                evaluated += 1
            } catch {
                warnings.append("warning: skipping '\(stem)': \(error)")
            }
        }
        let extra = Set(predictionFolder.filesByStem.keys).subtracting(labelFolder.filesByStem.keys)
        if !extra.isEmpty { warnings.append("note: \(extra.count) prediction(s) have no label and were ignored") }
        guard evaluated > 0 else { throw Failure("no prediction could be paired with a label") }
        return (matrix.report(), evaluated, warnings)
    }

    /// COCO-style AP of YOLO-format detections: `predictions` is a folder of `stem.txt` files
    /// (`class cx cy w h score`) or one file of `stem class cx cy w h score` lines; `labels` a
    /// folder of YOLO label files. An image without predictions has no detections. With
    /// `classCount`, a label or prediction of a class from `classCount` on is an error naming the
    /// file and line.
    public static func detection(predictions: URL, labels: URL, maxDetections: Int = 100, classCount: Int? = nil,
                                 progress: Progress? = nil) throws -> (report: DetectionReport, images: Int, warnings: [String]) {
        let labelFiles = try textFiles(in: labels)
        guard !labelFiles.isEmpty else { throw Failure("no .txt label files in \(labels.path)") }
        let detections = try readDetections(predictions, classCount: classCount)
        var evaluator = DetectionEvaluator(maxDetectionsPerImage: maxDetections)
        let stems = labelFiles.keys.sorted(by: ImageFolder.naturalOrder)
        for (index, stem) in stems.enumerated() {
            evaluator.add(detections: detections[stem] ?? [], groundTruth: try YOLOLabels.readBoxes(labelFiles[stem]!, classCount: classCount))
            progress?(index + 1, stems.count, stem)
        }
        var warnings: [String] = []
        let unmatched = Set(detections.keys).subtracting(labelFiles.keys)
        if !unmatched.isEmpty {
            warnings.append("warning: predictions for \(unmatched.count) image(s) without a label file were ignored (e.g. '\(unmatched.sorted()[0])')")
        }
        return (evaluator.report(), evaluator.imageCount, warnings)
    }

    /// The `.txt` files of a folder by stem.
    static func textFiles(in folder: URL) throws -> [String: URL] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw Failure("folder \(folder.path) does not exist")
        }
        var files: [String: URL] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) where name.lowercased().hasSuffix(".txt") && !name.hasPrefix(".") {
            files[String(name.dropLast(4))] = folder.appendingPathComponent(name)
        }
        return files
    }

    /// Detections by image stem from a folder of YOLO files or one `stem class cx cy w h score` file.
    static func readDetections(_ url: URL, classCount: Int? = nil) throws -> [String: [Detection]] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else { throw Failure("predictions \(url.path) do not exist") }
        var result: [String: [Detection]] = [:]
        if isDirectory.boolValue {
            for (stem, file) in try textFiles(in: url) { result[stem] = try YOLOLabels.readDetections(file, classCount: classCount) }
            return result
        }
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw Failure("cannot read \(url.path): \(error.localizedDescription)")
        }
        // Any line break: "\r\n" is one Character, which splitting on "\n" would not split.
        for (number, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," })
            guard fields.count == 7 else { throw Failure("cannot read \(url.path): line \(number + 1): expected 'stem class cx cy w h score'") }
            result[String(fields[0]), default: []] += try YOLOLabels.parse(fields.dropFirst().joined(separator: " "), path: "\(url.path) line \(number + 1)",
                                                                    classCount: classCount)
        }
        return result
    }
}
