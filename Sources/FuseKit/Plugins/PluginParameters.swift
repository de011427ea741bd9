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

    var typeName: String {
        switch self {
        case .int: return "integer"
        case .double: return "number"
        case .bool: return "boolean"
        case .string: return "string"
        case .list: return "list"
        }
    }
}

/// The documented parameters of a plugin: name, type, default and meaning (shown by
/// `fusekit plugins`, and used to reject unknown keys).
public struct ParameterDoc: Sendable, Equatable {
    public enum ValueType: String, Sendable { case int = "integer", double = "number", bool = "boolean", string, intList = "integer list" }

    public var name: String
    public var type: ValueType
    public var defaultValue: String
    public var help: String

    public init(_ name: String, _ type: ValueType, default defaultValue: String, _ help: String) {
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
        self.help = help
    }
}

/// Errors in choosing or configuring plugins; each names the plugin and key, and the recipe
/// line when known.
public enum PluginError: Error, CustomStringConvertible, Equatable {
    case unknownPlugin(name: String, kind: PluginKind, suggestion: String?, available: [String])
    case unknownParameter(plugin: String, key: String, suggestion: String?, line: Int?)
    case wrongType(plugin: String, key: String, expected: String, found: String, line: Int?)
    case invalidValue(plugin: String, key: String, reason: String, line: Int?)

    static func at(_ line: Int?) -> String { line.map { " (line \($0))" } ?? "" }

    public var description: String {
        switch self {
        case .unknownPlugin(let name, let kind, let suggestion, let available):
            let hint = suggestion.map { "; did you mean '\($0)'?" } ?? ""
            return "unknown \(kind.rawValue) plugin '\(name)'\(hint) (registered: \(available.joined(separator: ", ")))"
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

/// The parameters a recipe gives a plugin, with typed accessors that report errors naming the
/// plugin, key and recipe line.
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

    func wrongType(_ key: String, _ expected: String, _ found: ParameterValue) -> PluginError {
        .wrongType(plugin: plugin, key: key, expected: expected, found: "\(found.typeName) \(found)", line: lines[key])
    }

    /// An integer, or `defaultValue` when absent.
    public func int(_ key: String, default defaultValue: Int) throws -> Int {
        guard let value = values[key] else { return defaultValue }
        guard case .int(let v) = value else { throw wrongType(key, "an integer", value) }
        return v
    }

    /// A number (integers accepted), or `defaultValue` when absent.
    public func double(_ key: String, default defaultValue: Double) throws -> Double {
        guard let value = values[key] else { return defaultValue }
        switch value {
        case .double(let v): return v
        case .int(let v): return Double(v)
        default: throw wrongType(key, "a number", value)
        }
    }

    /// A Float number, or `defaultValue` when absent.
    public func float(_ key: String, default defaultValue: Float) throws -> Float {
        Float(try double(key, default: Double(defaultValue)))
    }

    /// A boolean, or `defaultValue` when absent.
    public func bool(_ key: String, default defaultValue: Bool) throws -> Bool {
        guard let value = values[key] else { return defaultValue }
        guard case .bool(let v) = value else { throw wrongType(key, "true or false", value) }
        return v
    }

    /// A string, or `defaultValue` when absent.
    public func string(_ key: String, default defaultValue: String) throws -> String {
        guard let value = values[key] else { return defaultValue }
        guard case .string(let v) = value else { throw wrongType(key, "a string", value) }
        return v
    }

    /// A list of integers, or `defaultValue` when absent.
    public func intList(_ key: String, default defaultValue: [Int]) throws -> [Int] {
        guard let value = values[key] else { return defaultValue }
        guard case .list(let items) = value else { throw wrongType(key, "a list of integers", value) }
        return try items.map { item in
            guard case .int(let v) = item else { throw wrongType(key, "a list of integers", value) }
            return v
        }
    }

    /// Throws unless `condition` holds, with `reason` naming the problem.
    public func require(_ condition: Bool, _ key: String, _ reason: @autoclosure () -> String) throws {
        if !condition { throw PluginError.invalidValue(plugin: plugin, key: key, reason: reason(), line: lines[key]) }
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
