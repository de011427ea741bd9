/// A pickle reader that understands only what PyTorch state dicts need, and never runs code.
///
/// A pickle is a program for a small stack machine; Python's unpickler imports any module and
/// calls any callable the program names, which is why loading an untrusted `.pth` file with
/// `pickle` can run arbitrary code. This reader interprets the program itself and knows a
/// fixed list of names, each as data, not as something to call:
///
/// | name | meaning here |
/// |---|---|
/// | `collections.OrderedDict` | an empty dictionary (`REDUCE` with no arguments) |
/// | `torch._utils._rebuild_tensor_v2` | a tensor: storage, offset, size, stride (views and shared storages) |
/// | `torch._utils._rebuild_parameter` | an `nn.Parameter`: the tensor it wraps |
/// | `torch.{Float,Half,BFloat16,Double,Long,Int,Short,Char,Byte,Bool}Storage` | a storage's element type, in a persistent id |
///
/// Any other `GLOBAL` or `STACK_GLOBAL` is refused with ``TorchCheckpointError/forbiddenGlobal(file:name:offset:)``
/// naming it (e.g. `os.system`, `builtins.eval`), as are `REDUCE` on anything but the callables
/// above, `BUILD` on anything but a dictionary (whose attribute state, e.g. a state dict's
/// `_metadata`, is dropped), and the opcodes that construct objects or refer outside the pickle
/// (`INST`, `OBJ`, `NEWOBJ`, `NEWOBJ_EX`, `EXT1/2/4`, `PERSID`, `NEXT_BUFFER`,
/// `READONLY_BUFFER`). The binary opcodes of protocols 2 to 5 are read (PyTorch writes
/// protocol 2); the text opcodes of protocols 0 and 1 and sets are refused.
///
/// Persistent ids are storages: `('storage', StorageType, key, location, numel)` (zip format)
/// or the same with a trailing `None` view field (legacy format). Every tensor view is checked
/// against its storage's size when it is read.
struct RestrictedUnpickler {
    /// The file and the pickle in it, for messages (e.g. `model.pth (archive/data.pkl)`).
    let file: String
    private let bytes: UnsafeRawBufferPointer
    /// The offset of the next opcode; after ``load()``, the first byte after `STOP`.
    private(set) var position: Int
    /// The storages the pickle referred to, by key.
    private(set) var storages: [String: TorchStorageReference] = [:]

    private var stack: [Object] = []
    private var marks: [Int] = []
    private var memo: [Int: Object] = [:]
    private var opcodeOffset = 0

    init(file: String, bytes: UnsafeRawBufferPointer, start: Int = 0) {
        self.file = file
        self.bytes = bytes
        self.position = start
    }

    // MARK: Objects while unpickling

    /// A Python object under construction (a class, because pickles mutate lists and
    /// dictionaries after the memo has shared them).
    private final class Object {
        enum Kind {
            case scalar(PickleValue)
            case list([Object])
            case tuple([Object])
            case dict(Dictionary)
            case global(AllowedGlobal)
            case storage(TorchStorageReference)
            case tensor(TorchTensorReference)
        }
        var kind: Kind
        init(kind: Kind) { self.kind = kind }
        convenience init(_ value: PickleValue) { self.init(kind: .scalar(value)) }
    }

    /// Insertion-ordered dictionary with Python's replace-on-equal-key behaviour.
    private struct Dictionary {
        var keys: [Object] = []
        var values: [Object] = []
        var index: [HashKey: Int] = [:]
    }

    /// The hashable keys a dictionary may have.
    private indirect enum HashKey: Hashable {
        case none, bool(Bool), int(Int), largeInt([UInt8]), float(UInt64), string(String), bytes([UInt8]), tuple([HashKey])
    }

    /// The names this reader knows (see the type's documentation).
    private enum AllowedGlobal {
        case orderedDict
        case rebuildTensor
        case rebuildParameter
        case storageType(SafeTensorsDType, name: String)

