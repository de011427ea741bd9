import Foundation
import FuseKitData
import FuseKitImage
import FuseKitMetrics
import FuseKitNN
import FuseKitTensor

/// TDFusion's meta-training (paper Algorithm 1, as the official code runs it), generic over the
/// fusion network F, the loss generator G and the task network T:
///
/// per epoch, (1) `meta-steps` updates of G: a virtual step of F on the learnable fusion loss,
/// T' = T after one real step on the task loss of F(x), the task loss of T'(F'(x')) on the next
/// batch, and G moved along the exact hypergradient (T is then restored); (2) the fusion phase
/// over the training set: F on the fusion loss with G frozen, T on the task loss of F(x) detached.
///
/// A run directory holds the resolved recipe, `log.jsonl`, `checkpoints/` (last and best),
/// `previews/` (fused images and w_a heat maps per epoch, loss curves), the fused test images,
/// the task predictions and the final metrics.
public final class MetaTrainer {
    /// Where training stands: the next step to run.
    public struct Position: Sendable, Equatable {
        public var epoch = 0
        /// 0: meta phase, 1: fusion phase.
        public var phase = 0
        public var index = 0
        public var globalStep = 0
    }

    /// Everything that changes during training (all of it is in the checkpoint).
    public struct State: Sendable {
        public var fusion: ModelState
        public var generator: ModelState
        public var task: ModelState
        public var fusionOptimizer = OptimizerState()
        public var generatorOptimizer = OptimizerState()
        public var taskOptimizer = OptimizerState()
        public var position = Position()
        public var bestMetric: Double?
    }

    /// The outcome of a finished run.
    public struct Result: Sendable {
        public var state: State
        public var fusion: FusionEvaluation
        public var task: TaskEvaluation?
        public var runDirectory: URL
    }

    public let setup: TrainingSetup
    public let runDirectory: URL
    let observer: TrainingObserver
    let recipe: Recipe
    let loss: FusionLoss
    let loader: BatchLoader
    let metaLoader: BatchLoader
    let fusionOptimizer: any Optimizer
    let taskOptimizer: any Optimizer
    let generatorOptimizer: any Optimizer
    let taskInput: @Sendable (Tensor) -> Tensor
    var log: TrainingLog?
    var curves: [(step: Int, fusion: Double, task: Double?)] = []

    /// A trainer writing into `runDirectory`.
    public init(setup: TrainingSetup, runDirectory: URL, observer: TrainingObserver = SilentTrainingObserver()) throws {
        self.setup = setup
        self.runDirectory = runDirectory
        self.observer = observer
        recipe = setup.recipe
        loss = FusionLoss(alpha: Float(recipe.fusionLoss.alpha), form: recipe.fusionLoss.form)
        let options = BatchOptions(batchSize: recipe.data.batchSize, cropSize: recipe.data.crop, randomFlips: recipe.data.flips,
                                   randomRotations: recipe.data.rotations, modalitySwap: recipe.data.modalitySwap, seed: recipe.seed)
        loader = BatchLoader(source: setup.trainSource, options: options)
        var metaOptions = options
        metaOptions.seed = recipe.seed ^ 0x4D45_5441_5354_4550
        metaLoader = BatchLoader(source: setup.trainSource, options: metaOptions)
        guard loader.batchesPerEpoch >= 1 else {
            throw TrainingError.data("the training set has \(setup.trainSource.count) pairs, fewer than one batch of \(recipe.data.batchSize)")
        }
        func noDecay(_ module: any Module) -> Set<String> { Set(module.namedSpecs().filter { !$0.spec.decays }.map(\.name)) }
        fusionOptimizer = recipe.fusion.optimizer.make(noDecay: noDecay(setup.fusion))
        taskOptimizer = recipe.task.model.optimizer.make(noDecay: noDecay(setup.task))
        generatorOptimizer = recipe.lossGenerator.optimizer.make(noDecay: setup.lossGenerator.map(noDecay) ?? [])
        taskInput = setup.taskInput
    }

    // MARK: Plan

