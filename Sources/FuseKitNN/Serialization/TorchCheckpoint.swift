import Foundation
import FuseKitTensor

/// A file written by PyTorch's `torch.save`, read without running any of its code.
///
/// Two layouts are read:
/// - the zip format (PyTorch 1.6 and later): a zip archive whose single folder holds
///   `data.pkl` (the pickled object), `data/<key>` (one record per storage, stored
///   uncompressed) and `byteorder` (`little` or `big`; little when absent);
/// - the legacy format (`_use_new_zipfile_serialization=False`): five pickles one after the
///   other (the magic number `0x1950a86a20f9469cfc6c`, the protocol version 1001, system
///   information, the object, the list of storage keys), then each storage in that order as an
///   8-byte little-endian element count followed by its bytes.
///
/// The pickles are interpreted by ``RestrictedUnpickler``, which knows only dictionaries,
/// lists, tuples, plain values and tensors; anything else is refused with an error naming it.
/// ``root`` is the unpickled object with tensors as references; ``tensors(_:)`` reads their
/// storages (each once, however many tensors share it), makes strided views contiguous and
/// converts every element type to Float32 (exactly for F16 and BF16, rounded to nearest for
/// F64 and integers beyond 2^24; booleans become 0 and 1).
///
/// ```swift
/// let checkpoint = try TorchCheckpoint(contentsOf: url)
/// let tensors = try checkpoint.tensors(try checkpoint.flatten(checkpoint.root["state_dict"] ?? checkpoint.root))
/// ```
///
/// TorchScript archives (`torch.jit.save`), the tar format of PyTorch before 0.4 and legacy files
/// written on big-endian machines are refused with a clear error.
public final class TorchCheckpoint {
    /// The two file layouts.
    public enum Format: String, Sendable {
        /// The zip archive of PyTorch 1.6 and later.
        case zip
        /// The concatenated pickles of earlier versions (`_use_new_zipfile_serialization=False`).
        case legacy
    }

    /// The file's path (used in every error).
    public let path: String
    /// Its layout.
    public let format: Format
    /// The object `torch.save` was given (usually a state dict or a dict holding one).
    public let root: PickleValue
    /// The storages the object refers to, by key.
    public let storages: [String: TorchStorageReference]

    private let source: StorageSource

