import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A cache of large freed buffers, reused by later allocations of the same size class.
///
/// Fresh multi-megabyte allocations are served by the OS page by page (a page fault and a page
/// clear per 4 KiB), which costs as much as the kernels that fill them. Keeping freed buffers for
/// reuse avoids that. Small buffers go straight to malloc, which reuses them well by itself.
public enum BufferPool {
    /// Buffers smaller than this many bytes are not cached.
    static let minimumCachedBytes = 1 << 16
    /// Cached bytes kept at most: a quarter of the physical memory, at most 8 GiB
    /// (`FUSEKIT_POOL_MIB` overrides; 0 disables caching). A training step reuses the same
    /// buffers every iteration, so a cache that holds its whole working set avoids re-faulting
    /// memory without raising the peak footprint.
    static let capacityBytes: Int = {
        if let value = getenv("FUSEKIT_POOL_MIB").flatMap({ Int(String(cString: $0)) }), value >= 0 {
            return value << 20
        }
        let physical = Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE)))
        return Swift.min(Swift.max(physical / 4, 512 << 20), 8 << 30)
    }()

    /// A cached block; only the pool touches it while cached.
    private struct Block: @unchecked Sendable, Equatable {
        let pointer: UnsafeMutableRawPointer
        let size: Int
    }

    private struct State: ~Copyable {
        var free: [Int: [Block]] = [:]
        var order: [Block] = []  // oldest first, for eviction
        var cachedBytes = 0
    }

    private static let state = Mutex(State())

    /// Size class of a request: exact below 1 MiB, otherwise rounded up to an eighth of a power
    /// of two (at most 12.5% slack).
    static func sizeClass(_ bytes: Int) -> Int {
        let b = Swift.max(bytes, 64)
        if b < 1 << 20 { return (b + 4095) & ~4095 }
        let top = Int.bitWidth - b.leadingZeroBitCount - 1
        let step = 1 << (top - 3)
        return (b + step - 1) / step * step
    }

    /// A 64-byte aligned buffer of at least `bytes` bytes; its capacity is `sizeClass(bytes)`.
    static func allocate(bytes: Int) -> UnsafeMutableRawPointer {
        let size = sizeClass(bytes)
        if size >= minimumCachedBytes && capacityBytes > 0 {
            let reused: Block? = state.withLock { s in
                guard var list = s.free[size], let block = list.popLast() else { return nil }
                s.free[size] = list
                s.cachedBytes -= size
                if let i = s.order.lastIndex(of: block) { s.order.remove(at: i) }
                return block
            }
            if let reused { return reused.pointer }
        }
        var raw: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&raw, 64, size) == 0, let raw else {
            fatalError("BufferPool: cannot allocate \(size) bytes")
        }
        return raw
    }

    /// Returns a buffer obtained from `allocate(bytes:)` with the same `bytes`.
    static func release(_ pointer: UnsafeMutableRawPointer, bytes: Int) {
        let size = sizeClass(bytes)
        guard size >= minimumCachedBytes && size <= capacityBytes else {
            free(pointer)
            return
        }
        let block = Block(pointer: pointer, size: size)
        let evicted: [Block] = state.withLock { s in
            var out: [Block] = []
            while s.cachedBytes + size > capacityBytes, !s.order.isEmpty {
                let old = s.order.removeFirst()
                if var list = s.free[old.size], let i = list.firstIndex(of: old) {
                    list.remove(at: i)
                    s.free[old.size] = list
                }
                s.cachedBytes -= old.size
                out.append(old)
            }
            s.free[size, default: []].append(block)
            s.order.append(block)
            s.cachedBytes += size
            return out
        }
        for b in evicted { free(b.pointer) }
    }

    /// Frees every cached buffer (e.g. before measuring memory, or after a large job).
    public static func drain() {
        let all: [Block] = state.withLock { s in
            let blocks = s.order
            s = State()
            return blocks
        }
        for b in all { free(b.pointer) }
    }

    /// The most bytes the cache keeps.
    public static var capacity: Int { capacityBytes }

    /// Bytes currently held in the cache.
    public static var cachedBytes: Int { state.withLock { $0.cachedBytes } }
}

extension BufferPool {
    /// Temporary Float storage for kernels; pair with `releaseFloats`.
    static func allocateFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
        allocate(bytes: Swift.max(count, 1) * MemoryLayout<Float>.stride).bindMemory(to: Float.self, capacity: Swift.max(count, 1))
    }

    /// Returns storage from `allocateFloats` with the same count.
    static func releaseFloats(_ pointer: UnsafeMutablePointer<Float>, _ count: Int) {
        release(UnsafeMutableRawPointer(pointer), bytes: Swift.max(count, 1) * MemoryLayout<Float>.stride)
    }
}
