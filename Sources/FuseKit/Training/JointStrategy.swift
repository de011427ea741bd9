import FuseKitData
import FuseKitNN
import FuseKitTensor

/// Multi-task training: every step, the stage's loss terms on one batch, weighted by group, and
/// one optimiser step of every trained model on their sum. The models are a joint network (MRFS,
/// MAFS), or a fusion net and the task net it feeds, trained end to end (MRFS-style training of
/// cascades, TDFusion's ablation III), or a task net alone (a teacher's own stage).
struct JointStrategy: TrainingStrategy {
    let stage: StageSettings
    let models: StageModels
    /// The trained roles with their optimisers, in a fixed order.
    let trained: [(role: ModelRole, model: TrainedModel)]
    let terms: [(settings: LossTermSettings, term: any LossTerm, group: String)]
    let batches: BatchLoader
    let setup: TrainingSetup

    init(stage: StageSettings, setup: TrainingSetup, batches: BatchLoader) throws {
        self.stage = stage
        self.setup = setup
        self.batches = batches
        models = try StageModels(stage: stage, models: setup.models)
        var trained = stage.trained.map { entry in (entry.role, TrainedModel(setup.models[entry.role]!, entry.optimization)) }
        terms = try stage.losses.map { settings in
            let descriptor = setup.lossTerms.descriptor(settings.term)!
            return (settings, try descriptor.makeTerm(settings.parameters), settings.group ?? descriptor.kind.rawValue)
        }
        if stage.weighting.method == .uncertainty {
            let groups = Set(terms.map(\.group)).sorted()
            trained.append((UncertaintyWeights.role, TrainedModel(UncertaintyWeights(groups: groups), stage.weightingOptimization)))
        }
        self.trained = trained
    }

    /// Models this strategy adds to the run (the uncertainty weights).
    var ownModels: [ModelRole: any Module] {
        Dictionary(uniqueKeysWithValues: trained.filter { setup.models[$0.role] == nil }.map { ($0.role, $0.model.module) })
    }

    func plan(epoch: Int) -> [TrainingStep] {
        (0..<Swift.min(batches.batchesPerEpoch, stage.stepsPerEpoch ?? Int.max)).map { TrainingStep(.joint, $0) }
    }

    /// The stage's visible input: RGB when the data gives it, else gray.
    static func visible(of batch: TrainingBatch) -> Tensor { batch.visibleColor ?? batch.visible }

    func run(_ step: TrainingStep, _ state: inout TrainingState, _ env: StepEnvironment) throws -> StepRecord {
        let started = Profiler.now()
        let batch = try batches.batch(epoch: env.position.epoch, index: step.index)
        if batch.segmentation == nil, terms.contains(where: { $0.term.requirements.contains(.labels) }) {
            throw TrainingError.data("stage '\(stage.name)': its loss terms need segmentation labels, which the training data lacks")
        }
        let rates = trained.map { env.learningRate($0.model) }
        let contexts = trained.map { env.context(for: $0.role) }
        let parameters = RoleParameters.merge(trained.map { ($0.role, state.models[$0.role]!.parameters) })
        let frozen = state
        let (_, gradient, result) = valueWithGradient(at: parameters) { p in
            let split = RoleParameters.split(p)
            func scope(_ role: ModelRole) -> Scope {
                let state = frozen.models[role]!
                if let i = trained.firstIndex(where: { $0.role == role }) {
                    return Scope(parameters: split[role]!, buffers: state.buffers, context: contexts[i])
                }
                return Scope(state)
            }
            let lossBatch = makeLossBatch(batch, scope: scope)
            var termValues: [String: Tensor] = [:], groups: [String: Tensor] = [:]
            for (settings, term, group) in terms {
                let value = term(lossBatch)
                termValues[settings.term, default: Tensor(0)] = termValues[settings.term, default: Tensor(0)] + value
                groups[group, default: Tensor(0)] = groups[group, default: Tensor(0)] + value * Float(settings.weight)
            }
            let logVariances = stage.weighting.method == .uncertainty
                ? (trained.last!.model.module as! UncertaintyWeights).values(scope(UncertaintyWeights.role)) : [:]
            let (total, weights) = stage.weighting.combine(groups, history: frozen.lossHistory, logVariances: logVariances)
            return (total, auxiliary: (termValues.mapValues { Double($0.item) }, groups.mapValues { Double($0.item) }, weights))
        }
        let (localTerms, localGroups, weights) = result
        let termValues = try env.agreed(localTerms, step) { "the loss term '\($0)'" }
        let groupValues = try env.agreed(localGroups, step) { "the loss of group '\($0)'" }
        let split = RoleParameters.split(gradient)
        for (i, entry) in trained.enumerated() {
            env.update(entry.role, entry.model, &state, gradient: env.averaged(split[entry.role]!, of: entry.model), learningRate: rates[i])
            state.models[entry.role]!.absorb(contexts[i])
        }
        state.lossHistory = Array((state.lossHistory + [groupValues]).suffix(2))
        var losses = termValues
        for (group, value) in groupValues { losses["group:" + group] = value }
        return StepRecord(phase: .joint, epoch: env.position.epoch, step: step.index, globalStep: env.position.globalStep + 1,
                          fusionLoss: groupValues["fusion"], innerTaskLoss: groupValues["task"], outerTaskLoss: nil,
                          hypergradientNorm: nil,
                          learningRates: Dictionary(uniqueKeysWithValues: zip(trained.map(\.role.rawValue), rates.map(Double.init))),
                          seconds: Profiler.now() - started, losses: losses, taskWeights: weights)
    }

