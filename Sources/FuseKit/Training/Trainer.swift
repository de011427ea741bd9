import Foundation
import FuseKitData
import FuseKitImage
import FuseKitMetrics
import FuseKitNN
import FuseKitTensor

/// Trains the models of a recipe, stage after stage: each epoch runs the stage strategy's plan of
/// steps (``MetaStrategy`` for TDFusion, ``JointStrategy``, ``MaskedPretrainingStrategy``), then
/// evaluates, writes previews and checkpoints; at the end it evaluates on the test split. Weights
/// pass from stage to stage by role. Files go to a ``RunDirectory``. Resuming loads the last
/// checkpoint and runs the rest of the plan from the step it stopped at, in any stage, with the
/// same losses an uninterrupted run has.
///
/// In a data-parallel run (``DataParallelism``), every rank runs a trainer on its shard of each
/// global batch; rank 0 alone writes the run directory (checkpoints, log, previews, TensorBoard,
/// metrics) and evaluates. A run resumes with any number of ranks that divides the batch.
public final class Trainer {
    /// The outcome of a finished run.
    public struct Result: Sendable {
        public var state: TrainingState
        public var fusion: FusionEvaluation
        public var task: TaskEvaluation?
        public var runDirectory: URL
    }

    public let setup: TrainingSetup
    public let directory: RunDirectory
    let observer: TrainingObserver
    let recipe: Recipe
    let strategies: [any TrainingStrategy]
    var log: TrainingLog?
    var curves: [StepRecord] = []
    /// Whether the run is mirrored into TensorBoard event files (``TrainingTensorBoard``).
    public let logsTensorBoard: Bool
    var tensorBoard: TrainingTensorBoard?
    /// The ranks this trainer shares each step with (one process by default).
    public let parallel: DataParallelism

    /// A trainer writing into `runDirectory`, and also TensorBoard event files with `tensorBoard`;
    /// `ranks` are the processes of a data-parallel run.
    public init(setup: TrainingSetup, runDirectory: URL, observer: TrainingObserver = SilentTrainingObserver(), tensorBoard: Bool = false,
                ranks: any Collective = SingleProcess()) throws {
        self.setup = setup
        parallel = DataParallelism(collective: ranks, batchNorm: setup.recipe.distributed.batchNorm,
                                   bucketBytes: setup.recipe.distributed.bucketBytes)
        logsTensorBoard = tensorBoard
        directory = RunDirectory(runDirectory)
        self.observer = observer
        let recipe = setup.recipe
        self.recipe = recipe
        let data = recipe.data
        var options = BatchOptions(batchSize: data.batchSize, cropSize: data.crop, randomFlips: data.flips,
                                   randomRotations: data.rotations, modalitySwap: data.modalitySwap,
                                   includeColorVisible: data.visible == .rgb, seed: RandomStream.batches.seed(recipe.seed))
        options.scales = data.scales
        guard data.batchSize % ranks.size == 0 else {
            throw TrainingError.data("the batch of \(data.batchSize) does not split evenly over \(ranks.size) ranks; "
                                     + "give a batch-size that is a multiple of the number of ranks")
        }
        options.shard = (ranks.rank, ranks.size)
        var metaOptions = options
        metaOptions.seed = RandomStream.metaBatches.seed(recipe.seed)
        let batches = BatchLoader(source: setup.trainSource, options: options)
        guard batches.batchesPerEpoch >= 1 else {
            throw TrainingError.data("the training set has \(setup.trainSource.count) pairs, fewer than one batch of \(data.batchSize)")
        }
        strategies = try recipe.stages.map { stage -> any TrainingStrategy in
            switch stage.strategy {
            case .meta:
                func trained(_ role: ModelRole) -> TrainedModel? {
                    stage.trained.first { $0.role == role }.map { TrainedModel(setup.models[role]!, $0.optimization) }
                }
                return MetaStrategy(
                    fusion: trained(.fusion)!, lossGenerator: stage.fusionLoss.weights == .learned ? trained(.lossGenerator) : nil,
                    task: trained(.task)!, loss: FusionLoss(alpha: Float(stage.fusionLoss.alpha), form: stage.fusionLoss.form),
                    settings: stage, batches: batches, metaBatches: BatchLoader(source: setup.trainSource, options: metaOptions),
                    taskInput: setup.taskInput(for: .task))
            case .joint:
                return try JointStrategy(stage: stage, setup: setup, batches: batches)
            case .maskedPretraining:
                return try MaskedPretrainingStrategy(stage: stage, setup: setup, batches: batches)
            }
        }
    }

