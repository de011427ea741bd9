import Foundation
import FuseKit
import Testing

/// The folder evaluation behind `fusekit eval`, `eval-seg` and `eval-det`: pairing by stem,
/// warnings for what cannot be scored, and the table, JSON and CSV writers.
@Suite struct FolderEvaluationTests {
    static func folder(_ name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("fusekit-eval-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func image(_ seed: UInt64, width: Int = 24, height: Int = 16) -> Image {
        var rng = RandomGenerator(seed: seed)
        return Image(width: width, height: height, channels: 1, pixels: (0..<(width * height)).map { _ in (rng.nextUniform() * 255).rounded() / 255 })
    }

    @Test func fusedImagesArePairedByStemAndScored() throws {
        let root = try Self.folder("fusion")
        defer { try? FileManager.default.removeItem(at: root) }
        let ir = root.appendingPathComponent("ir"), vi = root.appendingPathComponent("vi"), fused = root.appendingPathComponent("fused")
        for f in [ir, vi, fused] { try FileManager.default.createDirectory(at: f, withIntermediateDirectories: true) }
        for (i, stem) in ["a", "b", "c"].enumerated() {
            try Self.image(UInt64(i)).write(to: ir.appendingPathComponent(stem + ".png"))
            try Self.image(UInt64(10 + i)).write(to: vi.appendingPathComponent(stem + ".png"))
        }
        try Self.image(20).write(to: fused.appendingPathComponent("a.png"))
        try Self.image(21, width: 12).write(to: fused.appendingPathComponent("b.png"))   // wrong size
        try Self.image(22).write(to: fused.appendingPathComponent("z.png"))              // no sources
        var progress: [Int] = []
        let (evaluation, warnings) = try FolderEvaluation.fusion(infrared: ir, visible: vi, fused: fused, metrics: [.en, .ssim]) { done, total, _ in
            #expect(total == 2)
            progress.append(done)
        }
        #expect(progress == [1, 2])
        #expect(evaluation.images.map(\.name) == ["a"])
        #expect(warnings.count == 3)
        #expect(warnings.contains { $0.contains("'z'") && $0.contains("no infrared and visible pair") })
        #expect(warnings.contains { $0.contains("'b'") && $0.contains("sizes differ") })
        #expect(warnings.contains { $0.contains("1 source pair(s) have no fused image (e.g. 'c')") })
        // The values are the metrics' own.
        let direct = try FusionMetrics.evaluate(fused: Self.image(20).grayLevels(), infrared: Self.image(0).grayLevels(),
                                                visible: Self.image(10).grayLevels(), metrics: [.en, .ssim], convention: .sum)
        #expect(evaluation.images[0].values == direct)
        // The writers.
        let en = direct[.en]!, ssim = direct[.ssim]!
        #expect(evaluation.csv == "name,EN,SSIM\na,\(en),\(ssim)\nmean,\(en),\(ssim)\n")
        #expect(evaluation.json == "{\"images\": [{\"name\": \"a\", \"EN\": \(en), \"SSIM\": \(ssim)}], \"mean\": {\"EN\": \(en), \"SSIM\": \(ssim)}}")
        let table = evaluation.table.split(separator: "\n").map(String.init)
        #expect(table.count == 5 && table[0].hasPrefix("image") && table[2].hasPrefix("a ") && table[4].hasPrefix("mean"))
        #expect(table[2].hasSuffix(String(format: "%.4f", ssim)))
        // Nothing to score is an error.
        let empty = root.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        #expect(throws: FolderEvaluation.Failure.self) { _ = try FolderEvaluation.fusion(infrared: ir, visible: vi, fused: empty) }
    }

    @Test func segmentationAccumulatesOverImages() throws {
        let root = try Self.folder("seg")
        defer { try? FileManager.default.removeItem(at: root) }
        let pred = root.appendingPathComponent("pred"), labels = root.appendingPathComponent("labels")
        for f in [pred, labels] { try FileManager.default.createDirectory(at: f, withIntermediateDirectories: true) }
        try LabelMap(width: 2, height: 2, values: [0, 1, 1, 1]).write(to: pred.appendingPathComponent("x.png"))
        try LabelMap(width: 2, height: 2, values: [0, 1, 0, 255]).write(to: labels.appendingPathComponent("x.png"))
        try LabelMap(width: 2, height: 2, values: [1, 1, 1, 1]).write(to: labels.appendingPathComponent("y.png"))
        let (report, images, warnings) = try FolderEvaluation.segmentation(predictions: pred, labels: labels, classes: 2)
        #expect(images == 1 && warnings.count == 1 && warnings[0].contains("'y'"))
        // Class 0: I 1, U 2; class 1: I 1, U 2 (the ignored pixel is dropped).
        #expect(report.classIoU == [0.5, 0.5] && report.meanIoU == 0.5)
        #expect(report.table(classNames: ["bg", "fg"], images: 1).contains("mIoU 50.00"))
        #expect(report.json(classNames: ["bg", "fg"], images: 1).contains("\"mIoU\": 50.0"))
    }

    @Test func detectionReadsFoldersAndOneFile() throws {
        let root = try Self.folder("det")
        defer { try? FileManager.default.removeItem(at: root) }
        let labels = root.appendingPathComponent("labels")
        try FileManager.default.createDirectory(at: labels, withIntermediateDirectories: true)
        try "0 0.5 0.5 0.2 0.2\n".write(to: labels.appendingPathComponent("p.txt"), atomically: true, encoding: .utf8)
        let single = root.appendingPathComponent("all.txt")
        try "p 0 0.5 0.5 0.2 0.2 0.9\nq 0 0.1 0.1 0.1 0.1 0.8\n".write(to: single, atomically: true, encoding: .utf8)
        let (report, images, warnings) = try FolderEvaluation.detection(predictions: single, labels: labels)
        #expect(images == 1)
        #expect(Swift.abs((report.mAP50 ?? 0) - 1) < 1e-9, "mAP50 \(String(describing: report.mAP50))")
        #expect(warnings.count == 1 && warnings[0].contains("'q'"))
        try "p 0 0.5 0.5\n".write(to: single, atomically: true, encoding: .utf8)
        let error = #expect(throws: FolderEvaluation.Failure.self) { _ = try FolderEvaluation.detection(predictions: single, labels: labels) }
        #expect(error?.description.contains("line 1: expected 'stem class cx cy w h score'") == true)
    }

    /// One predictions file with CRLF line endings (each "\r\n" was one Character, so the file
    /// read as one line), and classes beyond --class-names: an error naming the file and line.
    @Test func detectionReadsCRLFAndRefusesClassesOutOfRange() throws {
        let root = try Self.folder("det-crlf")
        defer { try? FileManager.default.removeItem(at: root) }
        let labels = root.appendingPathComponent("labels")
        try FileManager.default.createDirectory(at: labels, withIntermediateDirectories: true)
        try "0 0.5 0.5 0.2 0.2\r\n1 0.2 0.2 0.1 0.1\r\n".write(to: labels.appendingPathComponent("p.txt"), atomically: true, encoding: .utf8)
        let single = root.appendingPathComponent("all.txt")
        try "# stem class cx cy w h score\r\np 0 0.5 0.5 0.2 0.2 0.9\r\np 1 0.2 0.2 0.1 0.1 0.8\r\n".write(to: single, atomically: true, encoding: .utf8)
        let (report, images, _) = try FolderEvaluation.detection(predictions: single, labels: labels, classCount: 2)
        #expect(images == 1)
        #expect(Swift.abs((report.mAP50 ?? 0) - 1) < 1e-9, "mAP50 \(String(describing: report.mAP50))")
        #expect {
            _ = try FolderEvaluation.detection(predictions: single, labels: labels, classCount: 1)
        } throws: { error in
            "\(error)".contains("\(single.path) line 3") && "\(error)".contains("class 1 is out of range for 1 classes")
        }
        try "p 0 0.5 0.5 0.2 0.2 0.9\r\n".write(to: single, atomically: true, encoding: .utf8)
        #expect {
            _ = try FolderEvaluation.detection(predictions: single, labels: labels, classCount: 1)
        } throws: { error in
            "\(error)".contains(labels.appendingPathComponent("p.txt").path) && "\(error)".contains("line 2: class 1 is out of range")
        }
    }
}
