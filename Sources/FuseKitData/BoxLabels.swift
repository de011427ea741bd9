import Foundation
import FuseKitImage

/// A failure to read a box label file; the message names the file, the line and the reason.
public struct LabelFileError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The file concerned.
    public var path: String
    /// Why it could not be read.
    public var reason: String

    /// An error for a file and a reason.
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "cannot read labels \(path): \(reason)" }
}

/// YOLO text labels: one object per line, `class cx cy w h` normalised to the image size,
/// optionally followed by a confidence (`class cx cy w h score`, as detectors write predictions).
public enum YOLOLabels {
    /// Parses YOLO text. Blank lines and lines starting with `#` are skipped; lines may end in
    /// LF or CRLF. With `classCount`, a class index from `classCount` on is an error naming the line.
    public static func parse(_ text: String, path: String = "<memory>", classCount: Int? = nil) throws(LabelFileError) -> [Detection] {
        var result: [Detection] = []
        // Any line break: "\r\n" is a single Character, so splitting on "\n" would not split it.
        for (number, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," })
            guard fields.count == 5 || fields.count == 6 else {
                throw LabelFileError(path: path, reason: "line \(number + 1): expected 'class cx cy w h [score]', got '\(line)'")
            }
            // Written as an integer ("3") or, by some converters, as an integral float ("3.0").
            guard let classValue = Double(fields[0]), let classIndex = Int(exactly: classValue), classIndex >= 0 else {
                throw LabelFileError(path: path, reason: "line \(number + 1): class '\(fields[0])' is not a non-negative integer")
            }
            if let classCount, classIndex >= classCount {
                throw LabelFileError(path: path, reason: "line \(number + 1): class \(classIndex) is out of range for \(classCount) classes (0 to \(classCount - 1))")
            }
            var numbers: [Double] = []
            for field in fields.dropFirst() {
                guard let value = Double(field), value.isFinite else {
                    throw LabelFileError(path: path, reason: "line \(number + 1): '\(field)' is not a number")
                }
                numbers.append(value)
            }
            let box = BoundingBox(classIndex: classIndex, centerX: numbers[0], centerY: numbers[1],
                                  width: numbers[2], height: numbers[3])
            guard box.width >= 0, box.height >= 0 else {
                throw LabelFileError(path: path, reason: "line \(number + 1): negative box size")
            }
            result.append(Detection(box: box, score: numbers.count == 5 ? numbers[4] : 1))
        }
        return result
    }

    /// Reads a YOLO label file; boxes only (any score column is ignored). See
    /// ``parse(_:path:classCount:)`` for `classCount`.
    public static func readBoxes(_ url: URL, classCount: Int? = nil) throws(LabelFileError) -> [BoundingBox] {
        try readDetections(url, classCount: classCount).map(\.box)
    }

    /// Reads a YOLO file with optional scores (a missing score counts as 1).
    public static func readDetections(_ url: URL, classCount: Int? = nil) throws(LabelFileError) -> [Detection] {
        guard let text = String(validating: try readLabelFile(url), as: UTF8.self) else {
            throw LabelFileError(path: url.path, reason: "not UTF-8 text")
        }
        return try parse(text, path: url.path, classCount: classCount)
    }

    /// YOLO text for boxes (six decimals), one line each; with scores when given detections.
    public static func format(_ boxes: [BoundingBox]) -> String {
        boxes.map { b in
            "\(b.classIndex) " + [b.centerX, b.centerY, b.width, b.height].map { String(format: "%.6f", $0) }.joined(separator: " ")
        }.joined(separator: "\n") + (boxes.isEmpty ? "" : "\n")
    }

    /// Writes boxes as a YOLO label file.
    public static func write(_ boxes: [BoundingBox], to url: URL) throws(LabelFileError) {
        do {
            try format(boxes).write(to: url, atomically: true, encoding: .utf8)
        } catch {
            throw LabelFileError(path: url.path, reason: "cannot write: \(error.localizedDescription)")
        }
    }
}

/// Pascal VOC XML annotations (LLVIP, M3FD): `<size>` and `<object>` elements with `<name>` and
/// `<bndbox>` in pixels (`xmin ymin xmax ymax`).
public enum VOCAnnotation {
    /// Class names of LLVIP.
    public static let llvipClasses = ["person"]
    /// Class names of M3FD, in the order of the common YOLO conversion.
    public static let m3fdClasses = ["People", "Car", "Bus", "Motorcycle", "Lamp", "Truck"]

    /// A parsed annotation: image size and boxes normalised by it.
    public struct Parsed: Sendable, Equatable {
        /// Image width from `<size>` (pixels).
        public var imageWidth: Int
        /// Image height from `<size>` (pixels).
        public var imageHeight: Int
        /// Boxes, normalised.
        public var boxes: [BoundingBox]
        /// Objects whose `<difficult>` flag is 1 (they are in `boxes` too).
        public var difficultCount: Int
    }

