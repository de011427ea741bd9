/// A pointwise function on eight lanes, used to specialise the elementwise kernels.
public protocol UnaryVectorFunction {
    static func apply(_ x: SIMD8<Float>) -> SIMD8<Float>
}

/// A pointwise binary function on eight lanes, used to specialise the broadcasting kernel.
public protocol BinaryVectorFunction {
    static func apply(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float>
}

/// Raw loops over contiguous Float buffers, vectorised and split over the cores.
public enum Kernels {
    @inlinable @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inlinable @inline(__always)
    static func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    }

    @inlinable @inline(__always)
    static func loadPartial(_ p: UnsafePointer<Float>, _ n: Int) -> SIMD8<Float> {
        var v = SIMD8<Float>(repeating: 0)
        for i in 0..<n { v[i] = p[i] }
        return v
    }

    @inlinable @inline(__always)
    static func storePartial(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { p[i] = v[i] }
    }

    /// Sets `count` elements to `value`.
    public static func fill(_ p: UnsafeMutablePointer<Float>, count: Int, value: Float) {
        let out = SendablePointer(p)
        Parallel.forRanges(count, grain: 1 << 17) { r in
            (out.base + r.lowerBound).initialize(repeating: value, count: r.count)
        }
    }

    /// Copies `count` elements.
    public static func copy(from src: UnsafePointer<Float>, to dst: UnsafeMutablePointer<Float>, count: Int) {
        let s = SendablePointer(UnsafeMutablePointer(mutating: src))
        let d = SendablePointer(dst)
        Parallel.forRanges(count, grain: 1 << 17) { r in
            (d.base + r.lowerBound).update(from: s.base + r.lowerBound, count: r.count)
        }
    }

    /// y[i] = F(x[i]) for `count` elements (y may alias x).
    @inlinable
    public static func map<F: UnaryVectorFunction>(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, _: F.Type) {
        let src = SendablePointer(UnsafeMutablePointer(mutating: x))
        let dst = SendablePointer(y)
        Parallel.forRanges(count) { r in
            var i = r.lowerBound
            while i + 8 <= r.upperBound {
                store(F.apply(load(src.base + i)), dst.base + i)
                i += 8
            }
            if i < r.upperBound {
                storePartial(F.apply(loadPartial(src.base + i, r.upperBound - i)), dst.base + i, r.upperBound - i)
            }
        }
    }

    /// c[i] = F(a[i], b[i]) over contiguous buffers of the same length.
    @inlinable
    public static func zip<F: BinaryVectorFunction>(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                                    _ c: UnsafeMutablePointer<Float>, count: Int, _: F.Type) {
        let pa = SendablePointer(UnsafeMutablePointer(mutating: a))
        let pb = SendablePointer(UnsafeMutablePointer(mutating: b))
        let pc = SendablePointer(c)
        Parallel.forRanges(count) { r in
            zipRow(pa.base + r.lowerBound, 1, pb.base + r.lowerBound, 1, pc.base + r.lowerBound, r.count, F.self)
        }
    }

    /// One inner row of a broadcast binary operation; each input stride is 1 or 0.
    @inlinable @inline(__always)
    static func zipRow<F: BinaryVectorFunction>(_ a: UnsafePointer<Float>, _ sa: Int, _ b: UnsafePointer<Float>, _ sb: Int,
                                                _ c: UnsafeMutablePointer<Float>, _ n: Int, _: F.Type) {
        var i = 0
        switch (sa, sb) {
        case (1, 1):
            while i + 8 <= n { store(F.apply(load(a + i), load(b + i)), c + i); i += 8 }
            if i < n { storePartial(F.apply(loadPartial(a + i, n - i), loadPartial(b + i, n - i)), c + i, n - i) }
        case (0, 1):
            let va = SIMD8<Float>(repeating: a[0])
            while i + 8 <= n { store(F.apply(va, load(b + i)), c + i); i += 8 }
            if i < n { storePartial(F.apply(va, loadPartial(b + i, n - i)), c + i, n - i) }
        case (1, 0):
            let vb = SIMD8<Float>(repeating: b[0])
            while i + 8 <= n { store(F.apply(load(a + i), vb), c + i); i += 8 }
            if i < n { storePartial(F.apply(loadPartial(a + i, n - i), vb), c + i, n - i) }
        default:
            let v = F.apply(SIMD8<Float>(repeating: a[0]), SIMD8<Float>(repeating: b[0]))[0]
            (c).initialize(repeating: v, count: n)
        }
    }

