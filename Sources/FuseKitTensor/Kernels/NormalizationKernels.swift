import CFuseKitKernels

/// Fused kernels of the per-pixel LayerNorm over the channels of NCHW tensors, vectorised along
/// pixels (contiguous for a fixed channel).
extension Kernels {
    /// y = (x - mean_c) * rstd * w[c] + b[c]; also writes mean and rstd [B, HW].
    public static func channelLayerNorm(_ x: UnsafePointer<Float>, batch: Int, channels: Int, pixels: Int, eps: Float,
                                        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                        _ y: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        let px = SendablePointer(UnsafeMutablePointer(mutating: x)), py = SendablePointer(y)
        let pm = SendablePointer(mean), pr = SendablePointer(rstd)
        let pw = SendablePointer(UnsafeMutablePointer(mutating: weight))
        let pb = bias.map { SendablePointer(UnsafeMutablePointer(mutating: $0)) }
        let chunk = 512
        let chunks = (pixels + chunk - 1) / chunk
        let native = NativeKernels.enabled
        Parallel.forEach(batch * chunks, itemCost: chunk * channels * 4) { item in
            let b = item / chunks, start = (item % chunks) * chunk, n = Swift.min(chunk, pixels - start)
            let base = b * channels * pixels + start
            channelLayerNormSpan(px.base + base, channelStride: pixels, count: n, channels: channels, eps: eps, weight: pw.base,
                                 bias: pb?.base, py.base + base, outputStride: pixels,
                                 mean: pm.base + b * pixels + start, rstd: pr.base + b * pixels + start, native: native)
        }
    }

    /// The LayerNorm of `count` consecutive pixels on the calling thread: channel c of pixel i
    /// is x[c · channelStride + i], written to y[c · outputStride + i]; mean and rstd [count].
    static func channelLayerNormSpan(_ x: UnsafePointer<Float>, channelStride: Int, count n: Int, channels: Int, eps: Float,
                                     weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                     _ y: UnsafeMutablePointer<Float>, outputStride: Int,
                                     mean m: UnsafeMutablePointer<Float>, rstd r: UnsafeMutablePointer<Float>, native: Bool) {
        if native {
            fk_channel_layernorm(x, channelStride, n, channels, eps, weight, bias, y, outputStride, m, r)
            return
        }
        let invC = 1 / Float(channels)
        m.initialize(repeating: 0, count: n)
        for c in 0..<channels {
            let row = x + c * channelStride
            var i = 0
            while i + 8 <= n { store(load(m + i) + load(row + i), m + i); i += 8 }
            while i < n { m[i] += row[i]; i += 1 }
        }
        for i in 0..<n { m[i] *= invC }
        r.initialize(repeating: 0, count: n)
        for c in 0..<channels {
            let row = x + c * channelStride
            var i = 0
            while i + 8 <= n { let d = load(row + i) - load(m + i); store(load(r + i) + d * d, r + i); i += 8 }
            while i < n { let d = row[i] - m[i]; r[i] += d * d; i += 1 }
        }
        for i in 0..<n { r[i] = 1 / (r[i] * invC + eps).squareRoot() }
        for c in 0..<channels {
            let row = x + c * channelStride, out = y + c * outputStride
            let wv = SIMD8<Float>(repeating: weight[c]), bv = SIMD8<Float>(repeating: bias?[c] ?? 0)
            var i = 0
            while i + 8 <= n { store((load(row + i) - load(m + i)) * load(r + i) * wv + bv, out + i); i += 8 }
            while i < n { out[i] = (row[i] - m[i]) * r[i] * wv[0] + bv[0]; i += 1 }
        }
    }

    /// The LayerNorm's Jacobian applied to `h` (without the weight): per pixel,
    /// out = rstd · (h − mean_c(h) − x̂ · mean_c(h · x̂)) with x̂ = (x − mean) · rstd; `h` is
    /// multiplied by `scale[c]` first when given (the weight, for the input gradient).
    public static func channelLayerNormProject(_ h: UnsafePointer<Float>, scale: UnsafePointer<Float>?, x: UnsafePointer<Float>,
                                               mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                               batch: Int, channels: Int, pixels: Int, _ out: UnsafeMutablePointer<Float>) {
        let ph = SendablePointer(UnsafeMutablePointer(mutating: h)), px = SendablePointer(UnsafeMutablePointer(mutating: x))
        let pm = SendablePointer(UnsafeMutablePointer(mutating: mean)), pr = SendablePointer(UnsafeMutablePointer(mutating: rstd))
        let ps = scale.map { SendablePointer(UnsafeMutablePointer(mutating: $0)) }
        let po = SendablePointer(out)
        let chunk = 512
        let chunks = (pixels + chunk - 1) / chunk
        let invC = 1 / Float(channels)
        Parallel.forEach(batch * chunks, itemCost: chunk * channels * 4) { item in
            let b = item / chunks, start = (item % chunks) * chunk, n = Swift.min(chunk, pixels - start)
            let base = b * channels * pixels + start
            let m = pm.base + b * pixels + start, r = pr.base + b * pixels + start
            var sumH = [Float](repeating: 0, count: n), sumHX = [Float](repeating: 0, count: n)
            sumH.withUnsafeMutableBufferPointer { sh in
                sumHX.withUnsafeMutableBufferPointer { shx in
                    let a = sh.baseAddress!, ax = shx.baseAddress!
                    for c in 0..<channels {
                        let hr = ph.base + base + c * pixels, xr = px.base + base + c * pixels
                        let sv = SIMD8<Float>(repeating: ps?.base[c] ?? 1)
                        var i = 0
                        while i + 8 <= n {
                            let hv = load(hr + i) * sv
                            let xhat = (load(xr + i) - load(m + i)) * load(r + i)
                            store(load(a + i) + hv, a + i)
                            store(load(ax + i) + hv * xhat, ax + i)
                            i += 8
                        }
                        while i < n {
                            let hv = hr[i] * sv[0], xhat = (xr[i] - m[i]) * r[i]
                            a[i] += hv
                            ax[i] += hv * xhat
                            i += 1
                        }
                    }
                    for i in 0..<n { a[i] *= invC; ax[i] *= invC }
                    for c in 0..<channels {
                        let hr = ph.base + base + c * pixels, xr = px.base + base + c * pixels, o = po.base + base + c * pixels
                        let sv = SIMD8<Float>(repeating: ps?.base[c] ?? 1)
                        var i = 0
                        while i + 8 <= n {
                            let rv = load(r + i)
                            let xhat = (load(xr + i) - load(m + i)) * rv
                            store(rv * (load(hr + i) * sv - load(a + i) - xhat * load(ax + i)), o + i)
                            i += 8
                        }
                        while i < n {
                            let xhat = (xr[i] - m[i]) * r[i]
                            o[i] = r[i] * (hr[i] * sv[0] - a[i] - xhat * ax[i])
                            i += 1
                        }
                    }
                }
            }
        }
    }

