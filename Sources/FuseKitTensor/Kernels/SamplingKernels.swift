/// Pooling and resampling kernels over NCHW planes.
extension Kernels {
    /// Window sizes of a 2-D pooling.
    public struct PoolGeometry: Sendable, Equatable {
        public var planes, inHeight, inWidth, kernelY, kernelX, strideY, strideX, padY, padX: Int
        public var ceilMode: Bool

        func outSize(_ n: Int, _ k: Int, _ s: Int, _ p: Int) -> Int {
            let span = n + 2 * p - k
            var out = (ceilMode ? (span + s - 1) / s : span / s) + 1
            // PyTorch: the last window must start inside the input or left padding.
            if ceilMode && (out - 1) * s >= n + p { out -= 1 }
            return out
        }
        public var outHeight: Int { outSize(inHeight, kernelY, strideY, padY) }
        public var outWidth: Int { outSize(inWidth, kernelX, strideX, padX) }
    }

    /// Max pooling: flat input index of the maximum of each window (first on ties; padding is -inf).
    public static func maxPoolIndices(_ x: UnsafePointer<Float>, _ g: PoolGeometry, _ indices: UnsafeMutablePointer<Int>) {
        let oh = g.outHeight, ow = g.outWidth
        let px = SendablePointer(UnsafeMutablePointer(mutating: x))
        let pi = SendablePointer(indices)
        Parallel.forEach(g.planes, itemCost: oh * ow * g.kernelY * g.kernelX) { p in
            let plane = p * g.inHeight * g.inWidth
            for oy in 0..<oh {
                let y0 = oy * g.strideY - g.padY
                let ys = max(0, y0), ye = min(g.inHeight, y0 + g.kernelY)
                for ox in 0..<ow {
                    let x0 = ox * g.strideX - g.padX
                    let xs = max(0, x0), xe = min(g.inWidth, x0 + g.kernelX)
                    var best = -Float.infinity, bestIndex = plane + ys * g.inWidth + xs
                    for iy in ys..<ye {
                        for ix in xs..<xe {
                            let idx = plane + iy * g.inWidth + ix
                            let v = px.base[idx]
                            if v > best || v.isNaN { best = v; bestIndex = idx; if v.isNaN { break } }
                        }
                    }
                    pi.base[(p * oh + oy) * ow + ox] = bestIndex
                }
            }
        }
    }

    /// Average pooling (or, with `adjoint`, its transpose: spreading each output back over its window).
    public static func avgPool(_ src: UnsafePointer<Float>, _ g: PoolGeometry, countIncludePad: Bool,
                               _ dst: UnsafeMutablePointer<Float>, adjoint: Bool) {
        let oh = g.outHeight, ow = g.outWidth
        let ps = SendablePointer(UnsafeMutablePointer(mutating: src))
        let pd = SendablePointer(dst)
        if adjoint { fill(dst, count: g.planes * g.inHeight * g.inWidth, value: 0) }
        Parallel.forEach(g.planes, itemCost: oh * ow * g.kernelY * g.kernelX) { p in
            let inPlane = p * g.inHeight * g.inWidth, outPlane = p * oh * ow
            for oy in 0..<oh {
                let y0 = oy * g.strideY - g.padY
                let ys = max(0, y0), ye = min(g.inHeight, y0 + g.kernelY)
                let yePad = min(g.inHeight + g.padY, y0 + g.kernelY)
                for ox in 0..<ow {
                    let x0 = ox * g.strideX - g.padX
                    let xs = max(0, x0), xe = min(g.inWidth, x0 + g.kernelX)
                    let xePad = min(g.inWidth + g.padX, x0 + g.kernelX)
                    let divisor = countIncludePad ? Float((yePad - y0) * (xePad - x0)) : Float(max(1, (ye - ys) * (xe - xs)))
                    let o = outPlane + oy * ow + ox
                    if adjoint {
                        let v = ps.base[o] / divisor
                        for iy in ys..<ye { for ix in xs..<xe { pd.base[inPlane + iy * g.inWidth + ix] += v } }
                    } else {
                        var s: Float = 0
                        for iy in ys..<ye { for ix in xs..<xe { s += ps.base[inPlane + iy * g.inWidth + ix] } }
                        pd.base[o] = s / divisor
                    }
                }
            }
        }
    }

    /// Source positions and weights of one axis of a bilinear resize (PyTorch conventions).
    public struct LinearTaps: Sendable {
        public var lower: [Int], upper: [Int], weightUpper: [Float]

        public init(inSize: Int, outSize: Int, alignCorners: Bool) {
            lower = []; upper = []; weightUpper = []
            for d in 0..<outSize {
                var src: Float
                if alignCorners {
                    src = outSize > 1 ? Float(d) * Float(inSize - 1) / Float(outSize - 1) : 0
                } else {
                    src = (Float(d) + 0.5) * (Float(inSize) / Float(outSize)) - 0.5
                    if src < 0 { src = 0 }
                }
                let i0 = min(Int(src), inSize - 1)
                let i1 = min(i0 + 1, inSize - 1)
                lower.append(i0); upper.append(i1); weightUpper.append(src - Float(i0))
            }
        }
    }

    /// Bilinear resize of `planes` planes (or, with `adjoint`, its transpose from out back to in).
    public static func resizeBilinear(_ src: UnsafePointer<Float>, planes: Int, inHeight: Int, inWidth: Int,
                                      outHeight: Int, outWidth: Int, alignCorners: Bool,
                                      _ dst: UnsafeMutablePointer<Float>, adjoint: Bool) {
        let ty = LinearTaps(inSize: inHeight, outSize: outHeight, alignCorners: alignCorners)
        let tx = LinearTaps(inSize: inWidth, outSize: outWidth, alignCorners: alignCorners)
        let ps = SendablePointer(UnsafeMutablePointer(mutating: src))
        let pd = SendablePointer(dst)
        if adjoint { fill(dst, count: planes * inHeight * inWidth, value: 0) }
        Parallel.forEach(planes, itemCost: outHeight * outWidth * 4) { p in
            let inPlane = p * inHeight * inWidth, outPlane = p * outHeight * outWidth
            for oy in 0..<outHeight {
                let y0 = ty.lower[oy], y1 = ty.upper[oy]
                let wy1 = ty.weightUpper[oy], wy0 = 1 - wy1
                for ox in 0..<outWidth {
                    let x0 = tx.lower[ox], x1 = tx.upper[ox]
                    let wx1 = tx.weightUpper[ox], wx0 = 1 - wx1
                    let o = outPlane + oy * outWidth + ox
                    let i00 = inPlane + y0 * inWidth + x0, i01 = inPlane + y0 * inWidth + x1
                    let i10 = inPlane + y1 * inWidth + x0, i11 = inPlane + y1 * inWidth + x1
                    if adjoint {
                        let v = ps.base[o]
                        pd.base[i00] += wy0 * wx0 * v
                        pd.base[i01] += wy0 * wx1 * v
                        pd.base[i10] += wy1 * wx0 * v
                        pd.base[i11] += wy1 * wx1 * v
                    } else {
                        pd.base[o] = wy0 * (wx0 * ps.base[i00] + wx1 * ps.base[i01]) + wy1 * (wx0 * ps.base[i10] + wx1 * ps.base[i11])
                    }
                }
            }
        }
    }
}
