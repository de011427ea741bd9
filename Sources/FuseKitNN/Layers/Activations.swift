import FuseKitTensor

/// Pointwise activation layers (no parameters, except PReLU).
public struct Activation: UnaryModule {
    /// The activation functions.
    public enum Kind: Sendable, Equatable {
        case identity, relu, gelu, silu, sigmoid, tanh
        case leakyRelu(slope: Float)
    }

    public let kind: Kind

    public init(_ kind: Kind) { self.kind = kind }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor { Activation.apply(kind, x) }

    /// Applies an activation function.
    public static func apply(_ kind: Kind, _ x: Tensor) -> Tensor {
        switch kind {
        case .identity: return x
        case .relu: return x.relu()
        case .gelu: return x.gelu()
        case .silu: return x.silu()
        case .sigmoid: return x.sigmoid()
        case .tanh: return x.tanh()
        case .leakyRelu(let slope): return x.leakyRelu(slope: slope)
        }
    }
}

/// PReLU with `count` learnable slopes (1 shared, or one per channel), initialised to `initial`.
public struct PReLU: UnaryModule {
    public let weight: ParameterSpec

    public init(count: Int = 1, initial: Float = 0.25) {
        weight = ParameterSpec("weight", [count], .constant(initial), decays: false)
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor { x.prelu(p[weight]) }
}

/// Dropout: in training, zeroes each element with probability `rate` and scales the rest by
/// 1 / (1 - rate); the identity in evaluation.
public struct Dropout: UnaryModule {
    public let rate: Float

    public init(_ rate: Float) {
        require(rate >= 0 && rate < 1, "Dropout: rate \(rate) must be in [0, 1)")
        self.rate = rate
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        guard p.isTraining && rate > 0 else { return x }
        let keep = Tensor.uniform(x.shape, using: &p.context.rng).greaterEqual(rate)
        return x * keep * (1 / (1 - rate))
    }
}

/// Stochastic depth: in training, drops a whole sample's residual branch with probability
/// `rate` (timm's `DropPath`, scaled by 1 / (1 - rate)); the identity in evaluation.
public struct DropPath: UnaryModule {
    public let rate: Float

    public init(_ rate: Float) {
        require(rate >= 0 && rate < 1, "DropPath: rate \(rate) must be in [0, 1)")
        self.rate = rate
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        guard p.isTraining && rate > 0 else { return x }
        let shape = [x.shape[0]] + [Int](repeating: 1, count: x.rank - 1)
        let keep = Tensor.uniform(shape, using: &p.context.rng).greaterEqual(rate)
        return x * keep * (1 / (1 - rate))
    }
}
