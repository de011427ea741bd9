/// A failure to read or write an image or label file. The message names the file and the reason,
/// for example `cannot read /data/ir/01.png: truncated PNG data (libpng: Read Error)`.
public enum ImageIOError: Error, CustomStringConvertible, Sendable, Equatable {
    /// No file at the path.
    case fileNotFound(path: String)
    /// The file exists but could not be read (permissions, a directory, an I/O error).
    case unreadable(path: String, reason: String)
    /// The file is not in a format FuseKit reads or writes (PNG, JPEG, BMP), or uses a variant
    /// of one that is not supported (for example a CMYK JPEG or an RLE-compressed BMP).
    case unsupportedFormat(path: String, reason: String)
    /// The file claims a supported format but its data is truncated or damaged.
    case corrupt(path: String, reason: String)
    /// The content is valid image data but not what the caller asked for (for example a colour
    /// image where class indices were expected).
    case invalidContent(path: String, reason: String)
    /// The file could not be written.
    case writeFailed(path: String, reason: String)

    /// The file concerned.
    public var path: String {
        switch self {
        case .fileNotFound(let path), .unreadable(let path, _), .unsupportedFormat(let path, _),
             .corrupt(let path, _), .invalidContent(let path, _), .writeFailed(let path, _):
            return path
        }
    }

    /// Why the operation failed, without the path.
    public var reason: String {
        switch self {
        case .fileNotFound: return "no such file"
        case .unreadable(_, let reason), .unsupportedFormat(_, let reason), .corrupt(_, let reason),
             .invalidContent(_, let reason), .writeFailed(_, let reason):
            return reason
        }
    }

    public var description: String {
        switch self {
        case .writeFailed: return "cannot write \(path): \(reason)"
        default: return "cannot read \(path): \(reason)"
        }
    }
}