    /// Steps per epoch of each stage, and over the whole run.
    public var stepsPerEpoch: [Int] { strategies.map { $0.plan(epoch: 0).count } }
    public var totalSteps: Int { zip(recipe.stages, stepsPerEpoch).reduce(0) { $0 + $1.0.epochs * $1.1 } }

    /// The roles some stage uses (only these are initialised, trained and checkpointed).
    var usedRoles: [ModelRole] {
        var roles: [ModelRole] = []
        for stage in recipe.stages {
            for role in stage.roles where !roles.contains(role) {
                if stage.strategy == .meta && role == .lossGenerator && stage.fusionLoss.weights == .fixed { continue }
                roles.append(role)
            }
        }
        return roles
    }

    /// Initial states: the recipe's weights files, else fresh initialisation from the seed.
    public func initialState() throws -> TrainingState {
        var models: [ModelRole: ModelState] = [:]
        for role in usedRoles { models[role] = try initialWeights(role, setup.models[role]!) }
        return TrainingState(models: models)
    }

    func initialWeights(_ role: ModelRole, _ module: any Module) throws -> ModelState {
        if let tensors = setup.initialWeights[role] { return try module.loadState(from: tensors, alias: StateDictAliases.convDuplicates) }
        return module.initialState(seed: RandomStream.initialWeights(role).seed(recipe.seed))
    }

    /// Thrown inside the loop to stop after `stopAfter` steps (caught by `run`).
    struct Stop: Error {}
    var stopAfter: Int?

    /// Trains to the end (or from the last checkpoint with `resume`), then evaluates on the test
    /// set. With `stopAfter`, stops once that many steps are done (writing the last checkpoint,
    /// so that a later `resume` continues exactly) and returns nil. Ranks other than 0 of a
    /// data-parallel run return nil too (rank 0 evaluates and writes the results).
    public func run(resume: Bool = false, recipeText: String, stopAfter: Int? = nil) throws -> Result? {
        self.stopAfter = stopAfter
        do {
            return try train(resume: resume, recipeText: recipeText)
        } catch is Stop {
            return nil
        }
    }

    func train(resume: Bool, recipeText: String) throws -> Result? {
        var state: TrainingState
        if resume {
            let (checkpoint, notes) = try directory.loadCheckpointForResuming()
            notes.forEach(observer.note)
            guard checkpoint.metadata[Self.recipeKey] == recipeText else { throw TrainingError.recipeMismatch(directory: directory.url.path) }
            state = try restore(checkpoint)
            observer.note("resuming at stage \(state.position.stage + 1), epoch \(state.position.epoch + 1), step \(state.position.globalStep)")
        } else {
            state = try initialState()
        }
        if parallel.isRoot { try prepareFiles(resume: resume, state: state, recipeText: recipeText) }
        observer.trainingWillStart(totalSteps: totalSteps, completedSteps: state.position.globalStep)

        while state.position.stage < recipe.stages.count {
            let stage = recipe.stages[state.position.stage], strategy = strategies[state.position.stage]
            for (role, module) in strategy.ownModels where state.models[role] == nil {
                state.models[role] = try initialWeights(role, module)
            }
            while state.position.epoch < stage.epochs {
                let plan = strategy.plan(epoch: state.position.epoch)
                var records: [StepRecord] = []
                while state.position.step < plan.count {
                    let environment = StepEnvironment(seed: recipe.seed, position: state.position, scheduleUnit: stage.scheduleUnit,
                                                      stageStep: state.position.epoch * plan.count + state.position.step,
                                                      runDirectory: directory, parallel: parallel)
                    var record = try strategy.run(plan[state.position.step], &state, environment)
                    if recipe.stages.count > 1 { record.stage = stage.name }
                    records.append(record)
                    try self.record(record)
                    try advance(&state, stage: stage, recipeText: recipeText)
                }
                try finishEpoch(&state, stage: stage, records: records, recipeText: recipeText)
            }
            for role in strategy.ownModels.keys {
                state.models[role] = nil
                state.optimizers[role] = nil
            }
            state.lossHistory = []
            state.position = TrainingPosition(stage: state.position.stage + 1, epoch: 0, step: 0, globalStep: state.position.globalStep)
        }
        return parallel.isRoot ? try finalEvaluation(state) : nil
    }

