import Foundation
import FuseKitNN
import FuseKitTensor
import Testing

/// Reading and writing safetensors: round trips, files written by Python, and every kind of
/// malformed file (each error must name the file).
@Suite struct SafetensorsTests {
    typealias Support = SerializationTestSupport

    @Test func roundTripIsBitwiseWithMetadata() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let url = directory.appendingPathComponent("weights.safetensors")
        let special = Tensor(shape: [2, 3], scalars: [-0.0, .infinity, -.infinity, Float(bitPattern: 0x7FC0_1234),
                                                       .leastNonzeroMagnitude, .greatestFiniteMagnitude])
        let tensors: [String: Tensor] = [
            "encoder1.0.attn.qkv.weight": Support.random([8, 4, 1, 1], seed: 1),
            "scalar": Tensor(3.5),
            "empty": Tensor.zeros([0, 3]),
            "special": special,
            "quote\"back\\slash\nname ✓": Tensor([1, 2]),
        ]
        let metadata = ["format": "pt", "recipe": "lr: 1e-4\nname: \"x\" ✓", "tab": "a\tb\u{1}"]
        try SafeTensors.write(tensors, metadata: metadata, to: url)

        let (read, readMetadata) = try SafeTensors.read(from: url)
        #expect(readMetadata == metadata)
        #expect(Set(read.keys) == Set(tensors.keys))
        for (name, tensor) in tensors {
            #expect(Support.bitwiseEqual(try #require(read[name]), tensor), "\(name)")
        }
        #expect(Support.contents(of: directory) == ["weights.safetensors"])

        // Header padded with spaces to a multiple of 8; data starts right after it.
        let bytes = try Data(contentsOf: url)
        let headerSize = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect(headerSize % 8 == 0)
        let header = try #require(String(data: bytes[8 ..< 8 + headerSize], encoding: .utf8))
        #expect(header.hasPrefix("{\"__metadata__\":"))
        #expect(try JSONSerialization.jsonObject(with: Data(header.utf8)) is [String: Any])
        #expect(bytes.count == 8 + headerSize + (32 + 1 + 0 + 6 + 2) * 4)

