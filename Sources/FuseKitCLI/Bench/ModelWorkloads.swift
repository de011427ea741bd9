import FuseKit

/// The model workloads of `fusekit bench`, defined as shared/reference/bench_torch.py defines them,
/// with the registry's default plugins (TDFusion's F and G, a small task net, SegFormer-b0).
enum ModelWorkloads {
    struct Models {
        let fusion: any FusionNet
        let lossGenerator: any LossGenerator
        let smallTask: any TaskNet
        let segmentation: any TaskNet
    }

    /// The default plugins at their default configurations (9 classes for the task nets).
    static func models() -> Models {
        let registry = CommandContext.registry, d = registry.defaults
        do {
            guard let f = d.fusion, let g = d.lossGenerator, let t = d.smallTask, let s = d.segmentationTask else {
                throw PluginError.invalidValue(plugin: "bench", key: "defaults", reason: "the registry names no default models", line: nil)
            }
            let classes = PluginParameters(["classes": .int(9)])
            return Models(fusion: try registry.makeFusion(f), lossGenerator: try registry.makeLossGenerator(g),
                          smallTask: try registry.makeTask(t, classes), segmentation: try registry.makeTask(s, classes))
        } catch {
            fatalError("fusekit bench: \(error)")
        }
    }

    static func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        return Tensor.uniform(shape, using: &rng)
    }

    /// The three workloads of shared/reference/bench_torch.py (the default set).
    static var all: [BenchWorkload] { [inference(480, 640)] + training }

    /// F's forward pass at other sizes, to check that cost grows linearly with pixels.
    static var scaling: [BenchWorkload] { [inference(240, 320), inference(960, 1280)] }

    /// The official configuration's meta step: SegFormer-b0 as T (the fused image resized to 240x320).
    static var segformerMetaStep: BenchWorkload {
        BenchWorkload(name: "meta-step-2x256-segformer", summary: "one exact meta step on 2x2x256x256 with SegFormer-b0 (9 classes, input 240x320) as T",
                      defaultRuns: 3, flops: nil, bytes: nil) {
            let m = models(), f = m.fusion, g = m.lossGenerator, t = m.segmentation
            let x = random([2, 2, 256, 256], seed: 2), x2 = random([2, 2, 256, 256], seed: 3)
            var rng = RandomGenerator(seed: 4)
            let labels = Tensor(shape: [2, 256, 256], scalars: (0..<(2 * 256 * 256)).map { _ in Float(rng.nextInt(below: 9)) })
            let problem = MetaStepProblem(
                fusion: f, lossGenerator: g, task: t, loss: FusionLoss(), fusionState: f.initialState(seed: 0),
                generatorState: g.initialState(seed: 1), taskState: t.initialState(seed: 5), sources: x, nextSources: x2,
                nextTargets: TaskTargets(segmentation: labels), innerLearningRate: 1e-4,
                taskInput: { $0.resizedBilinear(to: (240, 320)) }, contextSeed: 6)
            return { _ = problem.exactHypergradient() }
        }
    }

    static func inference(_ h: Int, _ w: Int) -> BenchWorkload {
        BenchWorkload(name: "fusion-infer-\(h)x\(w)", summary: "F forward on 1x2x\(h)x\(w), no gradients", defaultRuns: 5,
                      flops: nil, bytes: nil) {
            let f = models().fusion
            let state = f.initialState(seed: 0)
            let x = random([1, 2, h, w], seed: 1)
            return { _ = withoutGradient { f.fuse(x, Scope(state)) } }
        }
    }

    static var training: [BenchWorkload] { [
        BenchWorkload(name: "fusion-train-2x256", summary: "one training step of F (forward, learnable loss with w = G(x) not differentiated, backward, Adam) on 2x2x256x256",
                      defaultRuns: 5, flops: nil, bytes: nil) {
            let m = models(), f = m.fusion, g = m.lossGenerator
            var fState = f.initialState(seed: 0)
            let gState = g.initialState(seed: 1)
            let x = random([2, 2, 256, 256], seed: 2)
            let optimizer = Adam()
            var optimizerState = OptimizerState()
            let loss = FusionLoss()
            return {
                let w = withoutGradient { g.weights(x, Scope(gState)) }
                let (_, gradient) = valueWithGradient(at: fState.parameters) { p in
                    loss(fused: f.fuse(x, Scope(parameters: p)), sources: x, weights: w)
                }
                fState.parameters = optimizer.update(fState.parameters, gradients: gradient, state: &optimizerState, learningRate: 1e-4)
            }
        },
        BenchWorkload(name: "meta-step-2x256", summary: "one exact meta step (inner virtual step with the graph to G, outer task loss of tiny-conv-seg on F'(x'), hypergradient of G) on 2x2x256x256",
                      defaultRuns: 3, flops: nil, bytes: nil) {
            let m = models(), f = m.fusion, g = m.lossGenerator, t = m.smallTask
            let x = random([2, 2, 256, 256], seed: 2), x2 = random([2, 2, 256, 256], seed: 3)
            var rng = RandomGenerator(seed: 4)
            let labels = Tensor(shape: [2, 256, 256], scalars: (0..<(2 * 256 * 256)).map { _ in Float(rng.nextInt(below: 9)) })
            let problem = MetaStepProblem(
                fusion: f, lossGenerator: g, task: t, loss: FusionLoss(), fusionState: f.initialState(seed: 0),
                generatorState: g.initialState(seed: 1), taskState: t.initialState(seed: 5), sources: x, nextSources: x2,
                nextTargets: TaskTargets(segmentation: labels), innerLearningRate: 1e-4, taskInput: { $0 }, contextSeed: 6)
            return { _ = problem.exactHypergradient() }
        },
    ] }
}
