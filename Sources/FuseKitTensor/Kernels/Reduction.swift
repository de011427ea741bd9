/// Reductions over the middle axis of an (outer, reduced, inner) view of a contiguous buffer.
public enum ReduceKind: Sendable {
    case sum, max, min
}

extension Kernels {
    /// out[o, i] = reduce over r of x[o, r, i]; `out` has outer * inner elements.
    public static func reduce(_ x: UnsafePointer<Float>, outer: Int, reduced: Int, inner: Int,
                              _ out: UnsafeMutablePointer<Float>, kind: ReduceKind) {
        if reduced == 0 {
            out.initialize(repeating: kind == .sum ? 0 : (kind == .max ? -.infinity : .infinity), count: outer * inner)
            return
        }
        let px = SendablePointer(UnsafeMutablePointer(mutating: x))
        let po = SendablePointer(out)
        if inner == 1 {
            if outer == 1 && reduced >= 1 << 16 && Parallel.threadCount > 1 {
                // One long row: partial results per core, combined in order.
                let parts = Parallel.threadCount
                var partials = [Float](repeating: 0, count: parts)
                partials.withUnsafeMutableBufferPointer { buf in
                    let pp = SendablePointer(buf.baseAddress!)
                    Parallel.forEach(parts, itemCost: reduced) { t in
                        let start = reduced * t / parts, end = reduced * (t + 1) / parts
                        pp.base[t] = reduceRow(px.base + start, end - start, kind)
                    }
                }
                out[0] = reduceRow(partials, parts, kind)
                return
            }
            Parallel.forEach(outer, itemCost: reduced) { o in
                po.base[o] = reduceRow(px.base + o * reduced, reduced, kind)
            }
            return
        }
        // Strided: accumulate whole inner rows, vectorised along the inner axis.
        let chunk = 4096
        let chunksPerRow = (inner + chunk - 1) / chunk
        Parallel.forEach(outer * chunksPerRow, itemCost: reduced * min(inner, chunk)) { item in
            let o = item / chunksPerRow
            let start = (item % chunksPerRow) * chunk
            let n = min(chunk, inner - start)
            let dst = po.base + o * inner + start
            let src = px.base + o * reduced * inner + start
            dst.update(from: src, count: n)
            for r in 1..<reduced {
                let row = src + r * inner
                var i = 0
                switch kind {
                case .sum:
                    while i + 8 <= n { store(load(dst + i) + load(row + i), dst + i); i += 8 }
                    while i < n { dst[i] += row[i]; i += 1 }
                case .max:
                    while i + 8 <= n { store(pointwiseMaxNaN(load(dst + i), load(row + i)), dst + i); i += 8 }
                    while i < n { dst[i] = maxNaN(dst[i], row[i]); i += 1 }
                case .min:
                    while i + 8 <= n { store(pointwiseMinNaN(load(dst + i), load(row + i)), dst + i); i += 8 }
                    while i < n { dst[i] = minNaN(dst[i], row[i]); i += 1 }
                }
            }
        }
    }

    /// Reduces a contiguous row. Sums use eight lanes in blocks accumulated in Double, so long
    /// sums (a loss over a whole batch) lose no more precision than a pairwise sum.
    @inlinable
    static func reduceRow(_ p: UnsafePointer<Float>, _ n: Int, _ kind: ReduceKind) -> Float {
        switch kind {
        case .sum:
            var total = 0.0
            var start = 0
            while start < n {
                let end = min(n, start + 4096)
                var acc0 = SIMD8<Float>(repeating: 0), acc1 = SIMD8<Float>(repeating: 0)
                var i = start
                while i + 16 <= end {
                    acc0 += load(p + i); acc1 += load(p + i + 8); i += 16
                }
                while i + 8 <= end { acc0 += load(p + i); i += 8 }
                var s = Double((acc0 + acc1).sum())
                while i < end { s += Double(p[i]); i += 1 }
                total += s
                start = end
            }
            return Float(total)
        case .max:
            guard n > 0 else { return -.infinity }
            var acc = SIMD8<Float>(repeating: -.infinity)
            var i = 0
            while i + 8 <= n { acc = pointwiseMaxNaN(acc, load(p + i)); i += 8 }
            var m = acc.max()
            if (0..<8).contains(where: { acc[$0].isNaN }) { return .nan }
            while i < n { m = maxNaN(m, p[i]); i += 1 }
            return m
        case .min:
            guard n > 0 else { return .infinity }
            var acc = SIMD8<Float>(repeating: .infinity)
            var i = 0
            while i + 8 <= n { acc = pointwiseMinNaN(acc, load(p + i)); i += 8 }
            var m = acc.min()
            if (0..<8).contains(where: { acc[$0].isNaN }) { return .nan }
            while i < n { m = minNaN(m, p[i]); i += 1 }
            return m
        }
    }

    // Max/min that propagate NaN, as PyTorch's reductions do.
    @inlinable @inline(__always)
    static func maxNaN(_ a: Float, _ b: Float) -> Float { (a > b || a.isNaN) ? a : (b.isNaN ? b : Swift.max(a, b)) }
    @inlinable @inline(__always)
    static func minNaN(_ a: Float, _ b: Float) -> Float { (a < b || a.isNaN) ? a : (b.isNaN ? b : Swift.min(a, b)) }
    @inlinable @inline(__always)
    static func pointwiseMaxNaN(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        let m = a.replacing(with: b, where: b .> a)
        return m.replacing(with: b, where: b .!= b)
    }
    @inlinable @inline(__always)
    static func pointwiseMinNaN(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        let m = a.replacing(with: b, where: b .< a)
        return m.replacing(with: b, where: b .!= b)
    }
}
