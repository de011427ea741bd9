import Foundation
import FuseKitImage
import Testing

/// A fresh temporary folder, removed by the caller's `defer`.
func temporaryFolder(_ name: String = #function) throws -> URL {
    let safe = name.filter { $0.isLetter || $0.isNumber }
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("fusekit-image-\(safe)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// The shared data folder: `../shared/data` beside the repository (or `FUSEKIT_SHARED_DATA`).
func sharedDataFolder() -> URL {
    if let override = ProcessInfo.processInfo.environment["FUSEKIT_SHARED_DATA"] {
        return URL(fileURLWithPath: override)
    }
    let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return repository.deletingLastPathComponent().appendingPathComponent("shared/data")
}

/// Whether the TNO pairs of the shared data folder are there (tests that read them are skipped
/// with this reason otherwise).
let sharedTNOAvailable = FileManager.default.fileExists(atPath: sharedDataFolder().appendingPathComponent("tno/average-fusion-metrics.json").path)
let sharedTNOMissing: Comment = "needs the TNO pairs in ../shared/data/tno (or FUSEKIT_SHARED_DATA), which are absent"

/// A deterministic test image with all levels exercised.
func patternImage(width: Int, height: Int, channels: Int, levels: Float = 255) -> Image {
    var pixels = [Float](repeating: 0, count: width * height * channels)
    for c in 0..<channels {
        for y in 0..<height {
            for x in 0..<width {
                let v = (x * 37 + y * 101 + c * 53 + x * y * 7) % (Int(levels) + 1)
                pixels[(c * height + y) * width + x] = Float(v) / levels
            }
        }
    }
    return Image(width: width, height: height, channels: channels, bitDepth: levels > 255 ? 16 : 8, pixels: pixels)
}

@Suite("Image files")
struct ImageIOTests {
    @Test("8-bit PNG round-trips gray, gray+alpha, RGB and RGBA exactly", arguments: [1, 2, 3, 4])
    func png8RoundTrip(channels: Int) throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let image = patternImage(width: 23, height: 17, channels: channels)
        let url = folder.appendingPathComponent("image.png")
        try image.write(to: url)
        let read = try Image(contentsOf: url)
        #expect(read.width == 23 && read.height == 17 && read.channels == channels && read.bitDepth == 8)
        #expect(read.pixels == image.pixels)
    }

    @Test("16-bit PNG round-trips gray and RGB exactly", arguments: [1, 3, 4])
    func png16RoundTrip(channels: Int) throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let image = patternImage(width: 19, height: 11, channels: channels, levels: 65535)
        let url = folder.appendingPathComponent("deep.png")
        try image.write(to: url, bitDepth: 16)
        let read = try Image(contentsOf: url)
        #expect(read.bitDepth == 16 && read.channels == channels)
        #expect(read.pixels == image.pixels)
    }

    @Test("palette PNG reads as RGB colours and as class indices")
    func paletteRoundTrip() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let palette = [PaletteColor(red: 0, green: 0, blue: 0), PaletteColor(red: 200, green: 10, blue: 30),
                       PaletteColor(red: 5, green: 250, blue: 60), PaletteColor(red: 90, green: 80, blue: 255)]
        let values = (0..<(9 * 7)).map { Int32(($0 * 5) % 4) }
        let mask = LabelMap(width: 9, height: 7, values: values)
        let url = folder.appendingPathComponent("palette.png")
        try mask.write(to: url, palette: palette)

        let indices = try LabelMap(contentsOf: url)
        #expect(indices == mask)
        let colours = try Image(contentsOf: url)
        #expect(colours.channels == 3)
        for (i, index) in values.enumerated() {
            let colour = palette[Int(index)]
            #expect(colours.pixels[i] == Float(colour.red) / 255)
            #expect(colours.pixels[63 + i] == Float(colour.green) / 255)
            #expect(colours.pixels[126 + i] == Float(colour.blue) / 255)
        }
    }

    @Test("gray label PNG (8 and 16-bit) round-trips class indices")
    func labelRoundTrip() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let small = LabelMap(width: 5, height: 4, values: (0..<20).map { Int32($0 % 9 == 0 ? 255 : $0 % 9) })
        try small.write(to: folder.appendingPathComponent("a.png"))
        #expect(try LabelMap(contentsOf: folder.appendingPathComponent("a.png")) == small)
        let large = LabelMap(width: 5, height: 4, values: (0..<20).map { Int32($0 * 1000) })
        try large.write(to: folder.appendingPathComponent("b.png"))
        #expect(try LabelMap(contentsOf: folder.appendingPathComponent("b.png")) == large)
    }

    @Test("a colour image is not accepted as a label map")
    func colourLabelRejected() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("colour.png")
        try patternImage(width: 4, height: 4, channels: 3).write(to: url)
        #expect {
            try LabelMap(contentsOf: url)
        } throws: { error in
            guard let error = error as? ImageIOError, case .invalidContent = error else { return false }
            return error.description.contains(url.path)
        }
    }

    @Test("JPEG round-trips within a tolerance, gray and colour", arguments: [1, 3])
    func jpegRoundTrip(channels: Int) throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        // Smooth content compresses well.
        var image = Image(width: 40, height: 24, channels: channels)
        for c in 0..<channels {
            for y in 0..<24 {
                for x in 0..<40 { image[x: x, y: y, channel: c] = 0.2 + 0.5 * Float(x) / 40 + 0.2 * Float(y) / 24 - 0.05 * Float(c) }
            }
        }
        let url = folder.appendingPathComponent("photo.jpg")
        try image.write(to: url, quality: 95)
        let read = try Image(contentsOf: url)
        #expect(read.channels == channels && read.width == 40 && read.height == 24)
        let maxError = zip(read.pixels, image.pixels).map { abs($0 - $1) }.max()!
        #expect(maxError < 0.04)
        let size = try Image.dimensions(ofFileAt: url)
        #expect(size.width == 40 && size.height == 24)
    }

    @Test("BMP: 8-bit gray, 24-bit and 32-bit round-trip; header dimensions", arguments: [1, 3, 4])
    func bmpRoundTrip(channels: Int) throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let image = patternImage(width: 13, height: 6, channels: channels)
        let url = folder.appendingPathComponent("picture.bmp")
        try image.write(to: url)
        let read = try Image(contentsOf: url)
        #expect(read.channels == channels)
        #expect(read.pixels == image.pixels)
        let size = try Image.dimensions(ofFileAt: url)
        #expect(size.width == 13 && size.height == 6)
    }

    @Test("a hand-made 4-bit palette BMP (top-down) decodes")
    func bmpFourBit() throws {
        // 3x2 image, 4 bits per pixel, top-down (negative height), palette of 2 colours.
        var bytes: [UInt8] = Array("BM".utf8) + [UInt8](repeating: 0, count: 12)
        func le32(_ v: Int32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        func le16(_ v: Int16) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        let pixelOffset = 14 + 40 + 2 * 4
        bytes.replaceSubrange(10..<14, with: le32(Int32(pixelOffset)))
        bytes += le32(40) + le32(3) + le32(-2) + le16(1) + le16(4) + le32(0) + le32(0) + le32(0) + le32(0) + le32(2) + le32(0)
        bytes += [10, 20, 30, 0, 200, 150, 100, 0]  // BGRX: colour 0 = (30, 20, 10), colour 1 = (100, 150, 200)
        bytes += [0x01, 0x00, 0, 0]  // row 0: 0, 1, 0
        bytes += [0x10, 0x10, 0, 0]  // row 1: 1, 0, 1
        let image = try Image(encoded: Data(bytes), path: "hand.bmp")
        #expect(image.channels == 3 && image.width == 3 && image.height == 2)
        #expect(image[x: 1, y: 0, channel: 0] == Float(100) / 255)
        #expect(image[x: 0, y: 0, channel: 0] == Float(30) / 255)
        #expect(image[x: 0, y: 1, channel: 2] == Float(200) / 255)
        #expect(image[x: 1, y: 1, channel: 1] == Float(20) / 255)
    }

    @Test("reads a real TNO PNG: 768x576, three equal channels", .enabled(if: sharedTNOAvailable, sharedTNOMissing))
    func readsTNO() throws {
        let url = sharedDataFolder().appendingPathComponent("tno/ir/01.png")
        let image = try Image(contentsOf: url)
        #expect(image.width == 768 && image.height == 576 && image.channels == 3)
        let plane = image.planeSize
        #expect((0..<plane).allSatisfy { image.pixels[$0] == image.pixels[plane + $0] && image.pixels[$0] == image.pixels[2 * plane + $0] })
        let gray = image.grayLevels()
        #expect(gray.values[1000] == (image.pixels[1000] * 255).rounded())
        let fused = try Image(contentsOf: sharedDataFolder().appendingPathComponent("tno/average/01.png"))
        #expect(fused.channels == 1)
        let size = try Image.dimensions(ofFileAt: url)
        #expect(size.width == 768 && size.height == 576)
    }

    @Test("writing to a missing folder or with an unknown extension fails with the path")
    func writeErrors() throws {
        let image = patternImage(width: 3, height: 3, channels: 1)
        let missing = URL(fileURLWithPath: "/nonexistent-fusekit-folder/x.png")
        #expect { try image.write(to: missing) } throws: { error in
            (error as? ImageIOError)?.description.contains("/nonexistent-fusekit-folder/x.png") == true
        }
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect { try image.write(to: folder.appendingPathComponent("x.tiff")) } throws: { error in
            guard let error = error as? ImageIOError, case .writeFailed = error else { return false }
            return error.reason.contains("extension")
        }
    }
}