    var usesMetaLearning: Bool { setup.lossGenerator != nil && recipe.training.metaSteps > 0 }
    var fusionSteps: Int { Swift.min(loader.batchesPerEpoch, recipe.training.fusionStepsPerEpoch ?? Int.max) }
    var metaStepsPerEpoch: Int {
        guard usesMetaLearning else { return 0 }
        return recipe.training.phases == .separate ? recipe.training.metaSteps : fusionSteps
    }
    var stepsPerEpoch: Int { metaStepsPerEpoch + fusionSteps }
    /// Total optimisation steps of the run.
    public var totalSteps: Int { stepsPerEpoch * recipe.training.epochs }

    var checkpointFolder: URL { runDirectory.appendingPathComponent("checkpoints") }
    var lastCheckpoint: URL { checkpointFolder.appendingPathComponent("last.safetensors") }
    var bestCheckpoint: URL { checkpointFolder.appendingPathComponent("best.safetensors") }

    // MARK: Running

    /// Initial states: the recipe's weights files, else fresh initialisation from the seed.
    public func initialState() throws -> State {
        func initial(_ module: any Module, _ role: String, _ salt: UInt64) throws -> ModelState {
            if let tensors = setup.initialWeights[role] { return try module.loadState(from: tensors, alias: StateDictAliases.convDuplicates) }
            return module.initialState(seed: recipe.seed &+ salt)
        }
        return State(fusion: try initial(setup.fusion, ModelRole.fusion, 1),
                     generator: try setup.lossGenerator.map { try initial($0, ModelRole.lossGenerator, 2) } ?? ModelState(),
                     task: try initial(setup.task, ModelRole.task, 3))
    }

    /// Thrown inside the loop to stop after `stopAfter` steps (caught by `run`).
    struct Stop: Error {}

    /// Trains to the end (or from the last checkpoint with `resume`), then evaluates on the test
    /// set. With `stopAfter`, stops once that many steps are done (writing the last checkpoint,
    /// so that a later `resume` continues exactly) and returns nil.
    public func run(resume: Bool = false, recipeText: String, stopAfter: Int? = nil) throws -> Result? {
        self.stopAfter = stopAfter
        do {
            return try train(resume: resume, recipeText: recipeText)
        } catch is Stop {
            return nil
        }
    }

    var stopAfter: Int?

    func train(resume: Bool, recipeText: String) throws -> Result {
        let fm = FileManager.default
        try fm.createDirectory(at: checkpointFolder, withIntermediateDirectories: true)
        try fm.createDirectory(at: runDirectory.appendingPathComponent("previews"), withIntermediateDirectories: true)
        var state: State
        if resume {
            guard fm.fileExists(atPath: lastCheckpoint.path) else { throw TrainingError.nothingToResume(directory: runDirectory.path) }
            let checkpoint = try Checkpoint.load(from: lastCheckpoint)
            guard checkpoint.metadata["recipe"] == recipeText else { throw TrainingError.recipeMismatch(directory: runDirectory.path) }
            state = try restore(checkpoint)
            observer.note("resuming at epoch \(state.position.epoch + 1), step \(state.position.globalStep)")
        } else {
            state = try initialState()
        }
        try recipeText.write(to: runDirectory.appendingPathComponent("recipe.yaml"), atomically: true, encoding: .utf8)
        let logURL = runDirectory.appendingPathComponent("log.jsonl")
        if resume {
            // Steps logged after the checkpoint was written are run again: drop their lines.
            try Self.truncateLog(logURL, afterGlobalStep: state.position.globalStep)
            curves = Self.readCurves(logURL)
        }
        log = try TrainingLog(url: logURL, truncate: !resume)
        observer.trainingWillStart(totalSteps: totalSteps, completedSteps: state.position.globalStep)

        while state.position.epoch < recipe.training.epochs {
            let epoch = state.position.epoch
            var fusionLosses: [Double] = [], taskLosses: [Double] = []
            if state.position.phase == 0 {
                if recipe.training.phases == .separate {
                    while state.position.index < metaStepsPerEpoch {
                        try metaStep(&state, epoch: epoch, index: state.position.index)
                        try advance(&state, recipeText: recipeText)
                    }
                }
                state.position.phase = 1
                state.position.index = 0
            }
            while state.position.index < fusionSteps {
                if usesMetaLearning && recipe.training.phases == .interleaved {
                    try metaStep(&state, epoch: epoch, index: state.position.index)
                    state.position.globalStep += 1
                }
                let (lf, lt) = try fusionStep(&state, epoch: epoch, index: state.position.index)
                fusionLosses.append(lf)
                taskLosses.append(lt)
                try advance(&state, recipeText: recipeText)
            }
            try finishEpoch(&state, fusionLosses: fusionLosses, taskLosses: taskLosses, recipeText: recipeText)
        }
        return try finalEvaluation(state)
    }

