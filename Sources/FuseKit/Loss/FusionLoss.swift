import FuseKitTensor

/// TDFusion's learnable fusion loss (paper Eq. 1-3):
/// L_f = mean(w_a (F - a)² + w_b (F - b)²) + α · (mean|∂x F - Mx| + mean|∂y F - My|),
/// where ∂x, ∂y are Sobel responses (cross-correlation, zero padding) and M keeps, per pixel,
/// the source gradient of larger magnitude (ties to a).
public struct FusionLoss: Sendable {
    /// How the weights enter the intensity term.
    public enum IntensityForm: String, Sendable, Codable, ParameterChoice {
        /// The paper's form: w_a (F - a)² + w_b (F - b)².
        case paper
        /// The official code's form: w_a² (a - F)² + w_b² (b - F)².
        case squaredWeights = "squared-weights"
    }

    /// Weight of the gradient term.
    public var alpha: Float
    /// Intensity-term form.
    public var form: IntensityForm

    public init(alpha: Float = 1, form: IntensityForm = .paper) {
        self.alpha = alpha
        self.form = form
    }

    /// Sobel kernels [2, 1, 3, 3]: x then y, as in the paper (cross-correlation).
    public static let sobelKernels = Tensor(shape: [2, 1, 3, 3], scalars: [-1, 0, 1, -2, 0, 2, -1, 0, 1,
                                                                           -1, -2, -1, 0, 0, 0, 1, 2, 1])

    /// Sobel responses of a one-channel batch [B, 1, H, W] -> [B, 2, H, W] (x, y).
    public static func sobel(_ image: Tensor) -> Tensor {
        Tensor.conv2d(image, sobelKernels, padding: (1, 1))
    }

    /// The gradient target M = (Mx, My) [B, 2, H, W] of a source batch [B, 2, H, W]; it depends on
    /// the sources only, so a trainer computes it once per batch.
    public static func gradientTarget(_ sources: Tensor) -> Tensor {
        withoutGradient {
            let parts = sources.detached().chunked(2, axis: 1)
            let ga = sobel(parts[0]), gb = sobel(parts[1])
            return Tensor.select(ga.abs().greaterEqual(gb.abs()), ga, gb)
        }
    }

    /// The loss of fused images [B, 1, H, W] for sources [B, 2, H, W] and weights [B, 2, H, W].
    public func callAsFunction(fused: Tensor, sources: Tensor, weights: Tensor, gradientTarget: Tensor? = nil) -> Tensor {
        require(fused.rank == 4 && fused.shape[1] == 1, "FusionLoss: fused images must be [B, 1, H, W], got \(Shape.describe(fused.shape))")
        require(sources.shape == [fused.shape[0], 2, fused.shape[2], fused.shape[3]],
                "FusionLoss: sources \(Shape.describe(sources.shape)) do not match fused images \(Shape.describe(fused.shape))")
        require(weights.shape == sources.shape, "FusionLoss: weights \(Shape.describe(weights.shape)) do not match sources \(Shape.describe(sources.shape))")
        let difference = fused - sources  // [B, 2, H, W]: F - a, F - b
        let w = form == .paper ? weights : weights * weights
        let intensity = (w * difference * difference).sum(axis: 1).mean()
        guard alpha != 0 else { return intensity }
        let target = gradientTarget ?? Self.gradientTarget(sources)
        let gradientTerm = (Self.sobel(fused) - target).abs().mean(axes: [0, 2, 3]).sum()
        return intensity + alpha * gradientTerm
    }
}
