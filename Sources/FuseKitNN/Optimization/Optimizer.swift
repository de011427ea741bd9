import FuseKitTensor

/// A gradient-descent rule written as a pure function of the parameters, their gradients and an
/// explicit, serialisable ``OptimizerState`` (the style of MLX's optimizers).
///
/// ```swift
/// let adam = Adam()
/// var state = OptimizerState()
/// parameters = adam.update(parameters, gradients: gradients, state: &state, learningRate: 1e-4)
/// ```
///
/// Updates never record gradient graphs: they read the values of the given tensors (tracked or
/// not) and return fresh, untracked tensors.
public protocol Optimizer: Sendable {
    /// One optimisation step.
    ///
    /// - Parameters:
    ///   - parameters: The current parameters by dotted name.
    ///   - gradients: Gradients by parameter name. A parameter without a gradient is returned
    ///     unchanged and its state is left alone (PyTorch skips parameters whose `grad` is
    ///     `None`). A gradient for a name that is not in `parameters`, or whose shape differs
    ///     from its parameter's, stops the program with a message naming the parameter and the
    ///     shapes.
    ///   - state: The optimizer's state, updated in place; start from an empty
    ///     ``OptimizerState`` and save it in checkpoints.
    ///   - learningRate: The base learning rate of this step (each parameter group scales it).
    /// - Returns: The updated parameters: every name of `parameters`, with new values for
    ///   those that had gradients.
    func update(_ parameters: [String: Tensor], gradients: [String: Tensor],
                state: inout OptimizerState, learningRate: Float) -> [String: Tensor]
}

/// The hyperparameters one group of parameters overrides (PyTorch's `param_groups`).
public struct GroupSettings: Sendable, Equatable {
    /// Factor applied to the step's learning rate for this group.
    public var learningRateScale: Float
    /// Weight decay for this group, or `nil` for the optimizer's own.
    public var weightDecay: Float?

    /// Settings with the given learning-rate scale and weight decay.
    public init(learningRateScale: Float = 1, weightDecay: Float? = nil) {
        self.learningRateScale = learningRateScale
        self.weightDecay = weightDecay
    }

    /// The optimizer's own learning rate and weight decay.
    public static let `default` = GroupSettings()
    /// The optimizer's learning rate with no weight decay.
    public static let noWeightDecay = GroupSettings(weightDecay: 0)
}

/// Assigns every parameter, by name, the ``GroupSettings`` of its group.
public struct ParameterGroups: Sendable {
    /// The settings of the named parameter.
    public let settings: @Sendable (String) -> GroupSettings

    /// Groups given by a rule from parameter name to settings.
    public init(_ settings: @escaping @Sendable (String) -> GroupSettings) {
        self.settings = settings
    }

    /// One group: every parameter uses the optimizer's own settings.
    public static let single = ParameterGroups { _ in .default }

    /// The usual transformer and CNN rule: no weight decay for biases (names ending in `.bias`
    /// or equal to `bias`) nor for normalisation-layer parameters (the names in
    /// `normParameterNames`, e.g. every `weight` and `bias` of the LayerNorm, BatchNorm and
    /// GroupNorm layers); every other parameter uses the optimizer's weight decay.
    ///
    /// - Parameters:
    ///   - normParameterNames: Full dotted names of the normalisation layers' parameters.
    ///   - noDecayLearningRateScale: Learning-rate factor of the no-decay group.
    public static func noWeightDecayForBiasesAndNorms(
        normParameterNames: Set<String>, noDecayLearningRateScale: Float = 1
    ) -> ParameterGroups {
        let noDecay = GroupSettings(learningRateScale: noDecayLearningRateScale, weightDecay: 0)
        return ParameterGroups { name in
            if name == "bias" || name.hasSuffix(".bias") || normParameterNames.contains(name) { return noDecay }
            return .default
        }
    }

    /// No weight decay for exactly the named parameters (e.g. those whose module spec says they
    /// do not decay); every other parameter uses the optimizer's weight decay.
    public static func noWeightDecay(for names: Set<String>) -> ParameterGroups {
        ParameterGroups { names.contains($0) ? .noWeightDecay : .default }
    }
}

/// Shared checks and pointer plumbing of the optimizers.
enum OptimizerSupport {
    /// Stops unless every gradient names a parameter of the same shape.
    static func validate(_ gradients: [String: Tensor], against parameters: [String: Tensor], optimizer: String) {
        for (name, gradient) in gradients {
            guard let parameter = parameters[name] else {
                fatalError("\(optimizer).update: gradient for unknown parameter '\(name)' (gradient shape \(Shape.describe(gradient.shape)); no parameter of that name)")
            }
            require(parameter.shape == gradient.shape,
                    "\(optimizer).update: gradient for parameter '\(name)' has shape \(Shape.describe(gradient.shape)) but the parameter has shape \(Shape.describe(parameter.shape))")
        }
    }

    /// Removes a slot tensor from the state so that it is uniquely referenced and can be updated
    /// in place, or makes zeros when the parameter has no such slot yet (`isNew` is then true).
    static func takeSlot(_ slot: String, for name: String, shape: [Int],
                         from state: inout OptimizerState) -> (tensor: Tensor, isNew: Bool) {
        if let existing = state.slots[slot]?.removeValue(forKey: name) {
            require(existing.shape == shape,
                    "Optimizer state: slot '\(slot)' of parameter '\(name)' has shape \(Shape.describe(existing.shape)) but the parameter has shape \(Shape.describe(shape))")
            return (existing.detached(), false)
        }
        return (Tensor.zeros(shape), true)
    }

    /// Increments and returns the per-parameter step count kept in the `step` slot (a rank-0
    /// tensor, as PyTorch's `state['step']`).
    static func advanceStepCount(for name: String, in state: inout OptimizerState) -> Int {
        let previous = state.slots[OptimizerState.stepSlot]?[name].map { Int($0.item) } ?? 0
        let current = previous + 1
        state.slots[OptimizerState.stepSlot, default: [:]][name] = Tensor(Float(current))
        return current
    }
}

/// A raw pointer handed to parallel workers that each touch a disjoint index range.
struct OptimizerPointer: @unchecked Sendable {
    let base: UnsafeMutablePointer<Float>
    init(_ base: UnsafeMutablePointer<Float>) { self.base = base }
    init(_ base: UnsafePointer<Float>) { self.base = UnsafeMutablePointer(mutating: base) }
}
