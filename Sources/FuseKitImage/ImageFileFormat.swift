/// The image file formats FuseKit reads and writes.
public enum ImageFileFormat: String, Sendable, CaseIterable {
    /// PNG: 1, 2, 4, 8 and 16-bit gray, gray+alpha, RGB, RGBA and palette images (read and write).
    case png
    /// JPEG (baseline and progressive, gray or colour; read and write).
    case jpeg
    /// Windows bitmap: uncompressed 1/4/8-bit palette, 24-bit and 32-bit (read and write).
    case bmp

    /// File-name extensions (lower case, without the dot) recognised for each format.
    public var fileExtensions: [String] {
        switch self {
        case .png: return ["png"]
        case .jpeg: return ["jpg", "jpeg"]
        case .bmp: return ["bmp"]
        }
    }

    /// Every recognised extension, lower case.
    public static let allFileExtensions: Set<String> = Set(allCases.flatMap(\.fileExtensions))

    /// The format a file-name extension stands for (case-insensitive), or nil.
    public init?(fileExtension: String) {
        let lowered = fileExtension.lowercased()
        guard let format = Self.allCases.first(where: { $0.fileExtensions.contains(lowered) }) else { return nil }
        self = format
    }

    /// The format identified by a file's leading bytes, or nil when none matches.
    public init?(signature bytes: some Collection<UInt8>) {
        let head = Array(bytes.prefix(8))
        if head.count >= 8, head == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] {
            self = .png
        } else if head.count >= 3, head[0] == 0xFF, head[1] == 0xD8, head[2] == 0xFF {
            self = .jpeg
        } else if head.count >= 2, head[0] == 0x42, head[1] == 0x4D {
            self = .bmp
        } else {
            return nil
        }
    }

    /// A name for formats that are recognised by their signature but not supported, for messages.
    static func unsupportedFormatName(signature bytes: [UInt8]) -> String? {
        let head = Array(bytes.prefix(12))
        func starts(with prefix: [UInt8]) -> Bool { head.count >= prefix.count && Array(head.prefix(prefix.count)) == prefix }
        if starts(with: Array("GIF8".utf8)) { return "GIF" }
        if starts(with: [0x49, 0x49, 0x2A, 0x00]) || starts(with: [0x4D, 0x4D, 0x00, 0x2A]) { return "TIFF" }
        if starts(with: Array("RIFF".utf8)), head.count >= 12, Array(head[8..<12]) == Array("WEBP".utf8) { return "WebP" }
        if head.count >= 12, Array(head[4..<12]) == Array("ftypavif".utf8) || Array(head[4..<12]) == Array("ftypheic".utf8) { return "HEIF/AVIF" }
        if starts(with: [0xFF, 0x4F, 0xFF, 0x51]) || starts(with: [0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50]) { return "JPEG 2000" }
        return nil
    }
}
