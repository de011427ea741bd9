import Foundation
import FuseKit
import FuseKitNN
import FuseKitPlugins
import MAFS

/// The committed parity fixtures (`Fixtures/mafs_minimal.safetensors`, README.md section 8).
enum MAFSFixture {
    static var url: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/mafs_minimal.safetensors") }

    /// The registered `mafs` network of a variant, with further parameters.
    static func network(_ variant: String, _ more: [String: ParameterValue] = [:]) throws -> MAFSNetwork {
        var values = more
        values["variant"] = .string(variant)
        return try StandardPlugins.registry().makeJoint("mafs", PluginParameters(values)) as! MAFSNetwork
    }

    nonisolated(unsafe) private static var cache: [String: Tensor]?
    private static let lock = NSLock()

    /// Every tensor of the fixture (read once).
    static func tensors() throws -> [String: Tensor] {
        lock.lock()
        defer { lock.unlock() }
        if let cache { return cache }
        let loaded = try SafeTensors.read(from: url).tensors
        cache = loaded
        return loaded
    }
}
