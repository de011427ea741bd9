import Foundation
import FuseKitData
import FuseKitImage
import FuseKitMetrics
import FuseKitNN
import FuseKitTensor

/// Trains the models of a recipe: each epoch runs its strategy's plan of steps (``MetaStrategy``
/// for TDFusion), then evaluates, writes previews and checkpoints; at the end it evaluates on the
/// test split. Files go to a ``RunDirectory``. Resuming loads the last checkpoint and runs the
/// rest of the plan from the step it stopped at, with the same losses an uninterrupted run has.
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
    let strategy: MetaStrategy
    var log: TrainingLog?
    var curves: [(step: Int, fusion: Double, task: Double?)] = []

    /// A trainer writing into `runDirectory`.
    public init(setup: TrainingSetup, runDirectory: URL, observer: TrainingObserver = SilentTrainingObserver()) throws {
        self.setup = setup
        directory = RunDirectory(runDirectory)
        self.observer = observer
        self.recipe = setup.recipe
        let data = setup.recipe.data
        let options = BatchOptions(batchSize: data.batchSize, cropSize: data.crop, randomFlips: data.flips,
                                   randomRotations: data.rotations, modalitySwap: data.modalitySwap,
                                   seed: RandomStream.batches.seed(setup.recipe.seed))
        var metaOptions = options
        metaOptions.seed = RandomStream.metaBatches.seed(setup.recipe.seed)
        let batches = BatchLoader(source: setup.trainSource, options: options)
        guard batches.batchesPerEpoch >= 1 else {
            throw TrainingError.data("the training set has \(setup.trainSource.count) pairs, fewer than one batch of \(data.batchSize)")
        }
        func trained(_ module: any Module, _ settings: ModelSettings) -> TrainedModel {
            TrainedModel(module: module, optimizer: settings.optimizer.make(noDecay: module.parametersWithoutDecay),
                         schedule: settings.schedule, learningRate: Float(settings.optimizer.learningRate))
        }
        let recipe = setup.recipe
        var lossGenerator: TrainedModel?
        if let generator = setup.lossGenerator, let settings = recipe.lossGenerator { lossGenerator = trained(generator, settings) }
        strategy = MetaStrategy(
            fusion: trained(setup.fusion, recipe.fusion), lossGenerator: lossGenerator,
            task: trained(setup.task, recipe.task.model), loss: FusionLoss(alpha: Float(recipe.fusionLoss.alpha), form: recipe.fusionLoss.form),
            settings: recipe.training, batches: batches, metaBatches: BatchLoader(source: setup.trainSource, options: metaOptions),
            taskInput: setup.taskInput)
    }

    /// Steps per epoch and over the whole run.
    public var stepsPerEpoch: Int { strategy.plan(epoch: 0).count }
    public var totalSteps: Int { stepsPerEpoch * recipe.training.epochs }

    /// Initial states: the recipe's weights files, else fresh initialisation from the seed.
    public func initialState() throws -> TrainingState {
        var models: [ModelRole: ModelState] = [:]
        for (role, module) in setup.models {
            if let tensors = setup.initialWeights[role] {
                models[role] = try module.loadState(from: tensors)
            } else {
                models[role] = module.initialState(seed: RandomStream.initialWeights(role).seed(recipe.seed))
            }
        }
        return TrainingState(models: models)
    }

    /// Thrown inside the loop to stop after `stopAfter` steps (caught by `run`).
    struct Stop: Error {}
    var stopAfter: Int?

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

    func train(resume: Bool, recipeText: String) throws -> Result {
        var state: TrainingState
        if resume {
            let checkpoint = try directory.loadLastCheckpoint()
            guard checkpoint.metadata[Self.recipeKey] == recipeText else { throw TrainingError.recipeMismatch(directory: directory.url.path) }
            state = try restore(checkpoint)
            observer.note("resuming at epoch \(state.position.epoch + 1), step \(state.position.globalStep)")
        } else {
            state = try initialState()
        }
        try directory.prepare(recipeText: recipeText)
        log = try directory.openLog(resumingAfter: resume ? state.position.globalStep : nil)
        curves = resume ? directory.readLog().map(Self.curvePoint) : []
        observer.trainingWillStart(totalSteps: totalSteps, completedSteps: state.position.globalStep)

        while state.position.epoch < recipe.training.epochs {
            let plan = strategy.plan(epoch: state.position.epoch)
            var records: [StepRecord] = []
            while state.position.step < plan.count {
                let environment = StepEnvironment(seed: recipe.seed, position: state.position, scheduleUnit: recipe.training.scheduleUnit,
                                                  runDirectory: directory)
                let record = try strategy.run(plan[state.position.step], &state, environment)
                records.append(record)
                self.record(record)
                try advance(&state, recipeText: recipeText)
            }
            try finishEpoch(&state, records: records, recipeText: recipeText)
        }
        return try finalEvaluation(state)
    }

    /// Moves to the next step and writes the last checkpoint when it is due.
    func advance(_ state: inout TrainingState, recipeText: String) throws {
        state.position.step += 1
        state.position.globalStep += 1
        let stopping = stopAfter.map { state.position.globalStep >= $0 } ?? false
        if state.position.globalStep % recipe.training.checkpointEvery == 0 || stopping {
            try directory.save(checkpoint(state, recipeText: recipeText))
        }
        if stopping { throw Stop() }
    }

    func record(_ r: StepRecord) {
        log?.append(r)
        curves.append(Self.curvePoint(r))
        observer.stepDidFinish(r)
    }

    static func curvePoint(_ r: StepRecord) -> (step: Int, fusion: Double, task: Double?) {
        (r.globalStep, r.fusionLoss, r.phase == .fusion ? r.innerTaskLoss : nil)
    }

    // MARK: Epoch end, checkpoints, previews

    func finishEpoch(_ state: inout TrainingState, records: [StepRecord], recipeText: String) throws {
        let epoch = state.position.epoch
        let limit = recipe.evaluation.maxPairs ?? Swift.min(setup.testSource.count, 32)
        let (_, taskResult) = try evaluator(state, metrics: []).evaluate(setup.testSource, limit: limit)
        let metric = taskResult?.headline
        let isBest = metric.map { m in state.bestMetric.map { m > $0 } ?? true } ?? false
        if isBest { state.bestMetric = metric }
        try writePreviews(state, epoch: epoch)
        state.position = TrainingPosition(stage: state.position.stage, epoch: epoch + 1, step: 0, globalStep: state.position.globalStep)
        try directory.save(checkpoint(state, recipeText: recipeText), isBest: isBest)
        let fusionSteps = records.filter { $0.phase == .fusion }
        let mean = { (v: [Double]) in v.isEmpty ? Double.nan : v.reduce(0, +) / Double(v.count) }
        observer.epochDidFinish(EpochSummary(epoch: epoch, meanFusionLoss: mean(fusionSteps.map(\.fusionLoss)),
                                             meanTaskLoss: mean(fusionSteps.compactMap(\.innerTaskLoss)), taskMetric: metric, isBest: isBest))
    }

    func evaluator(_ state: TrainingState, metrics: [FusionMetric], convention: PairConvention = .sum) -> RunEvaluator {
        RunEvaluator(fuser: Fuser(fusion: setup.fusion, state: state[.fusion]), task: setup.task, taskState: state[.task],
                     taskInput: setup.taskInput, metrics: metrics, convention: convention)
    }

    static let recipeKey = "recipe"

    /// The checkpoint of a state (models, optimisers, position, recipe).
    func checkpoint(_ state: TrainingState, recipeText: String) -> Checkpoint {
        var metadata = [Self.recipeKey: recipeText, "stage": String(state.position.stage), "step_in_epoch": String(state.position.step)]
        if let best = state.bestMetric { metadata["best_metric"] = String(best) }
        return Checkpoint(models: Dictionary(uniqueKeysWithValues: state.models.map { ($0.key.rawValue, $0.value) }),
                          optimizers: Dictionary(uniqueKeysWithValues: state.optimizers.map { ($0.key.rawValue, $0.value) }),
                          step: state.position.globalStep, epoch: state.position.epoch, random: nil, metadata: metadata)
    }

    func restore(_ checkpoint: Checkpoint) throws -> TrainingState {
        var models: [ModelRole: ModelState] = [:]
        for (role, module) in setup.models {
            guard let stored = checkpoint.models[role.rawValue] else { throw TrainingError.data("the checkpoint has no \(role) model") }
            models[role] = try module.loadState(from: stored.stateDict)
        }
        var state = TrainingState(models: models)
        for (name, optimizer) in checkpoint.optimizers { state.optimizers[ModelRole(name)] = optimizer }
        state.position = TrainingPosition(stage: Int(checkpoint.metadata["stage"] ?? "0") ?? 0, epoch: checkpoint.epoch,
                                          step: Int(checkpoint.metadata["step_in_epoch"] ?? "0") ?? 0, globalStep: checkpoint.step)
        state.bestMetric = checkpoint.metadata["best_metric"].flatMap(Double.init)
        return state
    }

    /// Fused images and w_a heat maps of a fixed set of test pairs, and the loss curves.
    func writePreviews(_ state: TrainingState, epoch: Int) throws {
        let folder = directory.previews(stage: nil, epoch: epoch)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let fuser = Fuser(fusion: setup.fusion, state: state[.fusion])
        for index in 0..<Swift.min(recipe.training.previewPairs, setup.testSource.count) {
            let sample = try setup.testSource.sample(at: index, includeColor: false)
            try fuser.fuse(infrared: sample.infrared, visible: sample.visible).gray.write(to: folder.appendingPathComponent("\(sample.name)-fused.png"))
            if let generator = setup.lossGenerator {
                let sources = Tensor.concat([sample.infrared.tensor(), sample.visible.tensor()], axis: 1)
                let w = withoutGradient { generator.weights(sources, Scope(state[.lossGenerator])) }
                let wa = w.sliced(axis: 1, 0..<1).scalars
                try HeatMap.render(wa, width: sample.width, height: sample.height).write(to: folder.appendingPathComponent("\(sample.name)-w_a.png"))
            }
            if epoch == 0 {
                try sample.infrared.write(to: directory.previewsFolder.appendingPathComponent("\(sample.name)-ir.png"))
                try sample.visible.write(to: directory.previewsFolder.appendingPathComponent("\(sample.name)-vi.png"))
            }
        }
        let fusionCurve = curves.map { (Double($0.step), $0.fusion) }
        let taskCurve = curves.compactMap { c in c.task.map { (Double(c.step), $0) } }
        try LinePlot.render([("L_f", fusionCurve), ("L_t", taskCurve)], width: 640, height: 360, title: "losses per step")
            .write(to: directory.lossCurves)
    }

    // MARK: Final evaluation

    func finalEvaluation(_ state: TrainingState) throws -> Result {
        let evaluator = self.evaluator(state, metrics: recipe.evaluation.metrics, convention: recipe.evaluation.perPair ? .perPairMean : .sum)
        observer.note("evaluating on \(Swift.min(setup.testSource.count, recipe.evaluation.maxPairs ?? Int.max)) test pairs")
        let (fusion, task) = try evaluator.evaluate(setup.testSource, limit: recipe.evaluation.maxPairs,
                                                    outputFolder: directory.fusedFolder, predictionFolder: directory.predictionsFolder)
        try directory.writeMetrics(fusion: fusion, task: task, extra: ["epochs": recipe.training.epochs, "steps": state.position.globalStep])
        return Result(state: state, fusion: fusion, task: task, runDirectory: directory.url)
    }
}
