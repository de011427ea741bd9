/// A value of the object graph that a PyTorch checkpoint's pickle describes, as
/// ``RestrictedUnpickler`` reads it: plain Python data and tensors, nothing else.
///
/// Dictionaries keep their insertion order (Python's `dict` and `OrderedDict` both do).
/// Tensors are references into the checkpoint's storages; ``TorchCheckpoint`` reads them.
public indirect enum PickleValue: Sendable, Equatable {
    /// `None`.
    case none
    /// `True` or `False`.
    case bool(Bool)
    /// An integer that fits 64 bits.
    case int(Int)
    /// A larger integer, as its little-endian two's-complement bytes (e.g. the legacy format's
    /// magic number).
    case largeInt(littleEndianBytes: [UInt8])
    /// A float (Python's are doubles).
    case float(Double)
    /// A string.
    case string(String)
    /// A `bytes` or `bytearray` object.
    case bytes([UInt8])
    /// A list.
    case list([PickleValue])
    /// A tuple.
    case tuple([PickleValue])
    /// A `dict` or `OrderedDict`, in insertion order.
    case dict([PickleDictEntry])
    /// A tensor (or `nn.Parameter`) stored in the checkpoint.
    case tensor(TorchTensorReference)

    /// The value of a string key of a dictionary, if this is a dictionary that has it.
    public subscript(key: String) -> PickleValue? {
        guard case .dict(let entries) = self else { return nil }
        return entries.last { $0.key == .string(key) }?.value
    }

    /// A short Python-like rendering (for names built from dictionary keys and for messages).
    public var pythonDescription: String {
        switch self {
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .largeInt(let bytes): return "<\(bytes.count * 8)-bit integer>"
        case .float(let d): return String(d)
        case .string(let s): return s
        case .bytes(let b): return "b<\(b.count) bytes>"
        case .list(let items): return "[" + items.map(\.pythonDescription).joined(separator: ", ") + "]"
        case .tuple(let items): return "(" + items.map(\.pythonDescription).joined(separator: ", ") + (items.count == 1 ? ",)" : ")")
        case .dict(let entries): return "{" + entries.map { "\($0.key.pythonDescription): \($0.value.pythonDescription)" }.joined(separator: ", ") + "}"
        case .tensor(let t): return "tensor\(t.shape)"
        }
    }
}

/// One key-value pair of a pickled dictionary.
public struct PickleDictEntry: Sendable, Equatable {
    /// The key (a string in state dicts; an integer in optimizer states).
    public var key: PickleValue
    /// The value.
    public var value: PickleValue

    public init(key: PickleValue, value: PickleValue) {
        self.key = key
        self.value = value
    }
}

/// A storage of a PyTorch checkpoint: a flat array of one element type, shared by the tensors
/// that view it. In the zip format it is the record `data/<key>`; in the legacy format it
/// follows the pickles, in the order the file lists the keys.
public struct TorchStorageReference: Sendable, Hashable {
    /// The storage's key in the file.
    public let key: String
    /// The element type (`torch.FloatStorage` is F32, `torch.HalfStorage` F16, ...).
    public let dtype: SafeTensorsDType
    /// The number of elements.
    public let count: Int

    public init(key: String, dtype: SafeTensorsDType, count: Int) {
        self.key = key
        self.dtype = dtype
        self.count = count
    }

    /// The size of the storage in bytes.
    public var byteCount: Int { count * dtype.byteSize }
}

/// A tensor as `torch._utils._rebuild_tensor_v2` describes it: a strided view of a storage.
public struct TorchTensorReference: Sendable, Hashable {
    /// The storage it views.
    public let storage: TorchStorageReference
    /// The index of its first element in the storage (in elements).
    public let offset: Int
    /// The shape.
    public let shape: [Int]
    /// The stride of each dimension, in elements.
    public let strides: [Int]

    public init(storage: TorchStorageReference, offset: Int, shape: [Int], strides: [Int]) {
        self.storage = storage
        self.offset = offset
        self.shape = shape
        self.strides = strides
    }

    /// The number of elements.
    public var count: Int { shape.reduce(1, *) }

    /// Whether the elements lie in row-major order without gaps (size-1 dimensions may have any
    /// stride, as in PyTorch).
    public var isContiguous: Bool {
        var expected = 1
        for (size, stride) in zip(shape, strides).reversed() where size != 1 {
            if stride != expected { return false }
            expected *= size
        }
        return true
    }
}
