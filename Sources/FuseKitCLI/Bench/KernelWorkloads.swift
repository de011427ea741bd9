import FuseKit

/// Micro-benchmarks of the tensor engine's kernels (issue 2's figures).
enum KernelWorkloads {
    static func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        return Tensor.uniform(shape, low: -1, high: 1, using: &rng)
    }

    static var all: [BenchWorkload] { [
        BenchWorkload(name: "sgemm-1024", summary: "1024³ matrix product through Tensor.matmul", defaultRuns: 10,
                      flops: 2 * 1024 * 1024 * 1024, bytes: nil) {
            let a = random([1024, 1024], seed: 1), b = random([1024, 1024], seed: 2)
            return { _ = Tensor.matmul(a, b) }
        },
        BenchWorkload(name: "sgemm-1024-direct", summary: "1024³ cblas_sgemm called directly, OpenBLAS's own threading", defaultRuns: 10,
                      flops: 2 * 1024 * 1024 * 1024, bytes: nil) {
            let a = random([1024, 1024], seed: 1), b = random([1024, 1024], seed: 2)
            let c = Tensor(uninitializedShape: [1024, 1024])
            return {
                Gemm.openBLASThreaded(m: 1024, n: 1024, k: 1024, a: a.pointer, b: b.pointer, c: c.mutablePointer)
            }
        },
        BenchWorkload(name: "conv3x3-48", summary: "conv2d 3x3 48->48 on 2x48x128x128, forward", defaultRuns: 10,
                      flops: 2 * 2 * 48 * 128 * 128 * 48 * 9, bytes: nil) {
            let x = random([2, 48, 128, 128], seed: 3), w = random([48, 48, 3, 3], seed: 4)
            return { _ = withoutGradient { Tensor.conv2d(x, w, padding: (1, 1)) } }
        },
        BenchWorkload(name: "conv3x3-48-train", summary: "conv2d 3x3 48->48 on 2x48x128x128, forward + backward (input and weight)",
                      defaultRuns: 10, flops: 3 * 2 * 2 * 48 * 128 * 128 * 48 * 9, bytes: nil) {
            let x = random([2, 48, 128, 128], seed: 3), w = random([48, 48, 3, 3], seed: 4)
            let seed = random([2, 48, 128, 128], seed: 5)
            return { _ = valueWithGradient(at: [x, w]) { (Tensor.conv2d($0[0], $0[1], padding: (1, 1)) * seed).sum() } }
        },
        BenchWorkload(name: "depthwise3x3-128", summary: "depthwise conv 3x3 on 2x128x256x256, forward (bytes read + written)",
                      defaultRuns: 10, flops: nil, bytes: 2 * 2 * 128 * 256 * 256 * 4) {
            let x = random([2, 128, 256, 256], seed: 6), w = random([128, 1, 3, 3], seed: 7)
            return { _ = withoutGradient { Tensor.conv2d(x, w, padding: (1, 1), groups: 128) } }
        },
    ] }
}
