import FuseKitNN

/// The roles a plugin can fill.
public enum PluginKind: String, Sendable, CaseIterable {
    case fusion
    case lossGenerator = "loss-generator"
    case task
    case joint

    /// The protocol a plugin of this kind conforms to (for messages).
    public var protocolName: String {
        switch self {
        case .fusion: return "FusionNet"
        case .lossGenerator: return "LossGenerator"
        case .task: return "TaskNet"
        case .joint: return "JointModel"
        }
    }
}

/// How `fusekit gradcheck` checks a plugin: a small configuration and input size (by default
/// the plugin's defaults on 8x8 inputs).
public struct GradcheckSettings<Configuration: PluginConfiguration>: Sendable {
    /// Changes the defaults to a small configuration.
    public var configure: @Sendable (inout Configuration) -> Void
    /// Input height and width.
    public var inputSize: (height: Int, width: Int)
    /// Batch size.
    public var batch: Int
    /// For task nets whose loss is only piecewise smooth (e.g. a detector whose target
    /// assignment jumps with its predictions), a smooth function of the network to check instead
    /// of the loss; its pieces should then have their own unit checks.
    public var taskObjective: (@Sendable (any TaskNet, Tensor, Scope) -> Tensor)?
    /// Changes the module's from-scratch state (seeded) into the point the check is made at, e.g. one
    /// whose activations sit away from the kinks of ReLU-like units (the finite differences hold
    /// every kink on the check point's side, but a point on or next to many kinks still makes
    /// them less accurate; see ``GradcheckPoint``).
    public var prepareState: @Sendable (any Module, inout ModelState) -> Void

    public init(configure: @escaping @Sendable (inout Configuration) -> Void = { _ in }, inputSize: (height: Int, width: Int) = (8, 8),
                batch: Int = 1, taskObjective: (@Sendable (any TaskNet, Tensor, Scope) -> Tensor)? = nil,
                prepareState: @escaping @Sendable (any Module, inout ModelState) -> Void = { _, _ in }) {
        self.configure = configure
        self.inputSize = inputSize
        self.batch = batch
        self.taskObjective = taskObjective
        self.prepareState = prepareState
    }
}

/// A registered plugin: its name in recipes, role, documentation and factory.
public struct PluginDescriptor: Sendable {
    public let name: String
    public let kind: PluginKind
    public let summary: String
    /// The parameters, read off the plugin's configuration declaration.
    public let parameters: [ParameterDocumentation]
    /// Named configurations (`variant:`), with what each is.
    public let variants: [(name: String, summary: String)]
    /// The small configuration `fusekit gradcheck` uses, and its input.
    public let gradcheck: Gradcheck
    let make: @Sendable (PluginParameters) throws -> any Module

    /// A plugin's gradient-check configuration, built.
    public struct Gradcheck: Sendable {
        public let makeModule: @Sendable () -> any Module
        public let inputSize: (height: Int, width: Int)
        public let batch: Int
        public let taskObjective: (@Sendable (any TaskNet, Tensor, Scope) -> Tensor)?
        public let prepareState: @Sendable (any Module, inout ModelState) -> Void

        /// The module's state at the check point: its from-scratch state, prepared.
        public func state(of module: any Module, seed: UInt64) -> ModelState {
            var state = module.initialState(seed: seed)
            prepareState(module, &state)
            return state
        }
    }

    /// Builds the plugin's module from recipe parameters (checked against the declaration).
    public func makeModule(_ parameters: PluginParameters = PluginParameters()) throws -> any Module {
        var given = parameters
        given.plugin = name
        return try make(given)
    }
}

/// Maps recipe names to plugin factories. The CLI registers every plugin target it links;
/// a program embedding FuseKit registers the ones it wants.
public struct PluginRegistry: Sendable {
    private var descriptors: [String: PluginDescriptor] = [:]

    /// The plugins commands use when the user names none (`fusekit fuse` without `--model`,
    /// the hypergradient check of `fusekit gradcheck`, the model workloads of `fusekit bench`).
    public struct Defaults: Sendable {
        /// A fusion network.
        public var fusion: String?
        /// A loss generator.
        public var lossGenerator: String?
        /// A small, fast task network (checks and benchmarks).
        public var smallTask: String?
        /// A full-size segmentation network (the official meta-step benchmark).
        public var segmentationTask: String?

        public init(fusion: String? = nil, lossGenerator: String? = nil, smallTask: String? = nil, segmentationTask: String? = nil) {
            self.fusion = fusion
            self.lossGenerator = lossGenerator
            self.smallTask = smallTask
            self.segmentationTask = segmentationTask
        }
    }

    /// The plugins commands use when the user names none.
    public var defaults = Defaults()

