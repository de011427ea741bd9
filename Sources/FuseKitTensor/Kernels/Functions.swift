// Pointwise functions that specialise the elementwise kernels. Each is an empty enum so the
// generic kernels are specialised and inlined per function.

public typealias V8 = SIMD8<Float>

/// A pointwise function with up to four runtime parameters (a slope, bounds, an exponent).
public protocol ParameterizedVectorFunction {
    static func apply(_ x: V8, _ p: SIMD4<Float>) -> V8
}

extension Kernels {
    /// y[i] = F(x[i]; p).
    @inlinable
    public static func map<F: ParameterizedVectorFunction>(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int,
                                                           parameters p: SIMD4<Float>, _: F.Type) {
        let src = SendablePointer(UnsafeMutablePointer(mutating: x))
        let dst = SendablePointer(y)
        Parallel.forRanges(count) { r in
            var i = r.lowerBound
            while i + 8 <= r.upperBound {
                store(F.apply(load(src.base + i), p), dst.base + i)
                i += 8
            }
            if i < r.upperBound {
                storePartial(F.apply(loadPartial(src.base + i, r.upperBound - i), p), dst.base + i, r.upperBound - i)
            }
        }
    }
}

@usableFromInline enum Fn {
    // Binary.
    @usableFromInline enum Add: BinaryVectorFunction { @inlinable static func apply(_ a: V8, _ b: V8) -> V8 { a + b } }
    @usableFromInline enum Sub: BinaryVectorFunction { @inlinable static func apply(_ a: V8, _ b: V8) -> V8 { a - b } }
    @usableFromInline enum Mul: BinaryVectorFunction { @inlinable static func apply(_ a: V8, _ b: V8) -> V8 { a * b } }
    @usableFromInline enum Div: BinaryVectorFunction { @inlinable static func apply(_ a: V8, _ b: V8) -> V8 { a / b } }
    @usableFromInline enum Maximum: BinaryVectorFunction {
        @inlinable static func apply(_ a: V8, _ b: V8) -> V8 { Kernels.pointwiseMaxNaN(a, b).replacing(with: a, where: a .!= a) }
    }
    @usableFromInline enum Minimum: BinaryVectorFunction {
        @inlinable static func apply(_ a: V8, _ b: V8) -> V8 { Kernels.pointwiseMinNaN(a, b).replacing(with: a, where: a .!= a) }
    }
    /// Weight of `a` in the gradient of maximum(a, b): 1 where a > b, 1/2 on ties, else 0 (as PyTorch).
    @usableFromInline enum MaxShareA: BinaryVectorFunction {
        @inlinable static func apply(_ a: V8, _ b: V8) -> V8 {
            V8(repeating: 0).replacing(with: 1, where: a .> b).replacing(with: 0.5, where: a .== b)
        }
    }
    @usableFromInline enum MinShareA: BinaryVectorFunction {
        @inlinable static func apply(_ a: V8, _ b: V8) -> V8 {
            V8(repeating: 0).replacing(with: 1, where: a .< b).replacing(with: 0.5, where: a .== b)
        }
    }
    @usableFromInline enum Greater: BinaryVectorFunction { @inlinable static func apply(_ a: V8, _ b: V8) -> V8 { V8(repeating: 0).replacing(with: 1, where: a .> b) } }
    @usableFromInline enum GreaterEqual: BinaryVectorFunction { @inlinable static func apply(_ a: V8, _ b: V8) -> V8 { V8(repeating: 0).replacing(with: 1, where: a .>= b) } }
    @usableFromInline enum Less: BinaryVectorFunction { @inlinable static func apply(_ a: V8, _ b: V8) -> V8 { V8(repeating: 0).replacing(with: 1, where: a .< b) } }
    @usableFromInline enum LessEqual: BinaryVectorFunction { @inlinable static func apply(_ a: V8, _ b: V8) -> V8 { V8(repeating: 0).replacing(with: 1, where: a .<= b) } }
    @usableFromInline enum Equal: BinaryVectorFunction { @inlinable static func apply(_ a: V8, _ b: V8) -> V8 { V8(repeating: 0).replacing(with: 1, where: a .== b) } }
    @usableFromInline enum NotEqual: BinaryVectorFunction { @inlinable static func apply(_ a: V8, _ b: V8) -> V8 { V8(repeating: 0).replacing(with: 1, where: a .!= b) } }
    /// a where a's mask (b) is nonzero, else 0: `select(mask, x)` building block.
    @usableFromInline enum MaskBy: BinaryVectorFunction { @inlinable static func apply(_ a: V8, _ b: V8) -> V8 { V8(repeating: 0).replacing(with: a, where: b .!= 0) } }