        let info = try SafeTensors.readHeader(from: url)
        #expect(info.tensors["encoder1.0.attn.qkv.weight"]?.shape == [8, 4, 1, 1])
        #expect(info.tensors["encoder1.0.attn.qkv.weight"]?.dtype == .float32)
        #expect(info.metadata == metadata)
    }

    @Test func writingReplacesAnExistingFileWithoutLeftovers() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let url = directory.appendingPathComponent("w.safetensors")
        try SafeTensors.write(["a": Tensor([1, 2, 3])], to: url)
        try SafeTensors.write(["b": Tensor([4])], to: url)
        let (tensors, metadata) = try SafeTensors.read(from: url)
        #expect(Array(tensors.keys) == ["b"])
        #expect(metadata.isEmpty)
        #expect(Support.contents(of: directory) == ["w.safetensors"])
    }

    @Test func readsFileWrittenByPython() throws {
        let url = Support.fixtures.appendingPathComponent("python_dtypes.safetensors")
        let (tensors, metadata) = try SafeTensors.read(from: url)
        #expect(metadata == ["format": "pt", "note": "written by safetensors ✓", "empty": ""])
        let header = try SafeTensors.readHeader(from: url).tensors
        #expect(header["half"]?.dtype == .float16)
        #expect(header["brain"]?.dtype == .bfloat16)
        #expect(header["long"]?.dtype == .int64)
        #expect(header["int"]?.dtype == .int32)
        #expect(header["double"]?.dtype == .float64)
        for name in ["half", "brain", "long", "int", "double", "single", "num_batches_tracked", "empty"] {
            let actual = try #require(tensors[name]), expected = try #require(tensors["\(name).expected"])
            #expect(actual.shape == expected.shape, "\(name)")
            // torch's conversion to float32 is the reference; NaN compares by being NaN.
            let same = zip(actual.scalars, expected.scalars).allSatisfy {
                $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN)
            }
            #expect(same, "\(name): \(actual.scalars) vs \(expected.scalars)")
        }
        #expect(try #require(tensors["num_batches_tracked"]).shape == [])
        #expect(try #require(tensors["num_batches_tracked"]).item == 1234)
        let half = try #require(tensors["half"]).scalars
        #expect(half[6] == 0x1p-24)  // smallest half subnormal
        #expect(half[8] == .infinity && half[10].isNaN)
        #expect(try #require(tensors["brain"]).scalars[6] == Float(bitPattern: 0x0001_0000))  // Float32 subnormal
    }

    #if !(os(macOS) && arch(x86_64))
    /// Every half-precision bit pattern, read through the parallel conversion path, against the
    /// standard library's Float16.
    @Test func halfConversionIsExactForEveryBitPattern() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let count = 2 * 65_536
        var data = [UInt8]()
        data.reserveCapacity(2 * count)
        for i in 0..<count {
            let bits = UInt16(truncatingIfNeeded: i)
            data.append(UInt8(bits & 0xFF))
            data.append(UInt8(bits >> 8))
        }
        let header = #"{"h":{"dtype":"F16","shape":[2,65536],"data_offsets":[0,\#(2 * count)]}}"#
        let url = directory.appendingPathComponent("all_halves.safetensors")
        try Support.rawFile(header: header, data: data).write(to: url)
        let values = try #require(try SafeTensors.read(from: url).tensors["h"]).scalars
        var mismatches = 0
        for i in 0..<count {
            let reference = Float(Float16(bitPattern: UInt16(truncatingIfNeeded: i)))
            let value = values[i]
            if reference.isNaN ? !value.isNaN : reference.bitPattern != value.bitPattern { mismatches += 1 }
            #expect(HalfPrecision.float(fromHalfBits: UInt16(truncatingIfNeeded: i)).bitPattern == value.bitPattern)
        }
        #expect(mismatches == 0)
    }
    #endif

    @Test func bfloat16KeepsSpecialValues() {
        #expect(HalfPrecision.float(fromBFloat16Bits: 0x3F80) == 1)
        #expect(HalfPrecision.float(fromBFloat16Bits: 0xFF80) == -.infinity)
        #expect(HalfPrecision.float(fromBFloat16Bits: 0x7FC1).isNaN)
        #expect(HalfPrecision.float(fromBFloat16Bits: 0x0001) == Float(bitPattern: 0x0001_0000))
        #expect(HalfPrecision.float(fromBFloat16Bits: 0x8000).bitPattern == (-0.0 as Float).bitPattern)
        #expect(HalfPrecision.float(fromHalfBits: 0x7BFF) == 65504)
        #expect(HalfPrecision.float(fromHalfBits: 0x8001) == -0x1p-24)
        #expect(HalfPrecision.float(fromHalfBits: 0x03FF) == 0x1.FF8p-15)
        #expect(HalfPrecision.float(fromHalfBits: 0x0400) == 0x1p-14)
    }

    // MARK: Malformed files

    /// Writes `bytes` to a file called `name`, reads it, and checks the error's case and that
    /// its description names the file.
    func expectError(_ name: String, _ bytes: Data, sourceLocation: SourceLocation = #_sourceLocation,
                     _ matches: (SafeTensorsError) -> Bool) throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let url = directory.appendingPathComponent(name)
        try bytes.write(to: url)
        do {
            _ = try SafeTensors.read(from: url)
            Issue.record("reading \(name) succeeded", sourceLocation: sourceLocation)
        } catch let error as SafeTensorsError {
            #expect(matches(error), "unexpected error: \(error)", sourceLocation: sourceLocation)
            #expect(error.description.contains(url.path), "\(error)", sourceLocation: sourceLocation)
            #expect(error.file == url.path, sourceLocation: sourceLocation)
        }
    }

    static let validHeader = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
    static let validData = SerializationTestSupport.bytes(of: [1, 2, 3])

    @Test func validHandWrittenFileReads() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let url = directory.appendingPathComponent("ok.safetensors")
        try Support.rawFile(header: Self.validHeader, data: Self.validData).write(to: url)
        let tensors = try SafeTensors.read(from: url).tensors
        #expect(tensors["a"]?.scalars == [1, 2])
        #expect(tensors["b"]?.scalars == [3])
    }

    @Test func missingFile() throws {
        let url = URL(fileURLWithPath: "/nonexistent-fusekit-dir/missing_weights.safetensors")
        #expect {
            _ = try SafeTensors.read(from: url)
        } throws: { error in
            (error as? SafeTensorsError) == .fileNotFound(file: url.path) && "\(error)".contains("missing_weights.safetensors")
        }
    }

    @Test func truncatedFiles() throws {
        let full = Support.rawFile(header: Self.validHeader, data: Self.validData)
        try expectError("cut_data.safetensors", full.prefix(full.count - 3)) {
            if case .truncated(_, let reason) = $0 { return reason.contains("'b'") }
            return false
        }
        try expectError("cut_header.safetensors", full.prefix(20)) {
            if case .truncated = $0 { return true }
            return false
        }
        try expectError("cut_length.safetensors", full.prefix(5)) {
            if case .truncated = $0 { return true }
            return false
        }
        try expectError("empty.safetensors", Data()) {
            if case .truncated = $0 { return true }
            return false
        }
    }

    @Test func headerTooLarge() throws {
        var bytes = Data()
        withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: Array("{}".utf8))
        try expectError("huge_header.safetensors", bytes) {
            if case .headerTooLarge(_, let size, _) = $0 { return size == 1 << 40 }
            return false
        }
    }

    @Test(arguments: [
        (#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]"#, "invalid JSON"),
        (#"["not", "an", "object"]"#, "expected"),
        (#"{"a": {"dtype": "F32", "data_offsets": [0, 8]}}"#, "missing field 'shape'"),
        (#"{"a": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}}"#, "not an integer"),
        (#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 9]}}"#, "3 data_offsets"),
        (#"{"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}"#, "negative dimension"),
        (#"{"__metadata__": {"n": 3}, "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}"#, "__metadata__"),
    ])
    func malformedHeader(header: String, reason: String) throws {
        try expectError("bad_header.safetensors", Support.rawFile(header: header, data: Support.bytes(of: [1, 2]))) {
            if case .malformedHeader(_, let text) = $0 { return text.contains(reason) }
            return false
        }
    }

    @Test func unknownDType() throws {
        let header = #"{"z":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#
        try expectError("complex.safetensors", Support.rawFile(header: header, data: Support.bytes(of: [1, 2]))) {
            $0 == .unknownDType(file: $0.file, tensor: "z", dtype: "C64") && $0.description.contains("BF16")
        }
    }

    @Test(arguments: [
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, "overlaps"),
        (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, "belong to no tensor"),
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, "last 4 data bytes"),
        (#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]},"b":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}"#, "begin must be"),
    ])
    func invalidOffsets(header: String, reason: String) throws {
        try expectError("bad_offsets.safetensors", Support.rawFile(header: header, data: Self.validData)) {
            if case .invalidOffsets(_, let text) = $0 { return text.contains(reason) }
            return false
        }
    }

    @Test func shapeDoesNotMatchByteRange() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}"#
        try expectError("bad_shape.safetensors", Support.rawFile(header: header, data: Self.validData)) {
            if case .shapeMismatch(_, "a", let text) = $0 { return text.contains("needs 16 bytes") }
            return false
        }
    }

    @Test func writeIntoMissingDirectoryFails() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let url = directory.appendingPathComponent("no/such/dir/out.safetensors")
        #expect {
            try SafeTensors.write(["a": Tensor([1])], to: url)
        } throws: { error in
            guard let error = error as? SafeTensorsError, case .writeFailed(let file, _) = error else { return false }
            return file == url.path && error.description.contains("out.safetensors")
        }
        #expect(Support.contents(of: directory).isEmpty)
    }

    @Test func reservedTensorNameIsRejected() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        #expect(throws: SafeTensorsError.self) {
            try SafeTensors.write(["__metadata__": Tensor([1])], to: directory.appendingPathComponent("x.safetensors"))
        }
        #expect(Support.contents(of: directory).isEmpty)
    }

    /// A 16 MB file reads in well under a second (mapped once, one copy per tensor).
    @Test func largeFileRoundTrip() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let url = directory.appendingPathComponent("large.safetensors")
        let big = Support.random([1024, 4096], seed: 5)
        try SafeTensors.write(["big": big, "small": Tensor([1])], to: url)
        let clock = ContinuousClock()
        var read: [String: Tensor] = [:]
        let elapsed = try clock.measure { read = try SafeTensors.read(from: url).tensors }
        #expect(Support.bitwiseEqual(try #require(read["big"]), big))
        #expect(elapsed < .seconds(1))
    }
}