    /// Per channel: sum over batch and pixels of g and of g · x̂ (the weight and bias gradients).
    public static func channelLayerNormParameterGradients(_ g: UnsafePointer<Float>, x: UnsafePointer<Float>, mean: UnsafePointer<Float>,
                                                          rstd: UnsafePointer<Float>, batch: Int, channels: Int, pixels: Int,
                                                          weightGradient: UnsafeMutablePointer<Float>, biasGradient: UnsafeMutablePointer<Float>) {
        let pg = SendablePointer(UnsafeMutablePointer(mutating: g)), px = SendablePointer(UnsafeMutablePointer(mutating: x))
        let pm = SendablePointer(UnsafeMutablePointer(mutating: mean)), pr = SendablePointer(UnsafeMutablePointer(mutating: rstd))
        let pw = SendablePointer(weightGradient), pb = SendablePointer(biasGradient)
        Parallel.forEach(channels, itemCost: batch * pixels * 3) { c in
            var sw = 0.0, sb = 0.0
            for b in 0..<batch {
                let gr = pg.base + (b * channels + c) * pixels, xr = px.base + (b * channels + c) * pixels
                let m = pm.base + b * pixels, r = pr.base + b * pixels
                var aw = SIMD8<Float>(repeating: 0), ab = SIMD8<Float>(repeating: 0)
                var i = 0
                while i + 8 <= pixels {
                    let gv = load(gr + i)
                    aw += gv * (load(xr + i) - load(m + i)) * load(r + i)
                    ab += gv
                    i += 8
                }
                var tw = Double(aw.sum()), tb = Double(ab.sum())
                while i < pixels { tw += Double(gr[i] * (xr[i] - m[i]) * r[i]); tb += Double(gr[i]); i += 1 }
                sw += tw
                sb += tb
            }
            pw.base[c] = Float(sw)
            pb.base[c] = Float(sb)
        }
    }
}

extension Kernels {
    /// Gradients of y = gelu(a) · b in one pass: da = g · b · gelu'(a), db = g · gelu(a), sharing
    /// one erf and one exp per element.
    public static func geluGateBackward(_ g: UnsafePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int,
                                        da: UnsafeMutablePointer<Float>?, db: UnsafeMutablePointer<Float>?) {
        let pg = SendablePointer(UnsafeMutablePointer(mutating: g)), pa = SendablePointer(UnsafeMutablePointer(mutating: a))
        let pb = SendablePointer(UnsafeMutablePointer(mutating: b))
        let pda = da.map(SendablePointer.init), pdb = db.map(SendablePointer.init)
        if NativeKernels.enabled {
            NativeKernels.ranges(count) { s, n in
                fk_gelu_gate_backward(pg.base + s, pa.base + s, pb.base + s, pda.map { $0.base + s }, pdb.map { $0.base + s }, n)
            }
            return
        }
        Parallel.forRanges(count, grain: 16_384) { r in
            var i = r.lowerBound
            func step(_ gv: SIMD8<Float>, _ av: SIMD8<Float>, _ bv: SIMD8<Float>) -> (SIMD8<Float>, SIMD8<Float>) {
                let cdf = 0.5 * (1 + VectorMath.erf(av * 0.70710678118654752))
                let pdf = VectorMath.exp(av * av * -0.5) * 0.39894228040143268
                return (gv * bv * (cdf + av * pdf), gv * av * cdf)
            }
            while i + 8 <= r.upperBound {
                let (x, y) = step(load(pg.base + i), load(pa.base + i), load(pb.base + i))
                if let pda { store(x, pda.base + i) }
                if let pdb { store(y, pdb.base + i) }
                i += 8
            }
            if i < r.upperBound {
                let n = r.upperBound - i
                let (x, y) = step(loadPartial(pg.base + i, n), loadPartial(pa.base + i, n), loadPartial(pb.base + i, n))
                if let pda { storePartial(x, pda.base + i, n) }
                if let pdb { storePartial(y, pdb.base + i, n) }
            }
        }
    }
}
