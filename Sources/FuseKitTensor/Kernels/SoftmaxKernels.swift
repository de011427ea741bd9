extension Kernels {
    /// Softmax (or log-softmax) over the middle axis of an (outer, dim, inner) view.
    public static func softmax(_ x: UnsafePointer<Float>, outer: Int, dim: Int, inner: Int, _ y: UnsafeMutablePointer<Float>, log: Bool) {
        let px = SendablePointer(UnsafeMutablePointer(mutating: x))
        let py = SendablePointer(y)
        if inner == 1 {
            Parallel.forEach(outer, itemCost: dim * 4) { o in
                let src = px.base + o * dim, dst = py.base + o * dim
                let m = reduceRow(src, dim, .max)
                let vm = SIMD8<Float>(repeating: m)
                var sum: Float = 0
                var i = 0
                while i + 8 <= dim {
                    let e = VectorMath.exp(load(src + i) - vm)
                    if !log { store(e, dst + i) }
                    sum += e.sum()
                    i += 8
                }
                if i < dim {
                    let n = dim - i
                    var e = VectorMath.exp(loadPartial(src + i, n) - vm)
                    for l in n..<8 { e[l] = 0 }
                    if !log { storePartial(e, dst + i, n) }
                    sum += e.sum()
                }
                if log {
                    let shift = SIMD8<Float>(repeating: m + Foundationless.log(sum))
                    i = 0
                    while i + 8 <= dim { store(load(src + i) - shift, dst + i); i += 8 }
                    while i < dim { dst[i] = src[i] - shift[0]; i += 1 }
                } else {
                    let inv = SIMD8<Float>(repeating: 1 / sum)
                    i = 0
                    while i + 8 <= dim { store(load(dst + i) * inv, dst + i); i += 8 }
                    while i < dim { dst[i] *= inv[0]; i += 1 }
                }
            }
            return
        }
        let chunk = 2048
        let chunksPerRow = (inner + chunk - 1) / chunk
        Parallel.forEach(outer * chunksPerRow, itemCost: dim * min(chunk, inner) * 4) { item in
            let o = item / chunksPerRow
            let start = (item % chunksPerRow) * chunk
            let n = min(chunk, inner - start)
            let base = o * dim * inner + start
            let maxRow = BufferPool.allocateFloats(n)
            let sumRow = BufferPool.allocateFloats(n)
            defer { BufferPool.releaseFloats(maxRow, n); BufferPool.releaseFloats(sumRow, n) }
            maxRow.update(from: px.base + base, count: n)
            for d in 1..<dim {
                let row = px.base + base + d * inner
                for i in 0..<n { maxRow[i] = maxNaN(maxRow[i], row[i]) }
            }
            sumRow.initialize(repeating: 0, count: n)
            for d in 0..<dim {
                let row = px.base + base + d * inner, out = py.base + base + d * inner
                var i = 0
                while i + 8 <= n {
                    let e = VectorMath.exp(load(row + i) - load(maxRow + i))
                    if !log { store(e, out + i) }
                    store(load(sumRow + i) + e, sumRow + i)
                    i += 8
                }
                if i < n {
                    let e = VectorMath.exp(loadPartial(row + i, n - i) - loadPartial(maxRow + i, n - i))
                    if !log { storePartial(e, out + i, n - i) }
                    storePartial(loadPartial(sumRow + i, n - i) + e, sumRow + i, n - i)
                }
            }
            if log {
                for i in 0..<n { maxRow[i] += Foundationless.log(sumRow[i]) }
                for d in 0..<dim {
                    let row = px.base + base + d * inner, out = py.base + base + d * inner
                    for i in 0..<n { out[i] = row[i] - maxRow[i] }
                }
            } else {
                for i in 0..<n { sumRow[i] = 1 / sumRow[i] }
                for d in 0..<dim {
                    let out = py.base + base + d * inner
                    for i in 0..<n { out[i] *= sumRow[i] }
                }
            }
        }
    }
}

/// Scalar libm functions without importing Foundation.
enum Foundationless {
    @inline(__always) static func log(_ x: Float) -> Float { VectorMath.log(SIMD8<Float>(repeating: x))[0] }
}
