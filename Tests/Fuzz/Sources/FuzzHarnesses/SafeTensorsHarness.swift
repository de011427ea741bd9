import Foundation
import FuseKitNN
import FuseKitTensor

/// The safetensors reader and the checkpoint loader on one input.
///
/// Invariants checked when reading succeeds: the header-only reader agrees with the full reader;
/// what was read survives writing and reading back bit for bit (tensors and metadata); a loaded
/// checkpoint survives saving and loading back (its equality is bitwise).
public enum SafeTensorsHarness {
    public static func run(_ data: Data) {
        let url = Fuzzing.scratchFile("input.safetensors", data)
        let copy = Fuzzing.scratchFolder.appendingPathComponent("copy.safetensors")
        let header = try? SafeTensors.readHeader(from: url)
        if let (tensors, metadata) = try? SafeTensors.read(from: url) {
            Fuzzing.expect(header != nil, "the full reader accepts a file the header reader refuses")
            if let header {
                Fuzzing.expect(header.metadata == metadata, "the header reader's metadata differs")
                Fuzzing.expect(Set(header.tensors.keys) == Set(tensors.keys), "the header reader lists other tensors")
                for (name, info) in header.tensors {
                    Fuzzing.expect(tensors[name]?.shape == info.shape, "tensor '\(name)': the readers disagree on the shape")
                }
            }
            do {
                try SafeTensors.write(tensors, metadata: metadata, to: copy)
                let (reread, rereadMetadata) = try SafeTensors.read(from: copy)
                Fuzzing.expect(rereadMetadata == metadata, "metadata changes in a round trip")
                Fuzzing.expect(Set(reread.keys) == Set(tensors.keys), "tensor names change in a round trip")
                for (name, tensor) in tensors {
                    Fuzzing.expect(reread[name].map { sameBits($0, tensor) } ?? false, "tensor '\(name)' changes in a round trip")
                }
            } catch {
                // Names the writer refuses (the empty name) are read but cannot be written back.
                let refusedName = tensors.keys.contains { $0.isEmpty || $0 == SafeTensors.metadataKey }
                Fuzzing.expect(refusedName, "what was read cannot be written back: \(error)")
            }
        } else {
            Fuzzing.expect(header == nil, "the header reader accepts a file the full reader refuses")
        }
        if let checkpoint = try? Checkpoint.load(from: url) {
            do {
                try checkpoint.save(to: copy)
                let reloaded = try Checkpoint.load(from: copy)
                Fuzzing.expect(reloaded == checkpoint, "a checkpoint changes in a save and load round trip")
            } catch {
                Fuzzing.expect(false, "a loaded checkpoint cannot be saved and loaded back: \(error)")
            }
        }
    }

    private static func sameBits(_ a: Tensor, _ b: Tensor) -> Bool {
        guard a.shape == b.shape else { return false }
        return a.withUnsafeBufferPointer { x in
            b.withUnsafeBufferPointer { y in
                zip(x, y).allSatisfy { $0.bitPattern == $1.bitPattern }
            }
        }
    }
}