    // Unary.
    @usableFromInline enum Neg: UnaryVectorFunction { @inlinable static func apply(_ x: V8) -> V8 { -x } }
    @usableFromInline enum Exp: UnaryVectorFunction { @inlinable static func apply(_ x: V8) -> V8 { VectorMath.exp(x) } }
    @usableFromInline enum Log: UnaryVectorFunction { @inlinable static func apply(_ x: V8) -> V8 { VectorMath.log(x) } }
    @usableFromInline enum Sqrt: UnaryVectorFunction { @inlinable static func apply(_ x: V8) -> V8 { x.squareRoot() } }
    @usableFromInline enum Rsqrt: UnaryVectorFunction { @inlinable static func apply(_ x: V8) -> V8 { 1 / x.squareRoot() } }
    @usableFromInline enum Abs: UnaryVectorFunction { @inlinable static func apply(_ x: V8) -> V8 { VectorMath.abs(x) } }
    @usableFromInline enum Sign: UnaryVectorFunction {
        @inlinable static func apply(_ x: V8) -> V8 {
            V8(repeating: 0).replacing(with: 1, where: x .> 0).replacing(with: -1, where: x .< 0).replacing(with: x, where: x .!= x)
        }
    }
    @usableFromInline enum Relu: UnaryVectorFunction {
        @inlinable static func apply(_ x: V8) -> V8 { x.replacing(with: 0, where: x .<= 0).replacing(with: x, where: x .!= x) }
    }
    @usableFromInline enum PositiveMask: UnaryVectorFunction {
        @inlinable static func apply(_ x: V8) -> V8 { V8(repeating: 0).replacing(with: 1, where: x .> 0) }
    }
    @usableFromInline enum Sigmoid: UnaryVectorFunction { @inlinable static func apply(_ x: V8) -> V8 { VectorMath.sigmoid(x) } }
    @usableFromInline enum Tanh: UnaryVectorFunction { @inlinable static func apply(_ x: V8) -> V8 { VectorMath.tanh(x) } }
    @usableFromInline enum Erf: UnaryVectorFunction { @inlinable static func apply(_ x: V8) -> V8 { VectorMath.erf(x) } }
    /// x * Phi(x), the exact (erf) GELU.
    @usableFromInline enum Gelu: UnaryVectorFunction {
        @inlinable static func apply(_ x: V8) -> V8 { x * 0.5 * (1 + VectorMath.erf(x * 0.70710678118654752)) }
    }
    /// d/dx of x * Phi(x) = Phi(x) + x * phi(x).
    @usableFromInline enum GeluDerivative: UnaryVectorFunction {
        @inlinable static func apply(_ x: V8) -> V8 {
            let cdf = 0.5 * (1 + VectorMath.erf(x * 0.70710678118654752))
            let pdf = VectorMath.exp(x * x * -0.5) * 0.39894228040143268
            return cdf + x * pdf
        }
    }
    /// log(1 + e^x), stable for all x.
    @usableFromInline enum Softplus: UnaryVectorFunction {
        @inlinable static func apply(_ x: V8) -> V8 {
            let positive = x.replacing(with: 0, where: x .< 0)
            let t = VectorMath.exp(-VectorMath.abs(x))
            // log1p(t) for t in (0, 1]: log(1 + t) with the rounding of (1 + t) compensated.
            let u = 1 + t
            let log1p = VectorMath.log(u) * (t / (u - 1)).replacing(with: 1, where: u .== 1)
            return positive + log1p.replacing(with: t, where: u .== 1)
        }
    }
    /// gelu(a) · b.
    @usableFromInline enum GeluGate: BinaryVectorFunction {
        @inlinable static func apply(_ a: V8, _ b: V8) -> V8 { Gelu.apply(a) * b }
    }
    /// x * sigmoid(x).
    @usableFromInline enum Silu: UnaryVectorFunction { @inlinable static func apply(_ x: V8) -> V8 { x * VectorMath.sigmoid(x) } }

    // Parameterised.
    /// p.x = negative slope.
    @usableFromInline enum LeakyRelu: ParameterizedVectorFunction {
        @inlinable static func apply(_ x: V8, _ p: SIMD4<Float>) -> V8 { x.replacing(with: x * p.x, where: x .<= 0) }
    }
    @usableFromInline enum LeakyReluSlope: ParameterizedVectorFunction {
        @inlinable static func apply(_ x: V8, _ p: SIMD4<Float>) -> V8 { V8(repeating: 1).replacing(with: V8(repeating: p.x), where: x .<= 0) }
    }
    /// p.x = lower bound, p.y = upper bound.
    @usableFromInline enum Clamp: ParameterizedVectorFunction {
        @inlinable static func apply(_ x: V8, _ p: SIMD4<Float>) -> V8 {
            x.replacing(with: V8(repeating: p.x), where: x .< p.x).replacing(with: V8(repeating: p.y), where: x .> p.y)
        }
    }
    /// 1 where p.x <= x <= p.y.
    @usableFromInline enum InRange: ParameterizedVectorFunction {
        @inlinable static func apply(_ x: V8, _ p: SIMD4<Float>) -> V8 {
            V8(repeating: 0).replacing(with: 1, where: (x .>= p.x) .& (x .<= p.y))
        }
    }
    /// x^p.x for a constant exponent; negative bases allowed for integer exponents (as pow()).
    @usableFromInline enum PowScalar: ParameterizedVectorFunction {
        @inlinable static func apply(_ x: V8, _ p: SIMD4<Float>) -> V8 {
            let e = p.x
            if e == 2 { return x * x }
            if e == 1 { return x }
            if e == 0 { return V8(repeating: 1) }
            if e == 3 { return x * x * x }
            if e == 0.5 { return x.squareRoot() }
            if e == -1 { return 1 / x }
            let magnitude = VectorMath.exp(VectorMath.log(VectorMath.abs(x)) * e)
            let isInteger = e.rounded() == e && abs(e) < 16_777_216
            if !isInteger {
                let nonNegative = magnitude.replacing(with: V8(repeating: .nan), where: x .< 0)
                return e > 0 ? nonNegative.replacing(with: 0, where: x .== 0) : nonNegative
            }
            let odd = Int(e) % 2 != 0
            var result = odd ? magnitude.replacing(with: -magnitude, where: x .< 0) : magnitude
            result.replace(with: V8(repeating: e > 0 ? 0 : Float.infinity), where: x .== 0)
            return result
        }
    }
}
