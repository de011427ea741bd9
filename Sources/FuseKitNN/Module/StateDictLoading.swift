import FuseKitTensor

/// Why a set of named tensors does not fit a module.
public enum StateDictError: Error, CustomStringConvertible, Equatable {
    /// A parameter or buffer the module needs is absent.
    case missing(key: String, expectedShape: [Int])
    /// A tensor has the wrong shape.
    case shapeMismatch(key: String, expected: [Int], found: [Int])
    /// Names the module does not have.
    case unexpected(keys: [String])
    /// A duplicate entry (an alias of another key) holds different values.
    case conflictingAlias(alias: String, key: String)

    public var description: String {
        switch self {
        case .missing(let key, let shape):
            return "missing key '\(key)' (expected shape \(Shape.describe(shape)))"
        case .shapeMismatch(let key, let expected, let found):
            return "key '\(key)' has shape \(Shape.describe(found)), the model expects \(Shape.describe(expected))"
        case .unexpected(let keys):
            let shown = keys.prefix(8).joined(separator: ", ")
            return "unexpected keys: \(shown)\(keys.count > 8 ? " and \(keys.count - 8) more" : "")"
        case .conflictingAlias(let alias, let key):
            return "'\(alias)' duplicates '\(key)' but holds different values"
        }
    }
}

extension Module {
    /// Builds a model state from named tensors (a loaded `state_dict`), checking every name and
    /// shape. `alias` maps a redundant key to the key it duplicates (e.g. official checkpoints
    /// that store each conv weight twice); such duplicates are accepted when their values agree.
    public func loadState(from tensors: [String: Tensor], alias: (String) -> String? = { _ in nil }) throws -> ModelState {
        var state = ModelState()
        var used = Set<String>()
        for (name, spec) in namedSpecs() {
            guard let value = tensors[name] else {
                throw StateDictError.missing(key: name, expectedShape: spec.shape)
            }
            guard value.shape == spec.shape else {
                throw StateDictError.shapeMismatch(key: name, expected: spec.shape, found: value.shape)
            }
            used.insert(name)
            if spec.isBuffer { state.buffers[name] = value } else { state.parameters[name] = value }
        }
        var unexpected: [String] = []
        for key in tensors.keys.sorted() where !used.contains(key) {
            if let target = alias(key), used.contains(target), let original = tensors[target], let duplicate = tensors[key] {
                guard original.shape == duplicate.shape, original.scalars == duplicate.scalars else {
                    throw StateDictError.conflictingAlias(alias: key, key: target)
                }
                continue
            }
            unexpected.append(key)
        }
        if !unexpected.isEmpty { throw StateDictError.unexpected(keys: unexpected) }
        return state
    }
}

/// Common aliases of redundant keys in published checkpoints.
public enum StateDictAliases {
    /// `X.conv.weight` duplicating `X.weight` (ReFusion/TDFusion files store each conv twice).
    public static func convDuplicates(_ key: String) -> String? {
        key.hasSuffix(".conv.weight") ? String(key.dropLast(".conv.weight".count)) + ".weight" : nil
    }
}