    /// Moves to the next step and writes the last checkpoint when it is due.
    func advance(_ state: inout State, recipeText: String) throws {
        state.position.index += 1
        state.position.globalStep += 1
        let stopping = stopAfter.map { state.position.globalStep >= $0 } ?? false
        if state.position.globalStep % recipe.training.checkpointEvery == 0 || stopping {
            try checkpoint(state, recipeText: recipeText).save(to: lastCheckpoint)
        }
        if stopping { throw Stop() }
    }

    func learningRate(_ settings: ModelSettings, _ position: Position) -> Float {
        let step = recipe.training.scheduleUnit == .epoch ? position.epoch : position.globalStep
        return settings.schedule.learningRate(base: Float(settings.optimizer.learningRate), at: step)
    }

    func context(_ position: Position, _ stream: UInt64) -> ForwardContext {
        ForwardContext(training: true, rng: RandomGenerator(seed: mix(recipe.seed, UInt64(position.globalStep), stream)))
    }

    func mix(_ a: UInt64, _ b: UInt64, _ c: UInt64) -> UInt64 {
        var r = RandomGenerator(seed: a ^ (b &* 0x9E37_79B9_7F4A_7C15) ^ (c &* 0xC2B2_AE3D_27D4_EB4F))
        return r.next()
    }

    func checkFinite(_ value: Double, _ quantity: String, _ phase: String, _ position: Position) throws {
        guard value.isFinite else {
            let kept = FileManager.default.fileExists(atPath: lastCheckpoint.path) ? lastCheckpoint.path : nil
            throw TrainingError.nonFinite(quantity: quantity, phase: phase, epoch: position.epoch, step: position.index, lastCheckpoint: kept)
        }
    }

    func weights(_ sources: Tensor, _ state: State, _ position: Position) -> Tensor {
        guard let generator = setup.lossGenerator else {
            return Tensor.full(sources.shape, 0.5)
        }
        return withoutGradient { generator.weights(sources, Scope(parameters: state.generator.parameters, buffers: state.generator.buffers, context: context(position, 1))) }
    }

