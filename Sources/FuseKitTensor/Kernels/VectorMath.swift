/// Vectorised single-precision elementary functions on `SIMD8<Float>`, accurate to a few units
/// in the last place, so elementwise kernels do not call scalar libm per element.
public enum VectorMath {
    public typealias V = SIMD8<Float>

    /// |x| lane-wise (clears the sign bit, so -0 and NaN behave).
    @inlinable @inline(__always)
    public static func abs(_ x: V) -> V {
        unsafeBitCast(unsafeBitCast(x, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: V.self)
    }

    // Swift's generic SIMD conversions and rounding run lane by lane (tens of ns per element),
    // so these functions use bit tricks: adding 1.5·2²³ rounds a float to an integer in its low
    // mantissa bits, which are then read as an integer without a conversion instruction.
    @usableFromInline static let magic: Float = 12_582_912  // 1.5 · 2²³
    @usableFromInline static let magicBits: Int32 = 0x4B40_0000

    /// Rounds lanes (|x| < 2²²) to the nearest integer; returns the float and integer values.
    @inlinable @inline(__always)
    static func roundToInteger(_ x: V) -> (V, SIMD8<Int32>) {
        let shifted = x + magic
        return (shifted - magic, unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- magicBits)
    }

    /// Small integers (|n| < 2²²) as floats.
    @inlinable @inline(__always)
    static func float(_ n: SIMD8<Int32>) -> V {
        unsafeBitCast(n &+ magicBits, to: V.self) - magic
    }

    /// 2ⁿ for integer lanes in [-126, 127].
    @inlinable @inline(__always)
    static func power2(_ n: SIMD8<Int32>) -> V {
        unsafeBitCast((n &+ 127) &<< 23, to: V.self)
    }

    /// e^x (Cephes polynomial, about 1 ulp); 0 below -87.3, +inf above 88.72.
    @inlinable @inline(__always)
    public static func exp(_ x: V) -> V {
        let hi = V(repeating: 88.72283905206835)
        let lo = V(repeating: -87.33654475055310)
        var xc = x.replacing(with: hi, where: x .> hi)
        xc.replace(with: lo, where: xc .< lo)
        let (fx, n) = roundToInteger(xc * 1.44269504088896341)
        xc = xc - fx * 0.693359375
        xc = xc + fx * 2.12194440e-4
        let z = xc * xc
        var y = V(repeating: 1.9875691500e-4)
        y = y * xc + 1.3981999507e-3
        y = y * xc + 8.3334519073e-3
        y = y * xc + 4.1665795894e-2
        y = y * xc + 1.6666665459e-1
        y = y * xc + 5.0000001201e-1
        y = y * z + xc + 1
        // 2ⁿ in two factors so that n = 128 (x near the overflow bound) stays finite.
        let half = n &>> 1
        var result = y * power2(half) * power2(n &- half)
        result.replace(with: V(repeating: .infinity), where: x .> hi)
        result.replace(with: 0, where: x .< lo)
        result.replace(with: x, where: x .!= x)  // NaN stays NaN
        return result
    }

    /// Natural logarithm (Cephes); log(0) = -inf, log(negative) = NaN.
    @inlinable @inline(__always)
    public static func log(_ x: V) -> V {
        let minNormal = V(repeating: Float.leastNormalMagnitude)
        let xc = x.replacing(with: minNormal, where: x .< minNormal)
        let bits = unsafeBitCast(xc, to: SIMD8<Int32>.self)
        var e = float((bits &>> 23) &- 126)
        var m = unsafeBitCast((bits & 0x007F_FFFF) | 0x3F00_0000, to: V.self)  // mantissa in [0.5, 1)
        let small = m .< 0.707106781186547524
        e.replace(with: e - 1, where: small)
        m = m.replacing(with: m + m - 1, where: small).replacing(with: m - 1, where: .!small)
        let z = m * m
        var y = V(repeating: 7.0376836292e-2)
        y = y * m - 1.1514610310e-1
        y = y * m + 1.1676998740e-1
        y = y * m - 1.2420140846e-1
        y = y * m + 1.4249322787e-1
        y = y * m - 1.6668057665e-1
        y = y * m + 2.0000714765e-1
        y = y * m - 2.4999993993e-1
        y = y * m + 3.3333331174e-1
        y = y * m * z
        y = y + e * -2.12194440e-4
        y = y - z * 0.5
        var result = m + y + e * 0.693359375
        result.replace(with: -.infinity, where: x .== 0)
        result.replace(with: .nan, where: x .< 0)
        result.replace(with: x, where: x .== .infinity)
        result.replace(with: x, where: x .!= x)
        return result
    }

    /// Error function, max absolute error about 1.5e-7.
    @inlinable @inline(__always)
    public static func erf(_ x: V) -> V {
        let t = abs(x)
        let s = x * x
        // |x| < 0.921875: x * P(x^2)
        var p = V(repeating: -0.0006047151400707662)
        p = p * s + 0.005005624610930681
        p = p * s - 0.026776401326060295
        p = p * s + 0.11282140016555786
        p = p * s - 0.3761253356933594
        p = p * s + 1.1283791065216064
        let small = x * p
        // larger: 1 - exp(Q(t))
        var q = V(repeating: -1.412568599334918e-05)
        q = q * t + 0.00033182004699483514
        q = q * t - 0.0035406637471169233
        q = q * t + 0.023030133917927742
        q = q * t - 0.10425230860710144
        q = q * t - 0.6378551125526428
        q = q * t - 1.1268064975738525
        q = q * t - 0.0004984931438229978
        var large = 1 - exp(q)
        large.replace(with: 1, where: t .> 3.95)
        let signed = large.replacing(with: -large, where: x .< 0)
        return small.replacing(with: signed, where: t .>= 0.921875)
    }

    /// Hyperbolic tangent, relative error about 2e-7.
    @inlinable @inline(__always)
    public static func tanh(_ x: V) -> V {
        let t = abs(x)
        let s = x * x
        var p = V(repeating: 0.0023141251876950264)
        p = p * s - 0.00836582388728857
        p = p * s + 0.02177690528333187
        p = p * s - 0.053960490971803665
        p = p * s + 0.13333310186862946
        p = p * s - 0.3333333432674408
        let small = x + x * s * p
        let e = exp(t * -2)
        var large = (1 - e) / (1 + e)
        large.replace(with: -large, where: x .< 0)
        var result = small.replacing(with: large, where: t .>= 0.625)
        result.replace(with: x, where: x .!= x)
        return result
    }

    /// Logistic sigmoid 1 / (1 + e^-x), stable for large |x|.
    @inlinable @inline(__always)
    public static func sigmoid(_ x: V) -> V {
        let e = exp(-abs(x))  // in (0, 1]
        let positive = 1 / (1 + e)
        return positive.replacing(with: e / (1 + e), where: x .< 0)
    }
}
