import FuseKitNN
import FuseKitTensor

/// Check points for the gradient checks of whole networks (``GradcheckSettings/prepareState``).
public enum GradcheckPoint {
    /// How far ``awayFromNormalizationKinks(_:_:)`` moves every normalisation's shift, in units of
    /// the normalised activation's standard deviation.
    public static let normalizationShift: Float = 4

    /// The from-scratch state with the bias of every BatchNorm, GroupNorm and affine InstanceNorm
    /// raised by ``normalizationShift``. From scratch (bias 0) the activations after a
    /// normalisation centre on the kink at 0 of the ReLU-like unit that usually follows (ReLU,
    /// LeakyReLU, ReLU6, FReLU), so a finite-difference step crosses kinks in so many units that
    /// some output elements miss their derivative by several per cent at every step size (the
    /// worst element's finite difference is a one-sided slope on one side of a kink, the JVP the
    /// other). Four standard deviations from the kinks almost no unit crosses one within a step.
    /// Every layer and every parameter is still checked, at a different point.
    @Sendable public static func awayFromNormalizationKinks(_ module: any Module, _ state: inout ModelState) {
        func visit(_ module: any Module, _ prefix: String) {
            let bias: ParameterSpec? = switch module {
            case let norm as BatchNorm2d: norm.bias
            case let norm as GroupNorm: norm.affine?.bias
            case let norm as InstanceNorm2d: norm.affine?.bias
            default: nil
            }
            if let bias, let value = state.parameters[prefix + bias.name] {
                state.parameters[prefix + bias.name] = value + normalizationShift
            }
            for (name, child) in module.children { visit(child, prefix + name + ".") }
        }
        visit(module, "")
    }
}