    /// The first bytes of the legacy format's magic number pickle.
    static let legacyMagic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]
    static let legacyProtocolVersion = 1001
    static let zipSignature: [UInt8] = [0x50, 0x4B, 0x03, 0x04]

    /// Opens and unpickles a checkpoint (storages are read later, by ``tensors(_:)``).
    ///
    /// - Throws: ``TorchCheckpointError`` naming the file.
    public init(contentsOf url: URL) throws {
        path = url.path
        let head = try Self.firstBytes(of: url, count: 512)
        if head.starts(with: Self.zipSignature) {
            (format, root, storages, source) = try Self.openZip(url)
        } else if head.first == 0x80 {
            (format, root, storages, source) = try Self.openLegacy(url)
        } else if head.count >= 262, Array(head[257 ..< 262]) == Array("ustar".utf8) {
            throw TorchCheckpointError.unsupported(
                file: url.path, reason: "it is in the tar format of PyTorch before 0.4; load and re-save it with a recent PyTorch")
        } else {
            throw TorchCheckpointError.unsupported(
                file: url.path, reason: "it is neither a zip archive nor a legacy pickle file (first bytes: \(head.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")))")
        }
    }

    /// Up to `count` bytes from the start of a file.
    static func firstBytes(of url: URL, count: Int) throws -> [UInt8] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else { throw TorchCheckpointError.fileNotFound(file: url.path) }
        guard !isDirectory.boolValue, let handle = FileHandle(forReadingAtPath: url.path) else {
            throw TorchCheckpointError.unreadable(file: url.path, reason: isDirectory.boolValue ? "it is a directory" : "it cannot be opened")
        }
        defer { try? handle.close() }
        do {
            return Array(try handle.read(upToCount: count) ?? Data())
        } catch {
            throw TorchCheckpointError.unreadable(file: url.path, reason: "\(error)")
        }
    }

    // MARK: Tensors

    /// Every tensor of a value with a dotted name built from dictionary keys and list indices
    /// (`{"model": {"conv.weight": t}}` gives `model.conv.weight`), in order.
    ///
    /// - Throws: ``TorchCheckpointError/invalidTensor(file:reason:)`` when two tensors would get
    ///   the same name.
    public func flatten(_ value: PickleValue) throws -> [(name: String, tensor: TorchTensorReference)] {
        var result: [(name: String, tensor: TorchTensorReference)] = []
        var seen = Set<String>()
        func visit(_ value: PickleValue, _ prefix: String) throws {
            func child(_ key: String) -> String { prefix.isEmpty ? key : prefix + "." + key }
            switch value {
            case .tensor(let tensor):
                guard seen.insert(prefix).inserted else {
                    throw TorchCheckpointError.invalidTensor(file: path, reason: "two tensors are both named '\(prefix)'")
                }
                result.append((prefix, tensor))
            case .dict(let entries):
                for entry in entries { try visit(entry.value, child(entry.key.pythonDescription)) }
            case .list(let items), .tuple(let items):
                for (i, item) in items.enumerated() { try visit(item, child(String(i))) }
            default:
                break
            }
        }
        try visit(value, "")
        return result
    }

    /// Reads the given tensors as contiguous Float32 tensors, each storage once.
    ///
    /// - Throws: ``TorchCheckpointError`` when a storage record is missing, truncated or fails
    ///   its CRC, or a view does not fit its storage.
    public func tensors(_ references: [(name: String, tensor: TorchTensorReference)]) throws -> [String: Tensor] {
        var byStorage: [String: [(name: String, tensor: TorchTensorReference)]] = [:]
        for item in references { byStorage[item.tensor.storage.key, default: []].append(item) }
        var result: [String: Tensor] = [:]
        result.reserveCapacity(references.count)
        for key in byStorage.keys.sorted() {
            let items = byStorage[key]!
            let storage = items[0].tensor.storage
            try source.withStorage(storage, file: path) { raw in
                for item in items {
                    if let problem = RestrictedUnpickler.viewProblem(item.tensor) {
                        throw TorchCheckpointError.invalidTensor(file: path, reason: "'\(item.name)' is \(problem)")
                    }
                    result[item.name] = Self.materialize(item.tensor, raw.baseAddress)
                }
            }
        }
        return result
    }

    /// A contiguous Float32 copy of a view (checked to fit `storage`).
    static func materialize(_ t: TorchTensorReference, _ storage: UnsafeRawPointer?) -> Tensor {
        let output = Tensor(uninitializedShape: t.shape)
        guard output.count > 0, let storage else { return output }
        let dtype = t.storage.dtype
        let elementSize = dtype.byteSize
        if t.isContiguous {
            dtype.convert(storage + t.offset * elementSize, to: output.mutablePointer, count: output.count)
            return output
        }
        // Convert the span the view touches once, then gather it in row-major order.
        let span = zip(t.shape, t.strides).reduce(1) { $0 + ($1.0 - 1) * $1.1 }
        var converted = [Float](repeating: 0, count: span)
        converted.withUnsafeMutableBufferPointer { dtype.convert(storage + t.offset * elementSize, to: $0.baseAddress!, count: span) }
        let rank = t.shape.count
        var index = [Int](repeating: 0, count: rank)
        var source = 0
        let destination = output.mutablePointer
        for i in 0 ..< output.count {
            destination[i] = converted[source]
            var d = rank - 1
            while d >= 0 {
                index[d] += 1
                source += t.strides[d]
                if index[d] < t.shape[d] { break }
                source -= t.strides[d] * t.shape[d]
                index[d] = 0
                d -= 1
            }
        }
        return output
    }

    // MARK: Zip format

    private static func openZip(_ url: URL) throws -> (Format, PickleValue, [String: TorchStorageReference], StorageSource) {
        let path = url.path
        let archive = try StoredZipArchive(file: try mapFile(path))
        let records = archive.records
        let pickles = records.keys.filter { $0.hasSuffix("data.pkl") && $0.split(separator: "/", omittingEmptySubsequences: false).count == 2 }
        guard pickles.count == 1, let pickleName = pickles.first else {
            throw TorchCheckpointError.corrupt(
                file: path, reason: pickles.isEmpty ? "the archive has no FOLDER/data.pkl record" : "the archive has several data.pkl records: \(pickles.sorted())")
        }
        let prefix = String(pickleName.dropLast("data.pkl".count))
        if records.keys.contains(where: { $0.hasPrefix(prefix + "code/") }) || records[prefix + "constants.pkl"] != nil {
            throw TorchCheckpointError.unsupported(
                file: path, reason: "it is a TorchScript archive (torch.jit.save); save the model's state_dict() with torch.save instead")
        }
        var bigEndian = false
        if let order = records[prefix + "byteorder"] {
            let text = String(decoding: try archive.bytes(of: order), as: UTF8.self)
            switch text {
            case "little": bigEndian = false
            case "big": bigEndian = true
            default: throw TorchCheckpointError.corrupt(file: path, reason: "its byteorder record says '\(text.prefix(20))', not 'little' or 'big'")
            }
        }
        var unpickler = RestrictedUnpickler(file: path, bytes: try archive.bytes(of: records[pickleName]!))
        let root = try unpickler.load()
        return (.zip, root, unpickler.storages, .zip(archive: archive, prefix: prefix, bigEndian: bigEndian))
    }

    /// Maps a file, with this format's errors.
    static func mapFile(_ path: String) throws -> MappedFile {
        do {
            return try MappedFile(path: path)
        } catch SafeTensorsError.unreadable(_, let reason) {
            throw TorchCheckpointError.unreadable(file: path, reason: reason)
        } catch {
            throw TorchCheckpointError.fileNotFound(file: path)
        }
    }

    // MARK: Legacy format

    private static func openLegacy(_ url: URL) throws -> (Format, PickleValue, [String: TorchStorageReference], StorageSource) {
        let path = url.path
        let file = try mapFile(path)
        let bytes = UnsafeRawBufferPointer(start: file.base, count: file.size)
        var unpickler = RestrictedUnpickler(file: path, bytes: bytes)
        func notLegacy(_ reason: String) -> TorchCheckpointError {
            .unsupported(file: path, reason: "it is not a PyTorch checkpoint: \(reason)")
        }
        guard case .largeInt(let magic) = try unpickler.load(), magic == legacyMagic else {
            throw notLegacy("it is a pickle but does not start with PyTorch's legacy magic number")
        }
        guard case .int(legacyProtocolVersion) = try unpickler.load() else {
            throw notLegacy("the legacy format's protocol version is not \(legacyProtocolVersion)")
        }
        let systemInfo = try unpickler.load()
        if case .bool(false)? = systemInfo["little_endian"] {
            throw TorchCheckpointError.unsupported(file: path, reason: "it was written on a big-endian machine in the legacy format")
        }
        let root = try unpickler.load()
        let storages = unpickler.storages
        guard case .list(let keyValues) = try unpickler.load() else {
            throw TorchCheckpointError.corrupt(file: path, reason: "the list of storage keys after the object is missing")
        }
        var offsets: [String: Int] = [:]
        var position = unpickler.position
        for value in keyValues {
            guard case .string(let key) = value else { throw TorchCheckpointError.corrupt(file: path, reason: "a storage key is \(value.pythonDescription), not a string") }
            guard let storage = storages[key] else {
                throw TorchCheckpointError.corrupt(file: path, reason: "the storage list names '\(key)', which no tensor uses")
            }
            guard position + 8 <= bytes.count else {
                throw TorchCheckpointError.corrupt(file: path, reason: "it ends before storage '\(key)' (the file is truncated)")
            }
            let count = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: Int64.self))
            guard count == Int64(storage.count) else {
                throw TorchCheckpointError.corrupt(file: path, reason: "storage '\(key)' has \(count) elements in the data section but \(storage.count) in the pickle")
            }
            position += 8
            guard storage.byteCount <= bytes.count - position else {
                throw TorchCheckpointError.corrupt(file: path, reason: "storage '\(key)' needs \(storage.byteCount) bytes but only \(bytes.count - position) remain (the file is truncated)")
            }
            offsets[key] = position
            position += storage.byteCount
        }
        return (.legacy, root, storages, .legacy(file: file, offsets: offsets))
    }
}

