import Foundation
import FuseKit

/// A dataset folder of two 32x32 pairs per split (`1`, `2`) with the given folder names, for
/// tests of label loading; `writeLabel(split, name, folder)` writes each pair's label file.
enum TinyDataset {
    static func write(at root: URL, infrared: String, visible: String, labels: String,
                      writeLabel: (_ split: String, _ name: String, _ folder: URL) throws -> Void) throws {
        for split in ["train", "test"] {
            for folder in [infrared, visible, labels] {
                try FileManager.default.createDirectory(at: root.appendingPathComponent("\(split)/\(folder)"), withIntermediateDirectories: true)
            }
            for name in ["1", "2"] {
                let image = Image(width: 32, height: 32, channels: 1, pixels: (0..<1024).map { Float($0 % 251) / 255 })
                try image.write(to: root.appendingPathComponent("\(split)/\(infrared)/\(name).png"))
                try image.write(to: root.appendingPathComponent("\(split)/\(visible)/\(name).png"))
                try writeLabel(split, name, root.appendingPathComponent("\(split)/\(labels)"))
            }
        }
    }
}