@Suite("Bad image files")
struct BadImageFileTests {
    /// Reading the file fails with a message naming it; `headerToo`: reading only its size fails too.
    static func expectError(reading url: URL, containing words: [String], headerToo: Bool = true) {
        var readers: [() throws -> Void] = [{ _ = try Image(contentsOf: url) }, { _ = try LabelMap(contentsOf: url) }]
        if headerToo { readers.append { _ = try Image.dimensions(ofFileAt: url) } }
        for read in readers {
            do {
                try read()
                Issue.record("reading \(url.path) did not fail")
            } catch let error as ImageIOError {
                let text = error.description
                #expect(text.contains(url.path), "message does not name the file: \(text)")
                for word in words { #expect(text.lowercased().contains(word), "'\(word)' not in: \(text)") }
            } catch {
                Issue.record("unexpected error type: \(error)")
            }
        }
    }

    @Test("a missing file")
    func missing() {
        Self.expectError(reading: URL(fileURLWithPath: "/tmp/fusekit-no-such-image-\(UUID().uuidString).png"), containing: ["no such file"])
    }

    @Test("truncated PNG files at several lengths")
    func truncatedPNG() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let data = try patternImage(width: 64, height: 48, channels: 3).encoded(as: .png)
        for length in [4, 20, 40, data.count / 2, data.count - 13] {
            let url = folder.appendingPathComponent("cut\(length).png")
            try data.prefix(length).write(to: url)
            do {
                _ = try Image(contentsOf: url)
                Issue.record("truncated PNG of \(length) bytes was read")
            } catch {
                #expect(error.description.contains(url.path))
                if length > 40 { #expect(error.description.contains("truncated"), "\(error)") }
            }
        }
    }

    @Test("truncated JPEG")
    func truncatedJPEG() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let data = try patternImage(width: 64, height: 48, channels: 3).encoded(as: .jpeg, quality: 90)
        let url = folder.appendingPathComponent("cut.jpg")
        try data.prefix(data.count / 2).write(to: url)
        do {
            _ = try Image(contentsOf: url)
            Issue.record("truncated JPEG was read")
        } catch {
            #expect(error.description.contains(url.path))
            #expect(error.description.contains("truncated"), "\(error)")
        }
    }

