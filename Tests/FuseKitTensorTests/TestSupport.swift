import FuseKitTensor
import Testing

/// Random tensor helpers for tests.
enum Random {
    static func normal(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        return Tensor.normal(shape, std: scale, using: &rng)
    }

    static func uniform(_ shape: [Int], seed: UInt64, _ low: Float, _ high: Float) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        return Tensor.uniform(shape, low: low, high: high, using: &rng)
    }

    /// Normal values pushed away from zero by at least `gap` (for ops with a kink at 0).
    static func awayFromZero(_ shape: [Int], seed: UInt64, gap: Float = 0.2) -> Tensor {
        let x = normal(shape, seed: seed)
        return Tensor(shape: shape, scalars: x.scalars.map { $0 >= 0 ? $0 + gap : $0 - gap })
    }
}

/// Asserts a gradient-check report passed, printing it otherwise.
func expectPasses(_ report: GradientCheck.Report, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(report.passed, "\(report)", sourceLocation: sourceLocation)
}

/// Asserts two tensors are equal within a tolerance.
func expectClose(_ a: Tensor, _ b: Tensor, tolerance: Float = 1e-5, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(a.shape == b.shape, "shapes \(a.shape) vs \(b.shape)", sourceLocation: sourceLocation)
    guard a.shape == b.shape else { return }
    var worst: Float = 0
    var at = 0
    let x = a.scalars, y = b.scalars
    for i in 0..<x.count {
        let d = Swift.abs(x[i] - y[i])
        if d > worst || d.isNaN { worst = d; at = i }
    }
    #expect(worst <= tolerance, "max difference \(worst) at \(at): \(x.isEmpty ? 0 : x[at]) vs \(y.isEmpty ? 0 : y[at])", sourceLocation: sourceLocation)
}
