import FuseKitData
import FuseKitNN
import FuseKitTensor

/// TDFusion's training (paper Algorithm 1, as the official code runs it), generic over the fusion
/// network F, the loss generator G and the task network T.
///
/// An epoch is `meta-steps` meta steps then one fusion step per batch of the training set
/// (``plan(epoch:)``); with `phases: interleaved`, a meta step before every fusion step; with fixed
/// weights w = 1/2, fusion steps only. ``run(_:_:_:)`` is the algorithm:
/// - **meta(i)**, the learning of G: w = G(x); a virtual step θ_F' = θ_F − η ∇L_f(F(x), w) that
///   keeps its dependence on θ_G; T' = T after one ordinary optimiser step on the task loss of
///   F(x) (discarded afterwards: T and its optimiser state are untouched); the task loss of
///   T'(F'(x')) on the next batch; G moved along its exact hypergradient
///   −η (∂²L_f/∂θ_F∂θ_G)ᵀ ∇_θF' L_t (``MetaStepProblem``).
/// - **fusion(i)**, the learning of F and T: F on L_f with w = G(x) frozen (F never sees task
///   gradients, unless the `fusion-task-weight` ablation says so); T on the task loss of F(x)
///   detached.
struct MetaStrategy: TrainingStrategy {
    let fusion: TrainedModel
    let lossGenerator: TrainedModel?
    let task: TrainedModel
    let loss: FusionLoss
    let settings: StageSettings
    /// Fusion-step batches, and the meta steps' (their own order).
    let batches: BatchLoader
    let metaBatches: BatchLoader
    let taskInput: @Sendable (Tensor) -> Tensor

    var fusionNet: any FusionNet { fusion.module as! any FusionNet }
    var taskNet: any TaskNet { task.module as! any TaskNet }

    var metaStepsPerEpoch: Int { lossGenerator == nil ? 0 : settings.metaSteps }
    var fusionStepsPerEpoch: Int { Swift.min(batches.batchesPerEpoch, settings.stepsPerEpoch ?? Int.max) }

    func plan(epoch: Int) -> [TrainingStep] {
        let fusionSteps = (0..<fusionStepsPerEpoch).map { TrainingStep(.fusion, $0) }
        guard metaStepsPerEpoch > 0 else { return fusionSteps }
        switch settings.phases {
        case .separate:
            return (0..<metaStepsPerEpoch).map { TrainingStep(.meta, $0) } + fusionSteps
        case .interleaved:
            return fusionSteps.flatMap { [TrainingStep(.meta, $0.index), $0] }
        }
    }

    func run(_ step: TrainingStep, _ state: inout TrainingState, _ environment: StepEnvironment) throws -> StepRecord {
        switch step.phase {
        case .meta: return try metaStep(step, &state, environment)
        case .fusion: return try fusionStep(step, &state, environment)
        case .joint, .pretraining: preconditionFailure("the meta strategy plans no \(step.phase) steps")
        }
    }

    /// One update of G (Algorithm 1, learning of G).
    func metaStep(_ step: TrainingStep, _ state: inout TrainingState, _ env: StepEnvironment) throws -> StepRecord {
        guard let lossGenerator, let generator = lossGenerator.module as? any LossGenerator else {
            preconditionFailure("a meta step needs a loss generator")
        }
        let started = Profiler.now()
        let epoch = env.position.epoch
        let count = metaBatches.batchesPerEpoch
        let trainBatch = try metaBatches.batch(epoch: epoch, index: (2 * step.index) % count)
        let testBatch = try metaBatches.batch(epoch: epoch, index: (2 * step.index + 1) % count)
        let lrF = env.learningRate(fusion), lrT = env.learningRate(task), lrG = env.learningRate(lossGenerator)
        let eta = Float(settings.innerLearningRate ?? Double(lrF))
        var problem = MetaStepProblem(
            fusion: fusionNet, lossGenerator: generator, task: taskNet, loss: loss,
            fusionState: state[.fusion], generatorState: state[.lossGenerator], taskState: state[.task],
            sources: trainBatch.sources, nextSources: testBatch.sources, nextTargets: testBatch.targets,
            innerLearningRate: eta, taskInput: taskInput,
            contextSeed: RandomStream.metaProblem.seed(env.seed, step: env.position.globalStep), parallel: env.parallel)
        let inner = problem.innerPass()
        let fusionLoss = try env.agreed(Double(inner.fusionLoss), "the fusion loss L_f", step)
        // T' = T after one ordinary optimiser step on the task loss of F(x) (then discarded).
        let taskContext = env.context(.innerTask)
        let taskState = state[.task]
        let (innerTaskLoss, taskGradient) = valueWithGradient(at: taskState.parameters) { p in
            taskNet.loss(taskInput(inner.fused), targets: trainBatch.targets, Scope(parameters: p, buffers: taskState.buffers, context: taskContext))
        }
        let taskLoss = try env.agreed(Double(innerTaskLoss.item), "the task loss", step)
        var scratchOptimizer = state.optimizers[.task] ?? OptimizerState()
        var taskPrime = taskState
        taskPrime.parameters = task.optimizer.update(taskState.parameters, gradients: env.averaged(taskGradient, of: task),
                                                     state: &scratchOptimizer, learningRate: lrT)
        taskPrime.absorb(taskContext)
        problem = problem.with(taskState: taskPrime)
        let result = settings.hypergradient == .exact
            ? problem.exactHypergradient(inner: inner) : problem.finiteDifferenceHypergradient(inner: inner)
        let hypergradient = env.averaged(result.hypergradient, of: lossGenerator)
        let norm = hypergradient.values.reduce(0.0) { $0 + Double(($1 * $1).sum().item) }.squareRoot()
        let outerTaskLoss = try env.agreed(Double(result.outerTaskLoss), "the outer task loss", step)
        _ = try env.agreed(norm, "the hypergradient of G", step)
        env.update(.lossGenerator, lossGenerator, &state, gradient: hypergradient, learningRate: lrG)
        return StepRecord(phase: .meta, epoch: epoch, step: step.index, globalStep: env.position.globalStep + 1,
                          fusionLoss: fusionLoss, innerTaskLoss: taskLoss,
                          outerTaskLoss: outerTaskLoss, hypergradientNorm: norm,
                          learningRates: [ModelRole.fusion.rawValue: Double(lrF), ModelRole.task.rawValue: Double(lrT),
                                          ModelRole.lossGenerator.rawValue: Double(lrG), "eta": Double(eta)],
                          seconds: Profiler.now() - started)
    }

