import Dispatch
import Synchronization

/// Loads items 0, 1, 2, ... on a background thread, `depth` items ahead of the consumer, so
/// decoding the next input overlaps computing on the current one. Values must be taken in order.
public final class Lookahead<Value: Sendable>: Sendable {
    private let count: Int, depth: Int
    private let load: @Sendable (Int) throws -> Value
    private let queue = DispatchQueue(label: "fusekit.lookahead")
    private let slots: Mutex<[Result<Value, any Error>?]>
    private let ready: [DispatchSemaphore]
    private let scheduled = Mutex(0)

    /// - Parameters:
    ///   - count: the number of items.
    ///   - depth: how many items to load ahead of the one being taken (at least 1).
    ///   - load: loads item `i` (on the background thread).
    public init(count: Int, depth: Int = 1, load: @escaping @Sendable (Int) throws -> Value) {
        self.count = count
        self.depth = max(1, depth)
        self.load = load
        slots = Mutex(Array(repeating: nil, count: count))
        ready = (0..<count).map { _ in DispatchSemaphore(value: 0) }
    }

    /// Item `i` (waiting for it if it is still loading); schedules the items up to `i + depth`.
    public func value(at i: Int) throws -> Value {
        precondition(i >= 0 && i < count, "Lookahead: item \(i) of \(count)")
        let upTo = min(count, i + depth + 1)
        let first = scheduled.withLock { s -> Int in
            let start = s
            s = max(s, upTo)
            return start
        }
        for j in first..<max(first, upTo) {
            queue.async { [self] in
                let result = Result { try load(j) }
                slots.withLock { $0[j] = result }
                ready[j].signal()
            }
        }
        ready[i].wait()
        let result = slots.withLock { slots -> Result<Value, any Error> in
            defer { slots[i] = nil }
            return slots[i]!
        }
        return try result.get()
    }
}

/// Runs jobs (writing outputs) one at a time on a background thread, at most `limit` waiting,
/// and keeps the first error; `finish()` waits for all of them and throws it.
public final class BackgroundJobs: Sendable {
    private let queue = DispatchQueue(label: "fusekit.background-jobs")
    private let slots: DispatchSemaphore
    private let firstError = Mutex<(any Error)?>(nil)

    public init(limit: Int = 2) { slots = DispatchSemaphore(value: max(1, limit)) }

    /// Queues `job`, waiting while `limit` jobs are already queued.
    public func submit(_ job: @escaping @Sendable () throws -> Void) {
        slots.wait()
        queue.async { [self] in
            defer { slots.signal() }
            do { try job() } catch { firstError.withLock { if $0 == nil { $0 = error } } }
        }
    }

    /// Waits for every queued job; throws the first error any of them threw.
    public func finish() throws {
        queue.sync {}
        if let error = firstError.withLock({ $0 }) { throw error }
    }
}
