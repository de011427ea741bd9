import Foundation
import FuseKitMetrics

/// Plain-text, JSON and CSV renderings of evaluation results, as the `fusekit eval` commands
/// print them.
public enum ReportFormat {
    /// A plain text table: first column left-aligned, the others right-aligned; a rule under the
    /// header and, with `separatorBeforeLast`, above the last row (a mean).
    public static func table(header: [String], rows: [[String]], separatorBeforeLast: Bool = false) -> String {
        let columns = header.count
        var widths = header.map(\.count)
        for row in rows { for c in 0..<columns { widths[c] = Swift.max(widths[c], row[c].count) } }
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

    /// JSON text with members in a fixed order.
    public enum JSON {
        public static func string(_ value: String) -> String {
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
        public static func number(_ value: Double?) -> String {
            guard let value, value.isFinite else { return "null" }
            return "\(value)"
        }

        public static func object(_ members: [(String, String)]) -> String {
            "{" + members.map { "\(string($0.0)): \($0.1)" }.joined(separator: ", ") + "}"
        }

        public static func array(_ items: [String]) -> String { "[" + items.joined(separator: ", ") + "]" }
    }

    /// A CSV number (`nan` for non-finite values).
    public static func csvNumber(_ value: Double) -> String { value.isFinite ? "\(value)" : "nan" }

    /// A CSV field, quoted when it holds a comma, quote or newline.
    public static func csvField(_ field: String) -> String {
        guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) else { return field }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// A percentage rounded to two decimals.
    static func percent(_ value: Double?) -> Double? { value.map { ($0 * 10_000).rounded() / 100 } }
    static func percentText(_ value: Double?) -> String { percent(value).map { String(format: "%.2f", $0) } ?? "n/a" }
}

extension FusionEvaluation {
    /// Per-image rows and the mean as CSV.
    public var csv: String {
        var text = (["name"] + metrics.map(\.rawValue)).joined(separator: ",") + "\n"
        for (name, values) in images {
            text += ([ReportFormat.csvField(name)] + metrics.map { ReportFormat.csvNumber(values[$0] ?? .nan) }).joined(separator: ",") + "\n"
        }
        let mean = self.mean
        return text + (["mean"] + metrics.map { ReportFormat.csvNumber(mean[$0] ?? .nan) }).joined(separator: ",") + "\n"
    }

    /// `{"images": [{"name": ..., "EN": ...}], "mean": {...}}` with metrics in order.
    public var json: String {
        typealias J = ReportFormat.JSON
        let rows = images.map { row in J.object([("name", J.string(row.name))] + metrics.map { ($0.rawValue, J.number(row.values[$0])) }) }
        let mean = self.mean
        return J.object([("images", J.array(rows)), ("mean", J.object(metrics.map { ($0.rawValue, J.number(mean[$0])) }))])
    }

    /// A text table of per-image values and the mean.
    public var table: String {
        var rows = images.map { row in [row.name] + metrics.map { String(format: "%.4f", row.values[$0] ?? .nan) } }
        let mean = self.mean
        rows.append(["mean"] + metrics.map { String(format: "%.4f", mean[$0] ?? .nan) })
        return ReportFormat.table(header: ["image"] + metrics.map(\.rawValue), rows: rows, separatorBeforeLast: true)
    }
}

extension SegmentationReport {
    /// Per-class IoU and accuracy with the means, as a text table and a summary line.
    public func table(classNames names: [String], images: Int) -> String {
        var rows = names.indices.map { c in [names[c], ReportFormat.percentText(classIoU[c]), ReportFormat.percentText(classAccuracy[c])] }
        rows.append(["mean", ReportFormat.percentText(meanIoU), ReportFormat.percentText(meanAccuracy)])
        return ReportFormat.table(header: ["class", "IoU", "Acc"], rows: rows, separatorBeforeLast: true) + "\n"
            + "mIoU \(ReportFormat.percentText(meanIoU))  mAcc \(ReportFormat.percentText(meanAccuracy))  aAcc \(ReportFormat.percentText(overallAccuracy))  (\(images) images, percent)"
    }

    /// The scores as JSON, in percent.
    public func json(classNames names: [String], images: Int) -> String {
        typealias J = ReportFormat.JSON
        let classes = names.indices.map { c in
            J.object([("index", "\(c)"), ("name", J.string(names[c])), ("IoU", J.number(ReportFormat.percent(classIoU[c]))),
                      ("Acc", J.number(ReportFormat.percent(classAccuracy[c])))])
        }
        return J.object([("images", "\(images)"), ("classes", J.array(classes)), ("mIoU", J.number(ReportFormat.percent(meanIoU))),
                         ("mAcc", J.number(ReportFormat.percent(meanAccuracy))), ("aAcc", J.number(ReportFormat.percent(overallAccuracy)))])
    }
}

extension DetectionReport {
    static func name(_ c: Int, _ names: [String]) -> String { c < names.count ? names[c] : "class \(c)" }

    /// Per-class AP with the means, as a text table and a note.
    public func table(classNames names: [String], images: Int) -> String {
        var rows = classes.map { s in
            [Self.name(s.classIndex, names), "\(s.groundTruthCount)", "\(s.detectionCount)", ReportFormat.percentText(s.ap50),
             ReportFormat.percentText(s.ap75), ReportFormat.percentText(s.ap50to95)]
        }
        rows.append(["mean", "", "", ReportFormat.percentText(mAP50), ReportFormat.percentText(mAP75), ReportFormat.percentText(mAP50to95)])
        return ReportFormat.table(header: ["class", "boxes", "detections", "AP50", "AP75", "AP50:95"], rows: rows, separatorBeforeLast: true)
            + "\n(\(images) images, percent, COCO 101-point interpolation)"
    }

    /// The scores as JSON, in percent.
    public func json(classNames names: [String], images: Int) -> String {
        typealias J = ReportFormat.JSON
        let perClass = classes.map { s in
            J.object([("index", "\(s.classIndex)"), ("name", J.string(Self.name(s.classIndex, names))), ("groundTruth", "\(s.groundTruthCount)"),
                      ("detections", "\(s.detectionCount)"), ("AP50", J.number(ReportFormat.percent(s.ap50))),
                      ("AP75", J.number(ReportFormat.percent(s.ap75))), ("AP50_95", J.number(ReportFormat.percent(s.ap50to95)))])
        }
        return J.object([("images", "\(images)"), ("classes", J.array(perClass)), ("mAP50", J.number(ReportFormat.percent(mAP50))),
                         ("mAP75", J.number(ReportFormat.percent(mAP75))), ("mAP50_95", J.number(ReportFormat.percent(mAP50to95)))])
    }
}
