import FuseKitTensor

/// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay,
/// exactly as `torch.optim.SGD` (single-tensor path):
///
/// ```
/// g = grad + weightDecay * p
/// b = g                                  (first step)
/// b = momentum * b + (1 - dampening) * g (later steps)
/// g = nesterov ? g + momentum * b : b
/// p = p - lr * g
/// ```
///
/// State: the `momentum_buffer` slot (only when `momentum != 0`).
public struct SGD: Optimizer {
    /// Momentum factor (0 disables momentum).
    public var momentum: Float
    /// Dampening of the gradient added to the momentum buffer.
    public var dampening: Float
    /// Whether to use Nesterov momentum (needs `momentum > 0` and `dampening == 0`).
    public var nesterov: Bool
    /// L2 penalty added to the gradient (groups may override it).
    public var weightDecay: Float
    /// Per-parameter learning-rate scale and weight decay.
    public var groups: ParameterGroups

    /// PyTorch's defaults: no momentum, no dampening, no Nesterov, no weight decay.
    public init(momentum: Float = 0, dampening: Float = 0, nesterov: Bool = false,
                weightDecay: Float = 0, groups: ParameterGroups = .single) {
        require(momentum >= 0, "SGD: momentum must be non-negative, got \(momentum)")
        require(weightDecay >= 0, "SGD: weight decay must be non-negative, got \(weightDecay)")
        require(!nesterov || (momentum > 0 && dampening == 0),
                "SGD: Nesterov momentum requires a momentum and zero dampening (momentum \(momentum), dampening \(dampening))")
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        self.groups = groups
    }

    /// Slot holding the momentum buffer.
    public static let momentumSlot = "momentum_buffer"

    public func update(_ parameters: [String: Tensor], gradients: [String: Tensor],
                       state: inout OptimizerState, learningRate: Float) -> [String: Tensor] {
        OptimizerSupport.validate(gradients, against: parameters, optimizer: "SGD")
        var result = parameters
        for (name, gradient) in gradients {
            guard let parameter = parameters[name] else { continue }
            let settings = groups.settings(name)
            let decay = settings.weightDecay ?? weightDecay
            let lr = Float(Double(learningRate) * Double(settings.learningRateScale))
            let updated = Tensor(uninitializedShape: parameter.shape)
            let output = OptimizerPointer(updated.mutablePointer)
            let param = OptimizerPointer(parameter.pointer)
            let grad = OptimizerPointer(gradient.pointer)
            let count = parameter.count
            let negativeLR = -lr

            guard momentum != 0 else {
                Parallel.forRanges(count) { range in
                    for i in range {
                        var g = grad.base[i]
                        if decay != 0 { g = g + decay * param.base[i] }
                        output.base[i] = param.base[i] + negativeLR * g
                    }
                }
                result[name] = updated
                continue
            }

            let taken = OptimizerSupport.takeSlot(SGD.momentumSlot, for: name, shape: parameter.shape, from: &state)
            var buffer = taken.tensor
            let isFirst = taken.isNew
            let momentum = self.momentum
            let bufferScale = 1 - dampening
            let nesterov = self.nesterov
            buffer.withUnsafeMutableBufferPointer { bufferElements in
                guard let bufferBase = bufferElements.baseAddress else { return }
                let momentumBuffer = OptimizerPointer(bufferBase)
                Parallel.forRanges(count) { range in
                    for i in range {
                        var g = grad.base[i]
                        if decay != 0 { g = g + decay * param.base[i] }
                        let b = isFirst ? g : momentumBuffer.base[i] * momentum + bufferScale * g
                        momentumBuffer.base[i] = b
                        g = nesterov ? g + momentum * b : b
                        output.base[i] = param.base[i] + negativeLR * g
                    }
                }
            }
            state.slots[SGD.momentumSlot, default: [:]][name] = buffer
            result[name] = updated
        }
        state.step += 1
        return result
    }
}
