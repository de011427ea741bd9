import Foundation
import FuseKitTensor

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reading and writing the safetensors format (https://huggingface.co/docs/safetensors): an
/// 8-byte little-endian header length, a JSON header mapping each tensor name to its `dtype`,
/// `shape` and `data_offsets` (plus an optional `__metadata__` string map), then the raw
/// little-endian tensor bytes.
///
/// ```swift
/// let (tensors, metadata) = try SafeTensors.read(from: url)
/// try SafeTensors.write(tensors, metadata: ["format": "pt"], to: url)
/// ```
///
/// Reading maps the file once and converts each tensor straight into its storage; F32, F16,
/// BF16, F64 and the integer and boolean dtypes are read (as Float32; e.g. BatchNorm's
/// `num_batches_tracked`, an I64). The file is validated as the format requires: the header
/// must be well-formed, every dtype known, every byte range match its tensor's shape and the
/// ranges tile the data exactly (no overlaps, no unclaimed bytes). Writing produces F32 tensors
/// sorted by name with the header padded to a multiple of 8 bytes, and is atomic.
public enum SafeTensors {
    /// Where one tensor is in a file, as its header describes it.
    public struct TensorInfo: Sendable, Equatable {
        /// The stored element type (converted to Float32 on reading).
        public let dtype: SafeTensorsDType
        /// The shape.
        public let shape: [Int]
        /// The tensor's bytes, relative to the start of the data section.
        public let dataOffsets: Range<Int>
    }

    /// The largest header the format allows (100 MB).
    public static let maximumHeaderSize = 100_000_000

    /// The key of the string metadata map in the header.
    public static let metadataKey = "__metadata__"

    /// Reads every tensor (converted to Float32) and the metadata of a safetensors file.
    ///
    /// - Throws: ``SafeTensorsError`` naming the file and the problem.
    public static func read(from url: URL) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let file = try MappedFile(path: url.path)
        let header = try parseHeader(file)
        return (tensors(of: file, header), header.metadata)
    }

    /// Every tensor of a validated file, converted to Float32.
    static func tensors(of file: MappedFile, _ header: Header) -> [String: Tensor] {
        var tensors: [String: Tensor] = [:]
        tensors.reserveCapacity(header.tensors.count)
        let data = file.base.map { $0 + header.dataStart }
        for (name, info) in header.tensors {
            let tensor = Tensor(uninitializedShape: info.shape)
            if let data, tensor.count > 0 {
                info.dtype.convert(data + info.dataOffsets.lowerBound, to: tensor.mutablePointer, count: tensor.count)
            }
            tensors[name] = tensor
        }
        return tensors
    }

    /// The data section (the tensors' bytes) of a validated file.
    static func dataSection(of file: MappedFile, _ header: Header) -> UnsafeRawBufferPointer {
        guard let base = file.base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + header.dataStart, count: file.size - header.dataStart)
    }

    /// Throws ``SafeTensorsError/nonFinite(file:tensor:count:index:)`` for the first tensor (in
    /// name order) holding NaN or infinite values.
    static func requireFinite(_ tensors: [String: Tensor], file: String) throws {
        for name in tensors.keys.sorted() {
            let (count, first) = tensors[name]!.withUnsafeBufferPointer { values -> (Int, Int) in
                var count = 0, first = -1
                for i in values.indices where !values[i].isFinite {
                    if first < 0 { first = i }
                    count += 1
                }
                return (count, first)
            }
            if count > 0 { throw SafeTensorsError.nonFinite(file: file, tensor: name, count: count, index: first) }
        }
    }

    /// Reads only the header: each tensor's dtype, shape and byte range, and the metadata (the
    /// file is validated as by ``read(from:)``, but no tensor is converted).
    public static func readHeader(from url: URL) throws -> (tensors: [String: TensorInfo], metadata: [String: String]) {
        let file = try MappedFile(path: url.path)
        let header = try parseHeader(file)
        return (header.tensors, header.metadata)
    }

    /// Writes `tensors` as F32 with the string `metadata`, atomically: the file is written to a
    /// temporary file in the same directory, flushed and renamed into place, so `url` holds
    /// either its previous contents or the complete new file.
    ///
    /// - Throws: ``SafeTensorsError/writeFailed(file:reason:)`` (the destination unchanged).
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to url: URL) throws {
        try write(tensors, metadata: metadata, to: url, beforeReplacing: {})
    }

    /// ``write(_:metadata:to:)``, running `beforeReplacing` once the new file is complete on disk
    /// and just before it replaces `url` (see ``AtomicFile/write(to:beforeReplacing:_:)``).
    static func write(_ tensors: [String: Tensor], metadata: [String: String], to url: URL,
                      beforeReplacing: () throws -> Void) throws {
        if let reserved = tensors.keys.first(where: { $0 == metadataKey || $0.isEmpty }) {
            throw SafeTensorsError.writeFailed(file: url.path, reason: "'\(reserved)' cannot be a tensor name")
        }
        let header = encodeHeader(tensors: tensors, metadata: metadata)
        try AtomicFile.write(to: url, beforeReplacing: beforeReplacing) { sink in
            var prefix = [UInt8](repeating: 0, count: 8)
            let length = UInt64(header.count).littleEndian
            withUnsafeBytes(of: length) { bytes in
                for i in 0..<8 { prefix[i] = bytes[i] }
            }
            try sink.append(prefix)
            try sink.append(header)
            for (name, _) in layout(of: tensors) {
                try withStoredBytes(of: tensors[name]!) { try sink.append($0) }
            }
        }
    }

    /// Runs `body` on a tensor's bytes as a file stores them (F32 little-endian).
    static func withStoredBytes<R>(of tensor: Tensor, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        #if _endian(little)
        return try tensor.withUnsafeBufferPointer { try body(UnsafeRawBufferPointer($0)) }
        #else
        let swapped = tensor.withUnsafeBufferPointer { $0.map { $0.bitPattern.littleEndian } }
        return try swapped.withUnsafeBytes { try body($0) }
        #endif
    }

    // MARK: - Header

    struct Header {
        var tensors: [String: TensorInfo]
        var metadata: [String: String]
        /// Offset of the data section from the start of the file.
        var dataStart: Int
    }

    /// Where ``write(_:metadata:to:)`` puts each tensor: F32, names sorted, data contiguous.
    static func layout(of tensors: [String: Tensor]) -> [(name: String, info: TensorInfo)] {
        var offset = 0
        return tensors.keys.sorted().map { name in
            let tensor = tensors[name]!
            let byteCount = tensor.count * MemoryLayout<Float>.size
            defer { offset += byteCount }
            return (name, TensorInfo(dtype: .float32, shape: tensor.shape, dataOffsets: offset..<(offset + byteCount)))
        }
    }

    /// The JSON header of `tensors` as ``layout(of:)`` places them, padded with spaces to a
    /// multiple of 8 bytes.
    static func encodeHeader(tensors: [String: Tensor], metadata: [String: String]) -> [UInt8] {
        var json = "{"
        var first = true
        if !metadata.isEmpty {
            json += jsonString(metadataKey) + ":{"
            json += metadata.keys.sorted().map { jsonString($0) + ":" + jsonString(metadata[$0] ?? "") }.joined(separator: ",")
            json += "}"
            first = false
        }
        for (name, info) in layout(of: tensors) {
            if !first { json += "," }
            first = false
            json += jsonString(name)
            json += ":{\"dtype\":\"\(info.dtype.rawValue)\",\"shape\":[" + info.shape.map(String.init).joined(separator: ",")
            json += "],\"data_offsets\":[\(info.dataOffsets.lowerBound),\(info.dataOffsets.upperBound)]}"
        }
        json += "}"
        var bytes = Array(json.utf8)
        while bytes.count % 8 != 0 { bytes.append(0x20) }
        return bytes
    }

    /// A JSON string literal.
    static func jsonString(_ string: String) -> String {
        let hexDigits = Array("0123456789abcdef".unicodeScalars)
        var result = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20:
                result += "\\u00"
                result.unicodeScalars.append(hexDigits[Int(scalar.value >> 4)])
                result.unicodeScalars.append(hexDigits[Int(scalar.value & 0xF)])
            default:
                result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    /// Parses and validates the header of a mapped file.
    static func parseHeader(_ file: MappedFile) throws -> Header {
        let path = file.path
        guard file.size >= 8, let base = file.base else {
            throw SafeTensorsError.truncated(
                file: path, reason: "it has \(file.size) bytes, fewer than the 8-byte header length")
        }
        let headerSize = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
        guard headerSize <= UInt64(maximumHeaderSize) else {
            throw SafeTensorsError.headerTooLarge(file: path, size: headerSize, limit: maximumHeaderSize)
        }
        let headerLength = Int(headerSize)
        guard headerLength <= file.size - 8 else {
            throw SafeTensorsError.truncated(
                file: path, reason: "the header length is \(headerLength) bytes but only \(file.size - 8) bytes follow it")
        }
        let dataStart = 8 + headerLength
        let dataLength = file.size - dataStart
        let json = Data(bytes: base + 8, count: headerLength)

        let raw: RawHeader
        do {
            raw = try JSONDecoder().decode(RawHeader.self, from: json)
        } catch let error as DecodingError {
            throw SafeTensorsError.malformedHeader(file: path, reason: describe(error))
        } catch {
            throw SafeTensorsError.malformedHeader(file: path, reason: "\(error)")
        }

        var tensors: [String: TensorInfo] = [:]
        tensors.reserveCapacity(raw.tensors.count)
        for (name, entry) in raw.tensors {
            guard let dtype = SafeTensorsDType(rawValue: entry.dtype) else {
                throw SafeTensorsError.unknownDType(file: path, tensor: name, dtype: entry.dtype)
            }
            let shape = entry.shape.compactMap { Int(exactly: $0) }
            let offsets = entry.dataOffsets.compactMap { Int(exactly: $0) }
            guard shape.count == entry.shape.count, offsets.count == entry.dataOffsets.count else {
                throw SafeTensorsError.malformedHeader(
                    file: path, reason: "tensor '\(name)' has a shape or data_offsets entry that is not an integer (shape \(entry.shape), data_offsets \(entry.dataOffsets))")
            }
            guard shape.allSatisfy({ $0 >= 0 }) else {
                throw SafeTensorsError.malformedHeader(
                    file: path, reason: "tensor '\(name)' has a negative dimension in shape \(Shape.describe(shape))")
            }
            guard offsets.count == 2 else {
                throw SafeTensorsError.malformedHeader(
                    file: path, reason: "tensor '\(name)' has \(offsets.count) data_offsets, not 2 (begin, end)")
            }
            let begin = offsets[0], end = offsets[1]
            guard begin >= 0, begin <= end else {
                throw SafeTensorsError.invalidOffsets(
                    file: path, reason: "tensor '\(name)' has data_offsets [\(begin), \(end)]: begin must be between 0 and end")
            }
            var byteCount = dtype.byteSize
            for dimension in shape {
                let (product, overflow) = byteCount.multipliedReportingOverflow(by: dimension)
                guard !overflow else {
                    throw SafeTensorsError.shapeMismatch(
                        file: path, tensor: name, reason: "shape \(Shape.describe(shape)) is too large")
                }
                byteCount = product
            }
            guard end - begin == byteCount else {
                throw SafeTensorsError.shapeMismatch(
                    file: path, tensor: name,
                    reason: "shape \(Shape.describe(shape)) of \(dtype.rawValue) needs \(byteCount) bytes but data_offsets [\(begin), \(end)] span \(end - begin)")
            }
            tensors[name] = TensorInfo(dtype: dtype, shape: shape, dataOffsets: begin..<end)
        }

        // The byte ranges must tile the data section exactly.
        let ordered = tensors.sorted {
            ($0.value.dataOffsets.lowerBound, $0.value.dataOffsets.upperBound, $0.key)
                < ($1.value.dataOffsets.lowerBound, $1.value.dataOffsets.upperBound, $1.key)
        }
        var covered = 0
        var previous: (name: String, range: Range<Int>)?
        for (name, info) in ordered {
            let range = info.dataOffsets
            if range.lowerBound < covered, let previous {
                throw SafeTensorsError.invalidOffsets(
                    file: path,
                    reason: "tensor '\(name)' [\(range.lowerBound), \(range.upperBound)) overlaps tensor '\(previous.name)' [\(previous.range.lowerBound), \(previous.range.upperBound))")
            }
            if range.lowerBound > covered {
                throw SafeTensorsError.invalidOffsets(
                    file: path, reason: "data bytes [\(covered), \(range.lowerBound)) before tensor '\(name)' belong to no tensor")
            }
            if range.upperBound > dataLength {
                // The ranges so far tile [0, covered), so the data simply stops early.
                throw SafeTensorsError.truncated(
                    file: path,
                    reason: "tensor '\(name)' needs data bytes [\(range.lowerBound), \(range.upperBound)) but the data section has only \(dataLength) bytes")
            }
            covered = range.upperBound
            previous = (name, range)
        }
        if covered < dataLength {
            throw SafeTensorsError.invalidOffsets(
                file: path, reason: "the last \(dataLength - covered) data bytes belong to no tensor")
        }
        return Header(tensors: tensors, metadata: raw.metadata, dataStart: dataStart)
    }

    /// A one-line account of a JSON decoding error, with the path to the offending value.
    static func describe(_ error: DecodingError) -> String {
        func location(_ context: DecodingError.Context) -> String {
            let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? "'\($0.stringValue)'" }
            return path.isEmpty ? "" : " at " + path.joined(separator: " ")
        }
        switch error {
        case .dataCorrupted(let context):
            let underlying = context.underlyingError.map { ": \($0.localizedDescription)" } ?? ""
            return "invalid JSON\(location(context)): \(context.debugDescription)\(underlying)"
        case .keyNotFound(let key, let context):
            return "missing field '\(key.stringValue)'\(location(context))"
        case .typeMismatch(let type, let context):
            return "expected \(type)\(location(context)): \(context.debugDescription)"
        case .valueNotFound(let type, let context):
            return "missing \(type) value\(location(context))"
        @unknown default:
            return "\(error)"
        }
    }
}

