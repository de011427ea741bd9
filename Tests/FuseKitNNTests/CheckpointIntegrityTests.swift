import Foundation
import FuseKitNN
import FuseKitTensor
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Checksums, the previous checkpoint kept beside the last, and a full disk.
@Suite struct CheckpointIntegrityTests {
    typealias Support = SerializationTestSupport

    @Test func crc32cMatchesTheStandardCheckValue() {
        #expect(Array("123456789".utf8).withUnsafeBytes { CRC32C.checksum($0) } == 0xE306_9283)
        #expect(CRC32C.checksum(UnsafeRawBufferPointer(start: nil, count: 0)) == 0)
        // 32 zero bytes (RFC 3720, B.4).
        #expect([UInt8](repeating: 0, count: 32).withUnsafeBytes { CRC32C.checksum($0) } == 0x8A91_36AA)
        // Any split into pieces (8-byte words and byte tails) gives the whole's checksum.
        var rng = RandomGenerator(seed: 3)
        let bytes = (0..<1000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let whole = bytes.withUnsafeBytes { CRC32C.checksum($0) }
        for pieceLength in [1, 3, 7, 8, 9, 64, 999] {
            var crc = CRC32C()
            for start in stride(from: 0, to: bytes.count, by: pieceLength) {
                crc.update(Array(bytes[start..<min(start + pieceLength, bytes.count)]))
            }
            #expect(crc.value == whole, "pieces of \(pieceLength)")
        }
    }

    /// A checkpoint written by Tests/Fuzz/make_seeds.py, whose CRC-32C is computed bit by bit in
    /// Python from the definition in Checkpoint.swift: the two implementations agree.
    @Test func aCheckpointChecksummedIndependentlyLoads() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/Corpus/safetensors/checkpoint-v2.safetensors")
        let checkpoint = try Checkpoint.load(from: url)
        #expect(checkpoint.step == 3 && checkpoint.models.keys.sorted() == ["fusion", "task"])
        #expect(checkpoint.optimizers["fusion"]?.slots.keys.sorted() == ["exp_avg", "exp_avg_sq"])
        #expect(try SafeTensors.readHeader(from: url).metadata["fusekit.checksum"]?.hasPrefix("crc32c:") == true)
    }

    /// The file as saved, with `body` changing its bytes.
    static func tampered(_ checkpoint: Checkpoint, in directory: URL, _ body: (inout [UInt8]) -> Void) throws -> URL {
        let url = directory.appendingPathComponent("tampered.safetensors")
        try checkpoint.save(to: url)
        var bytes = [UInt8](try Data(contentsOf: url))
        body(&bytes)
        try Data(bytes).write(to: url)
        return url
    }

    static func headerLength(_ bytes: [UInt8]) -> Int {
        (0..<8).reduce(0) { $0 | Int(bytes[$1]) << (8 * $1) }
    }

