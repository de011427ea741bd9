import Foundation
import FuseKitNN
import FuseKitTensor
import Testing

/// Reading PyTorch checkpoints without running their code: files written by torch
/// (Fixtures/make_torch_checkpoint_fixtures.py) must load bit for bit as torch reads them,
/// pickles that name anything but state-dict building blocks must be refused, and damaged
/// files must give errors naming the file.
@Suite struct TorchCheckpointTests {
    typealias Support = SerializationTestSupport

    static func fixture(_ name: String) -> URL { Support.fixtures.appendingPathComponent(name) }

    /// torch's Float32 values of every fixture tensor (`tensor.float()`), by `<group>.<name>`.
    static let reference: [String: Tensor] = (try? SafeTensors.read(from: fixture("torch_reference.safetensors")).tensors) ?? [:]

    /// Writes a file without `Data.write`'s flush to disk (the damage tests write thousands).
    static func quickWrite(_ bytes: Data, to url: URL) throws {
        guard let file = fopen(url.path, "wb") else { throw CocoaError(.fileWriteUnknown) }
        defer { fclose(file) }
        let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        guard written == bytes.count else { throw CocoaError(.fileWriteUnknown) }
    }

    static func expected(_ group: String) -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: reference.compactMap { key, value in
            key.hasPrefix(group + ".") ? (String(key.dropFirst(group.count + 1)), value) : nil
        })
    }

    static func expectBitwiseEqual(_ loaded: [String: Tensor], _ expected: [String: Tensor], _ label: String) {
        #expect(!expected.isEmpty, "no reference tensors for \(label)")
        #expect(loaded.keys.sorted() == expected.keys.sorted(), "\(label): names")
        for (name, value) in expected {
            guard let tensor = loaded[name] else { continue }
            #expect(Support.bitwiseEqual(tensor, value), "\(label): '\(name)' differs from torch: \(tensor.scalars.prefix(8)) vs \(value.scalars.prefix(8))")
        }
    }

    // MARK: Files written by torch

    @Test(arguments: [("torch_zip.pth", WeightsFile.Format.torchZip), ("torch_legacy.pth", .torchLegacy), ("torch_bigendian.pth", .torchZip)])
    func everyStorageTypeLoadsBitForBit(file: String, format: WeightsFile.Format) throws {
        #expect(try WeightsFile.format(of: Self.fixture(file).path) == format)
        let loaded = try WeightsFile.read(WeightsReference(path: Self.fixture(file).path))
        #expect(loaded.format == format)
        #expect(loaded.selectedPrefix == nil && !loaded.removedModulePrefix)
        Self.expectBitwiseEqual(loaded.tensors, Self.expected("zip"), file)
        // Spot checks against values written in the script, independent of the reference file.
        #expect(loaded.tensors["1.num_batches_tracked"]?.item == 1234)
        #expect(loaded.tensors["long"]?.scalars == [0, -1, 16_777_216, 1_099_511_627_776, -4_611_686_018_427_387_904])
        #expect(loaded.tensors["mask"]?.scalars == [1, 0, 1, 0, 0, 1])
        #expect(loaded.tensors["byte"]?.scalars == [0, 255])
        #expect(loaded.tensors["window"]?.shape == [3, 4])
        #expect(loaded.tensors["window"]?.scalars == [2, 7, 12, 17, 3, 8, 13, 18, 4, 9, 14, 19].map { Float($0) * 0.5 })
        #expect(loaded.tensors["empty"]?.shape == [0, 3])
        #expect(loaded.tensors["scalar"]?.shape == [] && loaded.tensors["scalar"]?.item == 2.75)
        let half = try #require(loaded.tensors["half"]).scalars
        #expect(half[2] == .infinity && half[3] == -.infinity && half[4].isNaN && half[1].sign == .minus)
    }

    @Test func viewsAndSharedStoragesAreDescribedAsTorchWroteThem() throws {
        let checkpoint = try TorchCheckpoint(contentsOf: Self.fixture("torch_zip.pth"))
        #expect(checkpoint.format == .zip)
        func reference(_ name: String) throws -> TorchTensorReference {
            guard case .tensor(let t)? = checkpoint.root[name] else { throw TensorMissing(name: name) }
            return t
        }
        let window = try reference("window"), slice = try reference("slice")
        let a = try reference("shared.a"), b = try reference("shared.b")
        #expect(window.offset == 2 && window.strides == [1, 5] && !window.isContiguous)
        #expect(slice.offset == 10 && slice.isContiguous)
        #expect(a.storage == b.storage && a.storage == window.storage && b.offset == 4)
        #expect(try reference("transposed").strides == [1, 6])
        #expect(try reference("half_view").storage == reference("half").storage)
        #expect(try reference("half").storage.dtype == .float16 && reference("brain").storage.dtype == .bfloat16)
        #expect(checkpoint.storages.count < checkpoint.root.tensorNames.count)
    }

    @Test func nestedCheckpointsAndTheDataParallelPrefix() throws {
        let path = Self.fixture("torch_nested.pth").path
        let loaded = try WeightsFile.read(WeightsReference(path: path))
        #expect(loaded.selectedPrefix == "model" && loaded.removedModulePrefix)
        let model = Self.expected("nested").compactMap { $0.key.hasPrefix("model.module.") ? (String($0.key.dropFirst("model.module.".count)), $0.value) : nil }
        Self.expectBitwiseEqual(loaded.tensors, Dictionary(uniqueKeysWithValues: model), "nested")
        #expect(loaded.summary == "3 tensors (PyTorch zip checkpoint, under 'model', 'module.' removed)")

        // An explicit prefix reaches anything, including the optimizer state (integer keys).
        let optimizer = try WeightsFile.read(WeightsReference("\(path)#optimizer.state.0"))
        Self.expectBitwiseEqual(optimizer.tensors, Self.expected("nested.optimizer.state.0"), "optimizer")

        // An empty prefix reads every tensor under its full name.
        let all = try WeightsFile.read(WeightsReference("\(path)#"))
        #expect(all.tensors["model.module.conv.weight"] != nil && all.tensors["optimizer.state.0.exp_avg"] != nil)
        #expect(!all.removedModulePrefix)

        // The non-tensor values are plain data.
        let checkpoint = try TorchCheckpoint(contentsOf: Self.fixture("torch_nested.pth"))
        #expect(checkpoint.root["epoch"] == .int(7))
        #expect(checkpoint.root["args"]?["name"] == .string("refusion"))
        #expect(checkpoint.root["args"]?["sizes"] == .tuple([.int(480), .int(640)]))
        #expect(checkpoint.root["args"]?["list"] == .list([.int(1), .float(2.5), .string("x")]))
        #expect(checkpoint.root["args"]?["lr"] == .float(1e-4) && checkpoint.root["args"]?["none"] == PickleValue.none)
    }

    @Test func mafsStyleNestingAndPrefixSelection() throws {
        let path = Self.fixture("torch_mtan.pth").path
        let all = try WeightsFile.read(WeightsReference(path: path))
        #expect(all.selectedPrefix == "MTAN")
        Self.expectBitwiseEqual(all.tensors, Self.expected("mtan.MTAN"), "MTAN")
        let seg = try WeightsFile.read(WeightsReference("\(path)#MTAN.seg_decoder"))
        #expect(seg.tensors.keys.sorted() == ["head.bias", "head.weight"])
        #expect(seg.selectedPrefix == "MTAN.seg_decoder")
        let error = #expect(throws: WeightsFileError.self) { try WeightsFile.read(WeightsReference("\(path)#MTAN.decoder")) }
        #expect(error?.description == "weights file '\(path)' has no tensors under 'MTAN.decoder'; its tensors are under: 'MTAN.encoder' (1 tensors), 'MTAN.fuse_decoder' (1 tensors), 'MTAN.seg_decoder' (2 tensors)")
        let top = #expect(throws: WeightsFileError.self) { try WeightsFile.read(WeightsReference("\(path)#model")) }
        #expect(top == .prefixNotFound(file: path, prefix: "model", available: ["'MTAN' (4 tensors)"]))
    }

    @Test func severalStateDictsMustBeChosen() throws {
        let path = Self.fixture("torch_ambiguous.pth").path
        let error = #expect(throws: WeightsFileError.self) { try WeightsFile.read(WeightsReference(path: path)) }
        #expect(error == .ambiguous(file: path, candidates: ["'fusion' (1 tensors)", "'segmentation' (1 tensors)"]))
        #expect(error?.description.contains("choose one as '\(path)#KEY'") == true)
        let fusion = try WeightsFile.read(WeightsReference("\(path)#fusion"))
        Self.expectBitwiseEqual(fusion.tensors, Self.expected("ambiguous.fusion"), "fusion")
    }

    @Test func fuseKitCheckpointsAndSafetensorsGoThroughTheSameEntryPoint() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let fusion = ModelState(parameters: ["conv.weight": Support.random([2, 1, 3, 3], seed: 1)], buffers: ["bn.running_mean": Tensor([1, 2])])
        let task = ModelState(parameters: ["head.weight": Support.random([3, 2], seed: 2)])
        let url = directory.appendingPathComponent("last.safetensors")
        try Checkpoint(models: ["fusion": fusion, "task": task], step: 3).save(to: url)
        #expect(try WeightsFile.format(of: url.path) == .fusekitCheckpoint)

        let asFusion = try WeightsFile.read(WeightsReference(path: url.path), checkpointModel: "fusion")
        #expect(asFusion.format == .fusekitCheckpoint && asFusion.selectedPrefix == "fusion")
        Self.expectBitwiseEqual(asFusion.tensors, fusion.stateDict, "fusion")
        let asTask = try WeightsFile.read(WeightsReference("\(url.path)#task"), checkpointModel: "fusion")
        Self.expectBitwiseEqual(asTask.tensors, task.stateDict, "task")
        #expect(throws: WeightsFileError.ambiguous(file: url.path, candidates: ["'fusion' (2 tensors)", "'task' (1 tensors)"])) {
            try WeightsFile.read(WeightsReference(path: url.path))
        }

        // A plain safetensors file with a DataParallel prefix.
        let plain = directory.appendingPathComponent("plain.safetensors")
        try SafeTensors.write(["module.a": Tensor([1]), "module.b.c": Tensor([2, 3])], to: plain)
        let read = try WeightsFile.read(WeightsReference(path: plain.path))
        #expect(read.format == .safetensors && read.removedModulePrefix && read.tensors.keys.sorted() == ["a", "b.c"])
    }

    @Test func convertWritesSafetensorsThatReadBackBitForBit() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        for file in ["torch_zip.pth", "torch_legacy.pth"] {
            let destination = directory.appendingPathComponent(file + ".safetensors")
            let loaded = try WeightsFile.convert(WeightsReference(path: Self.fixture(file).path), to: destination)
            let (tensors, metadata) = try SafeTensors.read(from: destination)
            #expect(metadata["source"] == file)
            Self.expectBitwiseEqual(tensors, loaded.tensors, file)
            Self.expectBitwiseEqual(tensors, Self.expected("zip"), file)
        }
        // A path containing '#' that exists is taken whole.
        let hashed = directory.appendingPathComponent("a#b.pth")
        try FileManager.default.copyItem(at: Self.fixture("torch_mtan.pth"), to: hashed)
        #expect(WeightsReference(hashed.path) == WeightsReference(path: hashed.path))
        #expect(try WeightsFile.read(WeightsReference(hashed.path)).tensors.count == 4)
    }

    // MARK: Refusals

    @Test(arguments: [("malicious_os_system.pth", "os.system"), ("malicious_builtins_eval.pth", "builtins.eval"),
                      ("malicious_legacy.pth", "os.system"), ("whole_module.pth", "torch.nn.modules.conv.Conv2d")])
    func picklesNamingCodeAreRefused(file: String, callable: String) throws {
        let path = Self.fixture(file).path
        let error = #expect(throws: TorchCheckpointError.self) { try WeightsFile.read(WeightsReference(path: path)) }
        guard case .forbiddenGlobal(let errorFile, let name, _)? = error else {
            Issue.record("expected a refused global, got \(String(describing: error))")
            return
        }
        #expect(errorFile == path && name == callable)
        #expect(error?.description.contains("refers to '\(callable)'") == true)
        #expect(error?.description.contains("never runs code") == true)
    }

    /// Hand-assembled pickles (in legacy files) for the opcodes and calls the reader refuses or
    /// must survive.
    @Test func handMadePicklesAreRefusedWithTheirReason() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        var index = 0
        func load(_ payload: [UInt8], storages: [(String, Int64, [UInt8])] = []) throws -> TorchCheckpoint {
            index += 1
            let url = directory.appendingPathComponent("case\(index).pth")
            try Data(LegacyFile.bytes(payload: payload, storages: storages)).write(to: url)
            return try TorchCheckpoint(contentsOf: url)
        }
        func refusal(_ payload: [UInt8]) -> String {
            do {
                _ = try load(payload)
                return "accepted"
            } catch let error as TorchCheckpointError {
                return error.description
            } catch {
                return "other error \(error)"
            }
        }
        let p = LegacyFile.self
        // Object construction and extension opcodes.
        #expect(refusal(p.proto + Array("(i__main__\nEvil\n".utf8) + [p.stop]).contains("opcode INST"))
        #expect(refusal(p.proto + [0x28] + p.global("collections", "OrderedDict") + [0x6F, p.stop]).contains("opcode OBJ"))
        #expect(refusal(p.proto + p.global("collections", "OrderedDict") + [0x29, 0x81, p.stop]).contains("opcode NEWOBJ"))
        #expect(refusal(p.proto + [0x82, 0x01, p.stop]).contains("opcode EXT1"))
        #expect(refusal(p.proto + [0x8F, p.stop]).contains("opcode EMPTY_SET"))
        #expect(refusal(p.proto + Array("I1\n".utf8) + [p.stop]).contains("text opcodes"))
        // Calls of anything but the known callables.
        #expect(refusal(p.proto + p.string("x") + [0x29, 0x52, p.stop]).contains("REDUCE"))
        #expect(refusal(p.proto + p.global("torch", "FloatStorage") + [0x29, 0x52, p.stop]).contains("accepted only as the storage type"))
        #expect(refusal(p.proto + p.global("torch", "load") + [p.stop]).contains("refers to 'torch.load'"))
        #expect(refusal(p.proto + p.global("torch._utils", "_rebuild_tensor") + [p.stop]).contains("refers to 'torch._utils._rebuild_tensor'"))
        #expect(refusal(p.proto + [0x5D, 0x7D, 0x62, p.stop]).contains("BUILD"))
        #expect(refusal(p.proto + p.string("not a storage") + [0x51, p.stop]).contains("persistent id"))
        // Malformed programs.
        #expect(refusal(p.proto + [0x52, p.stop]).contains("the stack is empty"))
        #expect(refusal(p.proto + [0x68, 0x05, p.stop]).contains("memo entry 5 does not exist"))
        #expect(refusal(p.proto + [0x58, 0xFF, 0xFF, 0, 0, 0x41]).contains("truncated"))
        #expect(refusal(p.proto + [0x5D, 0x71, 0x00, 0x68, 0x00, 0x61, p.stop]).contains("contains itself"))
        // Sharing that would expand exponentially ("billion laughs") is stopped.
        #expect(refusal(p.proto + [0x5D] + Array(repeating: [0x32, 0x86], count: 60).flatMap { $0 } + [p.stop]).contains("far larger than the file"))
        // A tensor whose view reaches past its storage (4 elements) is refused before any data is read.
        let overreach = p.proto + p.tensor(key: "0", dtype: "FloatStorage", count: 4, offset: 1, size: [2, 2], stride: [2, 1]) + [p.stop]
        #expect(refusal(overreach).contains("reaches element 4, past the end of its storage"))

        // Plain data and a well-formed tensor are read.
        let good = try load(p.proto + [0x7D, 0x28] + p.string("big") + [0x8A, 0x09] + [UInt8](repeating: 0, count: 8) + [0x01]
                            + p.string("neg") + [0x8A, 0x02, 0x00, 0xFF] + p.string("f") + [0x47] + Array(withUnsafeBytes(of: (1.5).bitPattern.bigEndian) { Array($0) })
                            + p.string("bytes") + [0x43, 0x02, 0x61, 0x62]
                            + p.string("t") + p.tensor(key: "0", dtype: "HalfStorage", count: 3, offset: 1, size: [2], stride: [1])
                            + [0x75, p.stop],
                            storages: [("0", 3, [0x00, 0x3C, 0x00, 0x40, 0x00, 0xC2])])
        #expect(good.root["big"] == .largeInt(littleEndianBytes: [0, 0, 0, 0, 0, 0, 0, 0, 1]))
        #expect(good.root["neg"] == .int(-256) && good.root["f"] == .float(1.5) && good.root["bytes"] == .bytes([0x61, 0x62]))
        let tensors = try good.tensors(try good.flatten(good.root))
        #expect(tensors["t"]?.scalars == [2, -3])
    }

    // MARK: Damaged files

    @Test func truncatedFilesGiveErrorsNamingTheFile() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        for file in ["torch_zip.pth", "torch_legacy.pth"] {
            let bytes = try Data(contentsOf: Self.fixture(file))
            let url = directory.appendingPathComponent(file)
            for length in Set(stride(from: 0, to: bytes.count, by: 13)).union(bytes.count - 64 ..< bytes.count).sorted() {
                try Self.quickWrite(bytes.prefix(length), to: url)
                do {
                    _ = try WeightsFile.read(WeightsReference(path: url.path))
                    Issue.record("\(file) truncated to \(length) of \(bytes.count) bytes was accepted")
                } catch let error as WeightsFileError {
                    #expect(error.file == url.path)
                } catch let error as TorchCheckpointError {
                    #expect(error.file == url.path)
                    #expect(error.description.contains(url.path))
                }
            }
        }
    }

    /// Every single-byte change of a zip checkpoint either fails with an error naming the file or
    /// (in bytes nothing reads, such as timestamps and padding) yields exactly the original tensors:
    /// the CRC-32 of each record catches damaged data.
    @Test func damagedZipFilesNeverYieldOtherValues() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let original = try Data(contentsOf: Self.fixture("torch_zip.pth"))
        let expected = Self.expected("zip")
        let url = directory.appendingPathComponent("damaged.pth")
        var failures = 0, unchanged = 0
        for position in stride(from: 0, to: original.count, by: 3) {
            var bytes = original
            bytes[position] ^= 0x5A
            try Self.quickWrite(bytes, to: url)
            do {
                let loaded = try WeightsFile.read(WeightsReference(path: url.path))
                #expect(loaded.tensors.keys.sorted() == expected.keys.sorted(), "byte \(position)")
                for (name, value) in expected where !(loaded.tensors[name].map { Support.bitwiseEqual($0, value) } ?? false) {
                    Issue.record("changing byte \(position) changed '\(name)' without an error")
                }
                unchanged += 1
            } catch let error as TorchCheckpointError {
                #expect(error.file == url.path)
                failures += 1
            } catch let error as WeightsFileError {
                #expect(error.file == url.path)
                failures += 1
            }
        }
        #expect(failures > 0 && unchanged > 0)
    }

    @Test func otherFilesAreNamed() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let missing = directory.appendingPathComponent("missing.pth").path
        #expect(throws: WeightsFileError.fileNotFound(file: missing)) { try WeightsFile.read(WeightsReference(path: missing)) }
        let text = directory.appendingPathComponent("notes.pth")
        try Data("just some text, not weights".utf8).write(to: text)
        let error = #expect(throws: WeightsFileError.self) { try WeightsFile.read(WeightsReference(path: text.path)) }
        #expect(error?.description.hasPrefix("'\(text.path)' is not a weights file FuseKit reads") == true)
        let empty = directory.appendingPathComponent("empty.pth")
        try Data().write(to: empty)
        #expect(throws: WeightsFileError.unknownFormat(file: empty.path, reason: "it has only 0 bytes")) { try WeightsFile.read(WeightsReference(path: empty.path)) }
        // A pickle that is not a checkpoint.
        let pickle = directory.appendingPathComponent("list.pkl")
        try Data([0x80, 0x02, 0x5D, 0x2E]).write(to: pickle)
        let notCheckpoint = #expect(throws: TorchCheckpointError.self) { try WeightsFile.read(WeightsReference(path: pickle.path)) }
        #expect(notCheckpoint?.description.contains("legacy magic number") == true)
    }

    @Test func crc32MatchesKnownValues() {
        let text = Array("123456789".utf8)
        #expect(CRC32.ieee.checksum(text) == 0xCBF4_3926)
        #expect(CRC32.castagnoli.checksum(text) == 0xE306_9283)
        let long = (0 ..< 1000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let split = long.withUnsafeBytes { CRC32.ieee.checksum(UnsafeRawBufferPointer(rebasing: $0[500...]), continuing: CRC32.ieee.checksum(UnsafeRawBufferPointer(rebasing: $0[..<500]))) }
        #expect(split == CRC32.ieee.checksum(long))
    }
}

