#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The reference-counted, 64-byte aligned Float32 buffer behind a ``Tensor``.
///
/// A storage is written only while it is uniquely referenced (copy-on-write), or by the
/// kernel that created it before the tensor is handed out, which is why it can be `Sendable`.
public final class TensorStorage: @unchecked Sendable {
    /// Start of the buffer.
    public let pointer: UnsafeMutablePointer<Float>
    /// Number of elements.
    public let count: Int

    /// Allocates `count` uninitialised elements.
    public init(uninitializedCount count: Int) {
        precondition(count >= 0, "TensorStorage: negative element count \(count)")
        self.count = count
        let raw = BufferPool.allocate(bytes: max(count, 1) * MemoryLayout<Float>.stride)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// Allocates `count` elements set to `value`.
    public convenience init(count: Int, repeating value: Float) {
        self.init(uninitializedCount: count)
        Kernels.fill(pointer, count: count, value: value)
    }

    deinit { BufferPool.release(UnsafeMutableRawPointer(pointer), bytes: max(count, 1) * MemoryLayout<Float>.stride) }

    /// A new storage with the same contents.
    public func copy() -> TensorStorage {
        let result = TensorStorage(uninitializedCount: count)
        Kernels.copy(from: pointer, to: result.pointer, count: count)
        return result
    }
}