/// The header as JSON: tensor entries and the optional metadata map.
private struct RawHeader: Decodable {
    /// Numbers are decoded as doubles and checked to be integers afterwards, which gives a
    /// clearer message than the JSON decoder's for `2.5` where an integer belongs.
    struct Entry: Decodable {
        var dtype: String
        var shape: [Double]
        var dataOffsets: [Double]

        enum CodingKeys: String, CodingKey {
            case dtype, shape
            case dataOffsets = "data_offsets"
        }
    }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    var tensors: [String: Entry] = [:]
    var metadata: [String: String] = [:]

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        for key in container.allKeys {
            if key.stringValue == SafeTensors.metadataKey {
                metadata = try container.decodeIfPresent([String: String].self, forKey: key) ?? [:]
            } else {
                tensors[key.stringValue] = try container.decode(Entry.self, forKey: key)
            }
        }
    }
}

/// A whole file mapped read-only into memory.
final class MappedFile {
    /// The path, for error messages.
    let path: String
    /// Start of the mapping (nil for an empty file).
    let base: UnsafeRawPointer?
    /// Size in bytes.
    let size: Int

    init(path: String) throws {
        self.path = path
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { throw SafeTensorsError.fileNotFound(file: path) }
            throw SafeTensorsError.unreadable(file: path, reason: AtomicFile.errorText())
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw SafeTensorsError.unreadable(file: path, reason: AtomicFile.errorText())
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw SafeTensorsError.unreadable(file: path, reason: "not a regular file")
        }
        size = Int(status.st_size)
        guard size > 0 else {
            base = nil
            return
        }
        guard let mapping = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0),
              mapping != MAP_FAILED else {
            throw SafeTensorsError.unreadable(file: path, reason: "cannot map the file: \(AtomicFile.errorText())")
        }
        base = UnsafeRawPointer(mapping)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) }
    }
}
