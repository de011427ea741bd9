import Foundation

extension Image {
    /// Reads a PNG, JPEG or BMP file (the format is taken from the file's content, not its name).
    ///
    /// - Throws: ``ImageIOError`` naming the file and the reason for a missing, unreadable,
    ///   truncated, corrupt or unsupported file. Library errors never abort the process.
    public init(contentsOf url: URL) throws(ImageIOError) {
        let data = try FileAccess.read(url)
        let raster: DecodedRaster
        do {
            raster = try Codecs.decode(data, pathExtension: url.pathExtension)
        } catch {
            throw error.imageIOError(path: url.path)
        }
        self.init(raster: raster)
    }

    /// Reads a PNG, JPEG or BMP file at a path; see ``init(contentsOf:)``.
    public init(contentsOfFile path: String) throws(ImageIOError) {
        try self.init(contentsOf: URL(fileURLWithPath: path))
    }

    /// Decodes an encoded PNG, JPEG or BMP held in memory; `path` names it in errors.
    public init(encoded data: Data, path: String = "<memory>") throws(ImageIOError) {
        let raster: DecodedRaster
        do {
            raster = try Codecs.decode(data)
        } catch {
            throw error.imageIOError(path: path)
        }
        self.init(raster: raster)
    }

    init(raster: DecodedRaster) {
        let (width, height, channels) = (raster.width, raster.height, raster.channels)
        let plane = width * height
        // Exactly level / maxValue for every level.
        let maxValue = raster.maxValue
        let table = (0...Int(maxValue)).map { Float($0) / maxValue }
        var pixels = [Float](repeating: 0, count: plane * channels)
        raster.samples.withUnsafeBufferPointer { source in
            table.withUnsafeBufferPointer { table in
                pixels.withUnsafeMutableBufferPointer { destination in
                    for c in 0..<channels {
                        var s = c
                        let base = c * plane
                        for i in 0..<plane {
                            destination[base + i] = table[Int(source[s])]
                            s += channels
                        }
                    }
                }
            }
        }
        self.init(width: width, height: height, channels: channels, bitDepth: raster.bitDepth, pixels: pixels)
    }

    /// Width and height of an image file, read from its header without decoding the pixels.
    public static func dimensions(ofFileAt url: URL) throws(ImageIOError) -> (width: Int, height: Int) {
        // The headers are at the start; JPEG metadata segments can push the frame header further.
        let prefixLength = 1 << 16
        let prefix = try FileAccess.readPrefix(url, count: prefixLength)
        do {
            return try HeaderReader.dimensions([UInt8](prefix), pathExtension: url.pathExtension)
        } catch {
            guard prefix.count == prefixLength else { throw error.imageIOError(path: url.path) }
        }
        let data = try FileAccess.read(url)
        do {
            return try HeaderReader.dimensions([UInt8](data), pathExtension: url.pathExtension)
        } catch {
            throw error.imageIOError(path: url.path)
        }
    }

    // MARK: Writing

    /// Writes the image; the format comes from `format`, or else from the file-name extension.
    ///
    /// Samples are clamped to [0, 1] and rounded to the nearest level. PNG keeps up to four
    /// channels at `bitDepth` 8 or 16; JPEG and BMP are 8-bit, and JPEG drops alpha.
    /// - Parameters:
    ///   - bitDepth: 8 or 16 (PNG only).
    ///   - quality: JPEG quality, 1 to 100.
    public func write(to url: URL, format: ImageFileFormat? = nil, bitDepth: Int = 8, quality: Int = 95) throws(ImageIOError) {
        guard let chosen = format ?? ImageFileFormat(fileExtension: url.pathExtension) else {
            throw .writeFailed(path: url.path, reason: "unknown image extension '.\(url.pathExtension)' (use png, jpg, jpeg or bmp)")
        }
        let data: Data
        do {
            data = try encoded(as: chosen, bitDepth: bitDepth, quality: quality)
        } catch {
            throw .writeFailed(path: url.path, reason: error.reason)
        }
        try FileAccess.write(data, to: url)
    }