    /// The run directory, its log and TensorBoard files, and the curves so far (rank 0).
    func prepareFiles(resume: Bool, state: TrainingState, recipeText: String) throws {
        try directory.prepare(recipeText: recipeText)
        log = try directory.openLog(resumingAfter: resume ? state.position.globalStep : nil)
        if logsTensorBoard {
            tensorBoard = try TrainingTensorBoard(directory: directory, recipeText: recipeText, resumingAfter: resume ? state.position.globalStep : nil)
        }
        curves = resume ? directory.readLog() : []
    }

    /// Moves to the next step and writes the last checkpoint when it is due.
    func advance(_ state: inout TrainingState, stage: StageSettings, recipeText: String) throws {
        state.position.step += 1
        state.position.globalStep += 1
        let stopping = stopAfter.map { state.position.globalStep >= $0 } ?? false
        if parallel.isRoot && (state.position.globalStep % stage.checkpointEvery == 0 || stopping) {
            try directory.save(checkpoint(state, recipeText: recipeText))
        }
        if stopping { throw Stop() }
    }

    func record(_ r: StepRecord) throws {
        try log?.append(r)
        curves.append(r)
        logToTensorBoard { try $0.log(r) }
        observer.stepDidFinish(r)
    }

    /// Writes to the TensorBoard files, if any; a failure (a full disk) is reported once and
    /// ends TensorBoard logging, not the training.
    func logToTensorBoard(_ body: (TrainingTensorBoard) throws -> Void) {
        guard let tensorBoard else { return }
        do {
            try body(tensorBoard)
        } catch {
            observer.note("TensorBoard logging stopped: \(error)")
            self.tensorBoard = nil
        }
    }

    // MARK: Evaluation pipelines

    /// What a stage is scored by at its epoch ends: the run's pipeline when the stage trains one of
    /// its models; a task net trained alone on the visible images; else nothing (pretraining).
    func stagePipeline(_ stage: StageSettings, _ state: TrainingState) -> (pipeline: EvaluationPipeline, isRunPipeline: Bool)? {
        let runRoles: Set<ModelRole> = setup.joint.map { [$0.role] } ?? [.fusion, .task]
        if stage.strategy != .maskedPretraining, stage.trained.contains(where: { runRoles.contains($0.role) }), let pipeline = setup.evaluationPipeline(state) {
            return (pipeline, true)
        }
        if stage.strategy == .joint, let models = try? StageModels(stage: stage, models: setup.models), models.fusion == nil, models.joint == nil,
           let (role, task) = models.task, let weights = state.models[role] {
            return (.visibleTask(task, state: weights, input: setup.taskInput(for: role)), false)
        }
        return nil
    }

    // MARK: Epoch end, checkpoints, previews