        static let storageTypes: [String: SafeTensorsDType] = [
            "FloatStorage": .float32, "HalfStorage": .float16, "BFloat16Storage": .bfloat16, "DoubleStorage": .float64,
            "LongStorage": .int64, "IntStorage": .int32, "ShortStorage": .int16, "CharStorage": .int8,
            "ByteStorage": .uint8, "BoolStorage": .bool,
        ]

        init?(module: String, name: String) {
            switch (module, name) {
            case ("collections", "OrderedDict"): self = .orderedDict
            case ("torch._utils", "_rebuild_tensor_v2"): self = .rebuildTensor
            case ("torch._utils", "_rebuild_parameter"): self = .rebuildParameter
            case ("torch", _):
                guard let dtype = AllowedGlobal.storageTypes[name] else { return nil }
                self = .storageType(dtype, name: "torch." + name)
            default: return nil
            }
        }

        var name: String {
            switch self {
            case .orderedDict: return "collections.OrderedDict"
            case .rebuildTensor: return "torch._utils._rebuild_tensor_v2"
            case .rebuildParameter: return "torch._utils._rebuild_parameter"
            case .storageType(_, let name): return name
            }
        }
    }

    // MARK: Reading

    /// Runs the pickle that starts at the current position up to its `STOP` and returns the
    /// object it built.
    mutating func load() throws -> PickleValue {
        stack.removeAll()
        marks.removeAll()
        memo.removeAll()
        let start = position
        while true {
            opcodeOffset = position
            let opcode = try readByte()
            switch opcode {
            case 0x80: // PROTO
                let version = try readByte()
                guard version <= 5 else { throw malformed("pickle protocol \(version) is newer than 5") }
            case 0x95: // FRAME
                let length = try readUInt64()
                guard length <= UInt64(bytes.count - position) else { throw malformed("a frame of \(length) bytes runs past the end") }
            case 0x2E: // STOP
                let result = try pop()
                var budget = 4 * (position - start) + 1024
                var visiting = Set<ObjectIdentifier>()
                return try freeze(result, budget: &budget, visiting: &visiting, depth: 0)

            // Stack and memo.
            case 0x28: marks.append(stack.count) // MARK
            case 0x30: // POP
                if let mark = marks.last, mark == stack.count { marks.removeLast() } else { _ = try pop() }
            case 0x31: _ = try popMark() // POP_MARK
            case 0x32: stack.append(try top()) // DUP
            case 0x71: try put(Int(try readByte())) // BINPUT
            case 0x72: try put(Int(try readUInt32())) // LONG_BINPUT
            case 0x94: try put(memo.count) // MEMOIZE
            case 0x68: try get(Int(try readByte())) // BINGET
            case 0x6A: try get(Int(try readUInt32())) // LONG_BINGET

            // Scalars.
            case 0x4E: stack.append(Object(.none)) // NONE
            case 0x88: stack.append(Object(.bool(true))) // NEWTRUE
            case 0x89: stack.append(Object(.bool(false))) // NEWFALSE
            case 0x4A: stack.append(Object(.int(Int(Int32(bitPattern: try readUInt32()))))) // BININT
            case 0x4B: stack.append(Object(.int(Int(try readByte())))) // BININT1
            case 0x4D: stack.append(Object(.int(Int(try readUInt16())))) // BININT2
            case 0x8A: stack.append(Object(try readLong(count: Int(try readByte())))) // LONG1
            case 0x8B: // LONG4
                let count = Int32(bitPattern: try readUInt32())
                guard count >= 0 else { throw malformed("LONG4 with a negative length") }
                stack.append(Object(try readLong(count: Int(count))))
            case 0x47: stack.append(Object(.float(Double(bitPattern: UInt64(bigEndian: try readRaw(8).loadUnaligned(as: UInt64.self)))))) // BINFLOAT
            case 0x58: stack.append(Object(.string(try readString(count: Int(try readUInt32()))))) // BINUNICODE
            case 0x8C: stack.append(Object(.string(try readString(count: Int(try readByte()))))) // SHORT_BINUNICODE
            case 0x8D: stack.append(Object(.string(try readString(count: try readLength64())))) // BINUNICODE8
            case 0x54: // BINSTRING (Python 2 str, decoded as UTF-8 as torch.load does)
                let count = Int32(bitPattern: try readUInt32())
                guard count >= 0 else { throw malformed("BINSTRING with a negative length") }
                stack.append(Object(.string(try readString(count: Int(count)))))
            case 0x55: stack.append(Object(.string(try readString(count: Int(try readByte()))))) // SHORT_BINSTRING
            case 0x42: stack.append(Object(.bytes(Array(try readRaw(Int(try readUInt32())))))) // BINBYTES
            case 0x43: stack.append(Object(.bytes(Array(try readRaw(Int(try readByte())))))) // SHORT_BINBYTES
            case 0x8E, 0x96: stack.append(Object(.bytes(Array(try readRaw(try readLength64()))))) // BINBYTES8, BYTEARRAY8

            // Containers.
            case 0x5D: stack.append(Object(kind: .list([]))) // EMPTY_LIST
            case 0x7D: stack.append(Object(kind: .dict(Dictionary()))) // EMPTY_DICT
            case 0x29: stack.append(Object(kind: .tuple([]))) // EMPTY_TUPLE
            case 0x6C: stack.append(Object(kind: .list(try popMark()))) // LIST
            case 0x74: stack.append(Object(kind: .tuple(try popMark()))) // TUPLE
            case 0x85: stack.append(Object(kind: .tuple([try pop()]))) // TUPLE1
            case 0x86: // TUPLE2
                let b = try pop(), a = try pop()
                stack.append(Object(kind: .tuple([a, b])))
            case 0x87: // TUPLE3
                let c = try pop(), b = try pop(), a = try pop()
                stack.append(Object(kind: .tuple([a, b, c])))
            case 0x64: // DICT
                let items = try popMark()
                let dict = Object(kind: .dict(Dictionary()))
                try setItems(items, in: dict)
                stack.append(dict)
            case 0x61: // APPEND
                let item = try pop()
                try append([item], to: try top())
            case 0x65: // APPENDS
                let items = try popMark()
                try append(items, to: try top())
            case 0x73: // SETITEM
                let value = try pop(), key = try pop()
                try setItems([key, value], in: try top())
            case 0x75: // SETITEMS
                let items = try popMark()
                try setItems(items, in: try top())

            // Names, calls and persistent ids.
            case 0x63: // GLOBAL
                let module = try readLine(), name = try readLine()
                stack.append(Object(kind: .global(try resolve(module: module, name: name))))
            case 0x93: // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard case .scalar(.string(let n)) = name.kind, case .scalar(.string(let m)) = module.kind else {
                    throw malformed("STACK_GLOBAL needs two strings")
                }
                stack.append(Object(kind: .global(try resolve(module: m, name: n))))
            case 0x52: // REDUCE
                let arguments = try pop(), callable = try pop()
                stack.append(try reduce(callable, arguments))
            case 0x62: // BUILD
                let state = try pop()
                let object = try top()
                guard case .dict = object.kind else {
                    throw TorchCheckpointError.forbiddenOpcode(
                        file: file, opcode: "BUILD", offset: opcodeOffset,
                        reason: "it sets the state of \(describe(object)); only a dictionary's attributes may be set (and they are ignored)")
                }
                _ = state
            case 0x51: // BINPERSID
                stack.append(Object(kind: .storage(try persistentStorage(try pop()))))

            // Refused.
            case 0x69: throw forbidden("INST", "it constructs an object of a named class")
            case 0x6F: throw forbidden("OBJ", "it constructs an object of a class")
            case 0x81: throw forbidden("NEWOBJ", "it constructs an object of a class")
            case 0x92: throw forbidden("NEWOBJ_EX", "it constructs an object of a class")
            case 0x82, 0x83, 0x84: throw forbidden("EXT\(opcode == 0x82 ? 1 : opcode == 0x83 ? 2 : 4)", "it names an object through the copyreg extension registry")
            case 0x50: throw forbidden("PERSID", "text persistent ids are not written by PyTorch")
            case 0x97, 0x98: throw forbidden(opcode == 0x97 ? "NEXT_BUFFER" : "READONLY_BUFFER", "out-of-band buffers are not part of a checkpoint")
            case 0x8F, 0x90, 0x91: throw forbidden(opcode == 0x8F ? "EMPTY_SET" : opcode == 0x90 ? "ADDITEMS" : "FROZENSET", "sets are not part of a state dict")
            case 0x49, 0x4C, 0x46, 0x53, 0x56, 0x67, 0x70:
                throw forbidden("'\(Character(Unicode.Scalar(opcode)))'", "text opcodes of pickle protocols 0 and 1 are not read (PyTorch writes protocol 2)")
            default:
                throw malformed(String(format: "unknown opcode 0x%02x", opcode))
            }
        }
    }

    // MARK: Opcode helpers

    private func malformed(_ reason: String) -> TorchCheckpointError {
        .malformedPickle(file: file, offset: opcodeOffset, reason: reason)
    }

    private func forbidden(_ opcode: String, _ reason: String) -> TorchCheckpointError {
        .forbiddenOpcode(file: file, opcode: opcode, offset: opcodeOffset, reason: reason)
    }

    private mutating func pop() throws -> Object {
        guard let last = stack.last, stack.count > (marks.last ?? 0) else { throw malformed("the stack is empty") }
        stack.removeLast()
        return last
    }

    private func top() throws -> Object {
        guard let last = stack.last, stack.count > (marks.last ?? 0) else { throw malformed("the stack is empty") }
        return last
    }

    private mutating func popMark() throws -> [Object] {
        guard let mark = marks.popLast() else { throw malformed("no MARK to pop to") }
        let items = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return items
    }

    private mutating func put(_ index: Int) throws {
        memo[index] = try top()
    }

    private mutating func get(_ index: Int) throws {
        guard let object = memo[index] else { throw malformed("memo entry \(index) does not exist") }
        stack.append(object)
    }

    private func append(_ items: [Object], to object: Object) throws {
        guard case .list(var list) = object.kind else { throw malformed("APPEND(S) on \(describe(object)), not a list") }
        object.kind = .scalar(.none) // release the old array before appending (no copy)
        list.append(contentsOf: items)
        object.kind = .list(list)
    }

    private func setItems(_ items: [Object], in object: Object) throws {
        guard case .dict(var dictionary) = object.kind else { throw malformed("SETITEM(S) on \(describe(object)), not a dictionary") }
        guard items.count % 2 == 0 else { throw malformed("SETITEMS with an odd number of items") }
        object.kind = .scalar(.none)
        for pair in stride(from: 0, to: items.count, by: 2) {
            let key = items[pair], value = items[pair + 1]
            guard let hashKey = hashKey(key) else { throw malformed("a dictionary key of type \(describe(key)) is not hashable") }
            if let existing = dictionary.index[hashKey] {
                dictionary.values[existing] = value
            } else {
                dictionary.index[hashKey] = dictionary.keys.count
                dictionary.keys.append(key)
                dictionary.values.append(value)
            }
        }
        object.kind = .dict(dictionary)
    }

    private func hashKey(_ object: Object) -> HashKey? {
        switch object.kind {
        case .scalar(let value):
            switch value {
            case .none: return HashKey.none
            case .bool(let b): return .bool(b)
            case .int(let i): return .int(i)
            case .largeInt(let bytes): return .largeInt(bytes)
            case .float(let d): return .float(d.bitPattern)
            case .string(let s): return .string(s)
            case .bytes(let b): return .bytes(b)
            default: return nil
            }
        case .tuple(let items):
            var keys: [HashKey] = []
            for item in items {
                guard let key = hashKey(item) else { return nil }
                keys.append(key)
            }
            return .tuple(keys)
        default:
            return nil
        }
    }

    private func resolve(module: String, name: String) throws -> AllowedGlobal {
        guard let global = AllowedGlobal(module: module, name: name) else {
            throw TorchCheckpointError.forbiddenGlobal(file: file, name: module + "." + name, offset: opcodeOffset)
        }
        return global
    }

    /// A short description of an object for messages.
    private func describe(_ object: Object) -> String {
        switch object.kind {
        case .scalar(let value):
            switch value {
            case .none: return "None"
            case .bool: return "a bool"
            case .int, .largeInt: return "an int"
            case .float: return "a float"
            case .string: return "a string"
            case .bytes: return "bytes"
            default: return "a value"
            }
        case .list: return "a list"
        case .tuple: return "a tuple"
        case .dict: return "a dictionary"
        case .global(let g): return "'\(g.name)'"
        case .storage: return "a storage"
        case .tensor: return "a tensor"
        }
    }

    // MARK: Calls

    private func reduce(_ callable: Object, _ arguments: Object) throws -> Object {
        guard case .global(let global) = callable.kind else {
            throw forbidden("REDUCE", "it calls \(describe(callable)), which is not a known callable")
        }
        guard case .tuple(let args) = arguments.kind else { throw malformed("REDUCE of '\(global.name)' with \(describe(arguments)) as arguments, not a tuple") }
        switch global {
        case .orderedDict:
            guard args.isEmpty else { throw malformed("collections.OrderedDict called with arguments (PyTorch pickles it empty)") }
            return Object(kind: .dict(Dictionary()))
        case .rebuildTensor:
            return Object(kind: .tensor(try rebuildTensor(args)))
        case .rebuildParameter:
            guard args.count == 3, case .tensor = args[0].kind else {
                throw malformed("torch._utils._rebuild_parameter expects (tensor, requires_grad, backward_hooks)")
            }
            try checkNoHooks(args[2], of: global)
            return args[0]
        case .storageType:
            throw forbidden("REDUCE", "it calls '\(global.name)', which is accepted only as the storage type of a persistent id")
        }
    }

    private func checkNoHooks(_ hooks: Object, of global: AllowedGlobal) throws {
        guard case .dict(let dictionary) = hooks.kind else { throw malformed("'\(global.name)': backward_hooks is \(describe(hooks)), not a dictionary") }
        guard dictionary.keys.isEmpty else { throw malformed("'\(global.name)': the tensor has backward hooks, which a state dict cannot have") }
    }

    private func integer(_ object: Object, _ what: String) throws -> Int {
        guard case .scalar(.int(let value)) = object.kind else { throw malformed("\(what) is \(describe(object)), not an integer") }
        return value
    }

    private func integers(_ object: Object, _ what: String) throws -> [Int] {
        guard case .tuple(let items) = object.kind else { throw malformed("\(what) is \(describe(object)), not a tuple") }
        return try items.map { try integer($0, what) }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`.
    private func rebuildTensor(_ args: [Object]) throws -> TorchTensorReference {
        let name = AllowedGlobal.rebuildTensor.name
        guard args.count == 6 || args.count == 7 else { throw malformed("'\(name)' called with \(args.count) arguments, not 6 or 7") }
        guard case .storage(let storage) = args[0].kind else { throw malformed("'\(name)': the first argument is \(describe(args[0])), not a storage") }
        let offset = try integer(args[1], "the storage offset")
        let shape = try integers(args[2], "the size")
        let strides = try integers(args[3], "the stride")
        guard case .scalar(.bool) = args[4].kind else { throw malformed("'\(name)': requires_grad is \(describe(args[4])), not a bool") }
        try checkNoHooks(args[5], of: .rebuildTensor)
        guard shape.count == strides.count else { throw malformed("'\(name)': size \(shape) and stride \(strides) differ in length") }
        let reference = TorchTensorReference(storage: storage, offset: offset, shape: shape, strides: strides)
        if let problem = Self.viewProblem(reference) {
            throw TorchCheckpointError.invalidTensor(file: file, reason: problem)
        }
        return reference
    }

    /// Why a view does not fit its storage, or nil when it does.
    static func viewProblem(_ t: TorchTensorReference) -> String? {
        let view = "a tensor of size \(t.shape), stride \(t.strides) and offset \(t.offset) on storage '\(t.storage.key)' (\(t.storage.count) elements)"
        guard t.offset >= 0, t.shape.allSatisfy({ $0 >= 0 }), t.strides.allSatisfy({ $0 >= 0 }) else {
            return "\(view) has a negative size, stride or offset"
        }
        var count = 1
        for size in t.shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: size)
            guard !overflow else { return "\(view) has too many elements" }
            count = product
        }
        guard count > 0 else { return t.offset <= t.storage.count ? nil : "\(view) starts past the end of its storage" }
        var last = t.offset
        for (size, stride) in zip(t.shape, t.strides) {
            let (step, overflow1) = (size - 1).multipliedReportingOverflow(by: stride)
            let (sum, overflow2) = last.addingReportingOverflow(step)
            guard !overflow1, !overflow2 else { return "\(view) reaches past any storage" }
            last = sum
        }
        guard last < t.storage.count else { return "\(view) reaches element \(last), past the end of its storage" }
        return nil
    }

    /// A storage from its persistent id.
    private mutating func persistentStorage(_ id: Object) throws -> TorchStorageReference {
        guard case .tuple(let fields) = id.kind, fields.count == 5 || fields.count == 6 else {
            throw malformed("a persistent id is \(describe(id)), not a 5- or 6-tuple ('storage', type, key, location, numel[, view])")
        }
        guard let typename = asciiText(fields[0]), typename == "storage" else {
            throw forbidden("BINPERSID", "only storages may be persistent ids (this one is of type '\(asciiText(fields[0]) ?? describe(fields[0]))')")
        }
        guard case .global(.storageType(let dtype, _)) = fields[1].kind else {
            throw malformed("the storage type of a persistent id is \(describe(fields[1])), not a torch storage type")
        }
        guard let key = asciiText(fields[2]) else { throw malformed("a storage key is \(describe(fields[2])), not a string") }
        let count = try integer(fields[4], "a storage's element count")
        guard count >= 0 else { throw malformed("storage '\(key)' has a negative element count") }
        guard count <= Int.max / 8 else { throw malformed("storage '\(key)' claims \(count) elements") }
        if fields.count == 6 {
            guard case .scalar(.none) = fields[5].kind else {
                throw TorchCheckpointError.unsupported(
                    file: file, reason: "storage '\(key)' is a storage view of the pre-1.0 legacy format; load and re-save the file with a recent PyTorch")
            }
        }
        let storage = TorchStorageReference(key: key, dtype: dtype, count: count)
        if let known = storages[key], known != storage {
            throw malformed("storage '\(key)' is referred to as \(known.count) \(known.dtype.rawValue) and as \(count) \(dtype.rawValue) elements")
        }
        storages[key] = storage
        return storage
    }

    private func asciiText(_ object: Object) -> String? {
        switch object.kind {
        case .scalar(.string(let s)): return s
        case .scalar(.bytes(let b)): return b.allSatisfy({ $0 < 0x80 }) ? String(decoding: b, as: UTF8.self) : nil
        default: return nil
        }
    }

    // MARK: Freezing

    private func freeze(_ object: Object, budget: inout Int, visiting: inout Set<ObjectIdentifier>, depth: Int) throws -> PickleValue {
        budget -= 1
        guard budget >= 0 else { throw malformed("the pickle shares containers so often that the object it describes would be far larger than the file") }
        guard depth < 1000 else { throw malformed("objects are nested more than 1000 levels deep") }
        func children(_ items: [Object]) throws -> [PickleValue] {
            let id = ObjectIdentifier(object)
            guard visiting.insert(id).inserted else { throw malformed("a container contains itself") }
            defer { visiting.remove(id) }
            return try items.map { try freeze($0, budget: &budget, visiting: &visiting, depth: depth + 1) }
        }
        switch object.kind {
        case .scalar(let value): return value
        case .list(let items): return .list(try children(items))
        case .tuple(let items): return .tuple(try children(items))
        case .dict(let dictionary):
            let keys = try children(dictionary.keys), values = try children(dictionary.values)
            return .dict(zip(keys, values).map { PickleDictEntry(key: $0, value: $1) })
        case .tensor(let tensor): return .tensor(tensor)
        case .global(let global):
            throw malformed("the pickle's result contains '\(global.name)' itself rather than something built with it")
        case .storage(let storage):
            throw TorchCheckpointError.unsupported(file: file, reason: "it holds the storage '\(storage.key)' on its own, not inside a tensor")
        }
    }

    // MARK: Bytes

    private mutating func readRaw(_ count: Int) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= bytes.count - position else {
            throw malformed("it ends \(count) bytes into an opcode that needs them (the pickle is truncated)")
        }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: bytes[position ..< position + count])
    }

    private mutating func readByte() throws -> UInt8 {
        guard position < bytes.count else { throw malformed("it ends before STOP (the pickle is truncated)") }
        defer { position += 1 }
        return bytes[position]
    }

    private mutating func readUInt16() throws -> UInt16 { UInt16(littleEndian: try readRaw(2).loadUnaligned(as: UInt16.self)) }
    private mutating func readUInt32() throws -> UInt32 { UInt32(littleEndian: try readRaw(4).loadUnaligned(as: UInt32.self)) }
    private mutating func readUInt64() throws -> UInt64 { UInt64(littleEndian: try readRaw(8).loadUnaligned(as: UInt64.self)) }

    private mutating func readLength64() throws -> Int {
        let length = try readUInt64()
        guard length <= UInt64(bytes.count - position) else { throw malformed("a length of \(length) bytes runs past the end (the pickle is truncated)") }
        return Int(length)
    }

    private mutating func readString(count: Int) throws -> String {
        let raw = try readRaw(count)
        guard let text = String(validating: raw, as: UTF8.self) else { throw malformed("a string is not valid UTF-8") }
        return text
    }

    /// A text line of a `GLOBAL` opcode (module or name).
    private mutating func readLine() throws -> String {
        var end = position
        while end < bytes.count, bytes[end] != 0x0A {
            end += 1
            guard end - position <= 1024 else { throw malformed("a GLOBAL name is longer than 1024 bytes") }
        }
        guard end < bytes.count else { throw malformed("a GLOBAL name has no end of line (the pickle is truncated)") }
        let line = try readString(count: end - position)
        position += 1
        return line
    }

    /// The value of a `LONG1`/`LONG4` integer of `count` little-endian two's-complement bytes.
    private mutating func readLong(count: Int) throws -> PickleValue {
        let raw = Array(try readRaw(count))
        guard let last = raw.last else { return .int(0) }
        let fill: UInt8 = last & 0x80 != 0 ? 0xFF : 0
        // Fits 64 bits when the bytes past the eighth are all sign fill and agree with bit 63.
        if raw.count <= 8 || (raw[8...].allSatisfy { $0 == fill } && (raw[7] & 0x80 != 0) == (fill == 0xFF)) {
            var value: UInt64 = 0
            for i in 0..<8 { value |= UInt64(i < raw.count ? raw[i] : fill) << (8 * UInt64(i)) }
            return .int(Int(Int64(bitPattern: value)))
        }
        return .largeInt(littleEndianBytes: raw)
    }
}