    /// The batch as loss terms see it, with the forward passes of the stage's models.
    func makeLossBatch(_ batch: TrainingBatch, scope: @escaping (ModelRole) -> Scope) -> LossBatch {
        let visible = Self.visible(of: batch)
        let targets = FusionTargets(infrared: batch.infrared, visible: visible, visibleGamma: Float(stage.visibleGamma),
                                    infraredContrast: Float(stage.infraredContrast))
        var lossBatch = LossBatch(infrared: batch.infrared, visible: visible, targets: targets, validMask: batch.validMask,
                                  labels: batch.segmentation, boxes: batch.boxes)
        if let (role, joint) = models.joint {
            let out = joint.forward(JointInput(infrared: batch.infrared, visible: FusionTargets.withChannels(visible, joint.visibleChannels)), scope(role))
            lossBatch.fused = out.fused
            lossBatch.logits = out.logits
            lossBatch.auxiliary = out.auxiliary
        } else if let (role, fusion) = models.fusion {
            let fused = fusion.fuse(Tensor.concat([batch.infrared, FusionTargets.withChannels(visible, 1)], axis: 1), scope(role))
            lossBatch.fused = fused
            if let (taskRole, task) = models.task {
                let input = setup.taskInput(for: taskRole)(fused)
                let taskScope = scope(taskRole)
                if let segmenter = task as? any SegmentationLogits { lossBatch.logits = segmenter.logits(input, taskScope) }
                let targets = batch.targets
                lossBatch.taskLoss = { task.loss(input, targets: targets, taskScope) }
            }
        } else if let (role, task) = models.task {
            let input = setup.taskInput(for: role)(visible)
            if let segmenter = task as? any SegmentationLogits { lossBatch.logits = segmenter.logits(input, scope(role)) }
            let targets = batch.targets, taskScope = scope(role)
            lossBatch.taskLoss = { task.loss(input, targets: targets, taskScope) }
        }
        if !models.teachers.isEmpty {
            let fused = lossBatch.fused
            lossBatch.teacherLogits = { role, input in
                guard let teacher = models.teachers[role] as? any SegmentationLogits else { preconditionFailure("no teacher '\(role)'") }
                let image: Tensor
                switch input {
                case .visible: image = visible
                case .fused:
                    guard let fused else { preconditionFailure("a teacher on fused images needs a fusion model") }
                    image = teacher.inputChannels == 3 && fused.shape[1] == 1 && visible.shape[1] == 3
                        ? Color.rgb(luma: fused, chromaOf: visible) : fused
                }
                return teacher.logits(setup.taskInput(for: role)(image), scope(role))
            }
        }
        if let (role, generator) = models.lossGenerator {
            let generatorScope = scope(role)
            lossBatch.fusionWeights = { sources in generator.weights(sources, generatorScope) }
        }
        return lossBatch
    }
}

/// Parameters of several models in one dictionary for one gradient: `role` + U+001F + name.
enum RoleParameters {
    static let separator: Character = "\u{1F}"

    static func merge(_ parts: [(ModelRole, [String: Tensor])]) -> [String: Tensor] {
        var merged: [String: Tensor] = [:]
        for (role, parameters) in parts {
            for (name, value) in parameters { merged[role.rawValue + String(separator) + name] = value }
        }
        return merged
    }

    static func split(_ merged: [String: Tensor]) -> [ModelRole: [String: Tensor]] {
        var parts: [ModelRole: [String: Tensor]] = [:]
        for (key, value) in merged {
            let i = key.firstIndex(of: separator)!
            parts[ModelRole(String(key[..<i])), default: [:]][String(key[key.index(after: i)...])] = value
        }
        return parts
    }
}

extension UncertaintyWeights {
    /// The role of the learned log-variances in a run.
    public static let role = ModelRole("task-weighting")
}

extension TrainedModel {
    /// A model optimised as `optimization` says.
    init(_ module: any Module, _ optimization: Optimization) {
        self.init(module: module, optimizer: optimization.optimizer.make(noDecay: module.parametersWithoutDecay),
                  schedule: optimization.schedule, learningRate: Float(optimization.optimizer.learningRate))
    }
}
