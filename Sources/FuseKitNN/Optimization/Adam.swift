import FuseKitTensor

/// Adam with optional L2 weight decay, exactly as `torch.optim.Adam` (single-tensor path, no
/// AMSGrad), in PyTorch's order of operations:
///
/// ```
/// t = t + 1                                        (per parameter)
/// g = grad + weightDecay * p
/// m = lerp(m, g, 1 - beta1)
/// v = beta2 * v + (1 - beta2) * g * g
/// denom = sqrt(v) / sqrt(1 - beta2^t) + epsilon
/// p = p - (lr / (1 - beta1^t)) * m / denom
/// ```
///
/// The bias corrections and the step size are computed in double precision, as PyTorch does
/// with Python floats. State: the `exp_avg`, `exp_avg_sq` and `step` slots.
public struct Adam: Optimizer {
    /// Decay rate of the first-moment average.
    public var beta1: Float
    /// Decay rate of the second-moment average.
    public var beta2: Float
    /// Term added to the denominator for numerical stability.
    public var epsilon: Float
    /// L2 penalty added to the gradient (groups may override it).
    public var weightDecay: Float
    /// Per-parameter learning-rate scale and weight decay.
    public var groups: ParameterGroups

    /// PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, no weight decay.
    public init(beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
                weightDecay: Float = 0, groups: ParameterGroups = .single) {
        AdamKernel.validate(beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay, name: "Adam")
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.groups = groups
    }

    public func update(_ parameters: [String: Tensor], gradients: [String: Tensor],
                       state: inout OptimizerState, learningRate: Float) -> [String: Tensor] {
        AdamKernel.update(parameters, gradients: gradients, state: &state, learningRate: learningRate,
                          beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay,
                          decoupled: false, groups: groups, name: "Adam")
    }
}

/// AdamW: Adam with decoupled weight decay, exactly as `torch.optim.AdamW`: the parameter is
/// first scaled by `1 - lr * weightDecay`, then the Adam step (without an L2 term) is applied.
/// State: the `exp_avg`, `exp_avg_sq` and `step` slots.
public struct AdamW: Optimizer {
    /// Decay rate of the first-moment average.
    public var beta1: Float
    /// Decay rate of the second-moment average.
    public var beta2: Float
    /// Term added to the denominator for numerical stability.
    public var epsilon: Float
    /// Decoupled weight decay (groups may override it).
    public var weightDecay: Float
    /// Per-parameter learning-rate scale and weight decay.
    public var groups: ParameterGroups

    /// PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    public init(beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
                weightDecay: Float = 0.01, groups: ParameterGroups = .single) {
        AdamKernel.validate(beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay, name: "AdamW")
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.groups = groups
    }

    public func update(_ parameters: [String: Tensor], gradients: [String: Tensor],
                       state: inout OptimizerState, learningRate: Float) -> [String: Tensor] {
        AdamKernel.update(parameters, gradients: gradients, state: &state, learningRate: learningRate,
                          beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay,
                          decoupled: true, groups: groups, name: "AdamW")
    }
}

/// The shared Adam / AdamW update.
enum AdamKernel {
    /// Slot holding the first-moment average.
    static let firstMomentSlot = "exp_avg"
    /// Slot holding the second-moment average.
    static let secondMomentSlot = "exp_avg_sq"

    static func validate(beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float, name: String) {
        require(beta1 >= 0 && beta1 < 1, "\(name): beta1 must be in [0, 1), got \(beta1)")
        require(beta2 >= 0 && beta2 < 1, "\(name): beta2 must be in [0, 1), got \(beta2)")
        require(epsilon >= 0, "\(name): epsilon must be non-negative, got \(epsilon)")
        require(weightDecay >= 0, "\(name): weight decay must be non-negative, got \(weightDecay)")
    }

    static func update(_ parameters: [String: Tensor], gradients: [String: Tensor],
                       state: inout OptimizerState, learningRate: Float,
                       beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float,
                       decoupled: Bool, groups: ParameterGroups, name optimizerName: String) -> [String: Tensor] {
        OptimizerSupport.validate(gradients, against: parameters, optimizer: optimizerName)
        var result = parameters
        // PyTorch turns these Python-float expressions into Float32 scalars.
        let lerpWeight = Float(1 - Double(beta1))
        let lerpIsSmall = abs(lerpWeight) < 0.5
        let lerpComplement = 1 - lerpWeight
        let squareWeight = Float(1 - Double(beta2))

        for (name, gradient) in gradients {
            guard let parameter = parameters[name] else { continue }
            let settings = groups.settings(name)
            let decay = settings.weightDecay ?? weightDecay
            let lr = Double(learningRate) * Double(settings.learningRateScale)
            let step = Double(OptimizerSupport.advanceStepCount(for: name, in: &state))
            let biasCorrection1 = 1 - pow(Double(beta1), step)
            let biasCorrection2 = 1 - pow(Double(beta2), step)
            let negativeStepSize = Float(-(lr / biasCorrection1))
            let biasCorrection2Root = Float(biasCorrection2.squareRoot())
            let parameterScale: Float = decoupled ? Float(1 - lr * Double(decay)) : 1
            let l2Decay: Float = decoupled ? 0 : decay

            var firstMoment = OptimizerSupport.takeSlot(firstMomentSlot, for: name, shape: parameter.shape, from: &state).tensor
            var secondMoment = OptimizerSupport.takeSlot(secondMomentSlot, for: name, shape: parameter.shape, from: &state).tensor
            let updated = Tensor(uninitializedShape: parameter.shape)
            let output = OptimizerPointer(updated.mutablePointer)
            let param = OptimizerPointer(parameter.pointer)
            let grad = OptimizerPointer(gradient.pointer)
            let count = parameter.count

            firstMoment.withUnsafeMutableBufferPointer { firstElements in
                secondMoment.withUnsafeMutableBufferPointer { secondElements in
                    guard let firstBase = firstElements.baseAddress, let secondBase = secondElements.baseAddress else { return }
                    let m = OptimizerPointer(firstBase)
                    let v = OptimizerPointer(secondBase)
                    Parallel.forRanges(count) { range in
                        for i in range {
                            let p = param.base[i]
                            var g = grad.base[i]
                            if l2Decay != 0 { g = g + l2Decay * p }
                            // exp_avg.lerp_(grad, 1 - beta1), ATen's two-branch lerp.
                            let oldM = m.base[i]
                            let newM = lerpIsSmall ? oldM + lerpWeight * (g - oldM) : g - (g - oldM) * lerpComplement
                            m.base[i] = newM
                            // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                            let newV = v.base[i] * beta2 + squareWeight * g * g
                            v.base[i] = newV
                            // denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
                            let denominator = newV.squareRoot() / biasCorrection2Root + epsilon
                            // param.mul_(1 - lr * wd) (AdamW), then addcdiv_(exp_avg, denom, value=-step_size)
                            let decayed = decoupled ? p * parameterScale : p
                            output.base[i] = decayed + negativeStepSize * newM / denominator
                        }
                    }
                }
            }
            state.slots[firstMomentSlot, default: [:]][name] = firstMoment
            state.slots[secondMomentSlot, default: [:]][name] = secondMoment
            result[name] = updated
        }
        state.step += 1
        return result
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