    /// Parses VOC XML; `classNames` maps object names (case-insensitive) to class indices.
    /// When the XML has no `<size>`, pass the image size in `imageSize`.
    public static func parse(_ data: Data, classNames: [String], imageSize: (width: Int, height: Int)? = nil,
                             path: String = "<memory>") throws(LabelFileError) -> Parsed {
        guard !data.isEmpty else { throw LabelFileError(path: path, reason: "empty file (not a VOC XML annotation)") }
        guard String(validating: data, as: UTF8.self) != nil else {
            throw LabelFileError(path: path, reason: "not UTF-8 text (VOC annotations are UTF-8 XML)")
        }
        var collector = VOCCollector()
        do {
            try AnnotationXML.read([UInt8](data)) { collector.handle($0) }
        } catch {
            throw LabelFileError(path: path, reason: "malformed XML, line \(error.line): \(error.reason)")
        }
        func pixels(_ text: String?, _ name: String) throws(LabelFileError) -> Int? {
            guard let text else { return nil }
            // Some tools write integral sizes as "640.0".
            guard let value = Double(text), let integer = Int(exactly: value), integer > 0 else {
                throw LabelFileError(path: path, reason: "<size> <\(name)> '\(text)' is not a positive integer")
            }
            return integer
        }
        let width = try pixels(collector.width, "width") ?? imageSize?.width ?? 0
        let height = try pixels(collector.height, "height") ?? imageSize?.height ?? 0
        guard width > 0, height > 0 else {
            throw LabelFileError(path: path, reason: "no <size> with positive width and height")
        }
        let lowered = classNames.map { $0.lowercased() }
        var boxes: [BoundingBox] = []
        var difficult = 0
        for object in collector.objects {
            guard let index = lowered.firstIndex(of: object.name.lowercased()) else {
                throw LabelFileError(path: path, reason: "unknown class '\(object.name)' (known: \(classNames.joined(separator: ", ")))")
            }
            guard let x0 = object.xmin, let y0 = object.ymin, let x1 = object.xmax, let y1 = object.ymax else {
                throw LabelFileError(path: path, reason: "object '\(object.name)' has an incomplete <bndbox>")
            }
            guard [x0, y0, x1, y1].allSatisfy(\.isFinite), x1 >= x0, y1 >= y0 else {
                throw LabelFileError(path: path, reason: "object '\(object.name)' has an inverted or non-finite <bndbox> (\(x0), \(y0), \(x1), \(y1))")
            }
            if object.difficult { difficult += 1 }
            boxes.append(BoundingBox(classIndex: index, minX: x0 / Double(width), minY: y0 / Double(height),
                                     maxX: x1 / Double(width), maxY: y1 / Double(height)))
        }
        return Parsed(imageWidth: width, imageHeight: height, boxes: boxes, difficultCount: difficult)
    }

    /// Reads a VOC XML file; see ``parse(_:classNames:imageSize:path:)``.
    public static func read(_ url: URL, classNames: [String], imageSize: (width: Int, height: Int)? = nil) throws(LabelFileError) -> Parsed {
        try parse(try readLabelFile(url), classNames: classNames, imageSize: imageSize, path: url.path)
    }
}

/// The bytes of a label file, with errors that name it.
private func readLabelFile(_ url: URL) throws(LabelFileError) -> Data {
    do {
        return try FileContents.bytes(of: url)
    } catch {
        let exists = FileManager.default.fileExists(atPath: url.path)
        throw LabelFileError(path: url.path, reason: exists ? error.localizedDescription : "no such file")
    }
}

/// Collects the fields of a VOC annotation while its XML is read.
private struct VOCCollector {
    struct Object {
        var name = ""
        var xmin: Double?
        var ymin: Double?
        var xmax: Double?
        var ymax: Double?
        var difficult = false
    }

    /// The texts of `<size>`'s `<width>` and `<height>`, checked by the caller.
    var width: String?
    var height: String?
    var objects: [Object] = []
    private var path: [String] = []
    private var text = ""
    private var current: Object?

    mutating func handle(_ event: AnnotationXML.Event) {
        switch event {
        case .start(let name):
            path.append(name)
            text = ""
            if name == "object" { current = Object() }
        case .text(let string):
            text += string
        case .end(let name):
            let value = text.trimmingCharacters(in: .whitespacesAndNewlines)
            let parent = path.count >= 2 ? path[path.count - 2] : ""
            switch (parent, name) {
            case ("size", "width"): width = value
            case ("size", "height"): height = value
            case ("object", "name"): current?.name = value
            case ("object", "difficult"): current?.difficult = value == "1"
            case ("bndbox", "xmin"): current?.xmin = Double(value)
            case ("bndbox", "ymin"): current?.ymin = Double(value)
            case ("bndbox", "xmax"): current?.xmax = Double(value)
            case ("bndbox", "ymax"): current?.ymax = Double(value)
            case (_, "object"):
                if let current { objects.append(current) }
                current = nil
            default: break
            }
            path.removeLast()
            text = ""
        }
    }
}
