import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An opt-in per-operation time profile: when enabled, kernels report their wall time by
/// operation kind, so `fusekit bench --profile` can show where the time goes.
public final class Profiler: Sendable {
    /// Time and count per operation kind.
    public struct Entry: Sendable {
        public var seconds: Double = 0
        public var calls: Int = 0
        public var flops: Double = 0
    }

    private let entries = Mutex<[String: Entry]>([:])
    private static let active = Atomic<Bool>(false)
    /// The process-wide profile.
    public static let shared = Profiler()

    /// Starts collecting (and clears earlier entries).
    public static func start() {
        shared.entries.withLock { $0 = [:] }
        active.store(true, ordering: .relaxed)
    }

    /// Stops collecting and returns the profile.
    public static func stop() -> [String: Entry] {
        active.store(false, ordering: .relaxed)
        return shared.entries.withLock { $0 }
    }

    /// Monotonic seconds.
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Runs `body`, charging its time to `op` when profiling is on.
    @inlinable
    public static func measure<R>(_ op: String, flops: Double = 0, _ body: () throws -> R) rethrows -> R {
        guard isActive else { return try body() }
        let t0 = now()
        let result = try body()
        record(op, seconds: now() - t0, flops: flops)
        return result
    }

    /// Whether profiling is on.
    public static var isActive: Bool { active.load(ordering: .relaxed) }

    /// Adds a measurement.
    public static func record(_ op: String, seconds: Double, flops: Double = 0) {
        shared.entries.withLock { table in
            var e = table[op, default: Entry()]
            e.seconds += seconds
            e.calls += 1
            e.flops += flops
            table[op] = e
        }
    }
}
