import Foundation

/// Uncompressed Windows bitmaps: 1/4/8-bit palette, 24-bit BGR and 32-bit BGRX/BGRA.
enum BMPCodec {
    private static func u16(_ b: [UInt8], _ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
    private static func u32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
    }
    private static func i32(_ b: [UInt8], _ o: Int) -> Int { Int(Int32(bitPattern: u32(b, o))) }

    /// Width and height from the headers alone.
    static func dimensions(_ bytes: [UInt8]) throws(CodecFailure) -> (width: Int, height: Int) {
        let header = try parseHeader(bytes)
        return (header.width, header.height)
    }

    private struct Header {
        var width: Int
        var height: Int
        var topDown: Bool
        var bitsPerPixel: Int
        var compression: UInt32
        var pixelOffset: Int
        var dibSize: Int
        var paletteOffset: Int
        var paletteEntrySize: Int
        var paletteCount: Int
    }

    private static func parseHeader(_ bytes: [UInt8]) throws(CodecFailure) -> Header {
        guard bytes.count >= 26, bytes[0] == 0x42, bytes[1] == 0x4D else {
            throw CodecFailure(kind: .corrupt, reason: bytes.count < 26 ? "truncated BMP header" : "not a BMP file (bad signature)")
        }
        let pixelOffset = Int(u32(bytes, 10))
        let dibSize = Int(u32(bytes, 14))
        var header: Header
        if dibSize == 12 {
            header = Header(width: u16(bytes, 18), height: u16(bytes, 20), topDown: false, bitsPerPixel: u16(bytes, 24),
                            compression: 0, pixelOffset: pixelOffset, dibSize: dibSize, paletteOffset: 26,
                            paletteEntrySize: 3, paletteCount: 0)
        } else if dibSize >= 40 {
            guard bytes.count >= 14 + 40 else { throw CodecFailure(kind: .corrupt, reason: "truncated BMP header") }
            let rawHeight = i32(bytes, 22)
            let compression = u32(bytes, 30)
            var paletteOffset = 14 + dibSize
            if dibSize == 40 && compression == 3 { paletteOffset += 12 }
            header = Header(width: i32(bytes, 18), height: abs(rawHeight), topDown: rawHeight < 0,
                            bitsPerPixel: u16(bytes, 28), compression: compression, pixelOffset: pixelOffset,
                            dibSize: dibSize, paletteOffset: paletteOffset, paletteEntrySize: 4,
                            paletteCount: Int(u32(bytes, 46)))
        } else {
            throw CodecFailure(kind: .corrupt, reason: "invalid BMP header size \(dibSize)")
        }
        guard header.width > 0, header.height > 0 else {
            throw CodecFailure(kind: .corrupt, reason: "BMP dimensions out of range (\(header.width)x\(header.height))")
        }
        guard header.width * header.height <= Image.maximumPixelCount else {
            throw CodecFailure(kind: .unsupported,
                               reason: "BMP image of \(header.width)x\(header.height) pixels is larger than the limit of \(Image.maximumPixelCount) pixels")
        }
        switch header.compression {
        case 0: break
        case 3 where header.bitsPerPixel == 32: break
        case 1, 2: throw CodecFailure(kind: .unsupported, reason: "RLE-compressed BMP is not supported")
        default: throw CodecFailure(kind: .unsupported, reason: "BMP compression \(header.compression) is not supported")
        }
        guard [1, 4, 8, 24, 32].contains(header.bitsPerPixel) else {
            throw CodecFailure(kind: .unsupported, reason: "\(header.bitsPerPixel)-bit BMP is not supported (1, 4, 8, 24 and 32 are)")
        }
        return header
    }