    /// The image encoded in a file format; see ``write(to:format:bitDepth:quality:)``.
    public func encoded(as format: ImageFileFormat, bitDepth: Int = 8, quality: Int = 95) throws(ImageIOError) -> Data {
        guard bitDepth == 8 || (bitDepth == 16 && format == .png) else {
            throw .writeFailed(path: "<memory>", reason: "\(bitDepth)-bit \(format.rawValue.uppercased()) is not supported (PNG takes 8 or 16 bits, JPEG and BMP 8)")
        }
        do {
            switch format {
            case .png:
                let samples = interleavedSamples(maxValue: bitDepth == 16 ? 65535 : 255, channelCount: channels)
                return try Codecs.encodePNG(samples: samples, width: width, height: height, channels: channels, bitDepth: bitDepth)
            case .jpeg:
                let kept = channels >= 3 ? 3 : 1
                let samples = interleavedSamples(maxValue: 255, channelCount: kept).map { UInt8($0) }
                return try Codecs.encodeJPEG(samples: samples, width: width, height: height, channels: kept,
                                             quality: min(max(quality, 1), 100))
            case .bmp:
                let kept = channels == 2 ? 1 : channels
                let samples = interleavedSamples(maxValue: 255, channelCount: kept).map { UInt8($0) }
                return BMPCodec.encode(samples: samples, width: width, height: height, channels: kept)
            }
        } catch {
            throw error.imageIOError(path: "<memory>")
        }
    }

    /// The first `channelCount` channels, interleaved, clamped and rounded to `0...maxValue`.
    func interleavedSamples(maxValue: Float, channelCount: Int) -> [UInt16] {
        let plane = planeSize
        var samples = [UInt16](repeating: 0, count: plane * channelCount)
        pixels.withUnsafeBufferPointer { source in
            samples.withUnsafeMutableBufferPointer { destination in
                for c in 0..<channelCount {
                    let base = c * plane
                    var d = c
                    for i in 0..<plane {
                        let v = source[base + i]
                        let scaled = v.isNaN ? 0 : min(max(v, 0), 1) * maxValue
                        destination[d] = UInt16(scaled.rounded(.toNearestOrEven))
                        d += channelCount
                    }
                }
            }
        }
        return samples
    }
}

/// Reads image dimensions from headers.
enum HeaderReader {
    static func dimensions(_ bytes: [UInt8], pathExtension: String) throws(CodecFailure) -> (width: Int, height: Int) {
        guard !bytes.isEmpty else { throw CodecFailure(kind: .corrupt, reason: "empty file") }
        guard let format = ImageFileFormat(signature: bytes) else {
            throw Codecs.unrecognised(bytes, pathExtension: pathExtension)
        }
        switch format {
        case .png:
            guard bytes.count >= 24, Array(bytes[12..<16]) == Array("IHDR".utf8) else {
                throw CodecFailure(kind: .corrupt, reason: "truncated PNG header")
            }
            func be32(_ o: Int) -> Int { Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3]) }
            return (be32(16), be32(20))
        case .bmp:
            return try BMPCodec.dimensions(bytes)
        case .jpeg:
            var o = 2
            while o + 4 <= bytes.count {
                guard bytes[o] == 0xFF else { throw CodecFailure(kind: .corrupt, reason: "corrupt JPEG marker structure") }
                let marker = bytes[o + 1]
                if marker == 0xFF { o += 1; continue }
                if marker == 0xD8 || marker == 0x01 || (0xD0...0xD7).contains(marker) { o += 2; continue }
                let length = Int(bytes[o + 2]) << 8 | Int(bytes[o + 3])
                let isFrame = (0xC0...0xCF).contains(marker) && marker != 0xC4 && marker != 0xC8 && marker != 0xCC
                if isFrame {
                    guard o + 9 <= bytes.count else { break }
                    let height = Int(bytes[o + 5]) << 8 | Int(bytes[o + 6])
                    let width = Int(bytes[o + 7]) << 8 | Int(bytes[o + 8])
                    return (width, height)
                }
                if marker == 0xD9 || marker == 0xDA { break }
                o += 2 + length
            }
            throw CodecFailure(kind: .corrupt, reason: "truncated JPEG data: no frame header found")
        }
    }
}
