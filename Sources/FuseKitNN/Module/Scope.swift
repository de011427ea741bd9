import FuseKitTensor

/// The parameters, buffers and run-time settings a module reads during one forward pass, seen
/// from one position in the module tree. `p.child("attn")` descends; `p["weight"]` reads the
/// parameter `<prefix>weight`.
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

    /// The scope of a child module.
    public func child(_ name: String) -> Scope {
        Scope(parameters: parameters, buffers: buffers, prefix: prefix + name + ".", context: context)
    }

    /// The scope of the i-th child of a sequential container.
    public func child(_ index: Int) -> Scope { child(String(index)) }

    /// The parameter `name` of this module.
    public subscript(_ name: String) -> Tensor {
        guard let value = parameters[prefix + name] else {
            fatalError("missing parameter '\(prefix + name)' (the parameter set has \(parameters.count) entries\(Scope.nearby(prefix, parameters.keys)))")
        }
        return value
    }

    /// The buffer `name` of this module; an updated value from earlier in this pass wins.
    public func buffer(_ name: String) -> Tensor {
        if let updated = context.bufferUpdates[prefix + name] { return updated }
        guard let value = buffers[prefix + name] else {
            fatalError("missing buffer '\(prefix + name)'\(Scope.nearby(prefix, buffers.keys))")
        }
        return value
    }

    /// Records a new value of buffer `name` (e.g. BatchNorm running statistics in training).
    public func updateBuffer(_ name: String, _ value: Tensor) {
        context.bufferUpdates[prefix + name] = value.detached()
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
