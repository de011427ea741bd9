import Foundation
import FuseKitNN
import FuseKitTensor
import Testing

/// Fixture files and scratch directories for the optimizer, schedule, safetensors and
/// checkpoint tests.
enum SerializationTestSupport {
    /// `Tests/FuseKitNNTests/Fixtures` (see `make_optimizer_fixtures.py` there).
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// A fresh empty directory, removed by `cleanUp`.
    static func makeScratchDirectory(_ label: String = #function) throws -> URL {
        let name = "fusekit-nn-\(label.filter { $0.isLetter || $0.isNumber })-\(UUID().uuidString)"
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Removes a scratch directory (restoring write permission first).
    static func cleanUp(_ url: URL) {
        try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
        try? FileManager.default.removeItem(at: url)
    }

    /// Names of the entries of a directory.
    static func contents(of url: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []).sorted()
    }

    /// Row `index` of a tensor whose first dimension stacks several values.
    static func row(_ tensor: Tensor, _ index: Int) -> Tensor {
        let rowShape = Array(tensor.shape.dropFirst())
        let size = Shape.count(rowShape)
        return tensor.withUnsafeBufferPointer { Tensor(shape: rowShape, scalars: Array($0[index * size ..< (index + 1) * size])) }
    }

    /// Whether two tensors have the same shape and bit patterns.
    static func bitwiseEqual(_ a: Tensor, _ b: Tensor) -> Bool {
        a.shape == b.shape && a.scalars.map(\.bitPattern) == b.scalars.map(\.bitPattern)
    }

    /// A random tensor.
    static func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        return Tensor.normal(shape, using: &rng)
    }

    /// The safetensors bytes of a hand-written header and data section (the header is used
    /// verbatim, without padding).
    static func rawFile(header: String, data: [UInt8]) -> Data {
        var bytes = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: Array(header.utf8))
        bytes.append(contentsOf: data)
        return bytes
    }

    /// The little-endian bytes of Float32 values.
    static func bytes(of values: [Float]) -> [UInt8] {
        values.flatMap { value in withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) } }
    }
}
