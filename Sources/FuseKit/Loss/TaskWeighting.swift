import Foundation
import FuseKitNN
import FuseKitTensor

/// How a stage weighs its loss groups (a group is the sum of its terms, e.g. `fusion` and `task`):
/// total = Σ_g λ_g · f(L_g), with f the α-fair transform when set, else the identity.
public struct TaskWeighting: Sendable, Equatable {
    public enum Method: Sendable, Equatable {
        /// λ = 1 for every group.
        case fixed
        /// Dynamic Weight Average (Liu et al., MTAN): λ_k(t) = K exp(w_k / T) / Σ_i exp(w_i / T),
        /// w_k = L_k(t-1) / L_k(t-2) from the raw group losses of the two previous steps; λ = 1 for
        /// the first two steps.
        case dynamicWeightAverage(temperature: Double)
        /// Uncertainty weighting (Kendall et al.) with learned log-variances s_g:
        /// Σ_g exp(-s_g) f(L_g) + s_g.
        case uncertainty
    }

    public var method: Method
    /// α of the α-fair transform L -> L^(1-α) / (1-α) (MAFS: 0.8), or nil for none.
    public var alphaFair: Double?

    public init(method: Method = .fixed, alphaFair: Double? = nil) {
        self.method = method
        self.alphaFair = alphaFair
    }

    /// The α-fair transform of a group loss.
    public func transform(_ loss: Tensor) -> Tensor {
        guard let alpha = alphaFair else { return loss }
        let exponent = Float(1 - alpha)
        return loss.clamped(min: 1e-12).pow(exponent) * (1 / exponent)
    }

    /// The weights λ_g of the next step from the raw group losses of earlier steps (oldest first).
    public func dynamicWeights(groups: [String], history: [[String: Double]]) -> [String: Double] {
        guard case .dynamicWeightAverage(let temperature) = method, history.count >= 2 else {
            return Dictionary(uniqueKeysWithValues: groups.map { ($0, 1) })
        }
        let last = history[history.count - 1], before = history[history.count - 2]
        let ratios = groups.map { g -> Double in
            let previous = before[g] ?? 1
            return (last[g] ?? 1) / (previous == 0 ? 1 : previous)
        }
        let exps = ratios.map { Foundation.exp($0 / temperature) }
        let sum = exps.reduce(0, +)
        return Dictionary(uniqueKeysWithValues: zip(groups, exps.map { Double(groups.count) * $0 / sum }))
    }

    /// The total loss of one step and the weight each group got (exp(-s_g) for uncertainty).
    /// `logVariances` are the learned s_g (uncertainty weighting only).
    public func combine(_ groupLosses: [String: Tensor], history: [[String: Double]],
                        logVariances: [String: Tensor] = [:]) -> (total: Tensor, weights: [String: Double]) {
        let groups = groupLosses.keys.sorted()
        switch method {
        case .fixed, .dynamicWeightAverage:
            let lambda = dynamicWeights(groups: groups, history: history)
            let total = groups.map { transform(groupLosses[$0]!) * Float(lambda[$0]!) }.reduce(Tensor(0), +)
            return (total, lambda)
        case .uncertainty:
            var total = Tensor(0)
            var weights: [String: Double] = [:]
            for g in groups {
                guard let s = logVariances[g] else { preconditionFailure("no log-variance for loss group '\(g)'") }
                total = total + (-s).exp() * transform(groupLosses[g]!) + s
                weights[g] = Foundation.exp(-Double(s.item))
            }
            return (total, weights)
        }
    }
}

/// The learned log-variances of uncertainty weighting, one scalar per loss group, trained like a
/// model of the stage (role `task-weighting`).
public struct UncertaintyWeights: Module {
    public let groups: [String]
    public let logVariances: [ParameterSpec]

    public init(groups: [String]) {
        self.groups = groups
        logVariances = groups.map { ParameterSpec("log_variance_\($0)", [], .constant(0), decays: false) }
    }

    /// s_g of each group.
    public func values(_ p: Scope) -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: zip(groups, logVariances.map { p[$0] }))
    }
}