    @Test func aFlippedBitInTheTensorsIsDetected() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let saved = CheckpointTests.sample()
        for position in [0.0, 0.5, 1.0] {
            let url = try Self.tampered(saved, in: directory) { bytes in
                let dataStart = 8 + Self.headerLength(bytes)
                let index = dataStart + Int(position * Double(bytes.count - 1 - dataStart))
                bytes[index] ^= 0x10
            }
            #expect {
                _ = try Checkpoint.load(from: url)
            } throws: { error in
                guard let error = error as? CheckpointError, case .checksumMismatch(let file, _, _) = error else { return false }
                return file == url.path && error.description.contains("tampered.safetensors") && error.description.contains("corrupt")
            }
        }
    }

    /// A changed digit of the step count, or a changed letter of a tensor's name, keeps the file
    /// valid safetensors and a plausible checkpoint: only the checksum notices.
    @Test func aChangedHeaderIsDetected() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        for (original, replacement) in [("\"1200\"", "\"1300\""), ("qkv.bias", "qkv.bIas")] {
            let url = try Self.tampered(CheckpointTests.sample(), in: directory) { bytes in
                let header = String(decoding: bytes[8..<(8 + Self.headerLength(bytes))], as: UTF8.self)
                let range = header.range(of: original)!
                let offset = 8 + header.utf8.distance(from: header.startIndex, to: range.lowerBound)
                bytes.replaceSubrange(offset..<(offset + original.utf8.count), with: Array(replacement.utf8))
            }
            #expect(throws: CheckpointError.self) { _ = try Checkpoint.load(from: url) }
            #expect((try? SafeTensors.read(from: url)) != nil, "the tampered file is still valid safetensors")
        }
    }

    @Test func truncatedAtAnyPointIsAnError() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let url = directory.appendingPathComponent("cut.safetensors")
        try CheckpointTests.sample().save(to: url)
        let bytes = try Data(contentsOf: url)
        for fraction in [0.0, 0.01, 0.3, 0.9, 0.999] {
            try bytes.prefix(Int(fraction * Double(bytes.count))).write(to: url)
            #expect {
                _ = try Checkpoint.load(from: url)
            } throws: { error in
                "\(error)".contains("cut.safetensors") && (error is SafeTensorsError)
            }
        }
    }

    /// Files of format version 1 (before checksums) still load; a version-2 file without a
    /// checksum does not.
    @Test func versionOneLoadsWithoutAChecksum() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let url = directory.appendingPathComponent("v1.safetensors")
        let saved = CheckpointTests.sample()
        try saved.save(to: url)
        let (tensors, readMetadata) = try SafeTensors.read(from: url)
        var metadata = readMetadata
        #expect(metadata["fusekit.checkpoint"] == "2")
        #expect(metadata["fusekit.checksum"]?.hasPrefix("crc32c:") == true)
        metadata["fusekit.checksum"] = nil
        try SafeTensors.write(tensors, metadata: metadata, to: url)
        #expect {
            _ = try Checkpoint.load(from: url)
        } throws: { error in
            "\(error)".contains("'fusekit.checksum' is missing")
        }
        metadata["fusekit.checkpoint"] = "1"
        try SafeTensors.write(tensors, metadata: metadata, to: url)
        #expect(try Checkpoint.load(from: url) == saved)
    }

    static func checkpoint(step: Int) -> Checkpoint {
        Checkpoint(models: ["m": ModelState(parameters: ["w": Tensor([Float(step), 2])])], step: step)
    }

    @Test func savingKeepsThePreviousCheckpoint() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let last = directory.appendingPathComponent("last.safetensors")
        let previous = directory.appendingPathComponent("previous.safetensors")
        try Self.checkpoint(step: 1).save(to: last, keepingPreviousAt: previous)
        #expect(Support.contents(of: directory) == ["last.safetensors"])
        for step in 2...4 {
            try Self.checkpoint(step: step).save(to: last, keepingPreviousAt: previous)
            #expect(try Checkpoint.load(from: last).step == step)
            #expect(try Checkpoint.load(from: previous).step == step - 1)
        }
        #expect(Support.contents(of: directory) == ["last.safetensors", "previous.safetensors"])
    }

    @Test func loadingFallsBackToThePreviousWhenTheLastIsDamaged() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let last = directory.appendingPathComponent("last.safetensors")
        let previous = directory.appendingPathComponent("previous.safetensors")
        try Self.checkpoint(step: 1).save(to: last, keepingPreviousAt: previous)
        try Self.checkpoint(step: 2).save(to: last, keepingPreviousAt: previous)

        let intact = try Checkpoint.loadNewestIntact([last, previous])
        #expect(intact.checkpoint.step == 2 && intact.file == last && intact.refused.isEmpty)

        var bytes = [UInt8](try Data(contentsOf: last))
        bytes[bytes.count - 1] ^= 1
        try Data(bytes).write(to: last)
        let fallback = try Checkpoint.loadNewestIntact([last, previous])
        #expect(fallback.checkpoint.step == 1 && fallback.file == previous)
        #expect(fallback.refused.map(\.file) == [last])
        #expect(fallback.refused.first.map { "\($0.error)".contains("corrupt") } == true)

        try Data(bytes.prefix(100)).write(to: previous)
        #expect(throws: CheckpointError.self) { _ = try Checkpoint.loadNewestIntact([last, previous]) }
        try FileManager.default.removeItem(at: last)
        #expect(throws: SafeTensorsError.self) { _ = try Checkpoint.loadNewestIntact([last, previous]) }
        try FileManager.default.removeItem(at: previous)
        #expect(throws: SafeTensorsError.fileNotFound(file: last.path)) { _ = try Checkpoint.loadNewestIntact([last, previous]) }
    }

    /// Whether this process may mount a tmpfs (root in a namespace that allows it).
    static let canMountTmpfs: Bool = {
        guard geteuid() == 0, let directory = try? Support.makeScratchDirectory("probe") else { return false }
        defer { Support.cleanUp(directory) }
        guard mount("tmpfs", directory.path, "tmpfs", 0, "size=64k") == 0 else { return false }
        umount(directory.path)
        return true
    }()

    /// A save that runs out of space on a real (small tmpfs) file system fails with the system's
    /// reason, and the last and previous checkpoints stay as they were, with no temporary file.
    @Test(.enabled(if: canMountTmpfs, "needs root and permission to mount a tmpfs (the file-size limit test in CheckpointTests covers the same path)"))
    func aFullDiskLeavesBothCheckpointsIntact() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        guard mount("tmpfs", directory.path, "tmpfs", 0, "size=256k") == 0 else {
            Issue.record("mount failed: \(String(cString: strerror(errno)))")
            return
        }
        defer { umount(directory.path) }
        let last = directory.appendingPathComponent("last.safetensors")
        let previous = directory.appendingPathComponent("previous.safetensors")
        try Self.checkpoint(step: 1).save(to: last, keepingPreviousAt: previous)
        try Self.checkpoint(step: 2).save(to: last, keepingPreviousAt: previous)
        let big = Checkpoint(models: ["m": ModelState(parameters: ["w": Tensor.zeros([128, 1024])])], step: 3)
        #expect {
            try big.save(to: last, keepingPreviousAt: previous)
        } throws: { error in
            guard let error = error as? SafeTensorsError, case .writeFailed(let file, let reason) = error else { return false }
            return file == last.path && reason.contains(String(cString: strerror(ENOSPC)))
        }
        #expect(try Checkpoint.load(from: last).step == 2)
        #expect(try Checkpoint.load(from: previous).step == 1)
        #expect(Support.contents(of: directory) == ["last.safetensors", "previous.safetensors"])
    }
}

