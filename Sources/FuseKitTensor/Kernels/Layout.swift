/// Copies that rearrange data: permutation, slicing and padding along one axis, broadcasting.
extension Kernels {
    @usableFromInline enum TakeFirst: BinaryVectorFunction { @inlinable static func apply(_ a: V8, _ b: V8) -> V8 { a } }

    /// Materialises `x` broadcast to `outShape`.
    public static func expand(_ x: UnsafePointer<Float>, shape: [Int], _ y: UnsafeMutablePointer<Float>, outShape: [Int]) {
        var zero: Float = 0
        withUnsafePointer(to: &zero) { z in
            broadcastZip(x, shapeA: shape, z, shapeB: [], y, outShape: outShape, TakeFirst.self)
        }
    }

    /// y = x permuted: y's axis i is x's axis `perm[i]`.
    public static func permute(_ x: UnsafePointer<Float>, shape: [Int], perm: [Int], _ y: UnsafeMutablePointer<Float>) {
        let rank = shape.count
        let inStrides = Shape.strides(shape)
        // Output dims with their input strides, size-1 dims dropped, contiguous neighbours merged.
        var dims: [Int] = [], strides: [Int] = []
        for i in 0..<rank where shape[perm[i]] != 1 {
            let d = shape[perm[i]], s = inStrides[perm[i]]
            if let last = dims.indices.last, strides[last] == s * d {
                dims[last] *= d
                strides[last] = s
            } else {
                dims.append(d); strides.append(s)
            }
        }
        let total = Shape.count(shape)
        if dims.count <= 1 {
            copy(from: x, to: y, count: total)
            return
        }
        let px = SendablePointer(UnsafeMutablePointer(mutating: x))
        let py = SendablePointer(y)
        let n = dims.count
        // Batched 2-D transpose (the common case): tile for cache locality.
        if strides[n - 1] != 1 && (n == 2 || (n == 3 && strides[0] == dims[1] * dims[2])) && strides[n - 2] == 1 {
            let batch = n == 3 ? dims[0] : 1
            let rows = dims[n - 2], cols = dims[n - 1]  // output is [batch, rows, cols]; input is [batch, cols, rows]
            let tile = 32
            let tilesR = (rows + tile - 1) / tile
            Parallel.forEach(batch * tilesR, itemCost: tile * cols) { item in
                let b = item / tilesR
                let r0 = (item % tilesR) * tile, r1 = min(rows, r0 + tile)
                let src = px.base + b * rows * cols
                let dst = py.base + b * rows * cols
                var c0 = 0
                while c0 < cols {
                    let c1 = min(cols, c0 + tile)
                    for r in r0..<r1 {
                        for c in c0..<c1 { dst[r * cols + c] = src[c * rows + r] }
                    }
                    c0 = c1
                }
            }
            return
        }
        // General: odometer over the outer dims, strided inner loop.
        let inner = dims[n - 1], innerStride = strides[n - 1]
        let rows = total / inner
        Parallel.forEach(rows, itemCost: inner) { row in
            var rest = row, offset = 0
            var i = n - 2
            while i >= 0 {
                offset += (rest % dims[i]) * strides[i]
                rest /= dims[i]
                i -= 1
            }
            let dst = py.base + row * inner
            let src = px.base + offset
            if innerStride == 1 {
                dst.update(from: src, count: inner)
            } else {
                for j in 0..<inner { dst[j] = src[j * innerStride] }
            }
        }
    }

    /// Copies `x[..., start..<start+length, ...]` (along an axis viewed as outer x dim x inner)
    /// into `y` (outer x length x inner).
    public static func slice(_ x: UnsafePointer<Float>, outer: Int, dim: Int, inner: Int, start: Int, length: Int,
                             _ y: UnsafeMutablePointer<Float>) {
        let px = SendablePointer(UnsafeMutablePointer(mutating: x))
        let py = SendablePointer(y)
        let block = length * inner
        Parallel.forEach(outer, itemCost: block) { o in
            (py.base + o * block).update(from: px.base + (o * dim + start) * inner, count: block)
        }
    }

    /// Writes `x` (outer x dim x inner) into `y` (outer x (before + dim + after) x inner),
    /// filling the new rows with `value`.
    public static func pad(_ x: UnsafePointer<Float>, outer: Int, dim: Int, inner: Int, before: Int, after: Int, value: Float,
                           _ y: UnsafeMutablePointer<Float>) {
        let px = SendablePointer(UnsafeMutablePointer(mutating: x))
        let py = SendablePointer(y)
        let outDim = before + dim + after
        Parallel.forEach(outer, itemCost: outDim * inner) { o in
            let dst = py.base + o * outDim * inner
            dst.initialize(repeating: value, count: before * inner)
            (dst + before * inner).update(from: px.base + o * dim * inner, count: dim * inner)
            (dst + (before + dim) * inner).initialize(repeating: value, count: after * inner)
        }
    }
}
