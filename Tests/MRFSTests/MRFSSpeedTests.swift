import Foundation
import FuseKit
import MRFS
import Testing

/// One training step's forward + backward at 480x640, timed and printed (never asserted), to set
/// against the PyTorch transcription's in the same run (Fixtures/bench_mrfs_reference.py, same
/// settings: batch 1, train mode, the full MRFS loss with random labels, the official
/// initialisation). Off unless MRFS_SPEED=1; MRFS_SPEED_VARIANTS (default "minimal,b0") and
/// MRFS_SPEED_RUNS (default 5) choose what runs.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["MRFS_SPEED"] == "1", "timing runs only with MRFS_SPEED=1"))
struct MRFSSpeedTests {
    @Test func forwardAndBackwardAt480x640() throws {
        let environment = ProcessInfo.processInfo.environment
        let variants = (environment["MRFS_SPEED_VARIANTS"] ?? "minimal,b0").split(separator: ",").map(String.init)
        let runs = Int(environment["MRFS_SPEED_RUNS"] ?? "") ?? 5
        let (b, h, w) = (1, 480, 640)
        var rng = RandomGenerator(seed: 1)
        let rgb = Tensor.uniform([b, 3, h, w], using: &rng), infrared = Tensor.uniform([b, 1, h, w], using: &rng)
        let labels = Tensor(shape: [b, h, w], scalars: (0..<(b * h * w)).map { _ in Float(rng.nextInt(below: 9)) })
        let registry = LossTermRegistry.standard
        let terms: [(any LossTerm, Float)] = try [("cross-entropy", 1), ("intensity-max", 0.05), ("sobel-max", 0.02), ("color", 0.1)].map {
            (try #require(registry.descriptor($0.0)).makeTerm(), $0.1)
        }
        for variant in variants {
            let net = MRFS(try #require(MRFSConfiguration.variant(variant)))
            let state = net.initialState(seed: 2)
            func step(_ seed: UInt64) -> Double {
                let context = ForwardContext(training: true, rng: RandomGenerator(seed: seed))
                let started = Date()
                let (_, gradient) = valueWithGradient(at: state.parameters) { p in
                    let out = net.forward(JointInput(infrared: infrared, visible: rgb), Scope(parameters: p, buffers: state.buffers, context: context))
                    var batch = LossBatch(infrared: infrared, visible: rgb,
                                          targets: FusionTargets(infrared: infrared, visible: rgb, visibleGamma: 0.5, infraredContrast: 1.7),
                                          labels: labels)
                    batch.fused = out.fused
                    batch.logits = out.logits
                    return terms.map { term, weight in term(batch) * weight }.reduce(Tensor(0), +)
                }
                precondition(gradient.count == state.parameters.count)
                return Date().timeIntervalSince(started)
            }
            _ = step(0)
            let times = (1...runs).map { step(UInt64($0)) }.sorted()
            print(String(format: "fusekit mrfs %@ (%@ parameters) forward+backward %dx3x%dx%d: median %.3f s (min %.3f, max %.3f, %d runs)",
                         variant, "\(net.parameterCount)", b, h, w, times[times.count / 2], times.first!, times.last!, runs))
        }
    }
}