/// Weights files with NaN or infinite values are refused naming the file and the tensor.
@Suite struct NonFiniteWeightsTests {
    typealias Support = SerializationTestSupport

    @Test func nonFiniteWeightsNameTheFileAndTensor() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let url = directory.appendingPathComponent("diverged.safetensors")
        try SafeTensors.write(["a.weight": Tensor([1, 2, 3]), "b.bias": Tensor([0, .nan, .infinity, -.infinity]), "c": Tensor([.nan])], to: url)
        #expect(throws: SafeTensorsError.nonFinite(file: url.path, tensor: "b.bias", count: 3, index: 1)) {
            _ = try WeightsFile.readModelWeights(WeightsReference(url.path))
        }
        #expect(SafeTensorsError.nonFinite(file: url.path, tensor: "b.bias", count: 3, index: 1).description
            == "weights file '\(url.path)': tensor 'b.bias' holds 3 NaN or infinite values (the first at index 1): the weights are damaged or come from a diverged run")
        // Half-precision infinities are caught too; finite files read as before.
        try SafeTensors.write(["w": Tensor([HalfPrecision.float(fromHalfBits: 0x7C00)])], to: url)
        #expect(throws: SafeTensorsError.self) { _ = try WeightsFile.readModelWeights(WeightsReference(url.path)) }
        try SafeTensors.write(["w": Tensor([.greatestFiniteMagnitude, -0.0])], to: url)
        #expect(try WeightsFile.readModelWeights(WeightsReference(url.path)).tensors["w"]?.scalars == [.greatestFiniteMagnitude, -0.0])
        // A PyTorch checkpoint with special values reads as it is, but not as a model's weights.
        let torchFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/torch_zip.pth")
        _ = try WeightsFile.read(WeightsReference(torchFile.path))
        #expect(throws: SafeTensorsError.self) { _ = try WeightsFile.readModelWeights(WeightsReference(torchFile.path)) }
    }
}
