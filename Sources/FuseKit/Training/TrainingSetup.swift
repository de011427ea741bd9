import Foundation
import FuseKitData
import FuseKitNN
import FuseKitTensor

/// The networks and data a recipe names, built and checked before training starts.
public struct TrainingSetup: Sendable {
    public var recipe: Recipe
    /// Every model of the run by role (each a plugin: a FusionNet, LossGenerator, TaskNet or JointModel).
    public var models: [ModelRole: any Module]
    /// Training pairs (with labels).
    public var trainSource: any PairedSampleSource
    /// Test pairs (with labels when the dataset has them).
    public var testSource: any PairedSampleSource
    /// Initial weights read from the recipe's `weights` files, by role.
    public var initialWeights: [ModelRole: [String: Tensor]]
    /// The loss terms the stages may use.
    public var lossTerms: LossTermRegistry

    /// The fusion network F, if the run has one.
    public var fusion: (any FusionNet)? { models[.fusion] as? any FusionNet }
    /// The loss generator G, if the run has one.
    public var lossGenerator: (any LossGenerator)? { models[.lossGenerator] as? any LossGenerator }
    /// The task network T, if the run has one.
    public var task: (any TaskNet)? { models[.task] as? any TaskNet }
    /// The joint model of the run, if it has one (its role and module).
    public var joint: (role: ModelRole, model: any JointModel)? {
        recipe.models.lazy.compactMap { m in (self.models[m.role] as? any JointModel).map { (m.role, $0) } }.first
    }

    /// The plugins a recipe names, built with their parameters (checked against each plugin's
    /// declaration), by role.
    public static func makeModels(recipe: Recipe, registry: PluginRegistry) throws -> [ModelRole: any Module] {
        var models: [ModelRole: any Module] = [:]
        for settings in recipe.models {
            let descriptor: PluginDescriptor
            do {
                descriptor = try registry.descriptor(settings.plugin)
            } catch {
                throw RecipeError(file: recipe.file, line: settings.line, "model '\(settings.role)': \(error)")
            }
            models[settings.role] = try descriptor.makeModule(settings.parameters)
        }
        try checkStages(recipe, models: models, terms: registry.lossTerms)
        return models
    }

    /// Every stage's models are of the kinds its strategy needs, and its loss terms exist and get
    /// what they read.
    static func checkStages(_ recipe: Recipe, models: [ModelRole: any Module], terms: LossTermRegistry) throws {
        func fail(_ stage: StageSettings, _ line: Int?, _ message: String) -> RecipeError {
            RecipeError(file: recipe.file, line: line ?? stage.line, "stage '\(stage.name)': \(message)")
        }
        for stage in recipe.stages {
            switch stage.strategy {
            case .meta:
                for (role, kind) in [(ModelRole.fusion, PluginKind.fusion), (.task, .task), (.lossGenerator, .lossGenerator)] {
                    guard let module = models[role] else { continue }
                    if !PluginKind.of(module).contains(kind) {
                        throw fail(stage, nil, "the meta strategy needs '\(role)' to be a \(kind.protocolName), but it is a \(type(of: module))")
                    }
                }
            case .joint, .maskedPretraining:
                let provided = try StageModels(stage: stage, models: models).provides(visibleIsRGB: recipe.data.visible == .rgb)
                for term in stage.losses {
                    guard let descriptor = terms.descriptor(term.term) else {
                        let hint = closestMatch(to: term.term, in: terms.names).map { "; did you mean '\($0)'?" } ?? ""
                        throw fail(stage, term.line, "unknown loss term '\(term.term)'\(hint) (terms: \(terms.names.joined(separator: ", ")))")
                    }
                    let built = try descriptor.makeTerm(term.parameters)
                    for need in built.requirements where !provided.contains(need) {
                        throw fail(stage, term.line, "the loss term '\(term.term)' needs \(need), which this stage does not provide")
                    }
                }
                if stage.strategy == .maskedPretraining, try StageModels(stage: stage, models: models).reconstructor == nil {
                    throw fail(stage, nil, "masked pretraining needs a model that reconstructs (a JointModel with MaskedReconstruction) or a fusion net")
                }
            }
        }
    }

