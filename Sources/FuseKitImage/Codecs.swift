import CImageCodecs
import Foundation

/// Integer samples as decoded from a file, interleaved per pixel, rows top to bottom.
struct DecodedRaster {
    var width: Int
    var height: Int
    var channels: Int
    var bitDepth: Int
    /// True when the single channel holds palette indices rather than gray levels.
    var isPaletteIndices: Bool
    var samples: [UInt16]

    var maxValue: Float { bitDepth == 16 ? 65535 : 255 }
}

/// A codec failure before the path is known; the callers attach the path.
struct CodecFailure: Error {
    enum Kind { case corrupt, unsupported }
    var kind: Kind
    var reason: String

    func imageIOError(path: String) -> ImageIOError {
        switch kind {
        case .corrupt: return .corrupt(path: path, reason: reason)
        case .unsupported: return .unsupportedFormat(path: path, reason: reason)
        }
    }
}

enum Codecs {
    private static let messageCapacity = 512

    private static func callWithMessage(_ body: (UnsafeMutablePointer<CChar>, Int) -> Int32) -> (ok: Bool, message: String) {
        let (status, message) = callWithStatus(body)
        return (status == FK_CODEC_OK, message)
    }

    private static func callWithStatus(_ body: (UnsafeMutablePointer<CChar>, Int) -> Int32) -> (status: Int32, message: String) {
        var buffer = [CChar](repeating: 0, count: messageCapacity)
        let status = buffer.withUnsafeMutableBufferPointer { body($0.baseAddress!, messageCapacity) }
        let message = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return (status, message)
    }

    /// The failure for a decoder's status, or nil on success.
    private static func failure(_ status: Int32, _ message: String) -> CodecFailure? {
        switch status {
        case FK_CODEC_OK: return nil
        case FK_CODEC_UNSUPPORTED: return CodecFailure(kind: .unsupported, reason: message)
        default: return CodecFailure(kind: .corrupt, reason: message)
        }
    }

    private static func raster(from image: FKDecodedImage) -> DecodedRaster {
        let count = Int(image.width) * Int(image.height) * Int(image.channels)
        var samples = [UInt16](repeating: 0, count: count)
        samples.withUnsafeMutableBufferPointer { destination in
            if image.bit_depth == 16 {
                let source = image.pixels.assumingMemoryBound(to: UInt16.self)
                destination.baseAddress!.update(from: source, count: count)
            } else {
                let source = image.pixels.assumingMemoryBound(to: UInt8.self)
                for i in 0..<count { destination[i] = UInt16(source[i]) }
            }
        }
        return DecodedRaster(width: Int(image.width), height: Int(image.height), channels: Int(image.channels),
                             bitDepth: Int(image.bit_depth), isPaletteIndices: image.is_palette_indices != 0, samples: samples)
    }

    // MARK: Decoding

    /// Decodes a file's bytes in the format its signature names.
    static func decode(_ data: Data, keepPaletteIndices: Bool = false, pathExtension: String = "") throws(CodecFailure) -> DecodedRaster {
        let bytes = [UInt8](data)
        guard !bytes.isEmpty else { throw CodecFailure(kind: .corrupt, reason: "empty file") }
        guard let format = ImageFileFormat(signature: bytes) else {
            throw unrecognised(bytes, pathExtension: pathExtension)
        }
        switch format {
        case .png: return try decodePNG(bytes, keepPaletteIndices: keepPaletteIndices)
        case .jpeg: return try decodeJPEG(bytes)
        case .bmp: return try BMPCodec.decode(bytes)
        }
    }

    /// The failure for content without a known signature: an unsupported format when it has
    /// another format's signature, a corrupt file when its name claims a supported format.
    static func unrecognised(_ bytes: [UInt8], pathExtension: String) -> CodecFailure {
        if let name = ImageFileFormat.unsupportedFormatName(signature: bytes) {
            return CodecFailure(kind: .unsupported, reason: "\(name) images are not supported (PNG, JPEG and BMP are)")
        }
        if let claimed = ImageFileFormat(fileExtension: pathExtension) {
            return CodecFailure(kind: .corrupt, reason: "not a valid \(claimed.rawValue.uppercased()) file (unrecognised content)")
        }
        return CodecFailure(kind: .unsupported, reason: "unrecognised content: not a PNG, JPEG or BMP file")
    }

    static func decodePNG(_ bytes: [UInt8], keepPaletteIndices: Bool) throws(CodecFailure) -> DecodedRaster {
        var decoded = FKDecodedImage()
        let result = bytes.withUnsafeBufferPointer { input in
            callWithStatus { message, capacity in
                fk_png_decode(input.baseAddress, input.count, keepPaletteIndices ? 1 : 0, Image.maximumPixelCount,
                              &decoded, message, capacity)
            }
        }
        if let failure = failure(result.status, result.message) { throw failure }
        defer { fk_codec_free(decoded.pixels) }
        return raster(from: decoded)
    }

