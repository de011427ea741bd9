import Foundation

/// A plugin's parameters, declared once: each stored ``Parameter`` property carries its recipe
/// name (the property name in kebab case: `inputChannels` is `input-channels`), its type, its
/// default (the property's initial value), its constraint and its documentation. The registry,
/// `fusekit plugins`, `fusekit inspect`, recipe validation and the plugin's initialiser all read
/// this one declaration.
///
/// ```swift
/// public struct MixConfiguration: PluginConfiguration {
///     @Parameter("feature channels", .positive) public var width = 8
///     @Parameter("activation after the mix") public var activation = MixActivation.gelu
///     public init() {}
///     public static let variants = [PluginVariant<Self>("wide", "16 channels") { $0.width = 16 }]
/// }
/// ```
///
/// Named configurations (``variants``) are chosen in a recipe with `variant: NAME`; they change
/// the defaults, and parameters given next to `variant` override them.
public protocol PluginConfiguration: Codable, Sendable {
    /// The defaults.
    init()
    /// Named parameter sets, chosen with `variant:`.
    static var variants: [PluginVariant<Self>] { get }
    /// Checks that involve several parameters (each parameter's own constraint is checked first).
    func validate() throws(ParameterProblem)
}

extension PluginConfiguration {
    public static var variants: [PluginVariant<Self>] { [] }
    public func validate() throws(ParameterProblem) {}

    /// The defaults with some parameters changed: `RestormerFusion(.with { $0.dim = 8 })`.
    public static func with(_ change: (inout Self) -> Void) -> Self {
        var configuration = Self()
        change(&configuration)
        return configuration
    }

    /// The named configuration `name` (`variant: b0`), or nil.
    public static func variant(_ name: String) -> Self? {
        guard let variant = variants.first(where: { $0.name == name }) else { return nil }
        var configuration = Self()
        variant.apply(&configuration)
        return configuration
    }
}

/// A plugin without parameters.
public struct NoParameters: PluginConfiguration {
    public init() {}
}

/// A named configuration of a plugin (`variant: b0`): a change of its defaults.
public struct PluginVariant<Configuration>: Sendable {
    public let name: String
    public let summary: String
    let apply: @Sendable (inout Configuration) -> Void

    public init(_ name: String, _ summary: String, _ apply: @escaping @Sendable (inout Configuration) -> Void) {
        self.name = name
        self.summary = summary
        self.apply = apply
    }
}

/// A parameter value that breaks a rule, named by the parameter's recipe key.
public struct ParameterProblem: Error, Sendable, Equatable {
    public var key: String
    public var reason: String
    public init(_ key: String, _ reason: String) {
        self.key = key
        self.reason = reason
    }
}

/// One documented parameter of a plugin configuration.
@propertyWrapper
public struct Parameter<Value: ParameterType>: Codable, Sendable {
    public var wrappedValue: Value
    /// What the parameter means (shown by `fusekit plugins`).
    public let help: String
    /// The values it accepts beyond its type.
    public let constraint: ParameterConstraint<Value>?

    public init(wrappedValue: Value, _ help: String, _ constraint: ParameterConstraint<Value>? = nil) {
        self.wrappedValue = wrappedValue
        self.help = help
        self.constraint = constraint
    }

    public init(from decoder: Decoder) throws {
        wrappedValue = try decoder.singleValueContainer().decode(Value.self)
        help = ""
        constraint = nil
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(wrappedValue)
    }
}

/// A rule on a parameter's value; `check` returns why a value breaks it, or nil.
public struct ParameterConstraint<Value>: Sendable {
    /// The rule in words ("positive", "in [0, 1)").
    public let summary: String
    let check: @Sendable (Value) -> String?

    public init(_ summary: String, _ check: @escaping @Sendable (Value) -> String?) {
        self.summary = summary
        self.check = check
    }

    /// A rule given as a condition and the words `must be ...`.
    public static func require(_ summary: String, _ holds: @escaping @Sendable (Value) -> Bool) -> Self where Value: ParameterType {
        Self(summary) { value in holds(value) ? nil : "must be \(summary), got \(value.recipeText)" }
    }
}

