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
    static var capacityBytes: Int { limit.load(ordering: .relaxed) }

    /// `FUSEKIT_POOL_MIB` in bytes, when set.
    static let configuredBytes: Int? = getenv("FUSEKIT_POOL_MIB").flatMap { Int(String(cString: $0)) }.flatMap { $0 >= 0 ? $0 << 20 : nil }

    private static let limit = Atomic<Int>(configuredBytes ?? {
        let physical = Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE)))
        return Swift.min(Swift.max(physical / 4, 512 << 20), 8 << 30)
    }())

    /// Lowers the cache's capacity to `bytes` (unless `FUSEKIT_POOL_MIB` sets it), freeing cached
    /// buffers beyond it. Inference on large images calls it: one image's working set is small
    /// (its intermediates are tiled), so a big cache would only add to the peak memory.
    public static func limitCapacity(to bytes: Int) {
        guard configuredBytes == nil else { return }
        _ = limit.min(Swift.max(bytes, 0), ordering: .relaxed)
        let evicted: [Block] = state.withLock { s in
            var out: [Block] = []
            while s.cachedBytes > capacityBytes, !s.order.isEmpty {
                let old = s.order.removeFirst()
                if var list = s.free[old.size], let i = list.firstIndex(of: old) {
                    list.remove(at: i)
                    s.free[old.size] = list
                }
                s.cachedBytes -= old.size
                out.append(old)
            }
            return out
        }
        for b in evicted { freeBlock(b.pointer, size: b.size) }
    }

    /// Blocks of at least this many bytes are mapped directly and backed by transparent huge pages
    /// where the OS allows it (a fresh 100 MB buffer then faults in 2 MB pages, not 4 KiB ones).
    static let hugePageBytes = 8 << 20
    static let hugePageAlignment = 2 << 20

    /// Fresh memory for a block of `size` bytes (a size class).
    static func freshBlock(_ size: Int) -> UnsafeMutableRawPointer {
        if size >= hugePageBytes {
            let length = (size + hugePageAlignment - 1) / hugePageAlignment * hugePageAlignment
            // Map a little more and trim, so that the block starts on a huge-page boundary.
            if let raw = mmap(nil, length + hugePageAlignment, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), raw != MAP_FAILED {
                let address = Int(bitPattern: raw), aligned = (address + hugePageAlignment - 1) / hugePageAlignment * hugePageAlignment
                if aligned > address { munmap(raw, aligned - address) }
                let tail = address + length + hugePageAlignment - (aligned + length)
                if tail > 0 { munmap(UnsafeMutableRawPointer(bitPattern: aligned + length), tail) }
                let block = UnsafeMutableRawPointer(bitPattern: aligned)!
                _ = madvise(block, length, Int32(MADV_HUGEPAGE))
                return block
            }
            fatalError("BufferPool: cannot map \(size) bytes")
        }
        var raw: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&raw, 64, size) == 0, let raw else {
            fatalError("BufferPool: cannot allocate \(size) bytes")
        }
        return raw
    }

    /// Returns a block obtained from `freshBlock(size)` to the OS.
    static func freeBlock(_ pointer: UnsafeMutableRawPointer, size: Int) {
        if size >= hugePageBytes {
            munmap(pointer, (size + hugePageAlignment - 1) / hugePageAlignment * hugePageAlignment)
        } else {
            free(pointer)
        }
    }

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
        return freshBlock(size)
    }

    /// Returns a buffer obtained from `allocate(bytes:)` with the same `bytes`.
    static func release(_ pointer: UnsafeMutableRawPointer, bytes: Int) {
        let size = sizeClass(bytes)
        guard size >= minimumCachedBytes && size <= capacityBytes else {
            freeBlock(pointer, size: size)
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
        for b in evicted { freeBlock(b.pointer, size: b.size) }
    }

    /// Frees every cached buffer (e.g. before measuring memory, or after a large job).
    public static func drain() {
        let all: [Block] = state.withLock { s in
            let blocks = s.order
            s = State()
            return blocks
        }
        for b in all { freeBlock(b.pointer, size: b.size) }
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
