import Yams

/// A YAML node of a recipe with its dotted path and line, offering typed reads that fail with
/// a ``RecipeError`` naming the file, line and key.
struct RecipeNode {
    let node: Node
    let path: String
    let file: String

    var line: Int? { node.mark?.line }

    func error(_ message: String) -> RecipeError { RecipeError(file: file, line: line, message) }

    /// The children of a mapping, rejecting keys not in `allowed` (with a suggestion).
    func mapping(allowed: [String]) throws -> [String: RecipeNode] {
        guard case .mapping(let mapping) = node else {
            throw error("'\(path)' must be a mapping of keys to values")
        }
        var result: [String: RecipeNode] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else { throw error("'\(path)' has a key that is not a string") }
            let childPath = path.isEmpty ? key : "\(path).\(key)"
            guard allowed.contains(key) else {
                let hint = closestMatch(to: key, in: allowed).map { "; did you mean '\($0)'?" } ?? ""
                let location = path.isEmpty ? "" : " in '\(path)'"
                throw RecipeError(file: file, line: keyNode.mark?.line, "unknown key '\(key)'\(location)\(hint) (allowed: \(allowed.joined(separator: ", ")))")
            }
            result[key] = RecipeNode(node: value, path: childPath, file: file)
        }
        return result
    }

    /// The entries of a mapping with any keys, in file order, with each key's line.
    func orderedMapping() throws -> [(key: String, value: RecipeNode, line: Int?)] {
        guard case .mapping(let mapping) = node else { throw error("'\(path)' must be a mapping") }
        return try mapping.map { keyNode, value in
            guard let key = keyNode.string else { throw error("'\(path)' has a key that is not a string") }
            return (key, RecipeNode(node: value, path: path.isEmpty ? key : "\(path).\(key)", file: file), keyNode.mark?.line)
        }
    }

    var isNull: Bool {
        if case .scalar(let s) = node { return s.style == .plain && ["", "~", "null", "Null", "NULL"].contains(s.string) }
        return false
    }

    func string() throws -> String {
        guard case .scalar(let s) = node else { throw error("'\(path)' must be a string") }
        return s.string
    }

    func int() throws -> Int {
        guard case .scalar = node, let v = node.int else { throw error("'\(path)' must be an integer, got \(describe())") }
        return v
    }

    /// A finite number (YAML's .inf and .nan are refused: no setting takes them).
    func double() throws -> Double {
        guard case .scalar = node, let v = node.float ?? node.int.map(Double.init), v.isFinite else {
            throw error("'\(path)' must be a finite number, got \(describe())")
        }
        return v
    }

    /// An integer of at least `minimum`.
    func int(atLeast minimum: Int) throws -> Int {
        let v = try int()
        guard v >= minimum else { throw error("'\(path)' must be at least \(minimum), got \(v)") }
        return v
    }

    /// A number in `range` (`open` excludes its upper end).
    func double(in range: ClosedRange<Double>, excludingUpperBound open: Bool = false) throws -> Double {
        let v = try double()
        guard range.contains(v), !(open && v == range.upperBound) else {
            let upper = range.upperBound == .greatestFiniteMagnitude ? "" : " and \(open ? "below" : "at most") \(range.upperBound)"
            throw error("'\(path)' must be at least \(range.lowerBound)\(upper), got \(v)")
        }
        return v
    }

    /// A seed: an integer from 0 to 2^64 - 1.
    func seed() throws -> UInt64 {
        guard case .scalar(let s) = node else { throw error("'\(path)' must be a non-negative integer, got \(describe())") }
        if let v = node.int, v >= 0 { return UInt64(v) }
        guard let v = UInt64(s.string) else { throw error("'\(path)' must be an integer from 0 to 2^64 - 1, got \(describe())") }
        return v
    }

    func bool() throws -> Bool {
        guard case .scalar = node, let v = node.bool else { throw error("'\(path)' must be true or false, got \(describe())") }
        return v
    }

    func list() throws -> [RecipeNode] {
        guard case .sequence(let seq) = node else { throw error("'\(path)' must be a list, got \(describe())") }
        return seq.enumerated().map { RecipeNode(node: $0.element, path: "\(path)[\($0.offset)]", file: file) }
    }

    func intList(count: Int? = nil) throws -> [Int] {
        let items = try list().map { try $0.int() }
        if let count, items.count != count { throw error("'\(path)' must be a list of \(count) integers, got \(items.count)") }
        return items
    }

    func stringList() throws -> [String] { try list().map { try $0.string() } }

    /// One of the given words.
    func choice(_ options: [String]) throws -> String {
        let value = try string()
        guard options.contains(value) else {
            let hint = closestMatch(to: value, in: options).map { "; did you mean '\($0)'?" } ?? ""
            throw error("'\(path)' must be one of \(options.joined(separator: ", ")), got '\(value)'\(hint)")
        }
        return value
    }

    /// The most values (list items counted one by one) the parameters of one plugin may hold.
    /// YAML aliases share nodes, so 500 bytes of nested aliases can stand for 10^9 values.
    static let maximumParameterValues = 100_000

    /// Plugin parameters: a mapping of scalar or list values, with their lines.
    func pluginParameters() throws -> PluginParameters {
        guard case .mapping(let mapping) = node else { throw error("'\(path)' must be a mapping of parameter names to values") }
        var values: [String: ParameterValue] = [:]
        var lines: [String: Int] = [:]
        var budget = Self.maximumParameterValues
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else { throw error("'\(path)' has a key that is not a string") }
            values[key] = try RecipeNode(node: value, path: "\(path).\(key)", file: file).parameterValue(budget: &budget)
            lines[key] = keyNode.mark?.line
        }
        return PluginParameters(values, lines: lines)
    }

    func parameterValue(budget: inout Int) throws -> ParameterValue {
        budget -= 1
        guard budget >= 0 else {
            throw error("'\(path)': the parameters hold more than \(Self.maximumParameterValues) values (are YAML aliases nested?)")
        }
        switch node {
        case .scalar(let s):
            if s.style == .plain {
                if let v = node.int { return .int(v) }
                if let v = node.bool { return .bool(v) }
                if let v = node.float { return .double(v) }
            }
            return .string(s.string)
        case .sequence:
            var items: [ParameterValue] = []
            for item in try list() { items.append(try item.parameterValue(budget: &budget)) }
            return .list(items)
        default:
            throw error("'\(path)' must be a number, boolean, string or list")
        }
    }

    func describe() -> String {
        switch node {
        case .scalar(let s): return "'\(s.string)'"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        default: return "an alias"
        }
    }
}
