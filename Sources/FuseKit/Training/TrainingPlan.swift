import FuseKitNN

/// One step of an epoch's plan: its kind and its index among the epoch's steps of that kind.
public struct TrainingStep: Sendable, Equatable, CustomStringConvertible {
    public var phase: TrainingPhase
    public var index: Int

    public init(_ phase: TrainingPhase, _ index: Int) {
        self.phase = phase
        self.index = index
    }

    public var description: String { "\(phase.rawValue)(\(index))" }
}

/// Where a run stands: the next step to run. Resuming runs the plan of `epoch` from `step` on.
public struct TrainingPosition: Sendable, Equatable {
    /// Index of the stage.
    public var stage = 0
    /// Epoch within the stage.
    public var epoch = 0
    /// Index of the next step in the epoch's plan.
    public var step = 0
    /// Steps finished since the start of the run (over all stages).
    public var globalStep = 0

    public init(stage: Int = 0, epoch: Int = 0, step: Int = 0, globalStep: Int = 0) {
        self.stage = stage
        self.epoch = epoch
        self.step = step
        self.globalStep = globalStep
    }
}

/// Everything that changes during training, by model role (all of it is in the checkpoint).
public struct TrainingState: Sendable {
    /// Weights and buffers of every model of the run.
    public var models: [ModelRole: ModelState]
    /// Optimiser states of the models trained so far.
    public var optimizers: [ModelRole: OptimizerState] = [:]
    public var position = TrainingPosition()
    /// The best task metric at an epoch end so far.
    public var bestMetric: Double?
    /// The raw loss of each group in the last two steps (Dynamic Weight Average reads them).
    public var lossHistory: [[String: Double]] = []

    public init(models: [ModelRole: ModelState]) { self.models = models }

    /// The weights of `role` (every role of the run has them).
    public subscript(role: ModelRole) -> ModelState {
        get {
            guard let state = models[role] else { preconditionFailure("the run has no \(role) model") }
            return state
        }
        set { models[role] = newValue }
    }
}

/// A model trained in a stage: the module, its optimiser and learning-rate schedule.
public struct TrainedModel: Sendable {
    public let module: any Module
    public let optimizer: any Optimizer
    public let schedule: LearningRateSchedule
    /// The optimiser's base learning rate.
    public let learningRate: Float

    /// The learning rate at a schedule step.
    public func learningRate(at step: Int) -> Float { schedule.learningRate(base: learningRate, at: step) }
}

/// How a stage trains: the steps of each epoch, and what one step does to the models.
protocol TrainingStrategy {
    /// The steps of one epoch, in the order they run.
    func plan(epoch: Int) -> [TrainingStep]
    /// Runs one step, updating the models in `state` (the position is the step's).
    func run(_ step: TrainingStep, _ state: inout TrainingState, _ environment: StepEnvironment) throws -> StepRecord
    /// Models the strategy adds to the run (a reconstruction head, uncertainty weights), by role.
    var ownModels: [ModelRole: any Module] { get }
}

extension TrainingStrategy {
    var ownModels: [ModelRole: any Module] { [:] }
}

/// What a step needs from the trainer: the seed and position, the schedules, the checks, and the
/// ranks it shares the step with.
struct StepEnvironment {
    let seed: UInt64
    let position: TrainingPosition
    let scheduleUnit: StageSettings.ScheduleUnit
    /// Steps of this stage before this one (each stage's schedules start at its own first step).
    let stageStep: Int
    let runDirectory: RunDirectory
    let parallel: DataParallelism

    /// The schedule step of the position: the stage's epoch or its step.
    var scheduleStep: Int { scheduleUnit == .epoch ? position.epoch : stageStep }

    /// The learning rate of a model at this step.
    func learningRate(_ model: TrainedModel) -> Float { model.learningRate(at: scheduleStep) }

    /// A forward context in training mode with the pass's own random stream at this step.
    func context(_ pass: RandomStream.ForwardPass) -> ForwardContext {
        parallel.context(training: true, rng: RandomStream.forward(pass).generator(seed, step: position.globalStep))
    }

    /// A forward context in training mode for a model's pass in this step.
    func context(for role: ModelRole) -> ForwardContext {
        parallel.context(training: true, rng: RandomStream.model(role).generator(seed, step: position.globalStep))
    }

    /// The mean over the ranks of a loss or gradient norm (the value itself in one process);
    /// stops training, on every rank at once, when it is NaN or infinite on any rank, naming it
    /// and the step.
    func agreed(_ value: Double, _ quantity: String, _ step: TrainingStep) throws -> Double {
        try agreed(["": value], step) { _ in quantity }[""]!
    }

    /// ``agreed(_:_:_:)`` for named values in one collective call; `quantity` names a value.
    func agreed(_ values: [String: Double], _ step: TrainingStep, quantity: (String) -> String) throws -> [String: Double] {
        let means = parallel.means(values)
        for name in means.keys.sorted() where !means[name]!.isFinite {
            throw TrainingError.nonFinite(quantity: quantity(name), phase: step.phase, epoch: position.epoch, step: step.index,
                                          lastCheckpoint: runDirectory.hasCheckpoint ? runDirectory.lastCheckpoint.path : nil)
        }
        return means
    }

    /// A gradient of `model` averaged over the ranks.
    func averaged(_ gradient: [String: Tensor], of model: TrainedModel) -> [String: Tensor] {
        parallel.averaged(gradient, of: model.module)
    }

    /// One optimiser step of `role` along `gradient` (already averaged over the ranks).
    func update(_ role: ModelRole, _ model: TrainedModel, _ state: inout TrainingState, gradient: [String: Tensor], learningRate: Float) {
        var optimizerState = state.optimizers[role] ?? OptimizerState()
        state[role].parameters = model.optimizer.update(state[role].parameters, gradients: gradient, state: &optimizerState,
                                                        learningRate: learningRate)
        state.optimizers[role] = optimizerState
    }
}