    func finishEpoch(_ state: inout TrainingState, stage: StageSettings, records: [StepRecord], recipeText: String) throws {
        let epoch = state.position.epoch
        guard parallel.isRoot else {
            state.position = TrainingPosition(stage: state.position.stage, epoch: epoch + 1, step: 0, globalStep: state.position.globalStep)
            return
        }
        var metric: Double?
        var isBest = false
        if let (pipeline, isRunPipeline) = stagePipeline(stage, state) {
            let limit = recipe.evaluation.maxPairs ?? Swift.min(setup.testSource.count, 32)
            metric = try RunEvaluator(pipeline: pipeline, metrics: []).evaluate(setup.testSource, limit: limit).task?.headline
            if isRunPipeline, let m = metric {
                isBest = state.bestMetric.map { m > $0 } ?? true
                if isBest { state.bestMetric = m }
            }
        }
        try writePreviews(state, stage: stage, epoch: epoch)
        state.position = TrainingPosition(stage: state.position.stage, epoch: epoch + 1, step: 0, globalStep: state.position.globalStep)
        try directory.save(checkpoint(state, recipeText: recipeText), isBest: isBest)
        let mean = { (v: [Double]) in v.isEmpty ? Double.nan : v.reduce(0, +) / Double(v.count) }
        let scored = records.filter { $0.phase != .meta }
        observer.epochDidFinish(EpochSummary(epoch: epoch, meanFusionLoss: mean(scored.compactMap(\.fusionLoss)),
                                             meanTaskLoss: mean(scored.compactMap(\.innerTaskLoss)), taskMetric: metric, isBest: isBest))
    }

    static let recipeKey = "recipe"

    /// The checkpoint of a state (models, optimisers, position, recipe).
    func checkpoint(_ state: TrainingState, recipeText: String) -> Checkpoint {
        var metadata = [Self.recipeKey: recipeText, "stage": String(state.position.stage), "step_in_epoch": String(state.position.step)]
        if let best = state.bestMetric { metadata["best_metric"] = String(best) }
        if !state.lossHistory.isEmpty, let json = try? JSONEncoder().encode(state.lossHistory) {
            metadata["loss_history"] = String(decoding: json, as: UTF8.self)
        }
        return Checkpoint(models: Dictionary(uniqueKeysWithValues: state.models.map { ($0.key.rawValue, $0.value) }),
                          optimizers: Dictionary(uniqueKeysWithValues: state.optimizers.map { ($0.key.rawValue, $0.value) }),
                          step: state.position.globalStep, epoch: state.position.epoch, random: nil, metadata: metadata)
    }

    func restore(_ checkpoint: Checkpoint) throws -> TrainingState {
        let stageIndex = Int(checkpoint.metadata["stage"] ?? "0") ?? 0
        var modules = setup.models
        if stageIndex < strategies.count { modules.merge(strategies[stageIndex].ownModels) { a, _ in a } }
        var models: [ModelRole: ModelState] = [:]
        for (name, stored) in checkpoint.models {
            let role = ModelRole(name)
            guard let module = modules[role] else { throw TrainingError.data("the checkpoint has a model '\(name)' this recipe does not") }
            models[role] = try module.loadState(from: stored.stateDict)
        }
        for role in usedRoles where models[role] == nil { throw TrainingError.data("the checkpoint has no \(role) model") }
        var state = TrainingState(models: models)
        for (name, optimizer) in checkpoint.optimizers { state.optimizers[ModelRole(name)] = optimizer }
        state.position = TrainingPosition(stage: stageIndex, epoch: checkpoint.epoch,
                                          step: Int(checkpoint.metadata["step_in_epoch"] ?? "0") ?? 0, globalStep: checkpoint.step)
        state.bestMetric = checkpoint.metadata["best_metric"].flatMap(Double.init)
        if let history = checkpoint.metadata["loss_history"] {
            state.lossHistory = (try? JSONDecoder().decode([[String: Double]].self, from: Data(history.utf8))) ?? []
        }
        return state
    }

