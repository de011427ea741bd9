/// Why a safetensors file could not be read or written. Every case names the file, and the
/// description says what is wrong in words (e.g. `safetensors file '/runs/a.safetensors' is
/// truncated: ...`).
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable, Sendable {
    /// There is no file at the path.
    case fileNotFound(file: String)
    /// The file exists but cannot be opened or mapped (permissions, a directory, I/O error).
    case unreadable(file: String, reason: String)
    /// The file ends before the length prefix, the header or the tensor data it announces.
    case truncated(file: String, reason: String)
    /// The header length prefix exceeds the 100 MB limit of the format.
    case headerTooLarge(file: String, size: UInt64, limit: Int)
    /// The header is not a JSON object of the expected form.
    case malformedHeader(file: String, reason: String)
    /// A tensor has a dtype this reader does not convert.
    case unknownDType(file: String, tensor: String, dtype: String)
    /// The data offsets are out of bounds, overlap, or leave bytes that belong to no tensor.
    case invalidOffsets(file: String, reason: String)
    /// A tensor's byte range does not match its shape and dtype.
    case shapeMismatch(file: String, tensor: String, reason: String)
    /// Writing failed (the destination is unchanged).
    case writeFailed(file: String, reason: String)
    /// A tensor of a weights file holds NaN or infinite values (`count` of them, the first at
    /// flat index `index`).
    case nonFinite(file: String, tensor: String, count: Int, index: Int)

    /// The path of the file concerned.
    public var file: String {
        switch self {
        case .fileNotFound(let file), .unreadable(let file, _), .truncated(let file, _),
             .headerTooLarge(let file, _, _), .malformedHeader(let file, _), .unknownDType(let file, _, _),
             .invalidOffsets(let file, _), .shapeMismatch(let file, _, _), .writeFailed(let file, _),
             .nonFinite(let file, _, _, _):
            return file
        }
    }

    public var description: String {
        switch self {
        case .fileNotFound(let file):
            return "safetensors file '\(file)' does not exist"
        case .unreadable(let file, let reason):
            return "safetensors file '\(file)' cannot be read: \(reason)"
        case .truncated(let file, let reason):
            return "safetensors file '\(file)' is truncated: \(reason)"
        case .headerTooLarge(let file, let size, let limit):
            return "safetensors file '\(file)' has a header of \(size) bytes, more than the limit of \(limit) bytes (corrupt length prefix?)"
        case .malformedHeader(let file, let reason):
            return "safetensors file '\(file)' has a malformed header: \(reason)"
        case .unknownDType(let file, let tensor, let dtype):
            return "safetensors file '\(file)': tensor '\(tensor)' has unsupported dtype '\(dtype)' (supported: \(SafeTensorsDType.supportedNames))"
        case .invalidOffsets(let file, let reason):
            return "safetensors file '\(file)' has invalid data offsets: \(reason)"
        case .shapeMismatch(let file, let tensor, let reason):
            return "safetensors file '\(file)': tensor '\(tensor)' does not match its data: \(reason)"
        case .writeFailed(let file, let reason):
            return "cannot write safetensors file '\(file)': \(reason)"
        case .nonFinite(let file, let tensor, let count, let index):
            return "weights file '\(file)': tensor '\(tensor)' holds \(count) NaN or infinite value\(count == 1 ? "" : "s") (the first at index \(index)): the weights are damaged or come from a diverged run"
        }
    }
}
