import CFuseKitKernels

// Pointwise functions and activations, each with reverse and forward rules in tensor operations.

extension Tensor {
    /// e^x.
    public func exp() -> Tensor {
        Tensor.mapRaw(self, Fn.Exp.self, native: { fk_exp($0, $1, $2) }).recorded(op: "exp", inputs: [self], savesOutput: true,
            pullback: { g, y, _ in [g * y] }, tangent: { t, y in t[0].map { $0 * y } })
    }

    /// Natural logarithm.
    public func log() -> Tensor {
        let x = self
        return Tensor.mapRaw(x, Fn.Log.self).recorded(op: "log", inputs: [x],
            pullback: { g, _, _ in [g / x] }, tangent: { t, _ in t[0].map { $0 / x } })
    }

    /// Square root.
    public func sqrt() -> Tensor {
        Tensor.mapRaw(self, Fn.Sqrt.self).recorded(op: "sqrt", inputs: [self], savesOutput: true,
            pullback: { g, y, _ in [g * 0.5 / y] }, tangent: { t, y in t[0].map { $0 * 0.5 / y } })
    }

    /// 1 / sqrt(x).
    public func rsqrt() -> Tensor {
        Tensor.mapRaw(self, Fn.Rsqrt.self).recorded(op: "rsqrt", inputs: [self], savesOutput: true,
            pullback: { g, y, _ in [g * -0.5 * y * y * y] }, tangent: { t, y in t[0].map { $0 * -0.5 * y * y * y } })
    }

    /// |x|; the gradient at 0 is 0, as in PyTorch.
    public func abs() -> Tensor {
        let x = self
        return Tensor.mapRaw(x, Fn.Abs.self).recorded(op: "abs", inputs: [x],
            pullback: { g, _, _ in [g * x.sign()] }, tangent: { t, _ in t[0].map { $0 * x.sign() } })
    }

    /// -1, 0 or 1 (not differentiable).
    public func sign() -> Tensor { Tensor.mapRaw(self.detached(), Fn.Sign.self) }

    /// max(x, 0); the gradient at 0 is 0.
    public func relu() -> Tensor {
        let x = self
        return Tensor.mapRaw(x, Fn.Relu.self).recorded(op: "relu", inputs: [x], pullback: { g, _, _ in
            [Tensor.masked(g, Tensor.mapRaw(x.detached(), Fn.PositiveMask.self))]
        }, tangent: { t, _ in t[0].map { Tensor.masked($0, Tensor.mapRaw(x.detached(), Fn.PositiveMask.self)) } })
    }

    /// x for x > 0, slope * x otherwise.
    public func leakyRelu(slope: Float = 0.01) -> Tensor {
        let x = self
        let p = SIMD4<Float>(slope, 0, 0, 0)
        return Tensor.mapRaw(x, p, Fn.LeakyRelu.self).recorded(op: "leakyRelu", inputs: [x], pullback: { g, _, _ in
            [g * Tensor.mapRaw(x.detached(), p, Fn.LeakyReluSlope.self)]
        }, tangent: { t, _ in t[0].map { $0 * Tensor.mapRaw(x.detached(), p, Fn.LeakyReluSlope.self) } })
    }

    /// PReLU: x for x >= 0, weight * x otherwise; `weight` has one value or one per channel (axis 1).
    public func prelu(_ weight: Tensor) -> Tensor {
        let w: Tensor
        if weight.count == 1 || rank < 2 {
            w = weight.reshaped([])
        } else {
            require(weight.count == shape[1], "prelu: \(weight.count) weights for \(shape[1]) channels of shape \(Shape.describe(shape))")
            w = weight.reshaped([weight.count] + [Int](repeating: 1, count: rank - 2))
        }
        let negativePart = Tensor.minimum(self, Tensor(0))
        return self.relu() + w * negativePart
    }

    /// Exact GELU, x * Phi(x) with the erf form (PyTorch's default).
    public func gelu() -> Tensor {
        let x = self
        return Tensor.mapRaw(x, Fn.Gelu.self, native: { fk_gelu($0, $1, $2) }).recorded(op: "gelu", inputs: [x], pullback: { g, _, _ in
            [g * x.geluDerivative()]
        }, tangent: { t, _ in t[0].map { $0 * x.geluDerivative() } })
    }

    /// d/dx gelu(x) = Phi(x) + x phi(x), itself differentiable: its derivative is phi(x) (2 - x^2).
    public func geluDerivative() -> Tensor {
        let x = self
        let second: @Sendable (Tensor) -> Tensor = { x in (x * x * -0.5).exp() * 0.3989422804014327 * (2 - x * x) }
        return Tensor.mapRaw(x, Fn.GeluDerivative.self, native: { fk_gelu_derivative($0, $1, $2) }).recorded(op: "geluDerivative", inputs: [x],
            pullback: { g, _, _ in [g * second(x)] }, tangent: { t, _ in t[0].map { $0 * second(x) } })
    }

    /// Error function.
    public func erf() -> Tensor {
        let x = self
        let derivative: @Sendable (Tensor) -> Tensor = { x in (x * x * -1).exp() * 1.1283791670955126 }
        return Tensor.mapRaw(x, Fn.Erf.self, native: { fk_erf($0, $1, $2) }).recorded(op: "erf", inputs: [x],
            pullback: { g, _, _ in [g * derivative(x)] }, tangent: { t, _ in t[0].map { $0 * derivative(x) } })
    }

    /// Logistic sigmoid.
    public func sigmoid() -> Tensor {
        Tensor.mapRaw(self, Fn.Sigmoid.self).recorded(op: "sigmoid", inputs: [self], savesOutput: true,
            pullback: { g, y, _ in [g * y * (1 - y)] }, tangent: { t, y in t[0].map { $0 * y * (1 - y) } })
    }

    /// Hyperbolic tangent.
    public func tanh() -> Tensor {
        Tensor.mapRaw(self, Fn.Tanh.self).recorded(op: "tanh", inputs: [self], savesOutput: true,
            pullback: { g, y, _ in [g * (1 - y * y)] }, tangent: { t, y in t[0].map { $0 * (1 - y * y) } })
    }

    /// SiLU (swish), x * sigmoid(x).
    public func silu() -> Tensor {
        let x = self
        let derivative: @Sendable (Tensor) -> Tensor = { x in
            let s = x.sigmoid()
            return s * (1 + x * (1 - s))
        }
        return Tensor.mapRaw(x, Fn.Silu.self).recorded(op: "silu", inputs: [x],
            pullback: { g, _, _ in [g * derivative(x)] }, tangent: { t, _ in t[0].map { $0 * derivative(x) } })
    }

    /// log(1 + e^x), computed stably; its derivative is sigmoid(x).
    public func softplus() -> Tensor {
        let x = self
        return Tensor.mapRaw(x, Fn.Softplus.self).recorded(op: "softplus", inputs: [x],
            pullback: { g, _, _ in [g * x.sigmoid()] }, tangent: { t, _ in t[0].map { $0 * x.sigmoid() } })
    }
}
