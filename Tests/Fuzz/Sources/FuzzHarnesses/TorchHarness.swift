import Foundation
import FuseKitNN
import FuseKitTensor

/// The PyTorch checkpoint reader (``TorchCheckpoint``: zip and legacy layouts, the restricted
/// unpickler, storages and strided views) and ``WeightsFile`` on one input, read twice: as the
/// file itself, and as the `data.pkl` of a zip archive the harness builds around it (with valid
/// CRCs and eight 1 KiB storages `0` to `7`), so that mutated pickles reach the unpickler in the
/// zip layout too rather than failing the archive's CRC check.
///
/// Invariants: every failure is a ``TorchCheckpointError`` or ``WeightsFileError`` naming the
/// file; tensors read have as many elements as their shape says, and reading them twice gives
/// the same bits; ``WeightsFile`` gives tensors that are among the checkpoint's own.
public enum TorchHarness {
    public static func run(_ data: Data) {
        check(Fuzzing.scratchFile("input.pth", data))
        check(Fuzzing.scratchFile("wrapped.pth", wrapped(pickle: data)))
    }

    static func check(_ url: URL) {
        let path = url.path
        func expectNamed(_ error: any Error) {
            switch error {
            case let error as TorchCheckpointError: Fuzzing.expect(error.file == path, "an error naming another file: \(error)")
            case let error as WeightsFileError: Fuzzing.expect(error.file == path, "an error naming another file: \(error)")
            // An input that looks like safetensors goes to that reader.
            case let error as SafeTensorsError: Fuzzing.expect(error.file == path, "an error naming another file: \(error)")
            case let error as CheckpointError: Fuzzing.expect(error.file == path, "an error naming another file: \(error)")
            default: Fuzzing.expect(false, "an error of an unexpected type \(type(of: error)): \(error)")
            }
        }
        var all: [String: Tensor]?
        do {
            let checkpoint = try TorchCheckpoint(contentsOf: url)
            let references = try checkpoint.flatten(checkpoint.root)
            Fuzzing.expect(Set(references.map(\.name)).count == references.count, "flatten gives a name twice")
            let tensors = try checkpoint.tensors(references)
            all = tensors
            Fuzzing.expect(tensors.count == references.count, "\(references.count) references read as \(tensors.count) tensors")
            for (name, reference) in references {
                let tensor = tensors[name]!
                Fuzzing.expect(tensor.shape == reference.shape, "tensor '\(name)' has shape \(tensor.shape), its reference \(reference.shape)")
                Fuzzing.expect(tensor.count == reference.shape.reduce(1, *), "tensor '\(name)' has \(tensor.count) elements for shape \(reference.shape)")
            }
            let again = try checkpoint.tensors(references)
            for (name, tensor) in tensors {
                Fuzzing.expect(again[name].map { sameBits($0, tensor) } ?? false, "tensor '\(name)' reads differently the second time")
            }
        } catch {
            expectNamed(error)
        }
        do {
            let loaded = try WeightsFile.read(WeightsReference(path: path))
            // Only comparable when the whole checkpoint could be read.
            guard let all, loaded.format == .torchZip || loaded.format == .torchLegacy else { return }
            let values = all.values.map { $0.scalars.map(\.bitPattern) }
            for (name, tensor) in loaded.tensors {
                let bits = tensor.scalars.map(\.bitPattern)
                Fuzzing.expect(values.contains(bits), "WeightsFile gives a tensor '\(name)' the checkpoint does not hold")
            }
        } catch {
            expectNamed(error)
        }
    }

    private static func sameBits(_ a: Tensor, _ b: Tensor) -> Bool {
        a.shape == b.shape && a.scalars.map(\.bitPattern) == b.scalars.map(\.bitPattern)
    }

    // MARK: A stored zip archive around a pickle

    static let storageCount = 8
    static let storageBytes = 1024

    /// `archive/data.pkl` = `pickle`, `archive/byteorder` = `little`, `archive/data/0` ... `7`
    /// (bytes counting up), stored as torch.save stores them.
    static func wrapped(pickle: Data) -> Data {
        var records: [(String, [UInt8])] = [("archive/data.pkl", [UInt8](pickle)), ("archive/byteorder", Array("little".utf8))]
        for key in 0..<storageCount {
            records.append(("archive/data/\(key)", (0..<storageBytes).map { UInt8(truncatingIfNeeded: $0 * 7 + key) }))
        }
        var file: [UInt8] = [], directory: [UInt8] = []
        func u16(_ v: Int, _ out: inout [UInt8]) { out += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func u32(_ v: UInt32, _ out: inout [UInt8]) { for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8(v >> UInt32(shift) & 0xFF)) } }
        for (name, bytes) in records {
            let offset = file.count, crc = crc32(bytes), nameBytes = Array(name.utf8)
            u32(0x0403_4B50, &file); u16(20, &file); u16(0, &file); u16(0, &file); u16(0, &file); u16(0, &file)
            u32(crc, &file); u32(UInt32(bytes.count), &file); u32(UInt32(bytes.count), &file); u16(nameBytes.count, &file); u16(0, &file)
            file += nameBytes + bytes
            u32(0x0201_4B50, &directory); u16(20, &directory); u16(20, &directory); u16(0, &directory); u16(0, &directory)
            u16(0, &directory); u16(0, &directory); u32(crc, &directory); u32(UInt32(bytes.count), &directory); u32(UInt32(bytes.count), &directory)
            u16(nameBytes.count, &directory); u16(0, &directory); u16(0, &directory); u16(0, &directory); u16(0, &directory)
            u32(0, &directory); u32(UInt32(offset), &directory)
            directory += nameBytes
        }
        let directoryOffset = file.count
        file += directory
        u32(0x0605_4B50, &file); u16(0, &file); u16(0, &file); u16(records.count, &file); u16(records.count, &file)
        u32(UInt32(directory.count), &file); u32(UInt32(directoryOffset), &file); u16(0, &file)
        return Data(file)
    }

    private static let crcTable: [UInt32] = (0..<256).map { n in
        (0..<8).reduce(UInt32(n)) { c, _ in c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    }

    private static func crc32(_ bytes: [UInt8]) -> UInt32 {
        ~bytes.reduce(~UInt32(0)) { crcTable[Int(($0 ^ UInt32($1)) & 0xFF)] ^ ($0 >> 8) }
    }
}