    static func decode(_ bytes: [UInt8]) throws(CodecFailure) -> DecodedRaster {
        let header = try parseHeader(bytes)
        let (width, height, bpp) = (header.width, header.height, header.bitsPerPixel)
        let rowStride = ((width * bpp + 31) / 32) * 4
        let rowBytes = (width * bpp + 7) / 8
        guard header.pixelOffset >= 14, header.pixelOffset + rowStride * (height - 1) + rowBytes <= bytes.count else {
            throw CodecFailure(kind: .corrupt, reason: "truncated BMP pixel data")
        }

        if bpp <= 8 {
            let available = header.paletteCount == 0 ? 1 << bpp : header.paletteCount
            guard available <= 256, header.paletteOffset + available * header.paletteEntrySize <= bytes.count else {
                throw CodecFailure(kind: .corrupt, reason: "truncated or invalid BMP palette")
            }
            var palette: [(r: UInt16, g: UInt16, b: UInt16)] = []
            for i in 0..<available {
                let o = header.paletteOffset + i * header.paletteEntrySize
                palette.append((UInt16(bytes[o + 2]), UInt16(bytes[o + 1]), UInt16(bytes[o])))
            }
            let isGray = palette.allSatisfy { $0.r == $0.g && $0.g == $0.b }
            let channels = isGray ? 1 : 3
            var samples = [UInt16](repeating: 0, count: width * height * channels)
            let mask = (1 << bpp) - 1
            for y in 0..<height {
                let row = header.pixelOffset + (header.topDown ? y : height - 1 - y) * rowStride
                for x in 0..<width {
                    let bit = x * bpp
                    let index = (Int(bytes[row + bit / 8]) >> (8 - bpp - bit % 8)) & mask
                    guard index < palette.count else {
                        throw CodecFailure(kind: .corrupt, reason: "BMP palette index \(index) out of range (\(palette.count) entries)")
                    }
                    let entry = palette[index]
                    let o = (y * width + x) * channels
                    if isGray {
                        samples[o] = entry.r
                    } else {
                        samples[o] = entry.r
                        samples[o + 1] = entry.g
                        samples[o + 2] = entry.b
                    }
                }
            }
            return DecodedRaster(width: width, height: height, channels: channels, bitDepth: 8, isPaletteIndices: false, samples: samples)
        }

        let bytesPerPixel = bpp / 8
        if header.compression == 3 {
            guard bytes.count >= 66, u32(bytes, 54) == 0x00FF_0000, u32(bytes, 58) == 0x0000_FF00, u32(bytes, 62) == 0x0000_00FF else {
                throw CodecFailure(kind: .unsupported, reason: "BMP with non-standard bit-field masks is not supported")
            }
        }
        // 32-bit: the fourth byte is alpha only when the header declares an alpha mask and it is used.
        var useAlpha = false
        if bpp == 32, header.dibSize >= 56, bytes.count >= 70, u32(bytes, 66) == 0xFF00_0000 {
            outer: for y in 0..<height {
                let row = header.pixelOffset + y * rowStride
                for x in 0..<width where bytes[row + x * 4 + 3] != 0 {
                    useAlpha = true
                    break outer
                }
            }
        }
        let channels = useAlpha ? 4 : 3
        var samples = [UInt16](repeating: 0, count: width * height * channels)
        for y in 0..<height {
            let row = header.pixelOffset + (header.topDown ? y : height - 1 - y) * rowStride
            for x in 0..<width {
                let s = row + x * bytesPerPixel
                let o = (y * width + x) * channels
                samples[o] = UInt16(bytes[s + 2])
                samples[o + 1] = UInt16(bytes[s + 1])
                samples[o + 2] = UInt16(bytes[s])
                if useAlpha { samples[o + 3] = UInt16(bytes[s + 3]) }
            }
        }
        return DecodedRaster(width: width, height: height, channels: channels, bitDepth: 8, isPaletteIndices: false, samples: samples)
    }

    /// An uncompressed bottom-up BMP: 8-bit with a gray palette for one channel, 24-bit for
    /// three, 32-bit BGRA (V4 header with an alpha mask) for four. Samples are interleaved 8-bit.
    static func encode(samples: [UInt8], width: Int, height: Int, channels: Int) -> Data {
        precondition([1, 3, 4].contains(channels), "BMP encoder: 1, 3 or 4 channels")
        let bpp = channels == 1 ? 8 : channels * 8
        let dibSize = channels == 4 ? 108 : 40
        let paletteBytes = channels == 1 ? 256 * 4 : 0
        let rowStride = ((width * bpp + 31) / 32) * 4
        let pixelOffset = 14 + dibSize + paletteBytes
        let fileSize = pixelOffset + rowStride * height
        var out = [UInt8](repeating: 0, count: fileSize)
        func put16(_ value: Int, _ o: Int) { out[o] = UInt8(value & 0xFF); out[o + 1] = UInt8((value >> 8) & 0xFF) }
        func put32(_ value: UInt32, _ o: Int) { for k in 0..<4 { out[o + k] = UInt8((value >> (8 * UInt32(k))) & 0xFF) } }
        out[0] = 0x42
        out[1] = 0x4D
        put32(UInt32(fileSize), 2)
        put32(UInt32(pixelOffset), 10)
        put32(UInt32(dibSize), 14)
        put32(UInt32(width), 18)
        put32(UInt32(height), 22)
        put16(1, 26)
        put16(bpp, 28)
        put32(channels == 4 ? 3 : 0, 30)
        put32(UInt32(rowStride * height), 34)
        put32(2835, 38)
        put32(2835, 42)
        if channels == 4 {
            put32(0x00FF_0000, 54)
            put32(0x0000_FF00, 58)
            put32(0x0000_00FF, 62)
            put32(0xFF00_0000, 66)
            put32(0x5769_6E20, 70)  // 'Win ' colour space
        }
        if channels == 1 {
            for i in 0..<256 {
                let o = 14 + dibSize + i * 4
                out[o] = UInt8(i)
                out[o + 1] = UInt8(i)
                out[o + 2] = UInt8(i)
            }
        }
        for y in 0..<height {
            let row = pixelOffset + (height - 1 - y) * rowStride
            for x in 0..<width {
                let s = (y * width + x) * channels
                switch channels {
                case 1:
                    out[row + x] = samples[s]
                case 3:
                    out[row + x * 3] = samples[s + 2]
                    out[row + x * 3 + 1] = samples[s + 1]
                    out[row + x * 3 + 2] = samples[s]
                default:
                    out[row + x * 4] = samples[s + 2]
                    out[row + x * 4 + 1] = samples[s + 1]
                    out[row + x * 4 + 2] = samples[s]
                    out[row + x * 4 + 3] = samples[s + 3]
                }
            }
        }
        return Data(out)
    }
}