    static func decodeJPEG(_ bytes: [UInt8]) throws(CodecFailure) -> DecodedRaster {
        var decoded = FKDecodedImage()
        let result = bytes.withUnsafeBufferPointer { input in
            callWithStatus { message, capacity in
                fk_jpeg_decode(input.baseAddress, input.count, Image.maximumPixelCount, &decoded, message, capacity)
            }
        }
        if let failure = failure(result.status, result.message) { throw failure }
        defer { fk_codec_free(decoded.pixels) }
        return raster(from: decoded)
    }

    // MARK: Encoding

    /// PNG bytes for interleaved samples (8-bit values in `UInt16` when `bitDepth` is 8).
    static func encodePNG(samples: [UInt16], width: Int, height: Int, channels: Int, bitDepth: Int,
                          palette: [UInt8] = []) throws(CodecFailure) -> Data {
        var output: UnsafeMutablePointer<UInt8>?
        var outputSize = 0
        let result: (ok: Bool, message: String)
        if bitDepth == 16 {
            result = samples.withUnsafeBufferPointer { input in
                palette.withUnsafeBufferPointer { paletteBytes in
                    callWithMessage { message, capacity in
                        fk_png_encode(input.baseAddress, Int32(width), Int32(height), Int32(channels), 16,
                                      paletteBytes.baseAddress, Int32(palette.count / 3), &output, &outputSize, message, capacity)
                    }
                }
            }
        } else {
            let narrow = samples.map { UInt8(truncatingIfNeeded: $0) }
            result = narrow.withUnsafeBufferPointer { input in
                palette.withUnsafeBufferPointer { paletteBytes in
                    callWithMessage { message, capacity in
                        fk_png_encode(input.baseAddress, Int32(width), Int32(height), Int32(channels), 8,
                                      paletteBytes.baseAddress, Int32(palette.count / 3), &output, &outputSize, message, capacity)
                    }
                }
            }
        }
        guard result.ok, let output else { throw CodecFailure(kind: .corrupt, reason: result.message) }
        defer { fk_codec_free(output) }
        return Data(bytes: output, count: outputSize)
    }

    /// JPEG bytes for interleaved 8-bit gray or RGB samples.
    static func encodeJPEG(samples: [UInt8], width: Int, height: Int, channels: Int, quality: Int) throws(CodecFailure) -> Data {
        var output: UnsafeMutablePointer<UInt8>?
        var outputSize = 0
        let result = samples.withUnsafeBufferPointer { input in
            callWithMessage { message, capacity in
                fk_jpeg_encode(input.baseAddress, Int32(width), Int32(height), Int32(channels), Int32(quality),
                               &output, &outputSize, message, capacity)
            }
        }
        guard result.ok, let output else { throw CodecFailure(kind: .corrupt, reason: result.message) }
        defer { fk_codec_free(output) }
        return Data(bytes: output, count: outputSize)
    }
}

// MARK: - Files

/// Whole-file reads for FuseKit's file readers (images, label files).
public enum FileContents {
    /// The bytes of a file, read through `FileHandle`: Foundation's `Data(contentsOf:)` and
    /// `String(contentsOf:)` leak a 4 KB buffer for every empty file they read (Swift 6.3.1 on
    /// Linux), and datasets hold many empty files (the YOLO label file of an image without objects).
    public static func bytes(of url: URL) throws -> Data {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        return try handle.readToEnd() ?? Data()
    }
}

enum FileAccess {
    /// The path of an existing regular file, or an error naming it.
    static func existingFile(_ url: URL) throws(ImageIOError) -> String {
        let path = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .fileNotFound(path: path)
        }
        if isDirectory.boolValue { throw .unreadable(path: path, reason: "is a directory") }
        return path
    }

    /// The bytes of a file, with errors that name it.
    static func read(_ url: URL) throws(ImageIOError) -> Data {
        let path = try existingFile(url)
        do {
            return try FileContents.bytes(of: url)
        } catch {
            throw .unreadable(path: path, reason: error.localizedDescription)
        }
    }

    /// At most the first `count` bytes of a file, with errors that name it.
    static func readPrefix(_ url: URL, count: Int) throws(ImageIOError) -> Data {
        let path = try existingFile(url)
        do {
            let handle = try FileHandle(forReadingFrom: url)
            defer { try? handle.close() }
            return try handle.read(upToCount: count) ?? Data()
        } catch {
            throw .unreadable(path: path, reason: error.localizedDescription)
        }
    }

    /// Writes bytes atomically, with errors that name the file.
    static func write(_ data: Data, to url: URL) throws(ImageIOError) {
        do {
            try data.write(to: url, options: .atomic)
        } catch {
            let parent = url.deletingLastPathComponent().path
            var isDirectory: ObjCBool = false
            if !FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory) || !isDirectory.boolValue {
                throw .writeFailed(path: url.path, reason: "folder \(parent) does not exist")
            }
            throw .writeFailed(path: url.path, reason: error.localizedDescription)
        }
    }
}
