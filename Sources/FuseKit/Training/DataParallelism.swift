import FuseKitNN
import FuseKitTensor

/// How a training step shares its work with the other ranks of a data-parallel run (MPI): each
/// rank runs the step on its shard of the global batch; gradients are averaged over the ranks
/// before every update (and inside the meta step, where the exact hypergradient needs the global
/// inner gradient and the global ∇_θF' L_t); logged losses are the means over the ranks, so that
/// a NaN on any rank stops every rank at the same step. A single process is the identity.
///
/// With losses that are means over equally many pixels per rank and synchronised BatchNorm, N
/// ranks compute what one process computes on the whole batch, up to the order of float sums.
/// Per-rank BatchNorm (PyTorch DDP's default), cross-entropy with ignored pixels, and non-linear
/// task weightings of the current loss (α-fair, uncertainty) apply to each rank's shard, as DDP
/// applies them.
public struct DataParallelism: Sendable {
    /// Whether BatchNorm's batch statistics are this rank's or the global batch's (SyncBN).
    public enum BatchNormStatistics: String, Sendable, CaseIterable {
        case perRank = "per-rank"
        case synchronized
    }

    public let collective: any Collective
    public let batchNorm: BatchNormStatistics
    let averager: GradientAverager

    public init(collective: any Collective, batchNorm: BatchNormStatistics = .perRank,
                bucketBytes: Int = GradientAverager.defaultBucketBytes) {
        self.collective = collective
        self.batchNorm = batchNorm
        averager = GradientAverager(collective: collective, bucketBytes: bucketBytes)
    }

    /// One process, nothing shared.
    public static let singleProcess = DataParallelism(collective: SingleProcess())

    /// The number of ranks, and whether this one writes the run's files.
    public var ranks: Int { collective.size }
    public var isRoot: Bool { collective.isRoot }

    /// A forward context that synchronises BatchNorm statistics when the run says so.
    func context(training: Bool, rng: RandomGenerator) -> ForwardContext {
        let context = ForwardContext(training: training, rng: rng)
        if batchNorm == .synchronized && ranks > 1 { context.synchronizedBatchNorm = collective }
        return context
    }

    /// `gradient` averaged over the ranks, packed in buckets in the order backpropagation
    /// produces it (the reverse of `module`'s declaration order).
    func averaged(_ gradient: [String: Tensor], of module: any Module) -> [String: Tensor] {
        guard ranks > 1 else { return gradient }
        return averager.average(gradient, order: module.namedSpecs().filter { !$0.spec.isBuffer }.map(\.name).reversed())
    }

    /// The means over the ranks of named scalars (one collective call for all of them).
    func means(_ values: [String: Double]) -> [String: Double] {
        guard ranks > 1 else { return values }
        let names = values.keys.sorted()
        var sums = names.map { values[$0]! }
        collective.sum(&sums)
        return Dictionary(uniqueKeysWithValues: zip(names, sums.map { $0 / Double(ranks) }))
    }

    /// This rank's items of a tensor drawn for the whole batch the ranks share (axis 0), at the
    /// batch's ``TrainingBatch/positions``.
    func items(of whole: Tensor, at positions: [Int]) -> Tensor {
        guard positions != Array(0..<whole.shape[0]) else { return whole }
        return Tensor.concat(positions.map { whole.sliced(axis: 0, $0..<($0 + 1)) }, axis: 0)
    }
}
