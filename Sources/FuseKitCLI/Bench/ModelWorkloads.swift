import FuseKit
import RestormerFusion

/// The model workloads of `fusekit bench`, defined as shared/reference/bench_torch.py defines them.
enum ModelWorkloads {
    static func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        return Tensor.uniform(shape, using: &rng)
    }

    static var all: [BenchWorkload] { [
        BenchWorkload(name: "fusion-infer-480x640", summary: "F forward on 1x2x480x640, no gradients", defaultRuns: 5,
                      flops: nil, bytes: nil) {
            let f = RestormerFusion()
            let state = f.initialState(seed: 0)
            let x = random([1, 2, 480, 640], seed: 1)
            return { _ = withoutGradient { f.fuse(x, Scope(state)) } }
        },
    ] }
}
