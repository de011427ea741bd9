#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The ranks of a data-parallel run and the collective operations between them (MPI's, or the
/// trivial ones of a single process). Every rank calls each operation in the same order.
public protocol Collective: Sendable {
    /// This process's rank, 0 ..< size.
    var rank: Int { get }
    /// The number of ranks.
    var size: Int { get }
    /// Replaces `values` by their sum over all ranks.
    func sum(_ values: UnsafeMutableBufferPointer<Float>)
    /// Replaces `values` by their sum over all ranks.
    func sum(_ values: inout [Double])
    /// Replaces `values` by their maximum over all ranks.
    func maximum(_ values: inout [Double])
    /// Every rank waits for the others.
    func barrier()
    /// How many of the ranks run on this machine (they divide its cores).
    var ranksOnThisMachine: Int { get }
    /// Stops every rank at once with `code` (an error only this rank has met).
    func abort(exitCode: Int32) -> Never
}

extension Collective {
    /// Whether this rank writes the run's files and prints its progress.
    public var isRoot: Bool { rank == 0 }
}

/// One process: every collective is the identity.
public struct SingleProcess: Collective {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func sum(_ values: UnsafeMutableBufferPointer<Float>) {}
    public func sum(_ values: inout [Double]) {}
    public func maximum(_ values: inout [Double]) {}
    public func barrier() {}
    public var ranksOnThisMachine: Int { 1 }
    public func abort(exitCode: Int32) -> Never { exit(exitCode) }
}

extension Tensor {
    /// The sum of this tensor over all ranks, differentiable: its reverse rule sums the cotangents
    /// over the ranks (each rank's output depends on every rank's input), and so does its forward
    /// rule with the tangents. Synchronised BatchNorm builds its statistics from it.
    public func summedOverRanks(_ collective: any Collective) -> Tensor {
        guard collective.size > 1 else { return self }
        let out = Tensor(shape: shape, scalars: scalars)
        out.withUnsafeMutableBufferPointerForCollective { collective.sum($0) }
        return out.recorded(op: "summedOverRanks", inputs: [self], pullback: { g, _, _ in [g.summedOverRanks(collective)] },
                            tangent: { t, _ in t[0].map { $0.summedOverRanks(collective) } })
    }

    /// Mutable access to a freshly made tensor's storage for an in-place collective.
    func withUnsafeMutableBufferPointerForCollective(_ body: (UnsafeMutableBufferPointer<Float>) -> Void) {
        body(UnsafeMutableBufferPointer(start: mutablePointer, count: count))
    }
}

/// Averages gradients over the ranks of a data-parallel run, in buckets: tensors are packed in
/// the given order into flat buffers of at least `bucketBytes`, and each bucket is summed over
/// the ranks with one collective call (as PyTorch's DistributedDataParallel does).
public struct GradientAverager: Sendable {
    public let collective: any Collective
    public let bucketBytes: Int

    /// DistributedDataParallel's default bucket size, 25 MiB.
    public static let defaultBucketBytes = 25 << 20

    public init(collective: any Collective, bucketBytes: Int = GradientAverager.defaultBucketBytes) {
        self.collective = collective
        self.bucketBytes = bucketBytes
    }

    /// The gradients averaged over the ranks; `order` lists the names in the order they are
    /// packed (every rank must pass the same order; names missing from it go last, sorted).
    public func average(_ gradients: [String: Tensor], order: [String]) -> [String: Tensor] {
        guard collective.size > 1 else { return gradients }
        let known = Set(order)
        let names = order.filter { gradients[$0] != nil } + gradients.keys.filter { !known.contains($0) }.sorted()
        var result: [String: Tensor] = [:]
        let scale = 1 / Float(collective.size)
        var start = 0
        while start < names.count {
            var end = start, floats = 0
            while end < names.count && (floats == 0 || floats * 4 < bucketBytes) {
                floats += gradients[names[end]]!.count
                end += 1
            }
            var buffer = [Float](repeating: 0, count: floats)
            var offset = 0
            for name in names[start..<end] {
                let g = gradients[name]!.detached()
                g.withUnsafeBufferPointer { source in
                    for i in 0..<source.count { buffer[offset + i] = source[i] }
                }
                offset += g.count
            }
            buffer.withUnsafeMutableBufferPointer { collective.sum($0) }
            offset = 0
            for name in names[start..<end] {
                let shape = gradients[name]!.shape, count = gradients[name]!.count
                result[name] = Tensor(shape: shape, scalars: buffer[offset..<(offset + count)].map { $0 * scale })
                offset += count
            }
            start = end
        }
        return result
    }

    /// Bytes one call of ``average(_:order:)`` sends per rank for these gradients (4 per scalar).
    public static func bytes(of gradients: [String: Tensor]) -> Int { gradients.values.reduce(0) { $0 + 4 * $1.count } }
}