    @Test("truncated BMP")
    func truncatedBMP() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let data = try patternImage(width: 20, height: 10, channels: 3).encoded(as: .bmp)
        let url = folder.appendingPathComponent("cut.bmp")
        try data.prefix(data.count - 30).write(to: url)
        Self.expectError(reading: url, containing: ["truncated"], headerToo: false)
    }

    @Test("garbage bytes with image extensions")
    func garbage() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        var generator = SystemRandomNumberGenerator()
        let noise = Data((0..<2000).map { _ in UInt8.random(in: 0...255, using: &generator) })
        for name in ["noise.png", "noise.jpg", "noise.bmp"] {
            let url = folder.appendingPathComponent(name)
            try (Data([0x00, 0x11]) + noise).write(to: url)
            Self.expectError(reading: url, containing: [])
        }
        let empty = folder.appendingPathComponent("empty.png")
        try Data().write(to: empty)
        Self.expectError(reading: empty, containing: ["empty"])
    }

    @Test("PNG and JPEG signatures followed by garbage, and a corrupted PNG chunk")
    func corruptAfterSignature() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) + Data(repeating: 0x41, count: 300)
        let jpeg = Data([0xFF, 0xD8, 0xFF, 0xE0]) + Data(repeating: 0x42, count: 300)
        for (name, data) in [("sig.png", png), ("sig.jpg", jpeg)] {
            let url = folder.appendingPathComponent(name)
            try data.write(to: url)
            do {
                _ = try Image(contentsOf: url)
                Issue.record("\(name) was read")
            } catch {
                #expect(error.description.contains(url.path))
                #expect(error.description.contains("lib"), "library reason missing: \(error)")
            }
        }
        // Flip bytes inside the image data of a valid PNG: the CRC check fails.
        var valid = try patternImage(width: 32, height: 32, channels: 1).encoded(as: .png)
        for i in 60..<80 { valid[i] ^= 0x5A }
        let url = folder.appendingPathComponent("crc.png")
        try valid.write(to: url)
        Self.expectError(reading: url, containing: ["corrupt"], headerToo: false)
    }

    @Test("unsupported formats are named")
    func unsupported() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let gif = folder.appendingPathComponent("anim.gif")
        try Data("GIF89a".utf8 + [UInt8](repeating: 0, count: 40)).write(to: gif)
        Self.expectError(reading: gif, containing: ["gif", "not supported"])
        let tiff = folder.appendingPathComponent("scan.png")
        try Data([0x49, 0x49, 0x2A, 0x00] + [UInt8](repeating: 0, count: 40)).write(to: tiff)
        Self.expectError(reading: tiff, containing: ["tiff"])
    }

    @Test("a folder instead of a file")
    func folder() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        Self.expectError(reading: folder, containing: ["directory"])
    }
}
