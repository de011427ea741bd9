// Broadcasting arithmetic and comparisons.

extension Tensor {
    /// Raw (unrecorded) broadcasting binary kernel.
    @inlinable
    static func zipRaw<F: BinaryVectorFunction>(_ a: Tensor, _ b: Tensor, _: F.Type, op: String) -> Tensor {
        let shape = a.shape == b.shape ? a.shape : Shape.broadcast(a.shape, b.shape, op: op).orDie()
        let out = Tensor(uninitializedShape: shape)
        Profiler.measure(op) {
            Kernels.broadcastZip(a.pointer, shapeA: a.shape, b.pointer, shapeB: b.shape, out.mutablePointer, outShape: shape, F.self)
        }
        return out
    }

    /// Raw (unrecorded) pointwise kernel.
    @inlinable
    static func mapRaw<F: UnaryVectorFunction>(_ x: Tensor, _: F.Type) -> Tensor {
        let out = Tensor(uninitializedShape: x.shape)
        Profiler.measure("pointwise \(F.self)") { Kernels.map(x.pointer, out.mutablePointer, count: x.count, F.self) }
        return out
    }

    /// Raw (unrecorded) parameterised pointwise kernel.
    @inlinable
    static func mapRaw<F: ParameterizedVectorFunction>(_ x: Tensor, _ p: SIMD4<Float>, _: F.Type) -> Tensor {
        let out = Tensor(uninitializedShape: x.shape)
        Profiler.measure("pointwise \(F.self)") { Kernels.map(x.pointer, out.mutablePointer, count: x.count, parameters: p, F.self) }
        return out
    }

    /// Sum of present tangents, broadcast to `shape` (nil when none is present).
    static func addTangents(_ a: Tensor?, _ b: Tensor?, shape: [Int]) -> Tensor? {
        switch (a, b) {
        case let (a?, b?): return (a + b).expanded(to: shape)
        case let (a?, nil): return a.expanded(to: shape)
        case let (nil, b?): return b.expanded(to: shape)
        case (nil, nil): return nil
        }
    }

    // MARK: add, subtract, multiply, divide