    /// Fused images (and w_a heat maps with a loss generator) of a fixed set of test pairs, and
    /// the loss curves with the task weights.
    func writePreviews(_ state: TrainingState, stage: StageSettings, epoch: Int) throws {
        let folder = directory.previews(stage: recipe.stages.count > 1 ? stage.name : nil, epoch: epoch)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let pipeline = setup.evaluationPipeline(state)
        let stageName = recipe.stages.count > 1 ? stage.name : nil
        func preview(_ image: Image, _ pair: String, _ kind: String) throws {
            try image.write(to: folder.appendingPathComponent("\(pair)-\(kind).png"))
            logToTensorBoard { try $0.logPreview(image, pair: pair, kind: kind, stage: stageName, step: state.position.globalStep) }
        }
        for index in 0..<Swift.min(stage.previewPairs, setup.testSource.count) {
            let sample = try setup.testSource.sample(at: index, includeColor: pipeline?.needsColor ?? false)
            if let fused = pipeline?.run(sample).fused {
                try preview(fused.color ?? fused.gray, sample.name, "fused")
            }
            if let wa = setup.infraredWeights(of: sample, state) {
                try preview(HeatMap.render(wa, width: sample.width, height: sample.height), sample.name, "w_a")
            }
            if state.position.stage == 0 && epoch == 0 {
                try sample.infrared.write(to: directory.previewsFolder.appendingPathComponent("\(sample.name)-ir.png"))
                try (sample.visibleColor ?? sample.visible).write(to: directory.previewsFolder.appendingPathComponent("\(sample.name)-vi.png"))
            }
        }
        try LossCurves.render(curves).write(to: directory.lossCurves)
    }

    // MARK: Final evaluation

    /// The models (and optimiser states and position) of a checkpoint of this recipe.
    public func restoredState(from url: URL) throws -> TrainingState { try restore(Checkpoint.load(from: url)) }

    /// Evaluates the models of a checkpoint of this recipe on the test split, as the end of
    /// training does (fused images, predictions and metrics into the run directory), without
    /// training: `fusekit compare --weights`.
    public func evaluate(checkpoint url: URL) throws -> Result {
        let state = try restoredState(from: url)
        try FileManager.default.createDirectory(at: directory.url, withIntermediateDirectories: true)
        return try finalEvaluation(state)
    }

    func finalEvaluation(_ state: TrainingState) throws -> Result {
        guard let pipeline = setup.evaluationPipeline(state) else { throw TrainingError.data("the recipe trains no fusion net or joint model to evaluate") }
        let evaluator = RunEvaluator(pipeline: pipeline, metrics: recipe.evaluation.metrics, convention: recipe.evaluation.perPair ? .perPairMean : .sum)
        observer.note("evaluating on \(Swift.min(setup.testSource.count, recipe.evaluation.maxPairs ?? Int.max)) test pairs")
        let (fusion, task) = try evaluator.evaluate(setup.testSource, limit: recipe.evaluation.maxPairs,
                                                    outputFolder: directory.fusedFolder, predictionFolder: directory.predictionsFolder)
        try directory.writeMetrics(fusion: fusion, task: task, extra: ["epochs": recipe.totalEpochs, "steps": state.position.globalStep])
        return Result(state: state, fusion: fusion, task: task, runDirectory: directory.url)
    }
}

/// The loss-curve picture: L_f and L_t per step, the joint and pretraining groups' losses, and
/// the task weights.
enum LossCurves {
    static func render(_ records: [StepRecord]) -> Image {
        var series: [(String, [(Double, Double)])] = []
        func add(_ name: String, _ value: (StepRecord) -> Double?) {
            let points = records.compactMap { r in value(r).map { (Double(r.globalStep), $0) } }
            if !points.isEmpty { series.append((name, points)) }
        }
        add("L_f") { $0.phase == .joint ? nil : $0.fusionLoss }
        add("L_t") { $0.phase == .fusion ? $0.innerTaskLoss : nil }
        let groups = Set(records.flatMap { ($0.losses ?? [:]).keys.filter { $0.hasPrefix("group:") } }).sorted()
        for key in groups { add(String(key.dropFirst("group:".count))) { $0.losses?[key] } }
        let weighted = Set(records.flatMap { ($0.taskWeights ?? [:]).keys }).sorted()
        for group in weighted { add("λ \(group)") { $0.taskWeights?[group] } }
        return LinePlot.render(series, width: 640, height: 360, title: "losses per step")
    }
}
