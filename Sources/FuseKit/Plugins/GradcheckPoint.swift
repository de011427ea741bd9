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
    /// LeakyReLU, ReLU6, FReLU). The finite differences hold every kink on the check point's side
    /// (``KinkPattern``), yet from scratch they are less accurate: over seven direction seeds
    /// MAFS's worst element misses by 1e-3 to 1.5e-2 (one seed fails the tolerance of 1e-2), some
    /// 16,000 units crossing a kink within a step; with the shift it misses by 1e-4 to 1e-3, with
    /// some 1,500 crossings. Every layer and every parameter is still checked, at a different point.
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
