import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Work splitting over the machine's cores for the kernels.
public enum Parallel {
    /// Threads the kernels split work over: the online cores, or `FUSEKIT_THREADS` when set.
    public static let threadCount: Int = {
        if let value = getenv("FUSEKIT_THREADS").flatMap({ Int(String(cString: $0)) }), value > 0 {
            return value
        }
        return max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }()

    /// Runs `body` over consecutive sub-ranges of `0..<count`, on all cores when there are at
    /// least `2 * grain` items, otherwise on the calling thread in one piece.
    @inlinable
    public static func forRanges(_ count: Int, grain: Int = 32_768, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let threads = threadCount
        if threads <= 1 || count < 2 * grain {
            body(0..<count)
            return
        }
        let chunks = min(threads, (count + grain - 1) / grain)
        withoutActuallyEscaping(body) { body in
            // Each chunk touches a disjoint range; the closure does not outlive this call.
            let work = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let start = count * c / chunks
                let end = count * (c + 1) / chunks
                if start < end { work.value(start..<end) }
            }
        }
    }

    /// Runs `body(i)` for every `i` in `0..<count`, spread over the cores when `count > 1` and
    /// each item is substantial (`itemCost` elements of work, compared with `grain`).
    @inlinable
    public static func forEach(_ count: Int, itemCost: Int, grain: Int = 32_768, _ body: (Int) -> Void) {
        let itemsPerChunk = max(1, grain / max(itemCost, 1))
        forRanges(count, grain: itemsPerChunk) { range in
            for i in range { body(i) }
        }
    }
}

/// Hands a value to parallel workers that use it without data races by construction.
@usableFromInline
struct UncheckedSendable<T>: @unchecked Sendable {
    @usableFromInline let value: T
    @inlinable init(_ value: T) { self.value = value }
}

/// An unchecked Sendable wrapper that lets kernels hand raw pointers to parallel workers, each
/// of which writes a disjoint part.
@usableFromInline
struct SendablePointer<T>: @unchecked Sendable {
    @usableFromInline let base: UnsafeMutablePointer<T>
    @inlinable init(_ base: UnsafeMutablePointer<T>) { self.base = base }
}
