// Matrix products (cblas_sgemm), batched over leading dimensions.

extension Tensor {
    /// Matrix product of the last two axes, batched over the leading ones: op(a) is [..., M, K],
    /// op(b) is [..., K, N]. Batch dimensions must match, or one operand is a plain matrix shared
    /// by the whole batch.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        require(a.rank >= 2 && b.rank >= 2, "matmul: operands need rank >= 2, got \(Shape.describe(a.shape)) and \(Shape.describe(b.shape))")
        let m = transposeA ? a.shape[a.rank - 1] : a.shape[a.rank - 2]
        let k = transposeA ? a.shape[a.rank - 2] : a.shape[a.rank - 1]
        let k2 = transposeB ? b.shape[b.rank - 1] : b.shape[b.rank - 2]
        let n = transposeB ? b.shape[b.rank - 2] : b.shape[b.rank - 1]
        require(k == k2, "matmul: inner dimensions differ: \(Shape.describe(a.shape))\(transposeA ? "ᵀ" : "") x \(Shape.describe(b.shape))\(transposeB ? "ᵀ" : "") (\(k) vs \(k2))")
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        require(batchA == batchB || batchA.isEmpty || batchB.isEmpty,
                "matmul: batch dimensions \(Shape.describe(batchA)) and \(Shape.describe(batchB)) differ")
        // A batch of rows times one shared matrix is one big product.
        if batchB.isEmpty && !batchA.isEmpty && !transposeA {
            let y = matmul(a.reshaped([-1, k]), b, transposeB: transposeB)
            return y.reshaped(batchA + [m, n])
        }
        let batch = batchA.isEmpty ? batchB : batchA
        let count = Shape.count(batch)
        let y = Tensor(uninitializedShape: batch + [m, n])
        let strideA = batchA.isEmpty ? 0 : m * k, strideB = batchB.isEmpty ? 0 : k * n
        let t0 = Profiler.isActive ? Profiler.now() : 0
        let pa = SendablePointer(UnsafeMutablePointer(mutating: a.pointer)), pb = SendablePointer(UnsafeMutablePointer(mutating: b.pointer))
        let py = SendablePointer(y.mutablePointer)
        let product = { (i: Int, serial: Bool) in
            Gemm.product(serial: serial)(transposeA, transposeB, m, n, k, 1, pa.base + i * strideA, transposeA ? m : k,
                pb.base + i * strideB, transposeB ? k : n, 0, py.base + i * m * n, n)
        }
        if Gemm.parallelizesAcrossProducts(count: count, work: m * n * k) {
            Parallel.forEach(count, itemCost: m * n * k / 16) { product($0, true) }
        } else {
            for i in 0..<count { product(i, false) }
        }
        if Profiler.isActive { Profiler.record("matmul", seconds: Profiler.now() - t0, flops: 2 * Double(count * m * n * k)) }
        let (sa, sb) = (a.shape, b.shape)
        return y.recorded(op: "matmul", inputs: [a, b], pullback: { g, _, need in
            var ga: Tensor? = nil, gb: Tensor? = nil
            if need[0] {
                ga = transposeA
                    ? matmul(b, g, transposeA: transposeB, transposeB: true)
                    : matmul(g, b, transposeB: !transposeB)
                ga = ga!.summed(toShape: sa)
            }
            if need[1] {
                gb = transposeB
                    ? matmul(g, a, transposeA: true, transposeB: transposeA)
                    : matmul(a, g, transposeA: !transposeA)
                gb = gb!.summed(toShape: sb)
            }
            return [ga, gb]
        }, tangent: { t, y in
            addTangents(t[0].map { matmul($0, b, transposeA: transposeA, transposeB: transposeB) },
                        t[1].map { matmul(a, $0, transposeA: transposeA, transposeB: transposeB) }, shape: y.shape)
        })
    }
}