/// Where a checkpoint's storages are.
private enum StorageSource {
    case zip(archive: StoredZipArchive, prefix: String, bigEndian: Bool)
    case legacy(file: MappedFile, offsets: [String: Int])

    /// Runs `body` with the little-endian bytes of a storage (a view of the mapped file, or a
    /// byte-swapped copy for a big-endian archive).
    func withStorage(_ storage: TorchStorageReference, file: String, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        switch self {
        case .zip(let archive, let prefix, let bigEndian):
            let name = prefix + "data/" + storage.key
            guard let record = archive.records[name] else {
                if storage.byteCount == 0 { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
                throw TorchCheckpointError.corrupt(file: file, reason: "the archive has no record '\(name)' for storage '\(storage.key)'")
            }
            guard record.size == storage.byteCount else {
                throw TorchCheckpointError.corrupt(
                    file: file, reason: "record '\(name)' has \(record.size) bytes but its storage needs \(storage.byteCount) (\(storage.count) \(storage.dtype.rawValue))")
            }
            let bytes = try archive.bytes(of: record)
            guard bigEndian, storage.dtype.byteSize > 1 else { return try body(bytes) }
            var swapped = Array(bytes)
            let size = storage.dtype.byteSize
            for start in stride(from: 0, to: swapped.count, by: size) { swapped[start ..< start + size].reverse() }
            try swapped.withUnsafeBytes(body)
        case .legacy(let mapped, let offsets):
            guard let offset = offsets[storage.key] else {
                throw TorchCheckpointError.corrupt(file: file, reason: "storage '\(storage.key)' is not in the file's list of storages")
            }
            try body(UnsafeRawBufferPointer(start: mapped.base.map { $0 + offset }, count: storage.byteCount))
        }
    }
}
