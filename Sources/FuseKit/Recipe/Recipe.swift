import Foundation
import FuseKitData
import FuseKitMetrics
import FuseKitNN
import FuseKitTensor

/// A training recipe, decoded from YAML: the data, the models by role (each a plugin with its
/// parameters), and one or more stages, each training some models with a strategy (TDFusion's
/// `meta`, `joint` multi-task training, `masked-pretraining`), its losses and optimisers.
/// See `recipes/` for examples.
///
/// A TDFusion recipe may name its models at the top level (`fusion:`, `loss-generator:`, `task:`)
/// and give one stage as `training:` and `fusion-loss:`; recipes of several stages list `models:`
/// and `stages:`.
public struct Recipe: Sendable {
    /// A short name for the run.
    public var name: String
    /// Seed of every random choice (initialisation, batches, dropout, masks).
    public var seed: UInt64
    /// The data to train and evaluate on.
    public var data: DataSettings
    /// The models, in the order the recipe lists them.
    public var models: [ModelSettings]
    /// The stages, run in order; weights pass from stage to stage by role.
    public var stages: [StageSettings]
    /// Evaluation at the end of training.
    public var evaluation: EvaluationSettings
    /// How a data-parallel run (`mpirun -np N fusekit train`) shares the work.
    public var distributed = DistributedSettings()
    /// The file it was read from (for messages).
    public var file: String

    /// The model of `role`, if the recipe has one.
    public func model(_ role: ModelRole) -> ModelSettings? { models.first { $0.role == role } }

    /// Total epochs over all stages.
    public var totalEpochs: Int { stages.reduce(0) { $0 + $1.epochs } }
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

/// How a model is optimised: the optimiser and the learning-rate schedule (stepped per epoch or
/// per step, see ``StageSettings/scheduleUnit``).
public struct Optimization: Sendable, Equatable {
    public var optimizer: OptimizerSettings
    public var schedule: LearningRateSchedule

    public init(optimizer: OptimizerSettings = OptimizerSettings(), schedule: LearningRateSchedule = Optimization.defaultSchedule) {
        self.optimizer = optimizer
        self.schedule = schedule
    }

    /// TDFusion's StepLR(10, 0.1).
    public static let defaultSchedule = LearningRateSchedule(.step(size: 10, gamma: 0.1))

    /// The default for a role: TDFusion updates G by normalised SGD (lr · g / max|g|), the rest by Adam.
    public static func defaultFor(_ role: ModelRole) -> Optimization {
        Optimization(optimizer: OptimizerSettings(kind: role == .lossGenerator ? .normalizedSGD : .adam))
    }
}

/// A model of the recipe: a plugin in a role, with its parameters and initial weights.
public struct ModelSettings: Sendable {
    /// The role (the recipe key: `fusion`, `task`, `teacher`, `joint`, ...).
    public var role: ModelRole
    /// Registered plugin name.
    public var plugin: String
    /// Plugin parameters.
    public var parameters: PluginParameters
    /// How stages train it unless a stage says otherwise.
    public var optimization: Optimization
    /// Initial weights, if any: any file ``WeightsFile`` reads (a PyTorch `.pth`, safetensors, a
    /// FuseKit checkpoint), as `PATH` or `PATH#PREFIX`, with the plugin's parameter names.
    public var weights: String?
    /// For a task net fed fused images: the size (height, width) they are resized to (bilinear);
    /// nil keeps the crop size. TDFusion: MSRS 240x320, FMB 300x400, M3FD 192x256, LLVIP 256x320.
    public var inputSize: (height: Int, width: Int)?
    /// Recipe line of the model's section.
    public var line: Int?
}

/// One stage of a recipe: a strategy training some models for some epochs.
public struct StageSettings: Sendable {
    public enum Strategy: String, Sendable, CaseIterable {
        /// TDFusion's Algorithm 1: meta steps of G, then fusion steps of F and T.
        case meta
        /// All listed losses, one optimiser step per batch over the trained models.
        case joint
        /// Masked reconstruction of both sources (a masked-autoencoder pretraining).
        case maskedPretraining = "masked-pretraining"
    }
    public enum Hypergradient: String, Sendable { case exact, finiteDifference = "finite-difference" }
    public enum Phases: String, Sendable { case separate, interleaved }
    public enum ScheduleUnit: String, Sendable { case epoch, step }