    /// The loss terms recipes may use: FuseKit's, and any a plugin registers.
    public var lossTerms = LossTermRegistry.standard

    public init() {}

    /// All registered plugins, sorted by kind then name.
    public var all: [PluginDescriptor] {
        descriptors.values.sorted { ($0.kind.rawValue, $0.name) < ($1.kind.rawValue, $1.name) }
    }

    /// The registered names of one kind, sorted.
    public func names(of kind: PluginKind) -> [String] {
        descriptors.values.filter { $0.kind == kind }.map(\.name).sorted()
    }

    /// Registers a fusion network built from its configuration.
    public mutating func registerFusion<C: PluginConfiguration>(
        _ name: String, summary: String, configuration: C.Type,
        gradcheck: GradcheckSettings<C> = GradcheckSettings(), make: @escaping @Sendable (C) -> any FusionNet) {
        add(name, .fusion, summary, gradcheck, make)
    }

    /// Registers a loss generator built from its configuration.
    public mutating func registerLossGenerator<C: PluginConfiguration>(
        _ name: String, summary: String, configuration: C.Type,
        gradcheck: GradcheckSettings<C> = GradcheckSettings(), make: @escaping @Sendable (C) -> any LossGenerator) {
        add(name, .lossGenerator, summary, gradcheck, make)
    }

    /// Registers a task network built from its configuration.
    public mutating func registerTask<C: PluginConfiguration>(
        _ name: String, summary: String, configuration: C.Type,
        gradcheck: GradcheckSettings<C> = GradcheckSettings(), make: @escaping @Sendable (C) -> any TaskNet) {
        add(name, .task, summary, gradcheck, make)
    }

    /// Registers a joint fusion-and-segmentation model built from its configuration.
    public mutating func registerJoint<C: PluginConfiguration>(
        _ name: String, summary: String, configuration: C.Type,
        gradcheck: GradcheckSettings<C> = GradcheckSettings(), make: @escaping @Sendable (C) -> any JointModel) {
        add(name, .joint, summary, gradcheck, make)
    }

    private mutating func add<C: PluginConfiguration>(_ name: String, _ kind: PluginKind, _ summary: String,
                                                      _ gradcheck: GradcheckSettings<C>, _ make: @escaping @Sendable (C) -> any Module) {
        precondition(descriptors[name] == nil, "plugin '\(name)' is registered twice")
        let check = PluginDescriptor.Gradcheck(makeModule: {
            var small = C()
            gradcheck.configure(&small)
            return make(small)
        }, inputSize: gradcheck.inputSize, batch: gradcheck.batch, taskObjective: gradcheck.taskObjective,
           prepareState: gradcheck.prepareState)
        descriptors[name] = PluginDescriptor(
            name: name, kind: kind, summary: summary, parameters: ConfigurationReader.documentation(C.self),
            variants: C.variants.map { ($0.name, $0.summary) }, gradcheck: check,
            make: { given in make(try ConfigurationReader.read(C.self, given)) })
    }

    /// The descriptor of a plugin of `kind`, or an error suggesting the closest registered name.
    public func descriptor(_ name: String, kind: PluginKind) throws -> PluginDescriptor {
        if let d = descriptors[name], d.kind == kind { return d }
        let names = names(of: kind)
        throw PluginError.unknownPlugin(name: name, kind: kind, suggestion: closestMatch(to: name, in: names), available: names)
    }

    /// The descriptor of a plugin of any kind.
    public func descriptor(_ name: String) throws -> PluginDescriptor {
        if let d = descriptors[name] { return d }
        let names = descriptors.keys.sorted()
        throw PluginError.unknownPlugin(name: name, kind: nil, suggestion: closestMatch(to: name, in: names), available: names)
    }

    /// Builds the fusion network `name`.
    public func makeFusion(_ name: String, _ parameters: PluginParameters = PluginParameters()) throws -> any FusionNet {
        try descriptor(name, kind: .fusion).makeModule(parameters) as! any FusionNet
    }

    /// Builds the loss generator `name`.
    public func makeLossGenerator(_ name: String, _ parameters: PluginParameters = PluginParameters()) throws -> any LossGenerator {
        try descriptor(name, kind: .lossGenerator).makeModule(parameters) as! any LossGenerator
    }

    /// Builds the joint model `name`.
    public func makeJoint(_ name: String, _ parameters: PluginParameters = PluginParameters()) throws -> any JointModel {
        try descriptor(name, kind: .joint).makeModule(parameters) as! any JointModel
    }

    /// Builds the task network `name`.
    public func makeTask(_ name: String, _ parameters: PluginParameters = PluginParameters()) throws -> any TaskNet {
        try descriptor(name, kind: .task).makeModule(parameters) as! any TaskNet
    }
}
