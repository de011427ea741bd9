import Foundation
import FuseKitImage

/// The fusion metrics of the field, as the CDDFuse evaluator computes them (see
/// `docs/metrics.md`). The raw value is the name papers print.
public enum FusionMetric: String, CaseIterable, Sendable, Codable, Hashable {
    /// Entropy of the fused image's 256-level histogram, in bits.
    case en = "EN"
    /// Standard deviation of the fused image (population).
    case sd = "SD"
    /// Spatial frequency of the fused image.
    case sf = "SF"
    /// Average gradient of the fused image.
    case ag = "AG"
    /// Mutual information MI(F, A) + MI(F, B), in nats.
    case mi = "MI"
    /// Sum of the correlations of differences.
    case scd = "SCD"
    /// Pixel-domain multiscale visual information fidelity VIF(A, F) + VIF(B, F).
    case vif = "VIF"
    /// Xydeas-Petrovic edge-preservation metric Q^{AB/F}.
    case qabf = "Qabf"
    /// SSIM(F, A) + SSIM(F, B) (scikit-image defaults, data range 255).
    case ssim = "SSIM"

    /// The metric named `name` (case-insensitive, e.g. "en", "QABF").
    public init?(name: String) {
        let lowered = name.trimmingCharacters(in: .whitespaces).lowercased()
        guard let metric = Self.allCases.first(where: { $0.rawValue.lowercased() == lowered }) else { return nil }
        self = metric
    }

    /// Whether the metric compares the fused image with the sources (false: fused image only).
    public var needsSources: Bool {
        switch self {
        case .en, .sd, .sf, .ag: return false
        case .mi, .scd, .vif, .qabf, .ssim: return true
        }
    }

    /// Whether the metric is a sum over the two source pairs, which the per-pair convention halves.
    public var isSumOverPairs: Bool { self == .mi || self == .vif || self == .ssim }
}

/// How the pairwise metrics (MI, VIF, SSIM) combine the two sources.
public enum PairConvention: String, Sendable, CaseIterable {
    /// X(F, A) + X(F, B), the evaluator's convention (the default).
    case sum
    /// (X(F, A) + X(F, B)) / 2, as some papers (TDFusion among them) print.
    case perPairMean
}

/// Why fusion metrics could not be computed.
public enum FusionMetricError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The fused image and the sources differ in size.
    case sizeMismatch(fused: String, infrared: String, visible: String)
    /// An image (`fused`, `infrared` or `visible`) holds NaN or infinite samples; the first is at
    /// (`x`, `y`).
    case nonFinite(image: String, count: Int, x: Int, y: Int)
    /// The images are smaller than the metric's window.
    case imageTooSmall(metric: FusionMetric, width: Int, height: Int, minimum: Int)

    public var description: String {
        switch self {
        case let .sizeMismatch(fused, infrared, visible):
            return "fused image (\(fused)), infrared (\(infrared)) and visible (\(visible)) sizes differ"
        case let .nonFinite(image, count, x, y):
            return "the \(image) image has \(count) NaN or infinite sample\(count == 1 ? "" : "s") (the first at x \(x), y \(y)): no metric is computed"
        case let .imageTooSmall(metric, width, height, minimum):
            return "\(metric.rawValue) needs images of at least \(minimum)x\(minimum) pixels, these are \(width)x\(height) (leave \(metric.rawValue) out of the metrics)"
        }
    }
}
