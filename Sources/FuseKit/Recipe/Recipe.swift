import Foundation
import FuseKitData
import FuseKitMetrics
import FuseKitNN
import Yams

/// A training recipe: which plugins to compose and every setting of the TDFusion meta-training
/// (the paper's and the official code's), decoded from YAML. See `recipes/` for examples.
public struct Recipe: Sendable {
    /// A short name for the run.
    public var name: String
    /// Seed of every random choice (initialisation, batches, dropout).
    public var seed: UInt64
    /// The data to train and evaluate on.
    public var data: DataSettings
    /// The fusion network F.
    public var fusion: ModelSettings
    /// The loss generator G.
    public var lossGenerator: ModelSettings
    /// The task network T.
    public var task: TaskSettings
    /// The learnable fusion loss.
    public var fusionLoss: FusionLossSettings
    /// The training schedule and the meta-learning settings.
    public var training: TrainingSettings
    /// Evaluation at the end of training.
    public var evaluation: EvaluationSettings
    /// The file it was read from (for messages).
    public var file: String
}

/// An optimiser and its hyperparameters.
public struct OptimizerSettings: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable { case adam, adamw, sgd, normalizedSGD = "normalized-sgd" }
    public var kind: Kind
    public var learningRate: Double
    public var weightDecay: Double
    public var beta1: Double
    public var beta2: Double
    public var epsilon: Double
    public var momentum: Double
    public var nesterov: Bool

    public init(kind: Kind = .adam, learningRate: Double = 1e-4, weightDecay: Double? = nil, beta1: Double = 0.9, beta2: Double = 0.999,
                epsilon: Double = 1e-8, momentum: Double = 0, nesterov: Bool = false) {
        self.kind = kind
        self.learningRate = learningRate
        self.weightDecay = weightDecay ?? (kind == .adamw ? 0.01 : 0)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.momentum = momentum
        self.nesterov = nesterov
    }

    /// The optimiser, with no weight decay on the given parameters (norms, biases).
    public func make(noDecay: Set<String> = []) -> any Optimizer {
        let groups = noDecay.isEmpty ? ParameterGroups.single : ParameterGroups.noWeightDecay(for: noDecay)
        switch kind {
        case .adam:
            return Adam(beta1: Float(beta1), beta2: Float(beta2), epsilon: Float(epsilon), weightDecay: Float(weightDecay), groups: groups)
        case .adamw:
            return AdamW(beta1: Float(beta1), beta2: Float(beta2), epsilon: Float(epsilon), weightDecay: Float(weightDecay), groups: groups)
        case .sgd:
            return SGD(momentum: Float(momentum), nesterov: nesterov, weightDecay: Float(weightDecay), groups: groups)
        case .normalizedSGD:
            return NormalizedSGD()
        }
    }
}

/// A plugin, its parameters and how it is optimised.
public struct ModelSettings: Sendable {
    /// Registered plugin name.
    public var plugin: String
    /// Plugin parameters.
    public var parameters: PluginParameters
    /// Optimiser.
    public var optimizer: OptimizerSettings
    /// Learning-rate schedule (stepped per epoch or per step, see ``TrainingSettings/scheduleUnit``).
    public var schedule: LearningRateSchedule
    /// Initial weights, if any: any file ``WeightsFile`` reads (a PyTorch `.pth`, safetensors, a
    /// FuseKit checkpoint), as `PATH` or `PATH#PREFIX`, with the plugin's parameter names.
    public var weights: String?
}

/// The task network's settings.
public struct TaskSettings: Sendable {
    /// Plugin, parameters and optimiser.
    public var model: ModelSettings
    /// Size (height, width) the fused image is resized to (bilinear) before the task network;
    /// nil keeps the crop size. TDFusion: MSRS 240x320, FMB 300x400, M3FD 192x256, LLVIP 256x320.
    public var inputSize: (height: Int, width: Int)?
}

/// Where training and test pairs come from and how batches are drawn.
public struct DataSettings: Sendable {
    public enum Source: Sendable {
        /// A dataset folder (layouts as `PairedDataset` detects them) with train and test splits.
        case folder(root: String, layout: String?, trainSplit: String?, testSplit: String?)
        /// Scenes from the synthetic scene generator.
        case synthetic(SyntheticSettings)
    }

    public var source: Source
    /// Samples per batch (before modality-swap doubling).
    public var batchSize: Int
    /// Random crop (width, height), one offset per batch.
    public var crop: (width: Int, height: Int)?
    /// Doubles each batch with the modalities swapped (TDFusion does).
    public var modalitySwap: Bool
    /// Random flips.
    public var flips: Bool
    /// Random 90-degree rotations.
    public var rotations: Bool
}

/// Settings of synthetic data.
public struct SyntheticSettings: Sendable {
    public var trainCount: Int
    public var testCount: Int
    public var width: Int
    public var height: Int
    public var nightFraction: Double
    public var seed: UInt64
}

