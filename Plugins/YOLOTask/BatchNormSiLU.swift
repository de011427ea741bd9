import Foundation
import FuseKit

/// Training-mode BatchNorm (batch statistics, biased variance) followed by SiLU, as one
/// differentiable operation with fused kernels: three passes forward (mean, variance, output)
/// and two backward, instead of the dozen elementwise passes of the composed operations.
///
/// Its reverse rule uses the fused kernel when no graph is being recorded (ordinary training);
/// when one is (gradients of gradients), it is written with differentiable tensor operations, as
/// is the forward-mode rule, so the operation composes like any other.
enum BatchNormSiLU {
    /// A raw pointer handed to workers that each touch their own channel.
    struct Pointer: @unchecked Sendable {
        let base: UnsafeMutablePointer<Float>
    }

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }

    @inline(__always)
    static func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self) }

    /// Training-mode `bn` (whose scope is `p`) followed by SiLU, recording the running-statistics
    /// updates (momentum, unbiased variance) as `BatchNorm2d` does.
    static func training(_ z: Tensor, _ bn: BatchNorm2d, _ p: Scope) -> Tensor {
        let (y, mean, variance) = training(z, weight: p[bn.weight], bias: p[bn.bias], eps: bn.eps)
        withoutGradient {
            let n = Float(z.shape[0] * z.shape[2] * z.shape[3])
            let momentum = bn.momentum
            let unbiased = Tensor(variance) * (n / Swift.max(n - 1, 1))
            p.updateBuffer(bn.runningMean, p.buffer(bn.runningMean) * (1 - momentum) + Tensor(mean) * momentum)
            p.updateBuffer(bn.runningVariance, p.buffer(bn.runningVariance) * (1 - momentum) + unbiased * momentum)
            p.updateBuffer(bn.batchesTracked, p.buffer(bn.batchesTracked) + 1)
        }
        return y
    }

    /// y = silu(weight (z - mean) / sqrt(var + eps) + bias) per channel of z [N, C, H, W], with the
    /// batch mean and biased variance it used.
    static func training(_ z: Tensor, weight: Tensor, bias: Tensor, eps: Float) -> (output: Tensor, mean: [Float], variance: [Float]) {
        require(z.rank == 4 && weight.shape == [z.shape[1]] && bias.shape == [z.shape[1]],
                "BatchNormSiLU: input \(Shape.describe(z.shape)) must be [N, C, H, W] with weight and bias [C], got \(Shape.describe(weight.shape)), \(Shape.describe(bias.shape))")
        let (batch, channels, plane) = (z.shape[0], z.shape[1], z.shape[2] * z.shape[3])
        let count = batch * plane
        var mean = [Float](repeating: 0, count: channels), variance = [Float](repeating: 0, count: channels)
        var inverseStd = [Float](repeating: 0, count: channels)
        let y = Tensor(uninitializedShape: z.shape)
        let input = z.pointer, gamma = weight.pointer, beta = bias.pointer, output = Pointer(base: y.mutablePointer)
        mean.withUnsafeMutableBufferPointer { meanBuffer in
            variance.withUnsafeMutableBufferPointer { varianceBuffer in
                inverseStd.withUnsafeMutableBufferPointer { inverseBuffer in
                    let m = Pointer(base: meanBuffer.baseAddress!), v = Pointer(base: varianceBuffer.baseAddress!)
                    let r = Pointer(base: inverseBuffer.baseAddress!)
                    Parallel.forEach(channels, itemCost: 3 * count) { c in
                        var total = 0.0
                        for n in 0..<batch { total += Double(sum(input + (n * channels + c) * plane, plane) { $0 }) }
                        let mu = Float(total / Double(count))
                        var squares = 0.0
                        let muV = SIMD8<Float>(repeating: mu)
                        for n in 0..<batch {
                            squares += Double(sum(input + (n * channels + c) * plane, plane) { let d = $0 - muV; return d * d })
                        }
                        let sigma2 = Float(squares / Double(count))
                        let invStd = 1 / (sigma2 + eps).squareRoot()
                        m.base[c] = mu
                        v.base[c] = sigma2
                        r.base[c] = invStd
                        let g = SIMD8<Float>(repeating: gamma[c]), b = SIMD8<Float>(repeating: beta[c]), s = SIMD8<Float>(repeating: invStd)
                        for n in 0..<batch {
                            let offset = (n * channels + c) * plane
                            map(input + offset, output.base + offset, plane) { x in
                                let a = (x - muV) * s * g + b
                                return a * VectorMath.sigmoid(a)
                            }
                        }
                    }
                }
            }
        }
        let saved = (mean: mean, inverseStd: inverseStd)
        let result = y.recorded(op: "batchNormSiLU", inputs: [z, weight, bias], pullback: { g, _, need in
            if Autodiff.isRecording {
                return compositePullback(g, z, weight, bias, eps: eps, need)
            }
            return fusedPullback(g, z, weight, bias, mean: saved.mean, inverseStd: saved.inverseStd, need)
        }, tangent: { t, _ in compositeTangent(t, z, weight, bias, eps: eps) })
        return (result, mean, variance)
    }

    /// Horizontal sum of f over `count` floats (eight lanes, then the tail).
    @inline(__always)
    static func sum(_ p: UnsafePointer<Float>, _ count: Int, _ f: (SIMD8<Float>) -> SIMD8<Float>) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        var i = 0
        while i + 8 <= count {
            acc += f(load(p + i))
            i += 8
        }
        var total = acc.sum()
        while i < count {
            total += f(SIMD8<Float>(repeating: p[i]))[0]
            i += 1
        }
        return total
    }

    /// y[i] = f(x[i]) over `count` floats.
    @inline(__always)
    static func map(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int, _ f: (SIMD8<Float>) -> SIMD8<Float>) {
        var i = 0
        while i + 8 <= count {
            store(f(load(x + i)), y + i)
            i += 8
        }
        while i < count {
            y[i] = f(SIMD8<Float>(repeating: x[i]))[0]
            i += 1
        }
    }

    /// The reverse rule in two passes per channel: ga = g silu'(a); d bias = Σ ga,
    /// d weight = Σ ga x̂, dz = weight / σ (ga - mean(ga) - x̂ mean(ga x̂)).
    static func fusedPullback(_ gy: Tensor, _ z: Tensor, _ weight: Tensor, _ bias: Tensor, mean: [Float], inverseStd: [Float],
                              _ need: NeededInputs) -> [Tensor?] {
        let (batch, channels, plane) = (z.shape[0], z.shape[1], z.shape[2] * z.shape[3])
        let count = Float(batch * plane)
        let dz = Tensor(uninitializedShape: z.shape)
        let dWeight = Tensor(uninitializedShape: [channels]), dBias = Tensor(uninitializedShape: [channels])
        let input = z.pointer, cotangent = gy.pointer, gamma = weight.pointer, beta = bias.pointer
        let dzOut = Pointer(base: dz.mutablePointer), dwOut = Pointer(base: dWeight.mutablePointer), dbOut = Pointer(base: dBias.mutablePointer)
        mean.withUnsafeBufferPointer { meanBuffer in
            inverseStd.withUnsafeBufferPointer { inverseBuffer in
                let means = meanBuffer.baseAddress!, inverses = inverseBuffer.baseAddress!
                Parallel.forEach(channels, itemCost: 4 * batch * plane) { c in
                    let mu = SIMD8<Float>(repeating: means[c]), s = SIMD8<Float>(repeating: inverses[c])
                    let g = SIMD8<Float>(repeating: gamma[c]), b = SIMD8<Float>(repeating: beta[c])
                    // Pass 1: ga into dz, and the two sums.
                    var sumGa = 0.0, sumGaX = 0.0
                    for n in 0..<batch {
                        let offset = (n * channels + c) * plane
                        let x = input + offset, gyRow = cotangent + offset, out = dzOut.base + offset
                        var accGa = SIMD8<Float>(repeating: 0), accGaX = SIMD8<Float>(repeating: 0)
                        var i = 0
                        while i + 8 <= plane {
                            let xhat = (load(x + i) - mu) * s
                            let a = xhat * g + b
                            let sig = VectorMath.sigmoid(a)
                            let ga = load(gyRow + i) * sig * (1 + a * (1 - sig))
                            store(ga, out + i)
                            accGa += ga
                            accGaX += ga * xhat
                            i += 8
                        }
                        var tailGa: Float = 0, tailGaX: Float = 0
                        while i < plane {
                            let xhat = (x[i] - mu[0]) * s[0]
                            let a = xhat * g[0] + b[0]
                            let sig = 1 / (1 + Foundation.exp(-a))
                            let ga = gyRow[i] * sig * (1 + a * (1 - sig))
                            out[i] = ga
                            tailGa += ga
                            tailGaX += ga * xhat
                            i += 1
                        }
                        sumGa += Double(accGa.sum() + tailGa)
                        sumGaX += Double(accGaX.sum() + tailGaX)
                    }
                    dbOut.base[c] = Float(sumGa)
                    dwOut.base[c] = Float(sumGaX)
                    // Pass 2: dz = weight / σ (ga - mean(ga) - x̂ mean(ga x̂)).
                    let meanGa = SIMD8<Float>(repeating: Float(sumGa) / count), meanGaX = SIMD8<Float>(repeating: Float(sumGaX) / count)
                    let scale = g * s
                    for n in 0..<batch {
                        let offset = (n * channels + c) * plane
                        let x = input + offset, out = dzOut.base + offset
                        var i = 0
                        while i + 8 <= plane {
                            let xhat = (load(x + i) - mu) * s
                            store(scale * (load(out + i) - meanGa - xhat * meanGaX), out + i)
                            i += 8
                        }
                        while i < plane {
                            let xhat = (x[i] - mu[0]) * s[0]
                            out[i] = scale[0] * (out[i] - meanGa[0] - xhat * meanGaX[0])
                            i += 1
                        }
                    }
                }
            }
        }
        return [need[0] ? dz : nil, need[1] ? dWeight : nil, need[2] ? dBias : nil]
    }

    /// x̂ and a = weight x̂ + bias, and 1/σ, composed of differentiable operations.
    static func compositeParts(_ z: Tensor, _ weight: Tensor, _ bias: Tensor, eps: Float) -> (xhat: Tensor, a: Tensor, inverseStd: Tensor) {
        let shape = [1, z.shape[1], 1, 1]
        let centered = z - z.mean(axes: [0, 2, 3], keepDims: true)
        let inverseStd = ((centered * centered).mean(axes: [0, 2, 3], keepDims: true) + eps).rsqrt()
        let xhat = centered * inverseStd
        return (xhat, xhat * weight.reshaped(shape) + bias.reshaped(shape), inverseStd)
    }

    /// silu'(a) = s (1 + a (1 - s)), s = sigmoid(a).
    static func siluDerivative(_ a: Tensor) -> Tensor {
        let s = a.sigmoid()
        return s * (1 + a * (1 - s))
    }

    /// The reverse rule written with differentiable operations (for gradients of gradients).
    static func compositePullback(_ gy: Tensor, _ z: Tensor, _ weight: Tensor, _ bias: Tensor, eps: Float, _ need: NeededInputs) -> [Tensor?] {
        let axes = [0, 2, 3]
        let (xhat, a, inverseStd) = compositeParts(z, weight, bias, eps: eps)
        let ga = gy * siluDerivative(a)
        let gaX = ga * xhat
        let dz = need[0]
            ? weight.reshaped([1, z.shape[1], 1, 1]) * inverseStd
                * (ga - ga.mean(axes: axes, keepDims: true) - xhat * gaX.mean(axes: axes, keepDims: true))
            : nil
        return [dz, need[1] ? gaX.sum(axes: axes) : nil, need[2] ? ga.sum(axes: axes) : nil]
    }

    /// The forward-mode rule: da = weight dx̂ + x̂ dweight + dbias with
    /// dx̂ = (dz - mean(dz) - x̂ mean(dz x̂)) / σ; dy = silu'(a) da.
    static func compositeTangent(_ t: [Tensor?], _ z: Tensor, _ weight: Tensor, _ bias: Tensor, eps: Float) -> Tensor? {
        guard t.contains(where: { $0 != nil }) else { return nil }
        let axes = [0, 2, 3], shape = [1, z.shape[1], 1, 1]
        let (xhat, a, inverseStd) = compositeParts(z, weight, bias, eps: eps)
        var da: Tensor?
        if let tz = t[0] {
            let dxhat = inverseStd * (tz - tz.mean(axes: axes, keepDims: true) - xhat * (tz * xhat).mean(axes: axes, keepDims: true))
            da = dxhat * weight.reshaped(shape)
        }
        if let tw = t[1] {
            let term = xhat * tw.reshaped(shape)
            da = da.map { $0 + term } ?? term
        }
        if let tb = t[2] {
            let term = tb.reshaped(shape).expanded(to: z.shape)
            da = da.map { $0 + term } ?? term
        }
        return da.map { $0 * siluDerivative(a) }
    }
}
