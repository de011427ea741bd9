import CBLAS

/// Single-precision matrix products through OpenBLAS (row-major).
public enum Gemm {
    /// C = alpha * op(A) * op(B) + beta * C, with op = transpose when the flag is set.
    /// op(A) is m x k, op(B) is k x n, C is m x n; leading dimensions are row strides.
    @inlinable
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
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Sets the number of OpenBLAS threads (defaults to its own choice).
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }
}
