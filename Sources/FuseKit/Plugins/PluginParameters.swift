import Foundation
import FuseKitTensor

/// A value given to a plugin parameter in a recipe.
public enum ParameterValue: Sendable, Equatable, CustomStringConvertible {
    case int(Int)
    case double(Double)
    case bool(Bool)
    case string(String)
    case list([ParameterValue])

    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .double(let v): return String(v)
        case .bool(let v): return String(v)
        case .string(let v): return v
        case .list(let v): return "[" + v.map(\.description).joined(separator: ", ") + "]"
        }
    }

    /// The value's type in words (for messages).
    public var typeName: String {
        switch self {
        case .int: return "integer"
        case .double: return "number"
        case .bool: return "boolean"
        case .string: return "string"
        case .list: return "list"
        }
    }
}

/// Errors in choosing or configuring plugins; each names the plugin and key, and the recipe
/// line when known.
public enum PluginError: Error, CustomStringConvertible, Equatable {
    case unknownPlugin(name: String, kind: PluginKind?, suggestion: String?, available: [String])
    case unknownParameter(plugin: String, key: String, suggestion: String?, line: Int?)
    case wrongType(plugin: String, key: String, expected: String, found: String, line: Int?)
    case invalidValue(plugin: String, key: String, reason: String, line: Int?)

    static func at(_ line: Int?) -> String { line.map { " (line \($0))" } ?? "" }

    public var description: String {
        switch self {
        case .unknownPlugin(let name, let kind, let suggestion, let available):
            let hint = suggestion.map { "; did you mean '\($0)'?" } ?? ""
            return "unknown \(kind.map { $0.rawValue + " " } ?? "")plugin '\(name)'\(hint) (registered: \(available.joined(separator: ", ")))"
        case .unknownParameter(let plugin, let key, let suggestion, let line):
            let hint = suggestion.map { "; did you mean '\($0)'?" } ?? ""
            return "\(plugin): unknown parameter '\(key)'\(Self.at(line))\(hint)"
        case .wrongType(let plugin, let key, let expected, let found, let line):
            return "\(plugin): parameter '\(key)'\(Self.at(line)) must be \(expected), got \(found)"
        case .invalidValue(let plugin, let key, let reason, let line):
            return "\(plugin): parameter '\(key)'\(Self.at(line)): \(reason)"
        }
    }
}

/// The parameter values a recipe (or `--param KEY=VALUE`) gives a plugin, with the recipe line of
/// each key for messages; ``PluginConfiguration`` reads them into typed values.
public struct PluginParameters: Sendable {
    /// Values by key.
    public var values: [String: ParameterValue]
    /// Recipe line of each key, when the values came from a file.
    public var lines: [String: Int]
    /// The plugin these are for (for messages).
    public var plugin: String

    public init(_ values: [String: ParameterValue] = [:], lines: [String: Int] = [:], plugin: String = "") {
        self.values = values
        self.lines = lines
        self.plugin = plugin
    }
}

/// The closest candidate by edit distance, if close enough to be a likely misspelling.
public func closestMatch(to word: String, in candidates: [String]) -> String? {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for (i, ca) in a.enumerated() {
            var current = [i + 1] + [Int](repeating: 0, count: b.count)
            for (j, cb) in b.enumerated() {
                current[j + 1] = Swift.min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
    let target = Array(word.lowercased())
    let scored = candidates.map { ($0, distance(target, Array($0.lowercased()))) }
    guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
    return best.1 <= Swift.max(2, word.count / 3) ? best.0 : nil
}

extension PluginParameters {
    /// Values from `KEY=VALUE` strings (`--param dim=16`, `--param dims=[8,16]`): integers,
    /// numbers, booleans, lists in brackets, else strings.
    public static func parsing(_ items: [String], plugin: String = "") throws -> PluginParameters {
        var values: [String: ParameterValue] = [:]
        for item in items {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw PluginError.invalidValue(plugin: plugin, key: item, reason: "expected KEY=VALUE", line: nil)
            }
            values[parts[0]] = ParameterValue(parsing: parts[1])
        }
        return PluginParameters(values, plugin: plugin)
    }
}

extension ParameterValue {
    /// A value written on a command line.
    public init(parsing text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("[") && trimmed.hasSuffix("]") {
            let inner = trimmed.dropFirst().dropLast()
            self = .list(inner.isEmpty ? [] : inner.split(separator: ",").map { ParameterValue(parsing: String($0)) })
        } else if let i = Int(trimmed) {
            self = .int(i)
        } else if let d = Double(trimmed) {
            self = .double(d)
        } else if let b = Bool(trimmed) {
            self = .bool(b)
        } else {
            self = .string(trimmed)
        }
    }
}