extension ParameterConstraint where Value: Comparable & ParameterType & ExpressibleByIntegerLiteral {
    /// Greater than zero.
    public static var positive: Self { require("positive") { $0 > 0 } }
    /// Zero or more.
    public static var nonNegative: Self { require("at least 0") { $0 >= 0 } }
    /// At least `minimum`.
    public static func atLeast(_ minimum: Value) -> Self { require("at least \(minimum.recipeText)") { $0 >= minimum } }
    /// In a closed range.
    public static func within(_ range: ClosedRange<Value>) -> Self {
        require("between \(range.lowerBound.recipeText) and \(range.upperBound.recipeText)") { range.contains($0) }
    }
    /// In a half-open range.
    public static func within(_ range: Range<Value>) -> Self {
        require("in [\(range.lowerBound.recipeText), \(range.upperBound.recipeText))") { range.contains($0) }
    }
}

extension ParameterConstraint {
    /// Every element obeys `element`; with `count`, the list has exactly that many.
    public static func each<E>(_ element: ParameterConstraint<E>, count: Int? = nil) -> Self where Value == [E] {
        let words = (count.map { "\($0) values, each " } ?? "each ") + element.summary
        return Self(words) { list in
            if let count, list.count != count { return "must have \(count) values, got \(list.count)" }
            for item in list { if let problem = element.check(item) { return "every value " + problem } }
            return nil
        }
    }

    /// A list of exactly `count` values.
    public static func count<E>(_ count: Int) -> Self where Value == [E] {
        Self("\(count) values") { list in list.count == count ? nil : "must have \(count) values, got \(list.count)" }
    }
}

/// The types a plugin parameter can have, with the words recipes and `fusekit plugins` use.
public protocol ParameterType: Codable, Sendable {
    /// The type in words ("an integer", "one of exact, tanh").
    static var typeName: String { get }
    /// The value as a recipe would write it.
    var recipeText: String { get }
    /// A list of this type in words ("a list of integers").
    static var listTypeName: String { get }
}

extension ParameterType {
    public static var listTypeName: String { "a list, each \(typeName)" }
}

extension Int: ParameterType {
    public static var typeName: String { "an integer" }
    public static var listTypeName: String { "a list of integers" }
    public var recipeText: String { String(self) }
}

extension Double: ParameterType {
    public static var typeName: String { "a number" }
    public static var listTypeName: String { "a list of numbers" }
    public var recipeText: String { String(self) }
}

extension Float: ParameterType {
    public static var typeName: String { "a number" }
    public static var listTypeName: String { "a list of numbers" }
    public var recipeText: String { String(self) }
}

extension Bool: ParameterType {
    public static var typeName: String { "true or false" }
    public var recipeText: String { String(self) }
}

extension String: ParameterType {
    public static var typeName: String { "a string" }
    public var recipeText: String { self }
}

extension Array: ParameterType where Element: ParameterType {
    public static var typeName: String { Element.listTypeName }
    public var recipeText: String { "[" + map(\.recipeText).joined(separator: ", ") + "]" }
}

/// A parameter that takes one of a fixed set of words (an enum with `String` raw values).
public protocol ParameterChoice: ParameterType, CaseIterable, RawRepresentable where RawValue == String {}

extension ParameterChoice {
    public static var typeName: String { "one of " + allCases.map(\.rawValue).joined(separator: ", ") }
    public var recipeText: String { rawValue }
}

/// Documentation of one parameter, read off a configuration's declaration.
public struct ParameterDocumentation: Sendable, Equatable {
    /// Recipe key (kebab case).
    public var name: String
    /// The type in words.
    public var typeName: String
    /// The default as a recipe would write it.
    public var defaultValue: String
    /// What it means.
    public var help: String
    /// Its rule beyond the type, if any.
    public var constraint: String?
}

/// Type-erased view of a ``Parameter`` for walking a configuration.
protocol AnyParameter {
    var typeName: String { get }
    var defaultText: String { get }
    var help: String { get }
    var constraintSummary: String? { get }
    /// Why the value of `other` (a decoded parameter of the same type) breaks this parameter's
    /// rule, or nil.
    func problem(with other: Any) -> String?
}

extension Parameter: AnyParameter {
    var typeName: String { Value.typeName }
    var defaultText: String { wrappedValue.recipeText }
    var constraintSummary: String? { constraint?.summary }
    func problem(with other: Any) -> String? {
        guard let constraint, let decoded = other as? Parameter<Value> else { return nil }
        return constraint.check(decoded.wrappedValue)
    }
}

