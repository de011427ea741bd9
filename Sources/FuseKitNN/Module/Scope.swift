import FuseKitTensor

/// The parameters, buffers and run-time settings a module reads during one forward pass, seen
/// from one position in the module tree. Calling a ``Child`` descends; `p[weight]` reads the
/// parameter `<prefix>weight` of a module's `weight` spec.
///
/// Any parameter dictionary can be passed, including one computed from others (a virtual step
/// θ' = θ − η∇ that stays differentiable): that is this framework's `functional_call`.
public struct Scope {
    /// Parameters by full dotted name.
    public let parameters: [String: Tensor]
    /// Buffers by full dotted name.
    public let buffers: [String: Tensor]
    /// Dotted prefix of this position (`encoder1.0.attn.`).
    public let prefix: String
    /// Training flag, randomness and buffer updates shared by the whole pass.
    public let context: ForwardContext

    /// A root scope.
    public init(parameters: [String: Tensor], buffers: [String: Tensor] = [:], context: ForwardContext = ForwardContext()) {
        self.parameters = parameters
        self.buffers = buffers
        self.prefix = ""
        self.context = context
    }

    /// A root scope over a model state.
    public init(_ state: ModelState, context: ForwardContext = ForwardContext()) {
        self.init(parameters: state.parameters, buffers: state.buffers, context: context)
    }

    private init(parameters: [String: Tensor], buffers: [String: Tensor], prefix: String, context: ForwardContext) {
        self.parameters = parameters
        self.buffers = buffers
        self.prefix = prefix
        self.context = context
    }

    /// The scope of a child module (``Child`` descends with it).
    func child(_ name: String) -> Scope {
        Scope(parameters: parameters, buffers: buffers, prefix: prefix + name + ".", context: context)
    }

    /// The value of one of this module's parameters. A missing value means the parameter set
    /// was made for another module (the names themselves cannot disagree).
    public subscript(_ spec: ParameterSpec) -> Tensor {
        precondition(!spec.isBuffer, "'\(prefix + spec.name)' is a buffer; read it with buffer(_:)")
        guard let value = parameters[prefix + spec.name] else {
            fatalError("missing parameter '\(prefix + spec.name)' (the parameter set has \(parameters.count) entries\(Scope.nearby(prefix, parameters.keys)))")
        }
        return value
    }

    /// The value of one of this module's buffers; an updated value from earlier in this pass wins.
    public func buffer(_ spec: ParameterSpec) -> Tensor {
        let name = prefix + spec.name
        if let updated = context.bufferUpdates[name] { return updated }
        guard let value = buffers[name] else {
            fatalError("missing buffer '\(name)'\(Scope.nearby(prefix, buffers.keys))")
        }
        return value
    }

    /// Records a new value of one of this module's buffers (e.g. BatchNorm running statistics
    /// in training).
    public func updateBuffer(_ spec: ParameterSpec, _ value: Tensor) {
        precondition(spec.isBuffer, "'\(prefix + spec.name)' is a parameter, not a buffer")
        context.bufferUpdates[prefix + spec.name] = value.detached()
    }

    /// Whether the pass is in training mode (dropout active, BatchNorm on batch statistics).
    public var isTraining: Bool { context.isTraining }

    private static func nearby(_ prefix: String, _ keys: Dictionary<String, Tensor>.Keys) -> String {
        let siblings = keys.filter { $0.hasPrefix(prefix) }.sorted().prefix(5)
        return siblings.isEmpty ? "" : "; names under '\(prefix)': \(siblings.joined(separator: ", "))"
    }
}

/// Settings and side effects shared by one forward pass: the training flag, the random stream
/// for dropout, and buffer updates to merge into the model state afterwards.
public final class ForwardContext {
    /// Training mode.
    public let isTraining: Bool
    /// Random stream for dropout and drop-path.
    public var rng: RandomGenerator
    /// New buffer values recorded during the pass.
    public var bufferUpdates: [String: Tensor] = [:]
    /// Records every child's output shapes when set (`fusekit inspect`).
    public var trace: ModuleTrace?
    /// The ranks of a data-parallel run whose batch statistics BatchNorm synchronises (SyncBN),
    /// or nil for statistics of this rank's batch only (PyTorch DDP's default).
    public var synchronizedBatchNorm: (any Collective)?

    /// A context; `rng` matters only in training.
    public init(training: Bool = false, rng: RandomGenerator = RandomGenerator(seed: 0)) {
        self.isTraining = training
        self.rng = rng
    }
}

/// The tensors of a model: trainable parameters and buffers, by dotted name.
public struct ModelState: Sendable {
    /// Trainable parameters.
    public var parameters: [String: Tensor]
    /// Non-trained state (running statistics).
    public var buffers: [String: Tensor]

    public init(parameters: [String: Tensor] = [:], buffers: [String: Tensor] = [:]) {
        self.parameters = parameters
        self.buffers = buffers
    }

    /// Parameters and buffers in one dictionary, as PyTorch's `state_dict()`.
    public var stateDict: [String: Tensor] { parameters.merging(buffers) { a, _ in a } }

    /// Merges the buffer updates of a finished training pass.
    public mutating func absorb(_ context: ForwardContext) {
        for (name, value) in context.bufferUpdates { buffers[name] = value }
    }
}