    /// One update of G (paper Algorithm 1, lines 3-7).
    func metaStep(_ state: inout State, epoch: Int, index: Int) throws {
        guard let generator = setup.lossGenerator else { return }
        let started = Profiler.now()
        let count = metaLoader.batchesPerEpoch
        let trainBatch = try metaLoader.batch(epoch: epoch, index: (2 * index) % count)
        let testBatch = try metaLoader.batch(epoch: epoch, index: (2 * index + 1) % count)
        let position = state.position
        let lrF = learningRate(recipe.fusion, position), lrT = learningRate(recipe.task.model, position)
        let lrG = learningRate(recipe.lossGenerator, position)
        let eta = Float(recipe.training.innerLearningRate ?? Double(lrF))
        var problem = MetaStepProblem(
            fusion: setup.fusion, lossGenerator: generator, task: setup.task, loss: loss,
            fusionState: state.fusion, generatorState: state.generator, taskState: state.task,
            sources: trainBatch.sources, nextSources: testBatch.sources, nextTargets: testBatch.targets,
            innerLearningRate: eta, taskInput: taskInput, contextSeed: mix(recipe.seed, UInt64(position.globalStep), 7))
        let inner = problem.innerPass()
        try checkFinite(Double(inner.fusionLoss), "the fusion loss L_f", "meta", position)
        // T' = T after one ordinary optimiser step on the task loss of F(x) (then discarded).
        let taskContext = context(position, 4)
        let (innerTaskLoss, taskGradient) = valueWithGradient(at: state.task.parameters) { p in
            setup.task.loss(taskInput(inner.fused), targets: trainBatch.targets, Scope(parameters: p, buffers: state.task.buffers, context: taskContext))
        }
        try checkFinite(Double(innerTaskLoss.item), "the task loss", "meta", position)
        var scratchOptimizer = state.taskOptimizer
        var taskPrime = state.task
        taskPrime.parameters = taskOptimizer.update(state.task.parameters, gradients: taskGradient, state: &scratchOptimizer, learningRate: lrT)
        taskPrime.absorb(taskContext)
        problem = problem.with(taskState: taskPrime)
        let result = recipe.training.hypergradient == .exact
            ? problem.exactHypergradient(inner: inner) : problem.finiteDifferenceHypergradient(inner: inner)
        let norm = result.hypergradient.values.reduce(0.0) { $0 + Double(($1 * $1).sum().item) }.squareRoot()
        try checkFinite(Double(result.outerTaskLoss), "the outer task loss", "meta", position)
        try checkFinite(norm, "the hypergradient of G", "meta", position)
        state.generator.parameters = generatorOptimizer.update(state.generator.parameters, gradients: result.hypergradient,
                                                               state: &state.generatorOptimizer, learningRate: lrG)
        record(StepRecord(phase: "meta", epoch: epoch, step: index, globalStep: position.globalStep + 1,
                          fusionLoss: Double(inner.fusionLoss), innerTaskLoss: Double(innerTaskLoss.item),
                          outerTaskLoss: Double(result.outerTaskLoss), hypergradientNorm: norm,
                          learningRates: ["F": Double(lrF), "T": Double(lrT), "G": Double(lrG), "eta": Double(eta)],
                          seconds: Profiler.now() - started))
    }

    /// One update of F (on the fusion loss, G frozen) and of T (on F(x) detached).
    func fusionStep(_ state: inout State, epoch: Int, index: Int) throws -> (Double, Double) {
        let started = Profiler.now()
        let batch = try loader.batch(epoch: epoch, index: index)
        let position = state.position
        let lrF = learningRate(recipe.fusion, position), lrT = learningRate(recipe.task.model, position)
        let sources = batch.sources, targets = batch.targets
        let w = weights(sources, state, position)
        let target = FusionLoss.gradientTarget(sources)
        let taskWeight = Float(recipe.training.fusionTaskWeight)
        var fused = Tensor(0)
        var fusionOnly: Float = 0
        let fusionContext = context(position, 2)
        let (_, fusionGradient) = valueWithGradient(at: state.fusion.parameters) { p in
            let f = setup.fusion.fuse(sources, Scope(parameters: p, buffers: state.fusion.buffers, context: fusionContext))
            fused = f
            var objective = loss(fused: f, sources: sources, weights: w, gradientTarget: target)
            fusionOnly = objective.item
            if taskWeight > 0 {
                // Ablation: F also trained by the task loss (T's parameters held).
                objective = objective + taskWeight * setup.task.loss(taskInput(f), targets: targets, Scope(parameters: state.task.parameters.mapValues { $0.detached() }, buffers: state.task.buffers, context: context(position, 5)))
            }
            return objective
        }
        try checkFinite(Double(fusionOnly), "the fusion loss L_f", "fusion", position)
        state.fusion.parameters = fusionOptimizer.update(state.fusion.parameters, gradients: fusionGradient,
                                                         state: &state.fusionOptimizer, learningRate: lrF)
        state.fusion.absorb(fusionContext)
        let taskContext = context(position, 3)
        let input = taskInput(fused.detached())
        let (taskLoss, taskGradient) = valueWithGradient(at: state.task.parameters) { p in
            setup.task.loss(input, targets: targets, Scope(parameters: p, buffers: state.task.buffers, context: taskContext))
        }
        try checkFinite(Double(taskLoss.item), "the task loss", "fusion", position)
        state.task.parameters = taskOptimizer.update(state.task.parameters, gradients: taskGradient, state: &state.taskOptimizer, learningRate: lrT)
        state.task.absorb(taskContext)
        let lrG = setup.lossGenerator == nil ? nil : Double(learningRate(recipe.lossGenerator, position))
        var rates = ["F": Double(lrF), "T": Double(lrT)]
        if let lrG { rates["G"] = lrG }
        record(StepRecord(phase: "fusion", epoch: epoch, step: index, globalStep: position.globalStep + 1, fusionLoss: Double(fusionOnly),
                          innerTaskLoss: Double(taskLoss.item), outerTaskLoss: nil, hypergradientNorm: nil,
                          learningRates: rates, seconds: Profiler.now() - started))
        return (Double(fusionOnly), Double(taskLoss.item))
    }

