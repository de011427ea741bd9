import FuseKitNN

/// The three roles a plugin can fill.
public enum PluginKind: String, Sendable, CaseIterable {
    case fusion
    case lossGenerator = "loss-generator"
    case task
}

/// How `fusekit gradcheck` checks a plugin: a small configuration and input size (the defaults
/// check the registered defaults on 8x8 sources, or 32x32 task inputs).
public struct GradcheckSettings: Sendable {
    /// Parameters of a small configuration of the plugin.
    public var parameters: [String: ParameterValue]
    /// Input height and width.
    public var inputSize: (height: Int, width: Int)
    /// Batch size.
    public var batch: Int

    /// For task nets whose loss is only piecewise smooth (e.g. a detector whose target
    /// assignment jumps with its predictions), a smooth function of the network to check instead
    /// of the loss; its pieces should then have their own unit checks.
    public var taskObjective: (@Sendable (any TaskNet, Tensor, Scope) -> Tensor)?

    public init(parameters: [String: ParameterValue] = [:], inputSize: (height: Int, width: Int) = (8, 8), batch: Int = 1,
                taskObjective: (@Sendable (any TaskNet, Tensor, Scope) -> Tensor)? = nil) {
        self.parameters = parameters
        self.inputSize = inputSize
        self.batch = batch
        self.taskObjective = taskObjective
    }
}

/// A registered plugin: its name in recipes, role, documentation and factory.
public struct PluginDescriptor: Sendable {
    public let name: String
    public let kind: PluginKind
    public let summary: String
    public let parameters: [ParameterDoc]
    /// The configuration `fusekit gradcheck` uses.
    public let gradcheck: GradcheckSettings
    let factory: Factory

    enum Factory: Sendable {
        case fusion(@Sendable (PluginParameters) throws -> any FusionNet)
        case lossGenerator(@Sendable (PluginParameters) throws -> any LossGenerator)
        case task(@Sendable (PluginParameters) throws -> any TaskNet)
    }
}

/// Maps recipe names to plugin factories. The CLI registers every plugin target it links;
/// a program embedding FuseKit registers the ones it wants.
public struct PluginRegistry: Sendable {
    private var descriptors: [String: PluginDescriptor] = [:]

    public init() {}

    /// All registered plugins, sorted by kind then name.
    public var all: [PluginDescriptor] {
        descriptors.values.sorted { ($0.kind.rawValue, $0.name) < ($1.kind.rawValue, $1.name) }
    }

    /// Registers a fusion network.
    public mutating func registerFusion(_ name: String, summary: String, parameters: [ParameterDoc],
                                        gradcheck: GradcheckSettings = GradcheckSettings(),
                                        make: @escaping @Sendable (PluginParameters) throws -> any FusionNet) {
        add(PluginDescriptor(name: name, kind: .fusion, summary: summary, parameters: parameters, gradcheck: gradcheck, factory: .fusion(make)))
    }

    /// Registers a loss generator.
    public mutating func registerLossGenerator(_ name: String, summary: String, parameters: [ParameterDoc],
                                        gradcheck: GradcheckSettings = GradcheckSettings(),
                                        make: @escaping @Sendable (PluginParameters) throws -> any LossGenerator) {
        add(PluginDescriptor(name: name, kind: .lossGenerator, summary: summary, parameters: parameters, gradcheck: gradcheck, factory: .lossGenerator(make)))
    }

    /// Registers a task network.
    public mutating func registerTask(_ name: String, summary: String, parameters: [ParameterDoc],
                                        gradcheck: GradcheckSettings = GradcheckSettings(),
                                        make: @escaping @Sendable (PluginParameters) throws -> any TaskNet) {
        add(PluginDescriptor(name: name, kind: .task, summary: summary, parameters: parameters, gradcheck: gradcheck, factory: .task(make)))
    }

    private mutating func add(_ descriptor: PluginDescriptor) {
        precondition(descriptors[descriptor.name] == nil, "plugin '\(descriptor.name)' is registered twice")
        descriptors[descriptor.name] = descriptor
    }

    /// The descriptor of a plugin of `kind`, or an error suggesting the closest registered name.
    public func descriptor(_ name: String, kind: PluginKind) throws -> PluginDescriptor {
        if let d = descriptors[name], d.kind == kind { return d }
        let names = descriptors.values.filter { $0.kind == kind }.map(\.name).sorted()
        throw PluginError.unknownPlugin(name: name, kind: kind, suggestion: closestMatch(to: name, in: names), available: names)
    }

    /// Checks that every given parameter is documented by the plugin.
    func validate(_ parameters: PluginParameters, for d: PluginDescriptor) throws {
        let known = d.parameters.map(\.name)
        for key in parameters.values.keys.sorted() where !known.contains(key) {
            throw PluginError.unknownParameter(plugin: d.name, key: key, suggestion: closestMatch(to: key, in: known),
                                               line: parameters.lines[key])
        }
    }

    func prepared(_ parameters: PluginParameters, _ d: PluginDescriptor) throws -> PluginParameters {
        try validate(parameters, for: d)
        var p = parameters
        p.plugin = d.name
        return p
    }

    /// Builds the fusion network `name`.
    public func makeFusion(_ name: String, _ parameters: PluginParameters = PluginParameters()) throws -> any FusionNet {
        let d = try descriptor(name, kind: .fusion)
        guard case .fusion(let make) = d.factory else { preconditionFailure("descriptor kind mismatch") }
        return try make(try prepared(parameters, d))
    }

    /// Builds the loss generator `name`.
    public func makeLossGenerator(_ name: String, _ parameters: PluginParameters = PluginParameters()) throws -> any LossGenerator {
        let d = try descriptor(name, kind: .lossGenerator)
        guard case .lossGenerator(let make) = d.factory else { preconditionFailure("descriptor kind mismatch") }
        return try make(try prepared(parameters, d))
    }

    /// Builds the task network `name`.
    public func makeTask(_ name: String, _ parameters: PluginParameters = PluginParameters()) throws -> any TaskNet {
        let d = try descriptor(name, kind: .task)
        guard case .task(let make) = d.factory else { preconditionFailure("descriptor kind mismatch") }
        return try make(try prepared(parameters, d))
    }
}
