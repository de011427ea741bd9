import Foundation
import FuseKitImage

/// The image files of a folder, keyed by file stem (the name without its extension).
public struct ImageFolder: Sendable {
    /// The folder.
    public let url: URL
    /// Image files by stem. When several files share a stem, PNG is preferred, then JPEG, then BMP.
    public let filesByStem: [String: URL]
    /// Extra files that were shadowed by a preferred file of the same stem.
    public let duplicates: [URL]

    /// Lists the PNG, JPEG and BMP files directly in `url` (not in subfolders; hidden files skipped).
    public init(_ url: URL) throws(DatasetError) {
        self.url = url
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw .folderNotFound(url.path)
        }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: url.path)
        } catch {
            throw .folderNotFound(url.path)
        }
        let preference = ["png", "jpg", "jpeg", "bmp"]
        var chosen: [String: URL] = [:]
        var duplicates: [URL] = []
        for name in names.sorted() where !name.hasPrefix(".") {
            let file = url.appendingPathComponent(name)
            let ext = file.pathExtension.lowercased()
            guard ImageFileFormat.allFileExtensions.contains(ext) else { continue }
            let stem = file.deletingPathExtension().lastPathComponent
            if let existing = chosen[stem] {
                let rank = { (u: URL) in preference.firstIndex(of: u.pathExtension.lowercased()) ?? preference.count }
                if rank(file) < rank(existing) {
                    duplicates.append(existing)
                    chosen[stem] = file
                } else {
                    duplicates.append(file)
                }
            } else {
                chosen[stem] = file
            }
        }
        self.filesByStem = chosen
        self.duplicates = duplicates
    }

    /// The stems, sorted (numerically where they are numbers of different lengths, "2" before "10").
    public var sortedStems: [String] { filesByStem.keys.sorted(by: ImageFolder.naturalOrder) }

    /// Orders names so that embedded numbers compare by value ("img2" before "img10").
    public static func naturalOrder(_ lhs: String, _ rhs: String) -> Bool {
        lhs.compare(rhs, options: [.numeric]) == .orderedAscending
    }
}
