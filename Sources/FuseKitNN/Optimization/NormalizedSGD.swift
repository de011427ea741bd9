import FuseKitTensor

/// Gradient descent with the gradient normalised by its largest magnitude over the whole model,
/// the outer (loss-generator) update of TDFusion's meta-learning:
///
/// ```
/// M = max over all parameters and elements of |grad|
/// p = p - lr * (grad / M)        (no step at all when M is 0 or NaN)
/// ```
///
/// One scalar `M` is shared by every parameter of the dictionary, so the largest element of any
/// gradient moves by exactly `lr`. Stateless apart from the step counter.
public struct NormalizedSGD: Optimizer {
    /// A normalised SGD step.
    public init() {}

    /// The largest absolute gradient element over all the gradients (0 when there are none;
    /// NaN when any element is NaN).
    public static func maximumMagnitude(of gradients: [String: Tensor]) -> Float {
        var maximum: Float = 0
        for gradient in gradients.values {
            gradient.withUnsafeBufferPointer { elements in
                for value in elements {
                    let magnitude = abs(value)
                    if magnitude > maximum || magnitude.isNaN { maximum = magnitude }
                }
            }
            if maximum.isNaN { return maximum }
        }
        return maximum
    }

    public func update(_ parameters: [String: Tensor], gradients: [String: Tensor],
                       state: inout OptimizerState, learningRate: Float) -> [String: Tensor] {
        OptimizerSupport.validate(gradients, against: parameters, optimizer: "NormalizedSGD")
        state.step += 1
        let maximum = NormalizedSGD.maximumMagnitude(of: gradients)
        guard maximum > 0 else { return parameters }
        let negativeLR = -learningRate
        var result = parameters
        for (name, gradient) in gradients {
            guard let parameter = parameters[name] else { continue }
            let updated = Tensor(uninitializedShape: parameter.shape)
            let output = OptimizerPointer(updated.mutablePointer)
            let param = OptimizerPointer(parameter.pointer)
            let grad = OptimizerPointer(gradient.pointer)
            Parallel.forRanges(parameter.count) { range in
                for i in range {
                    // param.add_(-lr * (param.grad / max_grad))
                    output.base[i] = param.base[i] + negativeLR * (grad.base[i] / maximum)
                }
            }
            result[name] = updated
        }
        return result
    }
}
