import FuseKitNN
import FuseKitTensor

/// Checks a meta step's exact hypergradient against central finite differences of the
/// end-to-end meta objective J(θ_G) = L_t(T'(F(x'; θ_F − η ∇_θF L_f(θ_F, w(θ_G))))).
///
/// J is evaluated in Float32, so the check needs a configuration in which J visibly depends on
/// θ_G: a large inner step η and gains on G's output and T's weights (the identity holds for any
/// η). Directional derivatives are compared along the hypergradient itself (plain relative
/// error) and along random directions (error relative to ‖∇J‖ ‖d‖, as gradient checkers do); the
/// numerical slope is that of a cubic fitted through nine samples of J on [−ε, ε].
public enum HypergradientCheck {
    /// The measured errors.
    public struct Report: Sendable, CustomStringConvertible {
        /// Relative error along the hypergradient.
        public var alongGradient: Double
        /// Errors along random directions, relative to ‖∇J‖ ‖d‖.
        public var randomDirections: [Double]
        /// (analytic, finite-difference) directional derivatives, along ∇J first.
        public var derivatives: [(Double, Double)]

        /// The worst error.
        public var worst: Double { ([alongGradient] + randomDirections).max()! }
        /// Whether every error is below 1e-2.
        public var passed: Bool { worst < 1e-2 }

        public var description: String {
            let pairs = derivatives.map { "analytic \($0.0) vs finite differences \($0.1)" }.joined(separator: "; ")
            return "hypergradient: \(passed ? "ok" : "FAILED") (worst relative error \(worst)); \(pairs)"
        }
    }

    /// The slope at 0 of the least-squares cubic through the points: central differences that
    /// average out Float32 noise in J (nine samples) while absorbing its curvature.
    static func slope(_ points: [(Double, Double)]) -> Double {
        // Normal equations of y = c0 + c1 t + c2 t² + c3 t³.
        var a = [[Double]](repeating: [Double](repeating: 0, count: 5), count: 4)
        for (t, y) in points {
            let powers = [1, t, t * t, t * t * t]
            for r in 0..<4 {
                for c in 0..<4 { a[r][c] += powers[r] * powers[c] }
                a[r][4] += powers[r] * y
            }
        }
        for col in 0..<4 {
            let pivot = (col..<4).max { Swift.abs(a[$0][col]) < Swift.abs(a[$1][col]) }!
            a.swapAt(col, pivot)
            for r in 0..<4 where r != col {
                let factor = a[r][col] / a[col][col]
                for c in col...4 { a[r][c] -= factor * a[col][c] }
            }
        }
        return a[1][4] / a[1][1]
    }

    /// Runs the check on a problem whose T' is fixed.
    ///
    /// Each direction is differentiated at every step in `gradientSteps` (or `randomSteps`) and
    /// the closest estimate counts: small steps avoid the kinks of ReLU-like units, large ones
    /// rise above the rounding noise of large losses, and a wrong hypergradient disagrees at all.
    public static func run(_ problem: MetaStepProblem, randomDirections: Int = 3, gradientSteps: [Float] = [0.001, 0.005],
                           randomSteps: [Float] = [0.02, 0.1], seed: UInt64 = 11) -> Report {
        let hypergradient = problem.exactHypergradient().hypergradient
        var rng = RandomGenerator(seed: seed)
        let theta = problem.generatorState.parameters
        let keys = theta.keys.sorted()
        let count = keys.reduce(0) { $0 + theta[$1]!.count }
        func dot(_ a: [String: Tensor], _ b: [String: Tensor]) -> Double { keys.reduce(0.0) { $0 + Double((a[$1]! * b[$1]!).sum().item) } }
        let gradientNorm = dot(hypergradient, hypergradient).squareRoot()
        let thetaRMS = (dot(theta, theta) / Double(count)).squareRoot()
        var derivatives: [(Double, Double)] = []
        func derivative(along d: [String: Tensor], steps: [Float]) -> (Double, Double) {
            func j(_ t: Float) -> Double { Double(problem.metaObjective(theta.merging(d) { $0 + t * $1 })) }
            let points = (-4...4).map { Double($0) / 4 }
            let analytic = dot(hypergradient, d)
            let estimates = steps.map { eps in slope(points.map { ($0, j(Float($0) * eps)) }) / Double(eps) }
            let result = (analytic, estimates.min { Swift.abs($0 - analytic) < Swift.abs($1 - analytic) }!)
            derivatives.append(result)
            return result
        }
        guard gradientNorm > 0 else {
            return Report(alongGradient: .infinity, randomDirections: [], derivatives: [])
        }
        // Directions scaled so that a unit step moves θ_G by about its own RMS size.
        let scale = Float(thetaRMS * Double(count).squareRoot() / gradientNorm)
        let along = derivative(along: hypergradient.mapValues { $0 * scale }, steps: gradientSteps)
        let alongError = Swift.abs(along.0 - along.1) / Swift.max(Swift.abs(along.1), 1e-30)
        var randomErrors: [Double] = []
        for _ in 0..<randomDirections {
            var d: [String: Tensor] = [:]
            for key in keys { d[key] = Tensor.normal(theta[key]!.shape, std: Float(thetaRMS), using: &rng) }
            let r = derivative(along: d, steps: randomSteps)
            randomErrors.append(Swift.abs(r.0 - r.1) / (gradientNorm * dot(d, d).squareRoot()))
        }
        return Report(alongGradient: alongError, randomDirections: randomErrors, derivatives: derivatives)
    }
}