    /// The stage's name (in logs, checkpoints and preview folders).
    public var name: String
    public var strategy: Strategy
    public var epochs: Int
    /// The models trained here, with their optimisation, in recipe order.
    public var trained: [(role: ModelRole, optimization: Optimization)]
    /// Models used but not trained (a teacher, a frozen loss generator).
    public var frozen: [ModelRole]
    /// Recipe line of the `frozen` list.
    public var frozenLine: Int?
    /// Steps per epoch at most (nil: one pass over the training set).
    public var stepsPerEpoch: Int?
    /// Whether schedules step per epoch (official StepLR) or per optimisation step, counted from
    /// the stage's own start.
    public var scheduleUnit: ScheduleUnit
    /// Write the last checkpoint every this many steps (and at every epoch end).
    public var checkpointEvery: Int
    /// Log a line every this many steps.
    public var logEvery: Int
    /// Test pairs shown in the per-epoch previews.
    public var previewPairs: Int
    /// Recipe line of the stage.
    public var line: Int?

    // MARK: meta

    /// Meta steps (updates of G) per epoch.
    public var metaSteps: Int
    /// The inner (virtual) step size η of F; nil uses F's current learning rate (official).
    public var innerLearningRate: Double?
    /// Exact second-order hypergradient, or the DARTS-style finite-difference approximation.
    public var hypergradient: Hypergradient
    /// `separate`: per epoch, the meta steps then a fusion phase over the whole set (official);
    /// `interleaved`: ablation without a separate fusion phase (a meta step before every fusion step).
    public var phases: Phases
    /// Weight of the task loss in F's own objective (0 = F never sees task gradients, official;
    /// > 0 is the ablation "F also trained by the task loss").
    public var fusionTaskWeight: Double
    /// The learnable fusion loss.
    public var fusionLoss: FusionLossSettings

    // MARK: joint and masked pretraining

    /// The loss terms.
    public var losses: [LossTermSettings]
    /// How the loss groups are weighted.
    public var weighting: TaskWeighting
    /// Optimisation of the learned log-variances (uncertainty weighting).
    public var weightingOptimization: Optimization
    /// Enhanced fusion targets: R_v = V^gamma, R_i = c I + (1 - c) mean(I).
    public var visibleGamma: Double
    public var infraredContrast: Double
    /// The masks of masked pretraining.
    public var masking: MaskSettings

    /// The roles the stage uses.
    public var roles: [ModelRole] { trained.map(\.role) + frozen }

    /// Whether `role` is trained here.
    public func trains(_ role: ModelRole) -> Bool { trained.contains { $0.role == role } }
}

/// A loss term of a stage: a registered term, its weight, group and parameters.
public struct LossTermSettings: Sendable {
    /// The registered term (`intensity-max`, `cross-entropy`, ...).
    public var term: String
    public var weight: Double
    /// Its group for task weighting (default: the term's kind, `fusion`, `task` or `reconstruction`).
    public var group: String?
    public var parameters: PluginParameters
    public var line: Int?
}

/// The masks of masked pretraining (MAFS): a grid of cells, each kept in each modality with a
/// random probability, every cell kept in at least one modality; masked cells get noise.
public struct MaskSettings: Sendable, Equatable {
    /// Cells per side.
    public var grid: Int
    public init(grid: Int = 8) { self.grid = grid }
}

/// Where training and test pairs come from and how batches are drawn.
public struct DataSettings: Sendable {
    public enum Source: Sendable {
        /// A dataset folder (layouts as `PairedDataset` detects them) with train and test splits.
        case folder(root: String, layout: String?, trainSplit: String?, testSplit: String?)
        /// Scenes from the synthetic scene generator.
        case synthetic(SyntheticSettings)
    }
    /// How the visible image reaches the models.
    public enum Visible: String, Sendable { case gray, rgb }

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
    /// Random scales applied before cropping (images bilinear, labels nearest; crops larger than
    /// the scaled image are zero-padded, and the padding is marked invalid); empty for none.
    public var scales: [Double]
    /// The visible image in gray (TDFusion) or RGB (MRFS, MAFS).
    public var visible: Visible
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

/// The learnable fusion loss: paper Eq. 1-3, or the ablations.
public struct FusionLossSettings: Sendable {
    public enum Weights: String, Sendable { case learned, fixed }
    /// Weight of the gradient term (0 removes it: ablation "no gradient term").
    public var alpha: Double
    /// Intensity-term form.
    public var form: FusionLoss.IntensityForm
    /// Learned weights w = G(x), or fixed w = 1/2 (ablation I: no loss generator, no meta steps).
    public var weights: Weights
}

/// How the ranks of a data-parallel run share the work (ignored by a single process). The data's
/// `batch-size` is the global batch, split evenly over the ranks.
public struct DistributedSettings: Sendable, Equatable {
    /// BatchNorm statistics per rank (PyTorch DDP's default) or over the global batch (SyncBN).
    public var batchNorm: DataParallelism.BatchNormStatistics = .perRank
    /// Gradients are averaged in buckets of about this many bytes, one allreduce each.
    public var bucketBytes = GradientAverager.defaultBucketBytes
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