    /// One update of F (on the fusion loss, G frozen) and of T (on F(x) detached).
    func fusionStep(_ step: TrainingStep, _ state: inout TrainingState, _ env: StepEnvironment) throws -> StepRecord {
        let started = Profiler.now()
        let batch = try batches.batch(epoch: env.position.epoch, index: step.index)
        let lrF = env.learningRate(fusion), lrT = env.learningRate(task)
        let sources = batch.sources, targets = batch.targets
        let w = weights(sources, state, env)
        let target = FusionLoss.gradientTarget(sources)
        let taskWeight = Float(settings.fusionTaskWeight)
        let fusionContext = env.context(.fusion)
        let fusionState = state[.fusion], taskState = state[.task]
        let (_, fusionGradient, (fused, fusionOnly)) = valueWithGradient(at: fusionState.parameters) { p in
            let f = fusionNet.fuse(sources, Scope(parameters: p, buffers: fusionState.buffers, context: fusionContext))
            let lf = loss(fused: f, sources: sources, weights: w, gradientTarget: target)
            var objective = lf
            if taskWeight > 0 {
                // Ablation: F also trained by the task loss (T's parameters held).
                let heldTask = Scope(parameters: taskState.parameters.mapValues { $0.detached() }, buffers: taskState.buffers,
                                     context: env.context(.taskForFusion))
                objective = objective + taskWeight * taskNet.loss(taskInput(f), targets: targets, heldTask)
            }
            return (objective, auxiliary: (f, lf.item))
        }
        let fusionLoss = try env.agreed(Double(fusionOnly), "the fusion loss L_f", step)
        env.update(.fusion, fusion, &state, gradient: env.averaged(fusionGradient, of: fusion), learningRate: lrF)
        state[.fusion].absorb(fusionContext)
        let taskContext = env.context(.task)
        let input = taskInput(fused.detached())
        let (taskLoss, taskGradient) = valueWithGradient(at: taskState.parameters) { p in
            taskNet.loss(input, targets: targets, Scope(parameters: p, buffers: taskState.buffers, context: taskContext))
        }
        let meanTaskLoss = try env.agreed(Double(taskLoss.item), "the task loss", step)
        env.update(.task, task, &state, gradient: env.averaged(taskGradient, of: task), learningRate: lrT)
        state[.task].absorb(taskContext)
        var rates = [ModelRole.fusion.rawValue: Double(lrF), ModelRole.task.rawValue: Double(lrT)]
        if let lossGenerator { rates[ModelRole.lossGenerator.rawValue] = Double(env.learningRate(lossGenerator)) }
        return StepRecord(phase: .fusion, epoch: env.position.epoch, step: step.index, globalStep: env.position.globalStep + 1,
                          fusionLoss: fusionLoss, innerTaskLoss: meanTaskLoss, outerTaskLoss: nil,
                          hypergradientNorm: nil, learningRates: rates, seconds: Profiler.now() - started)
    }

    /// w = G(x) without gradient, or 1/2 everywhere with fixed weights.
    func weights(_ sources: Tensor, _ state: TrainingState, _ env: StepEnvironment) -> Tensor {
        guard let generator = lossGenerator?.module as? any LossGenerator else { return Tensor.full(sources.shape, 0.5) }
        let g = state[.lossGenerator]
        return withoutGradient {
            generator.weights(sources, Scope(parameters: g.parameters, buffers: g.buffers, context: env.context(.lossGeneratorWeights)))
        }
    }
}