/// Reads recipe parameters into a configuration: names, types, constraints, variants.
enum ConfigurationReader {
    /// The recipe key of a stored property (`_inputChannels` -> `input-channels`).
    static func recipeKey(_ label: String) -> String {
        var key = ""
        for character in label.drop(while: { $0 == "_" }) {
            if character.isUppercase {
                key += "-" + character.lowercased()
            } else {
                key.append(character)
            }
        }
        return key
    }

    /// The Swift property name of a recipe key (`input-channels` -> `inputChannels`).
    static func propertyName(_ key: String) -> String {
        let parts = key.split(separator: "-", omittingEmptySubsequences: false)
        guard let first = parts.first else { return key }
        return String(first) + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }

    /// The declared parameters of a configuration, in declaration order.
    static func parameters<C: PluginConfiguration>(of configuration: C) -> [(key: String, parameter: any AnyParameter)] {
        Mirror(reflecting: configuration).children.compactMap { property in
            guard let label = property.label, let parameter = property.value as? any AnyParameter else { return nil }
            return (recipeKey(label), parameter)
        }
    }

    static func documentation<C: PluginConfiguration>(_ type: C.Type) -> [ParameterDocumentation] {
        parameters(of: C()).map { key, p in
            ParameterDocumentation(name: key, typeName: p.typeName, defaultValue: p.defaultText, help: p.help, constraint: p.constraintSummary)
        }
    }

    /// The configuration the given values describe: the defaults, changed by the chosen variant,
    /// then by each given value; every key, type and rule checked.
    static func read<C: PluginConfiguration>(_ type: C.Type, _ given: PluginParameters) throws -> C {
        var base = C()
        var values = given.values
        let declared = parameters(of: base)
        let keys = declared.map(\.key) + (C.variants.isEmpty ? [] : ["variant"])
        for key in values.keys.sorted() where !keys.contains(key) {
            throw PluginError.unknownParameter(plugin: given.plugin, key: key, suggestion: closestMatch(to: key, in: keys), line: given.lines[key])
        }
        if let chosen = values.removeValue(forKey: "variant") {
            let names = C.variants.map(\.name)
            guard case .string(let name) = chosen, let variant = C.variants.first(where: { $0.name == name }) else {
                throw PluginError.invalidValue(plugin: given.plugin, key: "variant",
                                               reason: "must be one of \(names.joined(separator: ", ")), got '\(chosen)'", line: given.lines["variant"])
            }
            variant.apply(&base)
        }
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .custom { path in PlainKey(recipeKey(path.last!.stringValue)) }
        guard var object = try JSONSerialization.jsonObject(with: encoder.encode(base)) as? [String: Any] else {
            preconditionFailure("\(C.self) does not encode as a keyed container")
        }
        for (key, value) in values { object[key] = value.jsonObject }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .custom { path in PlainKey(propertyName(path.last!.stringValue)) }
        let decoded: C
        do {
            decoded = try decoder.decode(C.self, from: JSONSerialization.data(withJSONObject: object))
        } catch let error as DecodingError {
            let key = error.recipeKey ?? "?"
            let expected = declared.first { $0.key == key }?.parameter.typeName ?? "another type"
            let found = values[key].map { "\($0.typeName) \($0)" } ?? "an unreadable value"
            throw PluginError.wrongType(plugin: given.plugin, key: key, expected: expected, found: found, line: given.lines[key])
        }
        for ((key, original), (_, parsed)) in zip(declared, parameters(of: decoded)) {
            if let reason = original.problem(with: parsed) {
                throw PluginError.invalidValue(plugin: given.plugin, key: key, reason: reason, line: given.lines[key])
            }
        }
        do {
            try decoded.validate()
        } catch {
            throw PluginError.invalidValue(plugin: given.plugin, key: error.key, reason: error.reason, line: given.lines[error.key])
        }
        return decoded
    }
}

struct PlainKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension DecodingError {
    /// The recipe key of the top-level property that failed to decode.
    var recipeKey: String? {
        let path: [CodingKey]
        switch self {
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c): path = c.codingPath
        case .keyNotFound(let key, let c): path = c.codingPath + [key]
        @unknown default: return nil
        }
        return path.first.map { ConfigurationReader.recipeKey($0.stringValue) }
    }
}

extension ParameterValue {
    /// The value as JSONSerialization takes it.
    var jsonObject: Any {
        switch self {
        case .int(let v): return v
        case .double(let v): return v
        case .bool(let v): return v
        case .string(let v): return v
        case .list(let v): return v.map(\.jsonObject)
        }
    }
}