    /// Builds the plugins (validating their parameters and the stages) and opens the data.
    /// - Parameter dataRoot: overrides `data.root` of a folder recipe (`fusekit train --data`).
    public static func make(recipe: Recipe, registry: PluginRegistry, dataRoot: String? = nil) throws -> TrainingSetup {
        let models = try makeModels(recipe: recipe, registry: registry)
        var train: any PairedSampleSource
        var test: any PairedSampleSource
        switch recipe.data.source {
        case .synthetic(let s):
            let scenes = SyntheticSceneGenerator(width: s.width, height: s.height, nightProbability: s.nightFraction)
            let color = recipe.data.visible == .rgb
            train = scenes.samples(count: s.trainCount, seed: RandomStream.syntheticTrainingScenes.seed(s.seed), includeColor: color)
            test = scenes.samples(count: s.testCount, seed: RandomStream.syntheticTestScenes.seed(s.seed), includeColor: color)
        case .folder(let root, let layout, let trainSplit, let testSplit):
            let base = URL(fileURLWithPath: dataRoot ?? root)
            let chosen = try layout.map { name -> DatasetLayout in
                guard let l = DatasetLayout(name: name) else { throw RecipeError(file: recipe.file, line: nil, "unknown data layout '\(name)'") }
                return l
            }
            // Boxes are checked against the detector's classes as they are loaded.
            let boxClasses = models.values.lazy.compactMap { module -> Int? in
                if case .detection(let classes)? = (module as? any TaskNet)?.kind { return classes } else { return nil }
            }.first
            // So are label masks against the segmenter's classes.
            let maskClasses = models.values.lazy.compactMap { module -> Int? in
                let kind = (module as? any TaskNet)?.kind ?? (module as? any JointModel)?.kind
                if case .segmentation(let classes)? = kind { return classes } else { return nil }
            }.first
            var trainSet = try PairedDataset(root: base, layout: chosen, split: trainSplit ?? "train").validatedForTraining()
            trainSet.boxClassCount = boxClasses
            trainSet.segmentationClassCount = maskClasses
            train = trainSet
            var testSet = try PairedDataset(root: base, layout: chosen, split: testSplit ?? "test")
            testSet.boxClassCount = boxClasses
            testSet.segmentationClassCount = maskClasses
            let (usable, skipped) = testSet.droppingInconsistentPairs()
            for problem in skipped { FileHandle.standardError.write(Data("warning: skipping test pair: \(problem)\n".utf8)) }
            test = usable
        }
        try checkInputSizes(recipe, models: models)
        var weights: [ModelRole: [String: Tensor]] = [:]
        for settings in recipe.models {
            if let path = settings.weights { weights[settings.role] = try WeightsFile.readModelWeights(WeightsReference(path), checkpointModel: settings.role.rawValue).tensors }
        }
        return TrainingSetup(recipe: recipe, models: models, trainSource: train, testSource: test, initialWeights: weights,
                             lossTerms: registry.lossTerms)
    }

    /// The weight w_a the loss generator gives the infrared source of a sample (row-major, the
    /// sample's size), or nil when the run has no loss generator.
    public func infraredWeights(of sample: PairedSample, _ state: TrainingState) -> [Float]? {
        guard let generator = lossGenerator, let weights = state.models[.lossGenerator] else { return nil }
        let sources = Tensor.concat([sample.infrared.tensor(), sample.visible.tensor()], axis: 1)
        return withoutGradient { generator.weights(sources, Scope(weights)) }.sliced(axis: 1, 0..<1).scalars
    }

    /// The training crops and the synthetic images are at least as large as every fusion net and
    /// joint model needs.
    static func checkInputSizes(_ recipe: Recipe, models: [ModelRole: any Module]) throws {
        var sizes: [(what: String, width: Int, height: Int)] = []
        if let crop = recipe.data.crop { sizes.append(("data.crop", crop.width, crop.height)) }
        if case .synthetic(let s) = recipe.data.source { sizes.append(("data.synthetic", s.width, s.height)) }
        for settings in recipe.models {
            let needed = (models[settings.role] as? any FusionNet)?.minimumSide ?? (models[settings.role] as? any JointModel)?.minimumSide ?? 1
            if let small = sizes.first(where: { Swift.min($0.width, $0.height) < needed }) {
                throw RecipeError(file: recipe.file, line: settings.line,
                                  "model '\(settings.role)' (\(settings.plugin)) needs images of at least \(needed)x\(needed) pixels, but \(small.what) is \(small.width)x\(small.height)")
            }
        }
    }

    /// What a run of these models produces, given their weights: its joint model, or its fusion
    /// net and (when it has one) the task net on the fused images; nil when `state` holds neither.
    public func evaluationPipeline(_ state: TrainingState) -> EvaluationPipeline? {
        if let (role, joint) = joint, let weights = state.models[role] { return .joint(joint, state: weights) }
        if let fusion, let weights = state.models[.fusion] {
            let taskNet = task.flatMap { t in state.models[.task].map { (t, $0, taskInput(for: .task)) } }
            return .cascade(fuser: Fuser(fusion: fusion, state: weights), task: taskNet)
        }
        return nil
    }

    /// Maps fused images [B, C, H, W] to the input of the task net of `role`: bilinear resize to
    /// its `input-size`, the gray channel repeated when it expects colour (and the luma taken when
    /// it expects gray of a colour image).
    public func taskInput(for role: ModelRole = .task) -> @Sendable (Tensor) -> Tensor {
        let size = recipe.model(role)?.inputSize
        let channels = (models[role] as? any TaskNet)?.inputChannels ?? 1
        return { fused in
            var x = fused
            if let size, size.height != x.shape[2] || size.width != x.shape[3] {
                x = x.resizedBilinear(to: (size.height, size.width))
            }
            return FusionTargets.withChannels(x, channels)
        }
    }
}

extension PluginKind {
    /// The kinds a module is (its plugin protocols).
    static func of(_ module: any Module) -> Set<PluginKind> {
        var kinds = Set<PluginKind>()
        if module is any FusionNet { kinds.insert(.fusion) }
        if module is any LossGenerator { kinds.insert(.lossGenerator) }
        if module is any TaskNet { kinds.insert(.task) }
        if module is any JointModel { kinds.insert(.joint) }
        return kinds
    }
}

extension TrainingBatch {
    /// The network input cat(a, b) [B, 2, H, W].
    public var sources: Tensor { Tensor.concat([infrared, visible], axis: 1) }

    /// The labels as the task networks take them.
    public var targets: TaskTargets { TaskTargets(segmentation: segmentation, boxes: boxes) }
}
