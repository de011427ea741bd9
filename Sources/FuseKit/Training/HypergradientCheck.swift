import FuseKitNN
import FuseKitTensor

/// Checks a meta step's exact hypergradient against central finite differences of the
/// end-to-end meta objective J(θ_G) = L_t(T'(F(x'; θ_F − η ∇_θF L_f(θ_F, w(θ_G))))).
///
/// J is evaluated in Float32, so the check needs a configuration in which J visibly depends on
/// θ_G: a large inner step η and gains on G's output and T's weights (the identity holds for any
/// η). Directional derivatives are compared along the hypergradient itself (plain relative
/// error) and along random directions (error relative to ‖∇J‖ ‖d‖, as gradient checkers do).
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

    /// Runs the check on a problem whose T' is fixed.
    public static func run(_ problem: MetaStepProblem, randomDirections: Int = 3, gradientStep: Float = 0.005,
                           randomStep: Float = 0.02, seed: UInt64 = 11) -> Report {
        let hypergradient = problem.exactHypergradient().hypergradient
        var rng = RandomGenerator(seed: seed)
        let theta = problem.generatorState.parameters
        let keys = theta.keys.sorted()
        let count = keys.reduce(0) { $0 + theta[$1]!.count }
        func dot(_ a: [String: Tensor], _ b: [String: Tensor]) -> Double { keys.reduce(0.0) { $0 + Double((a[$1]! * b[$1]!).sum().item) } }
        let gradientNorm = dot(hypergradient, hypergradient).squareRoot()
        let thetaRMS = (dot(theta, theta) / Double(count)).squareRoot()
        var derivatives: [(Double, Double)] = []
        func derivative(along d: [String: Tensor], eps: Float) -> (Double, Double) {
            func j(_ t: Float) -> Double { Double(problem.metaObjective(theta.merging(d) { $0 + t * $1 })) }
            let coarse = (j(eps) - j(-eps)) / (2 * Double(eps))
            let fine = (j(eps / 2) - j(-eps / 2)) / Double(eps)
            let result = (dot(hypergradient, d), (4 * fine - coarse) / 3)
            derivatives.append(result)
            return result
        }
        guard gradientNorm > 0 else {
            return Report(alongGradient: .infinity, randomDirections: [], derivatives: [])
        }
        // Directions scaled so that a unit step moves θ_G by about its own RMS size.
        let scale = Float(thetaRMS * Double(count).squareRoot() / gradientNorm)
        let along = derivative(along: hypergradient.mapValues { $0 * scale }, eps: gradientStep)
        let alongError = Swift.abs(along.0 - along.1) / Swift.max(Swift.abs(along.1), 1e-30)
        var randomErrors: [Double] = []
        for _ in 0..<randomDirections {
            var d: [String: Tensor] = [:]
            for key in keys { d[key] = Tensor.normal(theta[key]!.shape, std: Float(thetaRMS), using: &rng) }
            let r = derivative(along: d, eps: randomStep)
            randomErrors.append(Swift.abs(r.0 - r.1) / (gradientNorm * dot(d, d).squareRoot()))
        }
        return Report(alongGradient: alongError, randomDirections: randomErrors, derivatives: derivatives)
    }
}
