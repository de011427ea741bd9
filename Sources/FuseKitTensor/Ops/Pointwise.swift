import CFuseKitKernels

// Pointwise functions and activations. Each states its derivative once, as a function of its
// input x and output y written in tensor operations; the reverse rule (g · f') and the forward
// rule (t · f') are derived from it, so both stay differentiable.

extension Tensor {
    /// Records `self`, computed as f(x) of one input, with the derivative f'(x, y) stated once.
    /// `savesOutput` keeps y alive for derivatives that read it (exp, sigmoid, tanh, ...).
    public func recordedElementwise(_ op: String, of x: Tensor, savesOutput: Bool = false,
                             derivative: @escaping @Sendable (_ x: Tensor, _ y: Tensor) -> Tensor) -> Tensor {
        recorded(op: op, inputs: [x], savesOutput: savesOutput,
                 pullback: { g, y, _ in [g * derivative(x, y)] }, tangent: { t, y in t[0].map { $0 * derivative(x, y) } })
    }

    /// e^x.
    public func exp() -> Tensor {
        Tensor.mapRaw(self, Fn.Exp.self, native: { fk_exp($0, $1, $2) })
            .recordedElementwise("exp", of: self, savesOutput: true) { _, y in y }
    }

    /// Natural logarithm.
    public func log() -> Tensor {
        Tensor.mapRaw(self, Fn.Log.self).recordedElementwise("log", of: self) { x, _ in 1 / x }
    }

    /// Square root.
    public func sqrt() -> Tensor {
        Tensor.mapRaw(self, Fn.Sqrt.self).recordedElementwise("sqrt", of: self, savesOutput: true) { _, y in 0.5 / y }
    }

    /// 1 / sqrt(x).
    public func rsqrt() -> Tensor {
        Tensor.mapRaw(self, Fn.Rsqrt.self).recordedElementwise("rsqrt", of: self, savesOutput: true) { _, y in -0.5 * y * y * y }
    }

    /// |x|; the gradient at 0 is 0, as in PyTorch.
    public func abs() -> Tensor {
        if KinkPattern.isActive { return self * sign() }
        return Tensor.mapRaw(self, Fn.Abs.self).recordedElementwise("abs", of: self) { x, _ in x.sign() }
    }

    /// -1, 0 or 1 (not differentiable).
    public func sign() -> Tensor { KinkPattern.decision { Tensor.mapRaw(self.detached(), Fn.Sign.self) } }

    /// max(x, 0); the gradient at 0 is 0.
    public func relu() -> Tensor {
        if KinkPattern.isActive { return Tensor.masked(self, KinkPattern.decision { Tensor.mapRaw(self.detached(), Fn.PositiveMask.self) }) }
        return Tensor.mapRaw(self, Fn.Relu.self).recordedElementwise("relu", of: self) { x, _ in
            Tensor.mapRaw(x.detached(), Fn.PositiveMask.self)
        }
    }

    /// x for x > 0, slope * x otherwise.
    public func leakyRelu(slope: Float = 0.01) -> Tensor {
        if KinkPattern.isActive {
            return Tensor.select(KinkPattern.decision { Tensor.mapRaw(self.detached(), Fn.PositiveMask.self) }, self, self * slope)
        }
        let p = SIMD4<Float>(slope, 0, 0, 0)
        return Tensor.mapRaw(self, p, Fn.LeakyRelu.self).recordedElementwise("leakyRelu", of: self) { x, _ in
            Tensor.mapRaw(x.detached(), p, Fn.LeakyReluSlope.self)
        }
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
        Tensor.mapRaw(self, Fn.Gelu.self, native: { fk_gelu($0, $1, $2) })
            .recordedElementwise("gelu", of: self) { x, _ in x.geluDerivative() }
    }

    /// d/dx gelu(x) = Phi(x) + x phi(x), itself differentiable: its derivative is phi(x) (2 - x^2).
    public func geluDerivative() -> Tensor {
        Tensor.mapRaw(self, Fn.GeluDerivative.self, native: { fk_gelu_derivative($0, $1, $2) })
            .recordedElementwise("geluDerivative", of: self) { x, _ in (x * x * -0.5).exp() * 0.3989422804014327 * (2 - x * x) }
    }

    /// Error function.
    public func erf() -> Tensor {
        Tensor.mapRaw(self, Fn.Erf.self, native: { fk_erf($0, $1, $2) })
            .recordedElementwise("erf", of: self) { x, _ in (x * x * -1).exp() * 1.1283791670955126 }
    }

    /// Logistic sigmoid.
    public func sigmoid() -> Tensor {
        Tensor.mapRaw(self, Fn.Sigmoid.self).recordedElementwise("sigmoid", of: self, savesOutput: true) { _, y in y * (1 - y) }
    }

    /// Hyperbolic tangent.
    public func tanh() -> Tensor {
        Tensor.mapRaw(self, Fn.Tanh.self).recordedElementwise("tanh", of: self, savesOutput: true) { _, y in 1 - y * y }
    }

    /// SiLU (swish), x * sigmoid(x).
    public func silu() -> Tensor {
        Tensor.mapRaw(self, Fn.Silu.self).recordedElementwise("silu", of: self) { x, _ in
            let s = x.sigmoid()
            return s * (1 + x * (1 - s))
        }
    }

    /// log(1 + e^x), computed stably; its derivative is sigmoid(x).
    public func softplus() -> Tensor {
        Tensor.mapRaw(self, Fn.Softplus.self).recordedElementwise("softplus", of: self) { x, _ in x.sigmoid() }
    }
}