private struct TensorMissing: Error { let name: String }

private extension PickleValue {
    /// Names of the tensors directly in a dictionary.
    var tensorNames: [String] {
        guard case .dict(let entries) = self else { return [] }
        return entries.compactMap { if case .tensor = $0.value, case .string(let name) = $0.key { return name } else { return nil } }
    }
}

/// Builds legacy-format checkpoint files (five pickles and the storages) around a hand-made
/// pickle, so that tests can exercise the unpickler through the public API.
enum LegacyFile {
    static let stop: UInt8 = 0x2E
    static let proto: [UInt8] = [0x80, 0x02]

    static func bytes(payload: [UInt8], storages: [(String, Int64, [UInt8])] = []) -> [UInt8] {
        var out: [UInt8] = proto + [0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, stop] // magic number
        out += proto + [0x4D, 0xE9, 0x03, stop] // protocol version 1001
        out += proto + [0x7D, stop] // system information
        out += payload
        out += proto + [0x5D, 0x28] + storages.flatMap { string($0.0) } + [0x65, stop] // storage keys
        for (_, count, data) in storages {
            out += withUnsafeBytes(of: count.littleEndian) { Array($0) } + data
        }
        return out
    }

    static func string(_ text: String) -> [UInt8] {
        let utf8 = Array(text.utf8)
        return [0x58] + withUnsafeBytes(of: UInt32(utf8.count).littleEndian) { Array($0) } + utf8
    }

    static func global(_ module: String, _ name: String) -> [UInt8] {
        [0x63] + Array("\(module)\n\(name)\n".utf8)
    }

    static func int(_ value: Int) -> [UInt8] {
        [0x4A] + withUnsafeBytes(of: Int32(value).littleEndian) { Array($0) }
    }

    static func tuple(_ items: [Int]) -> [UInt8] {
        [0x28] + items.flatMap { int($0) } + [0x74]
    }

    /// `_rebuild_tensor_v2(('storage', torch.<dtype>, key, 'cpu', count), offset, size, stride, False, OrderedDict())`.
    static func tensor(key: String, dtype: String, count: Int, offset: Int, size: [Int], stride: [Int]) -> [UInt8] {
        global("torch._utils", "_rebuild_tensor_v2") + [0x28]
            + [0x28] + string("storage") + global("torch", dtype) + string(key) + string("cpu") + int(count) + [0x4E, 0x74, 0x51]
            + int(offset) + tuple(size) + tuple(stride) + [0x89] + global("collections", "OrderedDict") + [0x29, 0x52]
            + [0x74, 0x52]
    }
}
