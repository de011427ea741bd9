/// An n-dimensional array of Float32 values, contiguous in row-major order (NCHW for images),
/// with value semantics over copy-on-write storage.
///
/// A tensor may carry a reverse-mode graph node (when it was computed from tensors that require
/// a gradient) and a forward-mode tangent (inside ``jvp(at:tangents:_:)``). Every operation
/// records what its gradient rules need, and those rules are themselves written with tensor
/// operations, so gradients can be differentiated again.
public struct Tensor: Sendable {
    /// The extent of each dimension.
    public let shape: [Int]
    @usableFromInline var storage: TensorStorage
    @usableFromInline var node: GradNode?
    @usableFromInline var tangentBox: TangentBox?

    /// Wraps existing storage. `storage.count` must equal the element count of `shape`.
    public init(shape: [Int], storage: TensorStorage) {
        require(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in shape \(Shape.describe(shape))")
        require(Shape.count(shape) == storage.count,
                "Tensor: shape \(Shape.describe(shape)) has \(Shape.count(shape)) elements but the storage holds \(storage.count)")
        self.shape = shape
        self.storage = storage
        self.node = nil
        self.tangentBox = nil
    }

    @usableFromInline
    init(shape: [Int], storage: TensorStorage, node: GradNode?) {
        self.shape = shape
        self.storage = storage
        self.node = node
        self.tangentBox = nil
    }

    /// A tensor of the given shape whose elements are not yet set; fill it through `mutablePointer`.
    public init(uninitializedShape shape: [Int]) {
        self.init(shape: shape, storage: TensorStorage(uninitializedCount: Shape.count(shape)))
    }

    /// A tensor from row-major values.
    public init(shape: [Int], scalars: [Float]) {
        require(Shape.count(shape) == scalars.count,
                "Tensor(shape:scalars:): shape \(Shape.describe(shape)) needs \(Shape.count(shape)) values, got \(scalars.count)")
        let storage = TensorStorage(uninitializedCount: scalars.count)
        scalars.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { Kernels.copy(from: base, to: storage.pointer, count: scalars.count) }
        }
        self.init(shape: shape, storage: storage)
    }

    /// A rank-0 tensor holding one value.
    public init(_ scalar: Float) {
        self.init(shape: [], scalars: [scalar])
    }

    /// A rank-1 tensor of the given values.
    public init(_ scalars: [Float]) {
        self.init(shape: [scalars.count], scalars: scalars)
    }

    /// Number of dimensions.
    @inlinable public var rank: Int { shape.count }
    /// Number of elements.
    @inlinable public var count: Int { storage.count }

    /// The elements in row-major order.
    public var scalars: [Float] {
        Array(UnsafeBufferPointer(start: storage.pointer, count: storage.count))
    }

    /// The single value of a one-element tensor.
    public var item: Float {
        require(count == 1, "Tensor.item: tensor of shape \(Shape.describe(shape)) has \(count) elements, not 1")
        return storage.pointer[0]
    }

    /// The element at a multi-index (for tests and small inspections, not hot loops).
    public subscript(indices: Int...) -> Float {
        get { storage.pointer[flatIndex(indices)] }
        set {
            let i = flatIndex(indices)
            makeUnique()
            node = nil
            tangentBox = nil
            storage.pointer[i] = newValue
        }
    }

    private func flatIndex(_ indices: [Int]) -> Int {
        require(indices.count == rank, "Tensor subscript: \(indices.count) indices for shape \(Shape.describe(shape))")
        var flat = 0
        for (axis, i) in indices.enumerated() {
            require(i >= 0 && i < shape[axis], "Tensor subscript: index \(i) out of range for axis \(axis) of shape \(Shape.describe(shape))")
            flat = flat * shape[axis] + i
        }
        return flat
    }

    /// Read-only access to the contiguous elements.
    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer, count: storage.count))
    }

    /// Mutable access to the elements; copies the storage first when it is shared (copy-on-write).
    /// Mutating a tensor detaches it from any gradient graph.
    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        makeUnique()
        node = nil
        tangentBox = nil
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: storage.count))
    }

    /// Pointer to the elements for kernels that read them.
    @inlinable public var pointer: UnsafePointer<Float> { UnsafePointer(storage.pointer) }

    /// Pointer for filling a freshly made tensor (one that no other value shares yet).
    @inlinable public var mutablePointer: UnsafeMutablePointer<Float> { storage.pointer }

    @usableFromInline
    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) {
            storage = storage.copy()
        }
    }

    /// Whether two tensors share the same storage (for copy-on-write tests).
    public func sharesStorage(with other: Tensor) -> Bool { storage === other.storage }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let limit = 16
        let values = withUnsafeBufferPointer { buf in
            buf.prefix(limit).map { String($0) }.joined(separator: ", ")
        }
        let more = count > limit ? ", ..." : ""
        var tags = ""
        if node != nil { tags += ", tracked" }
        if tangentBox != nil { tags += ", with tangent" }
        return "Tensor(shape: \(Shape.describe(shape)), [\(values)\(more)]\(tags))"
    }
}