/// The fusion loss: paper Eq. 1-3, or the ablations.
public struct FusionLossSettings: Sendable {
    public enum Weights: String, Sendable { case learned, fixed }
    /// Weight of the gradient term (0 removes it: ablation "no gradient term").
    public var alpha: Double
    /// Intensity-term form.
    public var form: FusionLoss.IntensityForm
    /// Learned weights w = G(x), or fixed w = 1/2 (ablation I: no loss generator, no meta steps).
    public var weights: Weights
}

/// The training schedule and meta-learning settings.
public struct TrainingSettings: Sendable {
    public enum Hypergradient: String, Sendable { case exact, finiteDifference = "finite-difference" }
    public enum Phases: String, Sendable { case separate, interleaved }
    public enum ScheduleUnit: String, Sendable { case epoch, step }

    /// Epochs.
    public var epochs: Int
    /// Meta steps (updates of G) per epoch.
    public var metaSteps: Int
    /// The inner (virtual) step size η of F; nil uses F's current learning rate (official).
    public var innerLearningRate: Double?
    /// Exact second-order hypergradient, or the DARTS-style finite-difference approximation.
    public var hypergradient: Hypergradient
    /// `separate`: per epoch, the meta steps then a fusion phase over the whole set (official);
    /// `interleaved`: ablation without a separate fusion phase (one meta step before every
    /// fusion step).
    public var phases: Phases
    /// Weight of the task loss in F's own objective (0 = F never sees task gradients, official;
    /// > 0 is the ablation "F also trained by the task loss").
    public var fusionTaskWeight: Double
    /// Whether schedules step per epoch (official StepLR) or per optimisation step.
    public var scheduleUnit: ScheduleUnit
    /// Fusion-phase steps per epoch at most (nil: the whole set).
    public var fusionStepsPerEpoch: Int?
    /// Write the last checkpoint every this many steps (and at every epoch end).
    public var checkpointEvery: Int
    /// Log a line every this many steps.
    public var logEvery: Int
    /// Test pairs shown in the per-epoch previews.
    public var previewPairs: Int
}

/// What to evaluate at the end of training.
public struct EvaluationSettings: Sendable {
    /// Fusion metrics on the test split.
    public var metrics: [FusionMetric]
    /// Report VIF, SSIM and MI per pair (halved), as TDFusion's paper prints them.
    public var perPair: Bool
    /// Evaluate at most this many test pairs (nil: all).
    public var maxPairs: Int?
}