    /// Elementwise sum with broadcasting.
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        let (sa, sb) = (a.shape, b.shape)
        let y = zipRaw(a, b, Fn.Add.self, op: "add")
        return y.recorded(op: "add", inputs: [a, b], pullback: { g, _, need in
            [need[0] ? g.summed(toShape: sa) : nil, need[1] ? g.summed(toShape: sb) : nil]
        }, tangent: { t, y in addTangents(t[0], t[1], shape: y.shape) })
    }

    /// Elementwise difference with broadcasting.
    public static func - (a: Tensor, b: Tensor) -> Tensor {
        let (sa, sb) = (a.shape, b.shape)
        let y = zipRaw(a, b, Fn.Sub.self, op: "subtract")
        return y.recorded(op: "subtract", inputs: [a, b], pullback: { g, _, need in
            [need[0] ? g.summed(toShape: sa) : nil, need[1] ? (-g).summed(toShape: sb) : nil]
        }, tangent: { t, y in addTangents(t[0], t[1].map { -$0 }, shape: y.shape) })
    }

    /// Elementwise product with broadcasting.
    public static func * (a: Tensor, b: Tensor) -> Tensor {
        let y = zipRaw(a, b, Fn.Mul.self, op: "multiply")
        return y.recorded(op: "multiply", inputs: [a, b], pullback: { g, _, need in
            [need[0] ? (g * b).summed(toShape: a.shape) : nil, need[1] ? (g * a).summed(toShape: b.shape) : nil]
        }, tangent: { t, y in addTangents(t[0].map { $0 * b }, t[1].map { a * $0 }, shape: y.shape) })
    }

    /// Elementwise quotient with broadcasting.
    public static func / (a: Tensor, b: Tensor) -> Tensor {
        let y = zipRaw(a, b, Fn.Div.self, op: "divide")
        return y.recorded(op: "divide", inputs: [a, b], savesOutput: true, pullback: { g, y, need in
            let gOverB = g / b
            return [need[0] ? gOverB.summed(toShape: a.shape) : nil, need[1] ? (-gOverB * y).summed(toShape: b.shape) : nil]
        }, tangent: { t, y in
            switch (t[0], t[1]) {
            case let (ta?, tb?): return ((ta - tb * y) / b).expanded(to: y.shape)
            case let (ta?, nil): return (ta / b).expanded(to: y.shape)
            case let (nil, tb?): return (-(tb * y) / b).expanded(to: y.shape)
            case (nil, nil): return nil
            }
        })
    }

    /// Elementwise negation.
    public static prefix func - (x: Tensor) -> Tensor {
        mapRaw(x, Fn.Neg.self).recorded(op: "negate", inputs: [x], pullback: { g, _, _ in [-g] },
                                        tangent: { t, _ in t[0].map { -$0 } })
    }

    // Scalar forms broadcast a rank-0 constant.
    public static func + (a: Tensor, b: Float) -> Tensor { a + Tensor(b) }
    public static func + (a: Float, b: Tensor) -> Tensor { Tensor(a) + b }
    public static func - (a: Tensor, b: Float) -> Tensor { a - Tensor(b) }
    public static func - (a: Float, b: Tensor) -> Tensor { Tensor(a) - b }
    public static func * (a: Tensor, b: Float) -> Tensor { a * Tensor(b) }
    public static func * (a: Float, b: Tensor) -> Tensor { Tensor(a) * b }
    public static func / (a: Tensor, b: Float) -> Tensor { a * Tensor(1 / b) }
    public static func / (a: Float, b: Tensor) -> Tensor { Tensor(a) / b }

    public static func += (a: inout Tensor, b: Tensor) { a = a + b }
    public static func -= (a: inout Tensor, b: Tensor) { a = a - b }
    public static func *= (a: inout Tensor, b: Tensor) { a = a * b }
    public static func *= (a: inout Tensor, b: Float) { a = a * b }

    // MARK: maximum, minimum, where, clamp

    /// Elementwise maximum; on ties the gradient is split equally, as in PyTorch.
    public static func maximum(_ a: Tensor, _ b: Tensor) -> Tensor {
        let shareA = KinkPattern.decision { zipRaw(a, b, Fn.MaxShareA.self, op: "maximum") }
        if KinkPattern.isActive { return select(shareA, a, b) }
        let y = zipRaw(a, b, Fn.Maximum.self, op: "maximum")
        return y.recorded(op: "maximum", inputs: [a, b], pullback: { g, _, need in
            [need[0] ? (g * shareA).summed(toShape: a.shape) : nil,
             need[1] ? (g * (1 - shareA)).summed(toShape: b.shape) : nil]
        }, tangent: { t, y in addTangents(t[0].map { $0 * shareA }, t[1].map { $0 * (1 - shareA) }, shape: y.shape) })
    }

    /// Elementwise minimum; on ties the gradient is split equally, as in PyTorch.
    public static func minimum(_ a: Tensor, _ b: Tensor) -> Tensor {
        let shareA = KinkPattern.decision { zipRaw(a, b, Fn.MinShareA.self, op: "minimum") }
        if KinkPattern.isActive { return select(shareA, a, b) }
        let y = zipRaw(a, b, Fn.Minimum.self, op: "minimum")
        return y.recorded(op: "minimum", inputs: [a, b], pullback: { g, _, need in
            [need[0] ? (g * shareA).summed(toShape: a.shape) : nil,
             need[1] ? (g * (1 - shareA)).summed(toShape: b.shape) : nil]
        }, tangent: { t, y in addTangents(t[0].map { $0 * shareA }, t[1].map { $0 * (1 - shareA) }, shape: y.shape) })
    }

    /// `a` where `condition` is nonzero, else `b` (broadcasting all three; `torch.where`). The
    /// condition is not differentiated; the cotangent reaches only the chosen side. As in PyTorch,
    /// a rule upstream of the unchosen side that multiplies that zero by an infinite derivative
    /// still yields NaN: guard the argument (e.g. `select(c, safe, 1).sqrt()`), not the result.
    public static func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
        let mask = condition.detached()
        let shape = Shape.broadcast(Shape.broadcast(mask.shape, a.shape, op: "select").orDie(), b.shape, op: "select").orDie()
        let pickA = zipRaw(a.detached().expanded(to: shape), mask, Fn.MaskBy.self, op: "select")
        let notMask = 1 - mask.expanded(to: shape).detached()
        let pickB = zipRaw(b.detached().expanded(to: shape), notMask, Fn.MaskBy.self, op: "select")
        let y = withoutGradient { pickA + pickB }
        return y.recorded(op: "select", inputs: [a, b], pullback: { g, _, need in
            [need[0] ? masked(g, mask).summed(toShape: a.shape) : nil,
             need[1] ? masked(g, notMask).summed(toShape: b.shape) : nil]
        }, tangent: { t, y in
            addTangents(t[0].map { masked($0.expanded(to: y.shape), mask) }, t[1].map { masked($0.expanded(to: y.shape), notMask) }, shape: y.shape)
        })
    }

    /// `x` where `mask` is nonzero, else 0; differentiable in `x` only (NaN-safe, unlike x * mask).
    public static func masked(_ x: Tensor, _ mask: Tensor) -> Tensor {
        let m = mask.detached()
        let y = zipRaw(x, m, Fn.MaskBy.self, op: "masked")
        return y.recorded(op: "masked", inputs: [x], pullback: { g, _, _ in [masked(g, m).summed(toShape: x.shape)] },
                          tangent: { t, y in t[0].map { masked($0, m).expanded(to: y.shape) } })
    }

    /// Values limited to `[lower, upper]`; the gradient passes where lower <= x <= upper.
    public func clamped(min lower: Float = -.infinity, max upper: Float = .infinity) -> Tensor {
        let p = SIMD4<Float>(lower, upper, 0, 0)
        if KinkPattern.isActive {
            // 0 below the range, 1 in it, 2 above.
            let region = KinkPattern.decision {
                Tensor.mapRaw(self.detached(), p, Fn.InRange.self) + Tensor.zipRaw(self.detached(), Tensor(upper), Fn.Greater.self, op: "clamp") * 2
            }
            let outside = Tensor.select(Tensor.zipRaw(region, Tensor(2), Fn.Equal.self, op: "clamp"), Tensor(upper), Tensor(lower))
            return Tensor.select(Tensor.zipRaw(region, Tensor(1), Fn.Equal.self, op: "clamp"), self, outside)
        }
        let y = Tensor.mapRaw(self, p, Fn.Clamp.self)
        let x = self
        return y.recorded(op: "clamp", inputs: [x], pullback: { g, _, _ in
            [Tensor.masked(g, Tensor.mapRaw(x.detached(), p, Fn.InRange.self))]
        }, tangent: { t, _ in t[0].map { Tensor.masked($0, Tensor.mapRaw(x.detached(), p, Fn.InRange.self)) } })
    }

    // MARK: comparisons (not differentiable; 1 where true, 0 elsewhere)

    public func greater(_ other: Tensor) -> Tensor { KinkPattern.decision { Tensor.zipRaw(self, other, Fn.Greater.self, op: "greater") } }
    public func greaterEqual(_ other: Tensor) -> Tensor { KinkPattern.decision { Tensor.zipRaw(self, other, Fn.GreaterEqual.self, op: "greaterEqual") } }
    public func less(_ other: Tensor) -> Tensor { KinkPattern.decision { Tensor.zipRaw(self, other, Fn.Less.self, op: "less") } }
    public func lessEqual(_ other: Tensor) -> Tensor { KinkPattern.decision { Tensor.zipRaw(self, other, Fn.LessEqual.self, op: "lessEqual") } }
    public func equal(_ other: Tensor) -> Tensor { KinkPattern.decision { Tensor.zipRaw(self, other, Fn.Equal.self, op: "equal") } }
    public func notEqual(_ other: Tensor) -> Tensor { KinkPattern.decision { Tensor.zipRaw(self, other, Fn.NotEqual.self, op: "notEqual") } }
    public func greater(_ value: Float) -> Tensor { greater(Tensor(value)) }
    public func greaterEqual(_ value: Float) -> Tensor { greaterEqual(Tensor(value)) }
    public func less(_ value: Float) -> Tensor { less(Tensor(value)) }
    public func lessEqual(_ value: Float) -> Tensor { lessEqual(Tensor(value)) }
    public func equal(_ value: Float) -> Tensor { equal(Tensor(value)) }
    public func notEqual(_ value: Float) -> Tensor { notEqual(Tensor(value)) }

    // MARK: powers

    /// x^exponent for a constant exponent.
    public func pow(_ exponent: Float) -> Tensor {
        let x = self
        let y = Tensor.mapRaw(x, SIMD4(exponent, 0, 0, 0), Fn.PowScalar.self)
        return y.recorded(op: "pow", inputs: [x], pullback: { g, _, _ in
            [exponent == 0 ? Tensor.zeros(x.shape) : g * exponent * x.pow(exponent - 1)]
        }, tangent: { t, _ in t[0].map { exponent == 0 ? Tensor.zeros(x.shape) : $0 * exponent * x.pow(exponent - 1) } })
    }

    /// x^y elementwise for positive bases (computed as exp(y log x)).
    public func pow(_ exponent: Tensor) -> Tensor {
        ((exponent * self.log())).exp()
    }

    /// x * x.
    public func squared() -> Tensor { self * self }
}
