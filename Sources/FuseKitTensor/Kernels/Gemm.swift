import CBLAS
#if canImport(Glibc)
import Glibc
#endif

/// Single-precision matrix products through OpenBLAS (row-major).
///
/// OpenBLAS runs single-threaded and FuseKit splits large products over its own workers. With
/// OpenBLAS's own thread pool, its workers keep spinning after each call and compete for the
/// cores with FuseKit's parallel kernels (measured: a training step 1.5x slower on 2 cores).
public enum Gemm {
    /// Puts OpenBLAS in single-threaded mode once, before the first product, and warns when
    /// OpenBLAS runs older kernels than the CPU supports (``BLASKernel``).
    static let configured: Bool = {
        BLASKernel.warnOnceIfSuboptimal()
        if !useOpenBLASThreads { openblas_set_num_threads(1) }
        return true
    }()
    /// `FUSEKIT_GEMM=openblas`: OpenBLAS threads its own products instead of FuseKit splitting them.
    public static let useOpenBLASThreads = getenv("FUSEKIT_GEMM").map { String(cString: $0) } == "openblas"

    /// Products of at least this many multiply-adds are split over the workers; smaller ones run
    /// on the calling thread (callers parallelise over independent products instead).
    public static let splitThreshold = 1 << 22

    /// One product on the calling thread (for callers that run several products in parallel).
    public static func sgemmSerial(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                                   a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                   beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0 && n > 0 else { return }
        if k == 0 || useOpenBLASThreads {
            sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                  beta: beta, c: c, ldc: ldc)
            return
        }
        _ = configured
        call(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }

    /// A product function: (transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc).
    public typealias Product = (Bool, Bool, Int, Int, Int, Float, UnsafePointer<Float>, Int, UnsafePointer<Float>, Int, Float,
                                UnsafeMutablePointer<Float>, Int) -> Void

    /// `sgemmSerial` when `serial`, else `sgemm`.
    public static func product(serial: Bool) -> Product {
        { tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc in
            if serial {
                sgemmSerial(transposeA: tA, transposeB: tB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            } else {
                sgemm(transposeA: tA, transposeB: tB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            }
        }
    }

    /// Whether independent products of `work` multiply-adds each should run in parallel (each
    /// on one thread) rather than one after the other (each split).
    public static func parallelizesAcrossProducts(count: Int, work: Int) -> Bool {
        count > 1 && work < splitThreshold && Parallel.threadCount > 1 && !useOpenBLASThreads
    }


    /// C = alpha * op(A) * op(B) + beta * C, with op = transpose when the flag is set.
    /// op(A) is m x k, op(B) is k x n, C is m x n; leading dimensions are row strides.
    public static func sgemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0 && n > 0 else { return }
        if k == 0 {
            if beta == 0 {
                for i in 0..<m { (c + i * ldc).initialize(repeating: 0, count: n) }
            } else if beta != 1 {
                for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } }
            }
            return
        }
        _ = configured
        let threads = Parallel.threadCount
        let work = m * n * k
        guard threads > 1 && work >= splitThreshold && !useOpenBLASThreads else {
            call(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        let pa = SendablePointer(UnsafeMutablePointer(mutating: a)), pb = SendablePointer(UnsafeMutablePointer(mutating: b))
        let pc = SendablePointer(c)
        if n >= 64 * threads {
            // Columns of C (and of op(B)).
            Parallel.forEach(threads, itemCost: work) { t in
                let j0 = (n * t / threads) & ~15, j1 = t == threads - 1 ? n : (n * (t + 1) / threads) & ~15
                guard j1 > j0 else { return }
                let bj = transposeB ? pb.base + j0 * ldb : pb.base + j0
                call(transposeA, transposeB, m, j1 - j0, k, alpha, pa.base, lda, bj, ldb, beta, pc.base + j0, ldc)
            }
        } else if m >= 16 * threads {
            // Rows of C (and of op(A)).
            Parallel.forEach(threads, itemCost: work) { t in
                let i0 = m * t / threads, i1 = m * (t + 1) / threads
                let ai = transposeA ? pa.base + i0 : pa.base + i0 * lda
                call(transposeA, transposeB, i1 - i0, n, k, alpha, ai, lda, pb.base, ldb, beta, pc.base + i0 * ldc, ldc)
            }
        } else {
            // A small C with a long inner dimension: partial products over slices of k, summed.
            let partial = BufferPool.allocateFloats((threads - 1) * m * n)
            defer { BufferPool.releaseFloats(partial, (threads - 1) * m * n) }
            let pp = SendablePointer(partial)
            Parallel.forEach(threads, itemCost: work) { t in
                let k0 = k * t / threads, k1 = k * (t + 1) / threads
                let ak = transposeA ? pa.base + k0 * lda : pa.base + k0
                let bk = transposeB ? pb.base + k0 : pb.base + k0 * ldb
                if t == 0 {
                    call(transposeA, transposeB, m, n, k1 - k0, alpha, ak, lda, bk, ldb, beta, pc.base, ldc)
                } else {
                    call(transposeA, transposeB, m, n, k1 - k0, alpha, ak, lda, bk, ldb, 0, pp.base + (t - 1) * m * n, n)
                }
            }
            for t in 1..<threads {
                let src = partial + (t - 1) * m * n
                for i in 0..<m {
                    let row = c + i * ldc, part = src + i * n
                    for j in 0..<n { row[j] += part[j] }
                }
            }
        }
    }

    @inline(__always)
    static func call(_ transposeA: Bool, _ transposeB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                     _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                     _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// One product by OpenBLAS with its own thread pool (all cores), bypassing FuseKit's split;
    /// for benchmarks that compare the two.
    public static func openBLASThreaded(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                                        c: UnsafeMutablePointer<Float>) {
        _ = configured
        openblas_set_num_threads(Int32(Parallel.threadCount))
        call(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
        openblas_set_num_threads(1)
    }

    /// The number of threads FuseKit uses for products (OpenBLAS itself runs single-threaded).
    public static var threads: Int { Parallel.threadCount }
}