    /// Broadcasting binary operation: `a` and `b` (contiguous) are broadcast to `outShape`.
    @inlinable
    public static func broadcastZip<F: BinaryVectorFunction>(_ a: UnsafePointer<Float>, shapeA: [Int],
                                                             _ b: UnsafePointer<Float>, shapeB: [Int],
                                                             _ c: UnsafeMutablePointer<Float>, outShape: [Int], _: F.Type) {
        let total = Shape.count(outShape)
        if total == 0 { return }
        if shapeA == outShape && shapeB == outShape {
            zip(a, b, c, count: total, F.self)
            return
        }
        let layout = BroadcastLayout(outShape: outShape, shapeA: shapeA, shapeB: shapeB)
        let inner = layout.dims.last!
        let sa = layout.stridesA.last!, sb = layout.stridesB.last!
        let rows = total / inner
        let pa = SendablePointer(UnsafeMutablePointer(mutating: a))
        let pb = SendablePointer(UnsafeMutablePointer(mutating: b))
        let pc = SendablePointer(c)
        // Work items are (row, chunk of the row) so short and long rows both split well.
        let chunk = 16_384
        let chunksPerRow = (inner + chunk - 1) / chunk
        Parallel.forRanges(rows * chunksPerRow, grain: max(1, 32_768 / min(inner, chunk))) { items in
            for item in items {
                let row = item / chunksPerRow
                let start = (item % chunksPerRow) * chunk
                let n = min(chunk, inner - start)
                let (offA, offB) = layout.rowOffsets(row)
                zipRow(pa.base + offA + start * sa, sa, pb.base + offB + start * sb, sb,
                       pc.base + row * inner + start, n, F.self)
            }
        }
    }
}

/// Strides of two inputs broadcast to an output shape, with adjacent dimensions merged where
/// both inputs allow it, so the innermost loop is as long as possible.
@usableFromInline
struct BroadcastLayout {
    @usableFromInline var dims: [Int]
    @usableFromInline var stridesA: [Int]
    @usableFromInline var stridesB: [Int]

    @usableFromInline
    init(outShape: [Int], shapeA: [Int], shapeB: [Int]) {
        let rank = outShape.count
        func aligned(_ shape: [Int]) -> [Int] {
            let padded = [Int](repeating: 1, count: rank - shape.count) + shape
            let strides = Shape.strides(padded)
            return (0..<rank).map { padded[$0] == 1 ? 0 : strides[$0] }
        }
        var sa = aligned(shapeA), sb = aligned(shapeB)
        var dims = outShape
        // Drop size-1 dimensions, then merge neighbours that are contiguous in both inputs.
        var d: [Int] = [], xa: [Int] = [], xb: [Int] = []
        for i in 0..<rank where dims[i] != 1 {
            d.append(dims[i]); xa.append(sa[i]); xb.append(sb[i])
        }
        if d.isEmpty { d = [1]; xa = [0]; xb = [0] }
        dims = [d[0]]; sa = [xa[0]]; sb = [xb[0]]
        for i in 1..<d.count {
            let last = dims.count - 1
            if sa[last] == xa[i] * d[i] && sb[last] == xb[i] * d[i] {
                dims[last] *= d[i]
                sa[last] = xa[i]
                sb[last] = xb[i]
            } else {
                dims.append(d[i]); sa.append(xa[i]); sb.append(xb[i])
            }
        }
        self.dims = dims
        self.stridesA = sa
        self.stridesB = sb
    }

    /// Offsets into a and b of the start of an innermost row.
    @inlinable @inline(__always)
    func rowOffsets(_ row: Int) -> (Int, Int) {
        var rest = row
        var oa = 0, ob = 0
        var i = dims.count - 2
        while i >= 0 {
            let idx = rest % dims[i]
            rest /= dims[i]
            oa += idx * stridesA[i]
            ob += idx * stridesB[i]
            i -= 1
        }
        return (oa, ob)
    }
}
