import FuseKitTensor

/// Every random stream of a training run, named, with the one function that derives its seed.
///
/// The derivations are those of FuseKit's first trainer, kept so that a recipe and seed give the
/// same initial weights, batches, dropout masks and so the same losses as earlier runs.
public enum RandomStream: Sendable, Hashable {
    /// Initial weights of a model that no file provides.
    case initialWeights(ModelRole)
    /// Batch order, crops and flips of the fusion (and joint) steps.
    case batches
    /// Batch order of the meta steps (meta-train and meta-test batches).
    case metaBatches
    /// Synthetic training scenes.
    case syntheticTrainingScenes
    /// Synthetic test scenes (the held-out split; the demo reads the same split).
    case syntheticTestScenes
    /// Dropout and drop-path masks of one forward pass in a step.
    case forward(ForwardPass)
    /// Dropout masks of a model's forward pass in a joint or pretraining step.
    case model(ModelRole)
    /// The masks and noise of a masked-pretraining step.
    case masks
    /// The base of the forward passes inside one meta step (``metaPass``).
    case metaProblem
    /// One forward pass inside a meta step, derived from the step's ``metaProblem`` seed (the same
    /// masks in every evaluation of the meta objective).
    case metaPass(MetaPass)

    /// The forward passes of a step that draw random masks.
    public enum ForwardPass: UInt64, Sendable {
        /// G computing the fusion-loss weights for a fusion step.
        case lossGeneratorWeights = 1
        /// F in a fusion step.
        case fusion = 2
        /// T in a fusion step.
        case task = 3
        /// T's inner step inside a meta step.
        case innerTask = 4
        /// T when F is also trained by the task loss (ablation).
        case taskForFusion = 5
    }

    /// The forward passes inside a meta step.
    public enum MetaPass: UInt64, Sendable {
        /// G computing w = G(x).
        case lossGenerator = 1
        /// F on the meta-train batch (the inner step).
        case innerFusion = 2
        /// F' on the meta-test batch.
        case outerFusion = 3
        /// T' on the meta-test batch.
        case outerTask = 4
    }

    /// The seed of this stream for a run seeded `seed` (for ``metaPass``, the meta step's
    /// ``metaProblem`` seed), at global step `step` where the stream changes every step.
    public func seed(_ seed: UInt64, step: Int = 0) -> UInt64 {
        switch self {
        case .initialWeights(let role):
            return seed &+ (Self.initialWeightOffsets[role] ?? Self.hash(role.rawValue))
        case .batches, .syntheticTrainingScenes:
            return seed
        case .metaBatches:
            return seed ^ 0x4D45_5441_5354_4550  // "METASTEP"
        case .syntheticTestScenes:
            return seed &+ 1_000_003
        case .forward(let pass):
            return Self.mix(seed, UInt64(step), pass.rawValue)
        case .metaProblem:
            return Self.mix(seed, UInt64(step), 7)
        case .model(let role):
            return Self.mix(seed, UInt64(step), Self.hash(role.rawValue))
        case .masks:
            return Self.mix(seed, UInt64(step), 0x4D41_534B)  // "MASK"
        case .metaPass(let pass):
            return seed &+ pass.rawValue &* 0x9E37_79B9_7F4A_7C15
        }
    }

    /// A generator of this stream.
    public func generator(_ seed: UInt64, step: Int = 0) -> RandomGenerator {
        RandomGenerator(seed: self.seed(seed, step: step))
    }

    static let initialWeightOffsets: [ModelRole: UInt64] = [.fusion: 1, .lossGenerator: 2, .task: 3]

    static func mix(_ a: UInt64, _ b: UInt64, _ c: UInt64) -> UInt64 {
        var r = RandomGenerator(seed: a ^ (b &* 0x9E37_79B9_7F4A_7C15) ^ (c &* 0xC2B2_AE3D_27D4_EB4F))
        return r.next()
    }

    /// FNV-1a of a role name, for roles beyond the first three.
    static func hash(_ text: String) -> UInt64 {
        text.utf8.reduce(UInt64(0xCBF2_9CE4_8422_2325)) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 }
    }
}
