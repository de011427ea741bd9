import FuseKit
import RestormerFusion
import Testing

/// F and G's inference (fused over row tiles: attention, feed-forward and the AFM mixing) equals
/// their ordinary forward on whole images of odd sizes within 1e-5 relative. The ordinary forward
/// is taken while a graph is recorded through the parameters, where no fused op may run.
@Suite struct FusedInferenceParityTests {
    static func relativeDifference(_ a: Tensor, _ b: Tensor) -> Float {
        (a - b).abs().max().item / b.abs().max().item
    }

    /// `forward` with every parameter recorded (the ordinary ops) and without (the fused ones).
    static func recordedAndFused(_ state: ModelState, _ forward: (Scope) -> Tensor) -> (recorded: Tensor, fused: Tensor) {
        let keys = state.parameters.keys.sorted()
        let recorded = vjp(at: keys.map { state.parameters[$0]! }) { values in
            [forward(Scope(parameters: Dictionary(uniqueKeysWithValues: zip(keys, values))))]
        }.values[0]
        return (recorded, withoutGradient { forward(Scope(state)) })
    }

    @Test func fusedInferenceEqualsTheRecordedForward() {
        var configuration = RestormerConfiguration()
        (configuration.dim, configuration.blocks, configuration.heads) = (8, 1, 2)
        let f = RestormerFusion(configuration), g = RestormerLossGenerator(configuration)
        let stateF = f.initialState(seed: 3), stateG = g.initialState(seed: 4)
        for (n, h, w) in [(1, 23, 19), (2, 9, 14), (1, 1, 7), (1, 130, 3)] {
            var rng = RandomGenerator(seed: 5)
            let x = Tensor.uniform([n, 2, h, w], using: &rng)
            let (recordedF, fusedF) = Self.recordedAndFused(stateF) { f.fuse(x, $0) }
            let (recordedG, fusedG) = Self.recordedAndFused(stateG) { g.weights(x, $0) }
            let errorF = Self.relativeDifference(fusedF, recordedF), errorG = Self.relativeDifference(fusedG, recordedG)
            #expect(errorF <= 1e-5, "F \(n)x\(h)x\(w): relative difference \(errorF)")
            #expect(errorG <= 1e-5, "G \(n)x\(h)x\(w): relative difference \(errorG)")
            print("fused vs recorded forward \(n)x\(h)x\(w): F \(errorF), G \(errorG)")
        }
    }

    /// The fused paths really run: a profile of F's inference names the fused ops. (Only their
    /// presence is checked: the profile is process-wide and other tests may run meanwhile.)
    @Test func inferenceRunsTheFusedOps() {
        var configuration = RestormerConfiguration()
        (configuration.dim, configuration.blocks, configuration.heads) = (8, 1, 2)
        let f = RestormerFusion(configuration)
        let state = f.initialState(seed: 3)
        var rng = RandomGenerator(seed: 6)
        let x = Tensor.uniform([1, 2, 12, 10], using: &rng)
        Profiler.start()
        _ = withoutGradient { f.fuse(x, Scope(state)) }
        let ops = Set(Profiler.stop().keys)
        #expect(ops.contains("fused channelAttention") && ops.contains("fused gatedFeedForward"), "\(ops.sorted())")
    }
}
