import Foundation
import FuseKitData
import FuseKitMetrics
import FuseKitNN
import FuseKitTensor
import Yams

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

    /// The roles a TDFusion recipe may name at the top level.
    static let topLevelRoles: [ModelRole] = [.fusion, .lossGenerator, .task]

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
        let topNode = RecipeNode(node: root, path: "", file: file)
        let top = try topNode.mapping(allowed: ["name", "seed", "data", "models"] + topLevelRoles.map(\.rawValue)
                                      + ["fusion-loss", "training", "stages", "evaluation", "distributed"])
        guard let data = top["data"] else { throw RecipeError(file: file, line: root.mark?.line, "missing required key 'data'") }

        var models: [ModelSettings] = []
        for role in topLevelRoles { if let node = top[role.rawValue] { models.append(try parseModel(node, role: role)) } }
        if let list = top["models"] {
            for (key, node, line) in try list.orderedMapping() {
                let role = ModelRole(key)
                if models.contains(where: { $0.role == role }) {
                    throw RecipeError(file: file, line: line, "the model '\(key)' is given twice (at the top level and under 'models')")
                }
                models.append(try parseModel(node, role: role))
            }
        }
        guard !models.isEmpty else {
            throw RecipeError(file: file, line: root.mark?.line, "the recipe names no models: give 'fusion' and 'task', or 'models'")
        }

        var stages: [StageSettings] = []
        if let list = top["stages"] {
            for key in ["training", "fusion-loss"] where top[key] != nil {
                throw top[key]!.error("'\(key)' belongs inside each stage when the recipe lists 'stages'")
            }
            for (index, node) in try list.list().enumerated() {
                stages.append(try parseStage(node, defaultName: "stage-\(index + 1)", models: models, fusionLoss: nil))
            }
            guard !stages.isEmpty else { throw list.error("'stages' lists no stage") }
        } else {
            let node = top["training"] ?? RecipeNode(node: .mapping(Node.Mapping([], .implicit, .block, root.mark)), path: "training", file: file)
            stages.append(try parseStage(node, defaultName: "training", models: models, fusionLoss: top["fusion-loss"]))
        }
        var recipe = Recipe(
            name: try top["name"]?.string() ?? URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent,
            seed: try top["seed"]?.seed() ?? 0,
            data: try parseData(data), models: models, stages: stages,
            evaluation: try parseEvaluation(top["evaluation"]), file: file)
        recipe.distributed = try parseDistributed(top["distributed"])
        try recipe.validateWeightsFlow()
        return recipe
    }

    /// Every frozen role of a stage needs weights from an earlier stage or a file.
    func validateWeightsFlow() throws {
        var provided = Set(models.filter { $0.weights != nil }.map(\.role))
        for stage in stages {
            for role in stage.frozen where !provided.contains(role) {
                throw RecipeError(file: file, line: stage.frozenLine ?? stage.line,
                                  "stage '\(stage.name)' uses '\(role)' frozen, but no earlier stage trains it and it has no 'weights' file")
            }
            provided.formUnion(stage.trained.map(\.role))
        }
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

    // MARK: Models and optimisation

    static func parseOptimizer(_ node: RecipeNode?, default kind: OptimizerSettings.Kind) throws -> OptimizerSettings {
        guard let node else { return OptimizerSettings(kind: kind) }
        let m = try node.mapping(allowed: ["kind", "learning-rate", "weight-decay", "beta1", "beta2", "epsilon", "momentum", "nesterov"])
        let k = try m["kind"].map { OptimizerSettings.Kind(rawValue: try $0.choice(OptimizerSettings.Kind.allCases.map(\.rawValue)))! } ?? kind
        let lr = try m["learning-rate"]?.double() ?? 1e-4
        guard lr > 0 else { throw m["learning-rate"]!.error("'\(node.path).learning-rate' must be positive") }
        // The ranges PyTorch's optimisers accept.
        return OptimizerSettings(kind: k, learningRate: lr, weightDecay: try m["weight-decay"]?.double(in: 0...(.greatestFiniteMagnitude)),
                                 beta1: try m["beta1"]?.double(in: 0...1, excludingUpperBound: true) ?? 0.9,
                                 beta2: try m["beta2"]?.double(in: 0...1, excludingUpperBound: true) ?? 0.999,
                                 epsilon: try m["epsilon"]?.double(in: 0...(.greatestFiniteMagnitude)) ?? 1e-8,
                                 momentum: try m["momentum"]?.double(in: 0...(.greatestFiniteMagnitude)) ?? 0,
                                 nesterov: try m["nesterov"]?.bool() ?? false)
    }

    static func parseSchedule(_ node: RecipeNode?) throws -> LearningRateSchedule {
        guard let node else { return Optimization.defaultSchedule }
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
        if let problem = LearningRateSchedule.problem(with: decay) { throw node.error("'\(node.path)': \(problem)") }
        var warmup: LearningRateSchedule.Warmup?
        if let steps = m["warmup"] {
            let startFactor = try m["warmup-start-factor"]?.double() ?? 1.0 / 3.0
            if let problem = LearningRateSchedule.Warmup.problem(steps: try steps.int(), startFactor: startFactor) {
                throw steps.error("'\(node.path)' warm-up: \(problem)")
            }
            warmup = LearningRateSchedule.Warmup(steps: try steps.int(), startFactor: startFactor)
        } else if let factor = m["warmup-start-factor"] {
            throw factor.error("'\(node.path).warmup-start-factor' needs 'warmup' (the number of warm-up steps)")
        }
        return LearningRateSchedule(decay, warmup: warmup)
    }

    static func parseOptimization(_ m: [String: RecipeNode], role: ModelRole, fallback: Optimization? = nil) throws -> Optimization {
        let base = fallback ?? Optimization.defaultFor(role)
        return Optimization(optimizer: try m["optimizer"].map { try parseOptimizer($0, default: base.optimizer.kind) } ?? base.optimizer,
                            schedule: try m["schedule"].map(parseSchedule) ?? base.schedule)
    }

    static func parseModel(_ node: RecipeNode, role: ModelRole) throws -> ModelSettings {
        let m = try node.mapping(allowed: ["plugin", "parameters", "optimizer", "schedule", "weights", "input-size"])
        guard let plugin = try m["plugin"]?.string() else { throw node.error("'\(node.path)' needs a 'plugin'") }
        var parameters = try m["parameters"]?.pluginParameters() ?? PluginParameters()
        parameters.plugin = plugin
        let size = try m["input-size"]?.intList(count: 2)
        if let size, size.contains(where: { $0 < 1 }) { throw m["input-size"]!.error("'\(node.path).input-size' must be positive") }
        return ModelSettings(role: role, plugin: plugin, parameters: parameters, optimization: try parseOptimization(m, role: role),
                             weights: try m["weights"]?.string(), inputSize: size.map { ($0[0], $0[1]) }, line: node.line)
    }

    // MARK: Stages

    static let stageKeys = ["name", "strategy", "epochs", "train", "frozen", "steps-per-epoch", "schedule-unit", "checkpoint-every",
                            "log-every", "preview-pairs", "meta-steps", "inner-learning-rate", "hypergradient", "phases",
                            "fusion-task-weight", "fusion-loss", "losses", "weighting", "targets", "masking"]

    static func parseStage(_ node: RecipeNode, defaultName: String, models: [ModelSettings], fusionLoss: RecipeNode?) throws -> StageSettings {
        let m = try node.mapping(allowed: stageKeys)
        if fusionLoss != nil && m["fusion-loss"] != nil { throw m["fusion-loss"]!.error("'fusion-loss' is given twice (top level and in 'training')") }
        let strategy = StageSettings.Strategy(rawValue: try m["strategy"]?.choice(StageSettings.Strategy.allCases.map(\.rawValue)) ?? "meta")!
        let known = models.map(\.role)
        func role(_ name: String, line: Int?, path: String) throws -> ModelRole {
            guard known.contains(ModelRole(name)) else {
                let hint = closestMatch(to: name, in: known.map(\.rawValue)).map { "; did you mean '\($0)'?" } ?? ""
                throw RecipeError(file: node.file, line: line, "'\(path)' names the model '\(name)', which the recipe does not define\(hint) "
                                  + "(models: \(known.map(\.rawValue).joined(separator: ", ")))")
            }
            return ModelRole(name)
        }
        func role(_ item: RecipeNode) throws -> ModelRole { try role(try item.string(), line: item.line, path: item.path) }
        let frozen = try m["frozen"]?.list().map(role) ?? []
        var trained: [(ModelRole, Optimization)] = []
        if let train = m["train"] {
            if case .sequence = train.node {
                for item in try train.list() {
                    let r = try role(item)
                    trained.append((r, models.first { $0.role == r }!.optimization))
                }
            } else {
                for (key, value, line) in try train.orderedMapping() {
                    let r = try role(key, line: line, path: "\(train.path).\(key)")
                    let settings = try value.mapping(allowed: ["optimizer", "schedule"])
                    trained.append((r, try parseOptimization(settings, role: r, fallback: models.first { $0.role == r }!.optimization)))
                }
            }
        } else {
            // Every model not frozen; a meta stage with fixed fusion-loss weights has no use for G.
            let weights = try parseFusionLoss(fusionLoss ?? m["fusion-loss"]).weights
            let fixedWeights = strategy == .meta && weights == .fixed
            trained = models.filter { !frozen.contains($0.role) && !(fixedWeights && $0.role == .lossGenerator) }
                .map { ($0.role, $0.optimization) }
        }
        if let both = trained.first(where: { t in frozen.contains(t.0) }) {
            throw node.error("'\(node.path)': '\(both.0)' is both trained and frozen")
        }
        let weighting = try parseWeighting(m["weighting"])
        let targets = try m["targets"]?.mapping(allowed: ["visible-gamma", "infrared-contrast"]) ?? [:]
        let stage = StageSettings(
            name: try m["name"]?.string() ?? defaultName, strategy: strategy, epochs: try m["epochs"]?.int() ?? 40,
            trained: trained, frozen: frozen, frozenLine: m["frozen"]?.line, stepsPerEpoch: try m["steps-per-epoch"]?.int(atLeast: 1),
            scheduleUnit: .init(rawValue: try m["schedule-unit"]?.choice(["epoch", "step"]) ?? "epoch")!,
            checkpointEvery: try m["checkpoint-every"]?.int() ?? 200, logEvery: try m["log-every"]?.int() ?? 10,
            previewPairs: try m["preview-pairs"]?.int(atLeast: 0) ?? 4, line: node.line,
            metaSteps: try m["meta-steps"]?.int() ?? 200,
            innerLearningRate: try m["inner-learning-rate"].map { rate in
                let value = try rate.double()
                guard value > 0 else { throw rate.error("'\(node.path).inner-learning-rate' must be positive") }
                return value
            },
            hypergradient: .init(rawValue: try m["hypergradient"]?.choice(["exact", "finite-difference"]) ?? "exact")!,
            phases: .init(rawValue: try m["phases"]?.choice(["separate", "interleaved"]) ?? "separate")!,
            fusionTaskWeight: try m["fusion-task-weight"]?.double(in: 0...(.greatestFiniteMagnitude)) ?? 0,
            fusionLoss: try parseFusionLoss(fusionLoss ?? m["fusion-loss"]),
            losses: try m["losses"]?.list().map(parseLossTerm) ?? [],
            weighting: weighting.weighting, weightingOptimization: weighting.optimization,
            visibleGamma: try targets["visible-gamma"]?.double() ?? 1, infraredContrast: try targets["infrared-contrast"]?.double() ?? 1,
            masking: MaskSettings(grid: try m["masking"]?.mapping(allowed: ["grid"])["grid"]?.int() ?? 8))
        for (key, value) in [("epochs", stage.epochs), ("checkpoint-every", stage.checkpointEvery), ("log-every", stage.logEvery)] where value < 1 {
            throw (m[key] ?? node).error("'\(node.path).\(key)' must be at least 1")
        }
        if stage.metaSteps < 0 { throw m["meta-steps"]!.error("'\(node.path).meta-steps' must not be negative") }
        if let steps = stage.stepsPerEpoch, steps < 1 { throw m["steps-per-epoch"]!.error("'\(node.path).steps-per-epoch' must be at least 1") }
        if stage.masking.grid < 1 { throw node.error("'\(node.path).masking.grid' must be at least 1") }
        try validate(stage, m, node)
        return stage
    }

    /// What each strategy needs of its stage.
    static func validate(_ stage: StageSettings, _ m: [String: RecipeNode], _ node: RecipeNode) throws {
        let roles = stage.trained.map(\.role)
        switch stage.strategy {
        case .meta:
            var needed: [ModelRole] = [.fusion, .task]
            if stage.fusionLoss.weights == .learned { needed.append(.lossGenerator) }
            for role in needed where !roles.contains(role) {
                let hint = role == .lossGenerator
                    ? "; learned fusion-loss weights need a 'loss-generator' model (or set 'fusion-loss.weights: fixed')" : ""
                throw node.error("the meta stage '\(stage.name)' trains no '\(role)' model\(hint)")
            }
            if let losses = m["losses"] { throw losses.error("the meta strategy's losses are TDFusion's; 'losses' belongs to joint and masked-pretraining stages") }
        case .joint, .maskedPretraining:
            guard !roles.isEmpty else { throw node.error("the stage '\(stage.name)' trains no model") }
            guard !stage.losses.isEmpty else {
                throw node.error("the \(stage.strategy.rawValue) stage '\(stage.name)' lists no 'losses' (see 'fusekit losses' for the terms)")
            }
        }
    }

    static func parseLossTerm(_ node: RecipeNode) throws -> LossTermSettings {
        let m = try node.mapping(allowed: ["term", "weight", "group", "parameters"])
        guard let term = try m["term"]?.string() else { throw node.error("'\(node.path)' needs a 'term'") }
        var parameters = try m["parameters"]?.pluginParameters() ?? PluginParameters()
        parameters.plugin = "loss term '\(term)'"
        let weight = try m["weight"]?.double() ?? 1
        guard weight >= 0 && weight.isFinite else { throw m["weight"]!.error("'\(node.path).weight' must be a non-negative number") }
        return LossTermSettings(term: term, weight: weight, group: try m["group"]?.string(), parameters: parameters, line: m["term"]?.line)
    }

    static func parseWeighting(_ node: RecipeNode?) throws -> (weighting: TaskWeighting, optimization: Optimization) {
        let defaultOptimization = Optimization(optimizer: OptimizerSettings(kind: .adam, learningRate: 1e-3), schedule: LearningRateSchedule(.constant))
        guard let node else { return (TaskWeighting(), defaultOptimization) }
        let m = try node.mapping(allowed: ["method", "temperature", "alpha-fair", "optimizer", "schedule"])
        let method: TaskWeighting.Method
        switch try m["method"]?.choice(["fixed", "dwa", "uncertainty"]) ?? "fixed" {
        case "dwa":
            let t = try m["temperature"]?.double() ?? 2
            guard t > 0 else { throw m["temperature"]!.error("'\(node.path).temperature' must be positive") }
            method = .dynamicWeightAverage(temperature: t)
        case "uncertainty": method = .uncertainty
        default: method = .fixed
        }
        if m["temperature"] != nil, case .dynamicWeightAverage = method {} else if let t = m["temperature"] {
            throw t.error("'\(node.path).temperature' applies to method: dwa")
        }
        let alpha = try m["alpha-fair"]?.double()
        if let alpha, !(alpha >= 0 && alpha < 1) { throw m["alpha-fair"]!.error("'\(node.path).alpha-fair' must be in [0, 1)") }
        return (TaskWeighting(method: method, alphaFair: alpha),
                try parseOptimization(m, role: ModelRole("task-weighting"), fallback: defaultOptimization))
    }

    // MARK: Data, fusion loss, evaluation

    static func parseData(_ node: RecipeNode) throws -> DataSettings {
        let m = try node.mapping(allowed: ["root", "layout", "train-split", "test-split", "synthetic", "batch-size", "crop",
                                           "modality-swap", "flips", "rotations", "scales", "visible"])
        let source: DataSettings.Source
        if let synthetic = m["synthetic"] {
            if m["root"] != nil { throw node.error("'data' has both 'root' and 'synthetic'; choose one") }
            let s = try synthetic.mapping(allowed: ["train-count", "test-count", "width", "height", "night-fraction", "seed"])
            source = .synthetic(SyntheticSettings(
                trainCount: try s["train-count"]?.int(atLeast: 1) ?? 64, testCount: try s["test-count"]?.int(atLeast: 1) ?? 16,
                width: try s["width"]?.int(atLeast: 1) ?? 128, height: try s["height"]?.int(atLeast: 1) ?? 128,
                nightFraction: try s["night-fraction"]?.double(in: 0...1) ?? 0.5, seed: try s["seed"]?.seed() ?? 0))
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
        let scales = try m["scales"]?.list().map { try $0.double() } ?? []
        if scales.contains(where: { !($0 > 0) }) { throw m["scales"]!.error("'data.scales' must be positive numbers") }
        if !scales.isEmpty && crop == nil { throw m["scales"]!.error("'data.scales' needs a 'crop' size") }
        return DataSettings(source: source, batchSize: batch, crop: crop.map { ($0.0, $0.1) },
                            modalitySwap: try m["modality-swap"]?.bool() ?? true, flips: try m["flips"]?.bool() ?? true,
                            rotations: try m["rotations"]?.bool() ?? false, scales: scales,
                            visible: DataSettings.Visible(rawValue: try m["visible"]?.choice(["gray", "rgb"]) ?? "gray")!)
    }

    static func parseFusionLoss(_ node: RecipeNode?) throws -> FusionLossSettings {
        guard let node else { return FusionLossSettings(alpha: 1, form: .paper, weights: .learned) }
        let m = try node.mapping(allowed: ["alpha", "form", "weights"])
        return FusionLossSettings(alpha: try m["alpha"]?.double(in: 0...(.greatestFiniteMagnitude)) ?? 1,
                                  form: FusionLoss.IntensityForm(rawValue: try m["form"]?.choice(["paper", "squared-weights"]) ?? "paper")!,
                                  weights: FusionLossSettings.Weights(rawValue: try m["weights"]?.choice(["learned", "fixed"]) ?? "learned")!)
    }

    static func parseDistributed(_ node: RecipeNode?) throws -> DistributedSettings {
        var settings = DistributedSettings()
        guard let node else { return settings }
        let m = try node.mapping(allowed: ["batch-norm", "bucket-mib"])
        if let choice = m["batch-norm"] {
            settings.batchNorm = DataParallelism.BatchNormStatistics(rawValue: try choice.choice(DataParallelism.BatchNormStatistics.allCases.map(\.rawValue)))!
        }
        if let mib = m["bucket-mib"] { settings.bucketBytes = Int(try mib.double(in: 0.001...(.greatestFiniteMagnitude)) * 1_048_576) }
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
        return EvaluationSettings(metrics: metrics, perPair: try m["per-pair"]?.bool() ?? false, maxPairs: try m["max-pairs"]?.int(atLeast: 1))
    }
}