    func record(_ r: StepRecord) {
        log?.append(r)
        curves.append((r.globalStep, r.fusionLoss, r.phase == "fusion" ? r.innerTaskLoss : nil))
        observer.stepDidFinish(r)
    }

    // MARK: Epoch end, checkpoints, previews

    func finishEpoch(_ state: inout State, fusionLosses: [Double], taskLosses: [Double], recipeText: String) throws {
        let epoch = state.position.epoch
        let evaluator = self.evaluator(state)
        let limit = recipe.evaluation.maxPairs ?? Swift.min(setup.testSource.count, 32)
        let (_, taskResult) = try evaluator.evaluate(setup.testSource, limit: limit)
        let metric = taskResult?.headline
        let isBest = metric.map { m in state.bestMetric.map { m > $0 } ?? true } ?? false
        if isBest { state.bestMetric = metric }
        try writePreviews(state, epoch: epoch)
        state.position = Position(epoch: epoch + 1, phase: 0, index: 0, globalStep: state.position.globalStep)
        let checkpoint = checkpoint(state, recipeText: recipeText)
        try checkpoint.save(to: lastCheckpoint)
        if isBest { try checkpoint.save(to: bestCheckpoint) }
        let mean = { (v: [Double]) in v.isEmpty ? Double.nan : v.reduce(0, +) / Double(v.count) }
        observer.epochDidFinish(EpochSummary(epoch: epoch, meanFusionLoss: mean(fusionLosses), meanTaskLoss: mean(taskLosses),
                                             taskMetric: metric, isBest: isBest))
    }

    func evaluator(_ state: State) -> RunEvaluator {
        RunEvaluator(fuser: Fuser(fusion: setup.fusion, state: state.fusion), task: setup.task, taskState: state.task,
                     taskInput: taskInput, metrics: [])
    }

    /// The checkpoint of a state (models, optimisers, position, recipe).
    func checkpoint(_ state: State, recipeText: String) -> Checkpoint {
        var models = [ModelRole.fusion: state.fusion, ModelRole.task: state.task]
        var optimizers = [ModelRole.fusion: state.fusionOptimizer, ModelRole.task: state.taskOptimizer]
        if setup.lossGenerator != nil {
            models[ModelRole.lossGenerator] = state.generator
            optimizers[ModelRole.lossGenerator] = state.generatorOptimizer
        }
        var metadata = ["recipe": recipeText, "phase": String(state.position.phase), "index": String(state.position.index)]
        if let best = state.bestMetric { metadata["best_metric"] = String(best) }
        return Checkpoint(models: models, optimizers: optimizers, step: state.position.globalStep, epoch: state.position.epoch,
                          random: nil, metadata: metadata)
    }

    func restore(_ checkpoint: Checkpoint) throws -> State {
        func model(_ role: String, _ module: any Module) throws -> ModelState {
            guard let stored = checkpoint.models[role] else { throw TrainingError.data("the checkpoint has no \(role) model") }
            return try module.loadState(from: stored.stateDict)
        }
        var state = State(fusion: try model(ModelRole.fusion, setup.fusion),
                          generator: try setup.lossGenerator.map { try model(ModelRole.lossGenerator, $0) } ?? ModelState(),
                          task: try model(ModelRole.task, setup.task))
        state.fusionOptimizer = checkpoint.optimizers[ModelRole.fusion] ?? OptimizerState()
        state.taskOptimizer = checkpoint.optimizers[ModelRole.task] ?? OptimizerState()
        state.generatorOptimizer = checkpoint.optimizers[ModelRole.lossGenerator] ?? OptimizerState()
        state.position = Position(epoch: checkpoint.epoch, phase: Int(checkpoint.metadata["phase"] ?? "0") ?? 0,
                                  index: Int(checkpoint.metadata["index"] ?? "0") ?? 0, globalStep: checkpoint.step)
        state.bestMetric = checkpoint.metadata["best_metric"].flatMap(Double.init)
        return state
    }

