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

    func double() throws -> Double {
        guard case .scalar = node, let v = node.float ?? node.int.map(Double.init) else {
            throw error("'\(path)' must be a number, got \(describe())")
        }
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

    /// Plugin parameters: a mapping of scalar or list values, with their lines.
    func pluginParameters() throws -> PluginParameters {
        guard case .mapping(let mapping) = node else { throw error("'\(path)' must be a mapping of parameter names to values") }
        var values: [String: ParameterValue] = [:]
        var lines: [String: Int] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else { throw error("'\(path)' has a key that is not a string") }
            values[key] = try RecipeNode(node: value, path: "\(path).\(key)", file: file).parameterValue()
            lines[key] = keyNode.mark?.line
        }
        return PluginParameters(values, lines: lines)
    }

    func parameterValue() throws -> ParameterValue {
        switch node {
        case .scalar(let s):
            if s.style == .plain {
                if let v = node.int { return .int(v) }
                if let v = node.bool { return .bool(v) }
                if let v = node.float { return .double(v) }
            }
            return .string(s.string)
        case .sequence:
            return .list(try list().map { try $0.parameterValue() })
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
