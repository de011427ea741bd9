import Foundation
import FuseKitImage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Inputs found by the fuzz harnesses (Tests/Fuzz) and the defects behind them, kept so that
/// they stay fixed. Each test says what the input did before the fix.
@Suite("Fuzz regressions: image readers")
struct ImageFuzzRegressionTests {
    /// The table-less CRC-32 of PNG chunks.
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    static func be32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }

    /// A PNG whose header claims `width` x `height` (8-bit RGBA) with the image data of a
    /// 1x1 image, every chunk's CRC correct.
    static func pngClaiming(width: UInt32, height: UInt32) throws -> Data {
        let small = [UInt8](try Image(width: 1, height: 1, channels: 4, repeating: 0.5).encoded(as: .png))
        var bytes = small
        let header = be32(width) + be32(height)
        bytes.replaceSubrange(16..<24, with: header)
        bytes.replaceSubrange(29..<33, with: be32(crc32(Array(bytes[12..<29]))))
        return Data(bytes)
    }

    /// The offset of the first JPEG marker `marker` (after `FF`).
    static func offset(ofMarker marker: UInt8, in bytes: [UInt8]) -> Int? {
        (2..<(bytes.count - 1)).first { bytes[$0] == 0xFF && bytes[$0 + 1] == marker }
    }

    static func read(_ data: Data, named name: String) throws -> (decoded: Result<Image, ImageIOError>, header: Result<(width: Int, height: Int), ImageIOError>) {
        let folder = try temporaryFolder(name)
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent(name)
        try data.write(to: url)
        return (Result { () throws(ImageIOError) in try Image(contentsOf: url) },
                Result { () throws(ImageIOError) in try Image.dimensions(ofFileAt: url) })
    }

    /// fuzz-jpeg: a JPEG with stray bytes between two segments (a segment length that does not
    /// match its contents). libjpeg skipped them with a warning and decoded the image, while the
    /// header reader (which decides whether a pair's sizes match) refused the file. libjpeg's
    /// warnings about damaged data are now errors, so both refuse it.
    @Test func strayBytesBetweenJPEGSegmentsAreCorrupt() throws {
        var bytes = [UInt8](try patternImage(width: 16, height: 16, channels: 3).encoded(as: .jpeg))
        let frame = try #require(Self.offset(ofMarker: 0xC0, in: bytes))
        bytes.insert(contentsOf: [0x32, 0x32], at: frame)
        let (decoded, header) = try Self.read(Data(bytes), named: "stray.jpg")
        #expect(throws: ImageIOError.self) { try decoded.get() }
        if case .failure(let error) = decoded {
            #expect(error.description.contains("corrupt JPEG data") && error.description.contains("extraneous bytes"), "\(error)")
        }
        #expect(throws: ImageIOError.self) { try header.get() }
    }

    /// A 100-byte PNG claiming 8000 x 8000 RGBA pixels: the decoder used to allocate the 256 MB
    /// raster before libpng found the data missing. No zlib stream that short inflates to that
    /// many bytes, so it is now refused as truncated before any allocation.
    @Test func pngTooShortForItsSizeIsTruncated() throws {
        let (decoded, header) = try Self.read(try Self.pngClaiming(width: 8000, height: 8000), named: "claims.png")
        if case .failure(let error) = decoded {
            #expect(error.description.contains("truncated PNG data"), "\(error)")
            #expect(error.description.contains("8000x8000"), "\(error)")
        } else {
            Issue.record("a PNG without its pixels was read")
        }
        #expect(try header.get() == (8000, 8000))
    }

    static let hugeTextChunkPNG = """
        iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpWwAAEXRFWHRDb21tZW50AGZ1enogc2VlZN0nfGkAAAAEZ0FNQQAAsY8L/GEFAAAAH0lEQVR42gE0\
        AMv/ABj7U3RyaW5aE2GNAVWaZoDQAYym7jRI7FSLB3ObRmmYAAAAIElEQVSxVgCF+cuQeqct8YXcLLsBlcHOUPwGiGj1WTN0ZlIYttgj/+QAAAAASUVORK5CYII=
        """

    /// fuzz-png: a 4x4 PNG whose tEXt chunk declares 1.5 GB. libpng allocated the declared
    /// length before reading the chunk (the fuzzer's malloc limit caught it), and only then
    /// found the file short (`png_set_chunk_malloc_max` does not cover text chunks). Every
    /// chunk's length is now checked against the file before libpng sees it. Checked in a child
    /// process by its peak virtual size, which the 1.5 GB block raised even untouched; the file
    /// is an error either way.
    @Test func hugeDeclaredChunkIsNotAllocated() async throws {
        let found = try #require(Data(base64Encoded: Self.hugeTextChunkPNG))
        #expect {
            _ = try Image(encoded: found)
        } throws: { error in
            "\(error)".contains("truncated PNG data (chunk 'tEXt' at byte 33 declares 1526726673 bytes, 137 remain)")
        }
        await #expect(processExitsWith: .success) {
            let found = Data(base64Encoded: ImageFuzzRegressionTests.hugeTextChunkPNG)!
            func peakVirtualKB() -> Int {
                let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
                let line = status.split(separator: "\n").first { $0.hasPrefix("VmPeak:") } ?? ""
                return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
            }
            let before = peakVirtualKB()
            let failed = (try? Image(encoded: found)) == nil
            exit(failed && peakVirtualKB() - before < 512 << 10 ? 0 : 1)
        }
    }

    /// Images above ``Image/maximumPixelCount`` are refused as unsupported, naming the size, by
    /// all three decoders (PNG and JPEG used a 4 GB raster limit, BMP 2^28 pixels).
    @Test func imagesAboveThePixelLimitAreUnsupported() throws {
        let side: UInt32 = 8193
        #expect(Int(side) * Int(side) > Image.maximumPixelCount)

        let (png, _) = try Self.read(try Self.pngClaiming(width: side, height: side), named: "huge.png")

        var jpegBytes = [UInt8](try patternImage(width: 8, height: 8, channels: 1).encoded(as: .jpeg))
        let frame = try #require(Self.offset(ofMarker: 0xC0, in: jpegBytes))
        jpegBytes.replaceSubrange((frame + 5)..<(frame + 9), with: [UInt8(side >> 8), UInt8(side & 0xFF), UInt8(side >> 8), UInt8(side & 0xFF)])
        let (jpeg, _) = try Self.read(Data(jpegBytes), named: "huge.jpg")

        var bmpBytes = [UInt8](try patternImage(width: 2, height: 2, channels: 3).encoded(as: .bmp))
        withUnsafeBytes(of: Int32(side).littleEndian) { bmpBytes.replaceSubrange(18..<22, with: $0) }
        withUnsafeBytes(of: Int32(side).littleEndian) { bmpBytes.replaceSubrange(22..<26, with: $0) }
        let (bmp, _) = try Self.read(Data(bmpBytes), named: "huge.bmp")

        for (name, result) in [("PNG", png), ("JPEG", jpeg), ("BMP", bmp)] {
            guard case .failure(let error) = result, case .unsupportedFormat = error else {
                Issue.record("\(name) above the pixel limit: \(result)")
                continue
            }
            #expect(error.description.contains("\(side)x\(side) pixels is larger than the limit"), "\(error)")
        }
    }

    /// fuzz-png, fuzz-bmp (the empty input): Foundation's `Data(contentsOf:)` leaked a 4 KB
    /// buffer for every empty file (swift-corelibs-foundation, Swift 6.3.1), so a dataset with
    /// empty files grew the process without bound. Files are now read through `FileHandle`. The
    /// reads run in a child process, whose resident size is not disturbed by other tests.
    @Test func readingEmptyFilesDoesNotLeak() async throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("empty.png").path
        _ = FileManager.default.createFile(atPath: path, contents: Data())
        await #expect(processExitsWith: .success) { [path = path as String] in
            func residentBytes() -> Int {
                let fields = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8))?.split(separator: " ") ?? []
                return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
            }
            let url = URL(fileURLWithPath: path)
            for _ in 0..<1000 { _ = try? Image(contentsOf: url) }
            let before = residentBytes()
            for _ in 0..<20_000 { _ = try? Image(contentsOf: url) }
            // A 4 KB leak per read would add 80 MB.
            exit(residentBytes() - before < 16 << 20 ? 0 : 1)
        }
    }
}