    /// Fused images and w_a heat maps of a fixed set of test pairs, and the loss curves.
    func writePreviews(_ state: State, epoch: Int) throws {
        let folder = runDirectory.appendingPathComponent("previews").appendingPathComponent(String(format: "epoch-%03d", epoch + 1))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let fuser = Fuser(fusion: setup.fusion, state: state.fusion)
        for index in 0..<Swift.min(recipe.training.previewPairs, setup.testSource.count) {
            let sample = try setup.testSource.sample(at: index, includeColor: false)
            try fuser.fuse(infrared: sample.infrared, visible: sample.visible).gray.write(to: folder.appendingPathComponent("\(sample.name)-fused.png"))
            if let generator = setup.lossGenerator {
                let sources = Tensor.concat([sample.infrared.tensor(), sample.visible.tensor()], axis: 1)
                let w = withoutGradient { generator.weights(sources, Scope(state.generator)) }
                let wa = w.sliced(axis: 1, 0..<1).scalars
                try HeatMap.render(wa, width: sample.width, height: sample.height).write(to: folder.appendingPathComponent("\(sample.name)-w_a.png"))
            }
            if epoch == 0 {
                try sample.infrared.write(to: folder.deletingLastPathComponent().appendingPathComponent("\(sample.name)-ir.png"))
                try sample.visible.write(to: folder.deletingLastPathComponent().appendingPathComponent("\(sample.name)-vi.png"))
            }
        }
        let fusionCurve = curves.map { (Double($0.step), $0.fusion) }
        let taskCurve = curves.compactMap { c in c.task.map { (Double(c.step), $0) } }
        try LinePlot.render([("L_f", fusionCurve), ("L_t", taskCurve)], width: 640, height: 360, title: "losses per step")
            .write(to: runDirectory.appendingPathComponent("previews").appendingPathComponent("loss-curves.png"))
    }

    static func truncateLog(_ url: URL, afterGlobalStep step: Int) throws {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return }
        let decoder = JSONDecoder()
        let kept = text.split(separator: "\n").filter { line in
            (try? decoder.decode(StepRecord.self, from: Data(line.utf8))).map { $0.globalStep <= step } ?? false
        }
        try (kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).write(to: url, atomically: true, encoding: .utf8)
    }

    static func readCurves(_ url: URL) -> [(step: Int, fusion: Double, task: Double?)] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        let decoder = JSONDecoder()
        return text.split(separator: "\n").compactMap { line in
            guard let r = try? decoder.decode(StepRecord.self, from: Data(line.utf8)) else { return nil }
            return (r.globalStep, r.fusionLoss, r.phase == "fusion" ? r.innerTaskLoss : nil)
        }
    }

    // MARK: Final evaluation

    func finalEvaluation(_ state: State) throws -> Result {
        let evaluator = RunEvaluator(fuser: Fuser(fusion: setup.fusion, state: state.fusion), task: setup.task, taskState: state.task,
                                     taskInput: taskInput, metrics: recipe.evaluation.metrics,
                                     convention: recipe.evaluation.perPair ? .perPairMean : .sum)
        observer.note("evaluating on \(Swift.min(setup.testSource.count, recipe.evaluation.maxPairs ?? Int.max)) test pairs")
        let (fusion, task) = try evaluator.evaluate(setup.testSource, limit: recipe.evaluation.maxPairs,
                                                    outputFolder: runDirectory.appendingPathComponent("fused"),
                                                    predictionFolder: runDirectory.appendingPathComponent("predictions"))
        var json: [String: Any] = ["fusion": fusion.jsonObject, "epochs": recipe.training.epochs, "steps": state.position.globalStep]
        if let task { json["task"] = task.jsonObject }
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: runDirectory.appendingPathComponent("metrics.json"))
        try MetricsTable.markdown(fusion: fusion, task: task).write(to: runDirectory.appendingPathComponent("metrics.md"), atomically: true, encoding: .utf8)
        return Result(state: state, fusion: fusion, task: task, runDirectory: runDirectory)
    }
}