extension Recipe {
    /// Reads and validates a recipe file.
    public static func load(from url: URL) throws -> Recipe {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw RecipeError(file: url.path, line: nil, "cannot read the recipe: \(error.localizedDescription)")
        }
        return try parse(text, file: url.path)
    }

    /// Parses recipe YAML; `file` names it in messages.
    public static func parse(_ text: String, file: String = "<recipe>") throws -> Recipe {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else { throw RecipeError(file: file, line: nil, "the recipe is empty") }
            root = node
        } catch let error as RecipeError {
            throw error
        } catch let error as YamlError {
            throw RecipeError(file: file, line: yamlErrorLine(error), "malformed YAML: \(yamlProblem(error))")
        }
        let top = try RecipeNode(node: root, path: "", file: file)
            .mapping(allowed: ["name", "seed", "data", "fusion", "loss-generator", "task", "fusion-loss", "training", "evaluation"])
        func required(_ key: String) throws -> RecipeNode {
            guard let node = top[key] else { throw RecipeError(file: file, line: root.mark?.line, "missing required key '\(key)'") }
            return node
        }
        return Recipe(
            name: try top["name"]?.string() ?? URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent,
            seed: UInt64(try top["seed"]?.int() ?? 0),
            data: try parseData(try required("data")),
            fusion: try parseModel(try required("fusion")),
            lossGenerator: try top["loss-generator"].map(parseModel)
                ?? ModelSettings(plugin: "restormer-lpn", parameters: PluginParameters(), optimizer: OptimizerSettings(kind: .normalizedSGD),
                                 schedule: LearningRateSchedule(.step(size: 10, gamma: 0.1)), weights: nil),
            task: try parseTask(try required("task")),
            fusionLoss: try parseFusionLoss(top["fusion-loss"]),
            training: try parseTraining(top["training"]),
            evaluation: try parseEvaluation(top["evaluation"]),
            file: file)
    }

    static func yamlErrorLine(_ error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        default: return nil
        }
    }

    static func yamlProblem(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _), .composer(_, let problem, _, _): return problem
        default: return String(describing: error)
        }
    }

    static func parseOptimizer(_ node: RecipeNode?, default kind: OptimizerSettings.Kind) throws -> OptimizerSettings {
        guard let node else { return OptimizerSettings(kind: kind) }
        let m = try node.mapping(allowed: ["kind", "learning-rate", "weight-decay", "beta1", "beta2", "epsilon", "momentum", "nesterov"])
        let k = try m["kind"].map { OptimizerSettings.Kind(rawValue: try $0.choice(OptimizerSettings.Kind.allCases.map(\.rawValue)))! } ?? kind
        let lr = try m["learning-rate"]?.double() ?? 1e-4
        guard lr > 0 else { throw m["learning-rate"]!.error("'\(node.path).learning-rate' must be positive") }
        return OptimizerSettings(kind: k, learningRate: lr, weightDecay: try m["weight-decay"]?.double(),
                                 beta1: try m["beta1"]?.double() ?? 0.9, beta2: try m["beta2"]?.double() ?? 0.999,
                                 epsilon: try m["epsilon"]?.double() ?? 1e-8, momentum: try m["momentum"]?.double() ?? 0,
                                 nesterov: try m["nesterov"]?.bool() ?? false)
    }

    static func parseSchedule(_ node: RecipeNode?) throws -> LearningRateSchedule {
        guard let node else { return LearningRateSchedule(.step(size: 10, gamma: 0.1)) }
        let m = try node.mapping(allowed: ["kind", "step", "gamma", "milestones", "t-max", "eta-min", "power", "total", "minimum",
                                           "warmup", "warmup-start-factor"])
        let kind = try m["kind"]?.choice(["constant", "step", "multistep", "cosine", "poly"]) ?? "step"
        let decay: LearningRateSchedule.Decay
        switch kind {
        case "constant": decay = .constant
        case "step": decay = .step(size: try m["step"]?.int() ?? 10, gamma: try m["gamma"]?.double() ?? 0.1)
        case "multistep": decay = .multiStep(milestones: try m["milestones"]?.intList() ?? [], gamma: try m["gamma"]?.double() ?? 0.1)
        case "cosine":
            guard let tMax = try m["t-max"]?.int() else { throw node.error("'\(node.path)': a cosine schedule needs 't-max'") }
            decay = .cosine(tMax: tMax, etaMin: try m["eta-min"]?.double() ?? 0)
        default:
            guard let total = try m["total"]?.int() else { throw node.error("'\(node.path)': a poly schedule needs 'total'") }
            decay = .poly(power: try m["power"]?.double() ?? 1, total: total, minimum: try m["minimum"]?.double() ?? 0)
        }
        let warmup = try m["warmup"].map { LearningRateSchedule.Warmup(steps: try $0.int(), startFactor: try m["warmup-start-factor"]?.double() ?? 1.0 / 3.0) }
        return LearningRateSchedule(decay, warmup: warmup)
    }

    static func parseModel(_ node: RecipeNode) throws -> ModelSettings {
        try parseModel(node, extraKeys: [])
    }

    static func parseModel(_ node: RecipeNode, extraKeys: [String]) throws -> ModelSettings {
        let m = try node.mapping(allowed: ["plugin", "parameters", "optimizer", "schedule", "weights"] + extraKeys)
        guard let plugin = try m["plugin"]?.string() else { throw node.error("'\(node.path)' needs a 'plugin'") }
        var parameters = try m["parameters"]?.pluginParameters() ?? PluginParameters()
        parameters.plugin = plugin
        let defaultKind: OptimizerSettings.Kind = node.path == "loss-generator" ? .normalizedSGD : .adam
        return ModelSettings(plugin: plugin, parameters: parameters, optimizer: try parseOptimizer(m["optimizer"], default: defaultKind),
                             schedule: try parseSchedule(m["schedule"]), weights: try m["weights"]?.string())
    }

    static func parseTask(_ node: RecipeNode) throws -> TaskSettings {
        let model = try parseModel(node, extraKeys: ["input-size"])
        let m = try node.mapping(allowed: ["plugin", "parameters", "optimizer", "schedule", "weights", "input-size"])
        let size = try m["input-size"]?.intList(count: 2)
        if let size, size.contains(where: { $0 < 1 }) { throw m["input-size"]!.error("'task.input-size' must be positive") }
        return TaskSettings(model: model, inputSize: size.map { ($0[0], $0[1]) })
    }

    static func parseData(_ node: RecipeNode) throws -> DataSettings {
        let m = try node.mapping(allowed: ["root", "layout", "train-split", "test-split", "synthetic", "batch-size", "crop",
                                           "modality-swap", "flips", "rotations"])
        let source: DataSettings.Source
        if let synthetic = m["synthetic"] {
            if m["root"] != nil { throw node.error("'data' has both 'root' and 'synthetic'; choose one") }
            let s = try synthetic.mapping(allowed: ["train-count", "test-count", "width", "height", "night-fraction", "seed"])
            source = .synthetic(SyntheticSettings(
                trainCount: try s["train-count"]?.int() ?? 64, testCount: try s["test-count"]?.int() ?? 16,
                width: try s["width"]?.int() ?? 128, height: try s["height"]?.int() ?? 128,
                nightFraction: try s["night-fraction"]?.double() ?? 0.5, seed: UInt64(try s["seed"]?.int() ?? 0)))
        } else {
            guard let root = try m["root"]?.string() else { throw node.error("'data' needs a 'root' folder (or 'synthetic')") }
            let layout = try m["layout"]?.choice(["auto"] + DatasetLayout.allCases.map(\.rawValue) + ["tno", "roadscene"])
            source = .folder(root: root, layout: layout == "auto" ? nil : layout, trainSplit: try m["train-split"]?.string(),
                             testSplit: try m["test-split"]?.string())
        }
        let batch = try m["batch-size"]?.int() ?? 2
        guard batch > 0 else { throw m["batch-size"]!.error("'data.batch-size' must be positive") }
        let crop = try m["crop"].map { node -> (Int, Int)? in
            if node.isNull { return nil }
            let c = try node.intList(count: 2)
            guard c[0] > 0 && c[1] > 0 else { throw node.error("'data.crop' must be positive") }
            return (c[0], c[1])
        } ?? (256, 256)
        return DataSettings(source: source, batchSize: batch, crop: crop.map { ($0.0, $0.1) },
                            modalitySwap: try m["modality-swap"]?.bool() ?? true, flips: try m["flips"]?.bool() ?? true,
                            rotations: try m["rotations"]?.bool() ?? false)
    }

    static func parseFusionLoss(_ node: RecipeNode?) throws -> FusionLossSettings {
        guard let node else { return FusionLossSettings(alpha: 1, form: .paper, weights: .learned) }
        let m = try node.mapping(allowed: ["alpha", "form", "weights"])
        return FusionLossSettings(alpha: try m["alpha"]?.double() ?? 1,
                                  form: FusionLoss.IntensityForm(rawValue: try m["form"]?.choice(["paper", "squared-weights"]) ?? "paper")!,
                                  weights: FusionLossSettings.Weights(rawValue: try m["weights"]?.choice(["learned", "fixed"]) ?? "learned")!)
    }

    static func parseTraining(_ node: RecipeNode?) throws -> TrainingSettings {
        let m = try node?.mapping(allowed: ["epochs", "meta-steps", "inner-learning-rate", "hypergradient", "phases", "fusion-task-weight",
                                            "schedule-unit", "fusion-steps-per-epoch", "checkpoint-every", "log-every", "preview-pairs"]) ?? [:]
        let settings = TrainingSettings(
            epochs: try m["epochs"]?.int() ?? 40,
            metaSteps: try m["meta-steps"]?.int() ?? 200,
            innerLearningRate: try m["inner-learning-rate"]?.double(),
            hypergradient: .init(rawValue: try m["hypergradient"]?.choice(["exact", "finite-difference"]) ?? "exact")!,
            phases: .init(rawValue: try m["phases"]?.choice(["separate", "interleaved"]) ?? "separate")!,
            fusionTaskWeight: try m["fusion-task-weight"]?.double() ?? 0,
            scheduleUnit: .init(rawValue: try m["schedule-unit"]?.choice(["epoch", "step"]) ?? "epoch")!,
            fusionStepsPerEpoch: try m["fusion-steps-per-epoch"]?.int(),
            checkpointEvery: try m["checkpoint-every"]?.int() ?? 200,
            logEvery: try m["log-every"]?.int() ?? 10,
            previewPairs: try m["preview-pairs"]?.int() ?? 4)
        for (key, value) in [("epochs", settings.epochs), ("checkpoint-every", settings.checkpointEvery), ("log-every", settings.logEvery)] where value < 1 {
            throw m[key]!.error("'training.\(key)' must be at least 1")
        }
        if settings.metaSteps < 0 { throw m["meta-steps"]!.error("'training.meta-steps' must not be negative") }
        return settings
    }

    static func parseEvaluation(_ node: RecipeNode?) throws -> EvaluationSettings {
        let m = try node?.mapping(allowed: ["metrics", "per-pair", "max-pairs"]) ?? [:]
        var metrics = FusionMetric.allCases
        if let list = m["metrics"] {
            metrics = try list.list().map { item in
                let name = try item.string()
                guard let metric = FusionMetric.allCases.first(where: { $0.rawValue.lowercased() == name.lowercased() }) else {
                    throw item.error("unknown metric '\(name)' in 'evaluation.metrics' (known: \(FusionMetric.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                return metric
            }
        }
        return EvaluationSettings(metrics: metrics, perPair: try m["per-pair"]?.bool() ?? false, maxPairs: try m["max-pairs"]?.int())
    }
}
