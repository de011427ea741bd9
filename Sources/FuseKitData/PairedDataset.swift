import Foundation
import FuseKitImage

/// Folder layouts of the paired infrared/visible datasets users have on disk.
public enum DatasetLayout: String, Sendable, CaseIterable {
    /// TDFusion's own layout: `{ir, vi, label}` (plus optional `boxes/` YOLO text), possibly
    /// under `{train, test}`.
    case tdfusion
    /// MSRS as released: `{train, test}/{ir, vi, Segmentation_labels}`.
    case msrs
    /// FMB as released: `{train, test}/{Infrared, Visible, Label}`.
    case fmb
    /// M3FD: `{ir, vi}` (or `Ir`, `Vis`) with detection boxes in `labels/` (YOLO text) or
    /// `Annotation(s)/` (VOC XML).
    case m3fd
    /// LLVIP: `{infrared, visible}/{train, test}` with `Annotations/` VOC XML (class "person").
    case llvip
    /// TNO, RoadScene and other pair-only sets: one infrared and one visible folder, no labels.
    case pairs

    /// The layout named `name` (case-insensitive; "tno" and "roadscene" mean ``pairs``).
    public init?(name: String) {
        switch name.lowercased() {
        case "tno", "roadscene", "pairs": self = .pairs
        default:
            guard let layout = DatasetLayout(rawValue: name.lowercased()) else { return nil }
            self = layout
        }
    }

    /// Folder names (lower case) that hold each part in this layout, in order of preference.
    var infraredNames: [String] {
        switch self {
        case .tdfusion, .msrs: return ["ir"]
        case .fmb, .llvip: return ["infrared"]
        case .m3fd: return ["ir"]
        case .pairs: return ["ir", "infrared", "cropinfrared", "inf", "thermal", "lwir"]
        }
    }

    var visibleNames: [String] {
        switch self {
        case .tdfusion, .msrs: return ["vi"]
        case .fmb, .llvip: return ["visible"]
        case .m3fd: return ["vi", "vis"]
        case .pairs: return ["vi", "vis", "visible", "crop_hr_visible", "rgb"]
        }
    }

    var segmentationNames: [String] {
        switch self {
        case .tdfusion: return ["label"]
        case .msrs: return ["segmentation_labels", "label"]
        case .fmb: return ["label"]
        case .m3fd, .llvip, .pairs: return []
        }
    }

    var boxNames: [String] {
        switch self {
        case .tdfusion: return ["boxes"]
        case .m3fd: return ["labels", "annotation", "annotations", "boxes"]
        case .llvip: return ["annotations", "annotation", "labels"]
        case .msrs, .fmb, .pairs: return []
        }
    }

    /// Whether the split folders sit inside the modality folders (`infrared/train`) rather than above them.
    var splitInsideModalities: Bool { self == .llvip }

    /// Default class names for VOC XML boxes.
    var vocClassNames: [String] {
        switch self {
        case .llvip: return VOCAnnotation.llvipClasses
        case .m3fd: return VOCAnnotation.m3fdClasses
        default: return []
        }
    }
}

/// Format of a dataset's box label files.
public enum BoxFileFormat: String, Sendable {
    /// YOLO text, `class cx cy w h` normalised, one file per image (`stem.txt`).
    case yolo
    /// Pascal VOC XML, one file per image (`stem.xml`).
    case voc
}

/// One infrared/visible pair of a dataset, with the files of its labels when the dataset has them.
public struct ImagePair: Sendable, Hashable {
    /// The shared file stem.
    public var name: String
    /// The infrared image.
    public var infrared: URL
    /// The visible image.
    public var visible: URL
    /// The segmentation mask (PNG of class indices), if any.
    public var segmentation: URL?
    /// The box label file, if any.
    public var boxes: URL?

    /// A pair of files with optional labels.
    public init(name: String, infrared: URL, visible: URL, segmentation: URL? = nil, boxes: URL? = nil) {
        self.name = name
        self.infrared = infrared
        self.visible = visible
        self.segmentation = segmentation
        self.boxes = boxes
    }
}

/// Something wrong with one pair of a dataset. Training refuses a dataset with problems;
/// evaluation skips the pairs concerned with a warning.
public enum DatasetProblem: Sendable, Hashable, CustomStringConvertible {
    /// An infrared image without a visible partner of the same stem.
    case missingVisible(name: String, infrared: URL, expectedIn: URL)
    /// A visible image without an infrared partner of the same stem.
    case missingInfrared(name: String, visible: URL, expectedIn: URL)
    /// The two images of a pair differ in size.
    case sizeMismatch(name: String, infrared: URL, infraredSize: String, visible: URL, visibleSize: String)
    /// A pair's label differs in size from its images.
    case labelSizeMismatch(name: String, label: URL, labelSize: String, image: URL, imageSize: String)
    /// A pair has no segmentation mask although the dataset has a mask folder.
    case missingSegmentation(name: String, infrared: URL, expectedIn: URL)
    /// A file of a pair could not be read.
    case unreadable(name: String, message: String)

    /// The stem of the pair concerned.
    public var name: String {
        switch self {
        case .missingVisible(let name, _, _), .missingInfrared(let name, _, _), .sizeMismatch(let name, _, _, _, _),
             .labelSizeMismatch(let name, _, _, _, _), .missingSegmentation(let name, _, _), .unreadable(let name, _):
            return name
        }
    }

    public var description: String {
        switch self {
        case let .missingVisible(name, infrared, folder):
            return "pair '\(name)': \(infrared.path) has no visible partner (expected \(folder.path)/\(name).*)"
        case let .missingInfrared(name, visible, folder):
            return "pair '\(name)': \(visible.path) has no infrared partner (expected \(folder.path)/\(name).*)"
        case let .sizeMismatch(name, infrared, infraredSize, visible, visibleSize):
            return "pair '\(name)': sizes differ: \(infrared.path) is \(infraredSize), \(visible.path) is \(visibleSize)"
        case let .labelSizeMismatch(name, label, labelSize, image, imageSize):
            return "pair '\(name)': label \(label.path) is \(labelSize) but \(image.path) is \(imageSize)"
        case let .missingSegmentation(name, infrared, folder):
            return "pair '\(name)': \(infrared.path) has no segmentation mask (expected \(folder.path)/\(name).png)"
        case let .unreadable(name, message):
            return "pair '\(name)': \(message)"
        }
    }
}

/// Why a dataset could not be opened or used.
public enum DatasetError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A folder does not exist (or is not a folder).
    case folderNotFound(String)
    /// No known layout matches the folder.
    case layoutNotRecognised(root: String, subfolders: [String])
    /// A named layout's folder is missing.
    case missingFolder(layout: String, expected: String)
    /// The dataset has several splits and none was chosen.
    case splitRequired(root: String, available: [String])
    /// The requested split does not exist.
    case splitNotFound(root: String, split: String, available: [String])
    /// Not a single complete pair.
    case noPairs(infrared: String, visible: String)
    /// The dataset has problems that training does not accept.
    case inconsistent([DatasetProblem])
    /// A sample could not be loaded.
    case sampleFailed(name: String, message: String)
    /// Samples of one batch cannot be stacked or cropped together.
    case batchMismatch(String)

    public var description: String {
        switch self {
        case .folderNotFound(let path): return "dataset folder \(path) does not exist"
        case let .layoutNotRecognised(root, subfolders):
            return "cannot recognise the dataset layout of \(root) (subfolders: \(subfolders.isEmpty ? "none" : subfolders.joined(separator: ", "))); "
                + "expected e.g. {ir,vi,label}, {train,test}/{ir,vi,Segmentation_labels}, {Infrared,Visible,Label}, {infrared,visible}/{train,test}"
        case let .missingFolder(layout, expected): return "\(layout) layout: folder \(expected) does not exist"
        case let .splitRequired(root, available):
            return "dataset \(root) has splits \(available.joined(separator: ", ")); choose one"
        case let .splitNotFound(root, split, available):
            return "dataset \(root) has no split '\(split)' (available: \(available.isEmpty ? "none" : available.joined(separator: ", ")))"
        case let .noPairs(infrared, visible): return "no image pairs with matching stems in \(infrared) and \(visible)"
        case .inconsistent(let problems):
            let shown = problems.prefix(10).map { "  - \($0.description)" }.joined(separator: "\n")
            let more = problems.count > 10 ? "\n  ... and \(problems.count - 10) more" : ""
            return "dataset has \(problems.count) problem(s):\n\(shown)\(more)"
        case let .sampleFailed(name, message): return "cannot load pair '\(name)': \(message)"
        case .batchMismatch(let message): return message
        }
    }
}

/// A paired infrared/visible dataset on disk: pairs matched by file stem, with the segmentation
/// masks and box files of each pair when the layout has them.
public struct PairedDataset: Sendable {
    /// The folder given.
    public let root: URL
    /// The layout (detected or named).
    public let layout: DatasetLayout
    /// The split used (e.g. "train"), if the dataset has splits.
    public let split: String?
    /// Folder of the infrared images.
    public let infraredFolder: URL
    /// Folder of the visible images.
    public let visibleFolder: URL
    /// Folder of the segmentation masks, if any.
    public let segmentationFolder: URL?
    /// Folder of the box files, if any.
    public let boxesFolder: URL?
    /// Format of the box files.
    public let boxFormat: BoxFileFormat?
    /// Class names used to read VOC XML boxes.
    public let vocClassNames: [String]
    /// The number of classes boxes may have (the detector's), if known: a box of another class
    /// is an error naming its file (and line, in YOLO text) when the sample is loaded.
    public var boxClassCount: Int?
    /// The number of classes label masks may have (the segmenter's), if known: a mask value
    /// outside `0..<segmentationClassCount` other than the ignore index (255) is an error naming
    /// its file, the value and the pixel when the sample is loaded.
    public var segmentationClassCount: Int?
    /// Complete pairs, in natural stem order.
    public private(set) var pairs: [ImagePair]
    /// Problems found while listing (missing partners, missing masks).
    public private(set) var problems: [DatasetProblem]

    /// Opens a dataset folder.
    ///
    /// - Parameters:
    ///   - root: the dataset folder (e.g. `MSRS/`, or `MSRS/train/`).
    ///   - layout: the layout, or nil to detect it from the folder names.
    ///   - split: the split folder to use ("train", "test", ...) when the dataset has several.
    ///   - vocClassNames: class names for VOC XML boxes (default: the layout's, e.g. "person" for LLVIP).
    public init(root: URL, layout: DatasetLayout? = nil, split: String? = nil, vocClassNames: [String]? = nil) throws(DatasetError) {
        let resolved = try Self.resolve(root: root, layout: layout, split: split)
        self.root = root
        self.layout = resolved.layout
        self.split = resolved.split
        self.infraredFolder = resolved.infrared
        self.visibleFolder = resolved.visible
        self.segmentationFolder = resolved.segmentation
        self.boxesFolder = resolved.boxes
        self.vocClassNames = vocClassNames ?? resolved.layout.vocClassNames
        let listing = try Self.listPairs(infrared: resolved.infrared, visible: resolved.visible,
                                         segmentation: resolved.segmentation, boxes: resolved.boxes)
        self.boxFormat = listing.boxFormat
        self.pairs = listing.pairs
        self.problems = listing.problems
    }

    /// A pair-only dataset from two folders of images (TNO, RoadScene, a fused result set).
    public init(infraredFolder: URL, visibleFolder: URL) throws(DatasetError) {
        self.root = infraredFolder.deletingLastPathComponent()
        self.layout = .pairs
        self.split = nil
        self.infraredFolder = infraredFolder
        self.visibleFolder = visibleFolder
        self.segmentationFolder = nil
        self.boxesFolder = nil
        self.vocClassNames = []
        let listing = try Self.listPairs(infrared: infraredFolder, visible: visibleFolder, segmentation: nil, boxes: nil)
        self.boxFormat = nil
        self.pairs = listing.pairs
        self.problems = listing.problems
    }

    /// Number of complete pairs.
    public var count: Int { pairs.count }

    /// Reads the image headers of every pair (and its mask) and reports size mismatches and
    /// unreadable files, together with the problems found while listing.
    public func checkConsistency() -> [DatasetProblem] {
        var found = problems
        for pair in pairs {
            let infraredSize: (width: Int, height: Int), visibleSize: (width: Int, height: Int)
            do {
                infraredSize = try Image.dimensions(ofFileAt: pair.infrared)
                visibleSize = try Image.dimensions(ofFileAt: pair.visible)
            } catch {
                found.append(.unreadable(name: pair.name, message: error.description))
                continue
            }
            if infraredSize != visibleSize {
                found.append(.sizeMismatch(name: pair.name, infrared: pair.infrared, infraredSize: "\(infraredSize.width)x\(infraredSize.height)",
                                           visible: pair.visible, visibleSize: "\(visibleSize.width)x\(visibleSize.height)"))
                continue
            }
            if let mask = pair.segmentation {
                do {
                    let maskSize = try Image.dimensions(ofFileAt: mask)
                    if maskSize != infraredSize {
                        found.append(.labelSizeMismatch(name: pair.name, label: mask, labelSize: "\(maskSize.width)x\(maskSize.height)",
                                                        image: pair.infrared, imageSize: "\(infraredSize.width)x\(infraredSize.height)"))
                    }
                } catch {
                    found.append(.unreadable(name: pair.name, message: error.description))
                }
            }
        }
        return found
    }

    /// The dataset as training takes it: throws ``DatasetError/inconsistent(_:)`` naming every
    /// problem (missing partners or masks, size mismatches, unreadable headers).
    public func validatedForTraining() throws(DatasetError) -> PairedDataset {
        let found = checkConsistency()
        guard found.isEmpty else { throw .inconsistent(found) }
        return self
    }

    /// The dataset as evaluation takes it: pairs with problems removed, and the problems
    /// (to print as warnings).
    public func droppingInconsistentPairs() -> (dataset: PairedDataset, skipped: [DatasetProblem]) {
        let found = checkConsistency()
        let bad = Set(found.map(\.name))
        var copy = self
        copy.pairs = pairs.filter { !bad.contains($0.name) }
        copy.problems = []
        return (copy, found)
    }

    /// Keeps the pairs for which `isIncluded` holds (e.g. a subset for a quick run).
    public func filtered(_ isIncluded: (ImagePair) -> Bool) -> PairedDataset {
        var copy = self
        copy.pairs = pairs.filter(isIncluded)
        return copy
    }

    // MARK: Layout resolution

    struct Resolved {
        var layout: DatasetLayout
        var split: String?
        var infrared: URL
        var visible: URL
        var segmentation: URL?
        var boxes: URL?
    }

    /// Subfolder names of a folder, mapped lower case -> actual name.
    static func subfolders(_ url: URL) -> [String: String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: url.path) else { return [:] }
        var result: [String: String] = [:]
        for name in names.sorted() where !name.hasPrefix(".") {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: url.appendingPathComponent(name).path, isDirectory: &isDirectory), isDirectory.boolValue {
                result[name.lowercased()] = result[name.lowercased()] ?? name
            }
        }
        return result
    }

    static let splitNames = ["train", "test", "val", "valid", "validation", "trainval"]

    static func firstMatch(_ candidates: [String], in folders: [String: String], base: URL) -> URL? {
        for candidate in candidates {
            if let actual = folders[candidate] { return base.appendingPathComponent(actual) }
        }
        return nil
    }

    /// Whether `url` holds files with one of the extensions.
    static func contains(_ url: URL, extensions: Set<String>) -> Bool {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: url.path) else { return false }
        return names.contains { extensions.contains(($0 as NSString).pathExtension.lowercased()) }
    }

    /// Whether `folders` (of a split or root folder) look like `layout`.
    static func matches(_ layout: DatasetLayout, folders: [String: String], base: URL) -> Bool {
        if layout == .llvip {
            guard let ir = firstMatch(layout.infraredNames, in: folders, base: base),
                  firstMatch(layout.visibleNames, in: folders, base: base) != nil else { return false }
            return !subfolders(ir).keys.filter { splitNames.contains($0) }.isEmpty
        }
        guard firstMatch(layout.infraredNames, in: folders, base: base) != nil,
              firstMatch(layout.visibleNames, in: folders, base: base) != nil else { return false }
        switch layout {
        case .msrs: return folders["segmentation_labels"] != nil
        case .fmb: return folders["label"] != nil
        case .tdfusion: return folders["label"] != nil
        case .m3fd: return firstMatch(layout.boxNames, in: folders, base: base) != nil
        case .pairs, .llvip: return true
        }
    }

    static let detectionOrder: [DatasetLayout] = [.llvip, .msrs, .fmb, .tdfusion, .m3fd, .pairs]

    static func resolve(root: URL, layout: DatasetLayout?, split: String?) throws(DatasetError) -> Resolved {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw .folderNotFound(root.path)
        }
        let rootFolders = subfolders(root)
        let candidates = layout.map { [$0] } ?? detectionOrder

        // LLVIP-style: splits inside the modality folders.
        for candidate in candidates where candidate.splitInsideModalities && matches(candidate, folders: rootFolders, base: root) {
            let irParent = firstMatch(candidate.infraredNames, in: rootFolders, base: root)!
            let visParent = firstMatch(candidate.visibleNames, in: rootFolders, base: root)!
            let splits = subfolders(irParent)
            let available = splits.keys.sorted()
            let chosen: String
            if let split {
                guard let actual = splits[split.lowercased()] else {
                    throw .splitNotFound(root: root.path, split: split, available: available)
                }
                chosen = actual
            } else if splits.count == 1 {
                chosen = splits.values.first!
            } else {
                throw .splitRequired(root: root.path, available: available)
            }
            let visibleSplit = subfolders(visParent)[chosen.lowercased()].map { visParent.appendingPathComponent($0) }
                ?? visParent.appendingPathComponent(chosen)
            var boxes = firstMatch(candidate.boxNames, in: rootFolders, base: root)
            if let folder = boxes, let inner = subfolders(folder)[chosen.lowercased()] {
                boxes = folder.appendingPathComponent(inner)
            }
            return Resolved(layout: candidate, split: chosen, infrared: irParent.appendingPathComponent(chosen),
                            visible: visibleSplit, segmentation: nil, boxes: boxes)
        }

        // Choose the folder holding the modality folders: the root, or one of its splits.
        var base = root
        var folders = rootFolders
        var chosenSplit: String?
        let rootHasModalities = candidates.contains { !$0.splitInsideModalities && matches($0, folders: rootFolders, base: root) }
        let availableSplits = rootFolders.keys.filter { splitNames.contains($0) }.sorted()
        if let split {
            if let actual = rootFolders[split.lowercased()] {
                base = root.appendingPathComponent(actual)
                folders = subfolders(base)
                chosenSplit = actual
            } else {
                throw .splitNotFound(root: root.path, split: split, available: availableSplits)
            }
        } else if !rootHasModalities && !availableSplits.isEmpty {
            guard availableSplits.count == 1 else { throw .splitRequired(root: root.path, available: availableSplits) }
            let actual = rootFolders[availableSplits[0]]!
            base = root.appendingPathComponent(actual)
            folders = subfolders(base)
            chosenSplit = actual
        }

        for candidate in candidates where !candidate.splitInsideModalities {
            guard matches(candidate, folders: folders, base: base) else { continue }
            let infrared = firstMatch(candidate.infraredNames, in: folders, base: base)!
            let visible = firstMatch(candidate.visibleNames, in: folders, base: base)!
            var segmentation = firstMatch(candidate.segmentationNames, in: folders, base: base)
            var boxes = firstMatch(candidate.boxNames, in: folders, base: base)
            // A "labels" folder of PNGs is a mask folder; a "label" folder of .txt files holds boxes.
            if let folder = boxes, !contains(folder, extensions: ["txt", "xml"]), contains(folder, extensions: ImageFileFormat.allFileExtensions) {
                if segmentation == nil { segmentation = folder }
                boxes = nil
            }
            if let folder = segmentation, !contains(folder, extensions: ImageFileFormat.allFileExtensions), contains(folder, extensions: ["txt", "xml"]) {
                if boxes == nil { boxes = folder }
                segmentation = nil
            }
            // TDFusion's layout may also carry YOLO boxes in "labels".
            if candidate == .tdfusion, boxes == nil, let labels = folders["labels"], contains(base.appendingPathComponent(labels), extensions: ["txt", "xml"]) {
                boxes = base.appendingPathComponent(labels)
            }
            return Resolved(layout: candidate, split: chosenSplit, infrared: infrared, visible: visible,
                            segmentation: segmentation, boxes: boxes)
        }

        if let layout {
            let irName = layout.infraredNames[0], visName = layout.visibleNames[0]
            let missing = folders[irName] == nil ? irName : visName
            let expectedName = layout == .msrs && folders[irName] != nil && folders[visName] != nil ? "Segmentation_labels"
                : (layout == .fmb || layout == .tdfusion) && folders[irName] != nil && folders[visName] != nil ? "label" : missing
            throw .missingFolder(layout: layout.rawValue, expected: base.appendingPathComponent(expectedName).path)
        }
        throw .layoutNotRecognised(root: base.path, subfolders: folders.values.sorted())
    }

    struct Listing {
        var pairs: [ImagePair]
        var problems: [DatasetProblem]
        var boxFormat: BoxFileFormat?
    }

    static func listPairs(infrared: URL, visible: URL, segmentation: URL?, boxes: URL?) throws(DatasetError) -> Listing {
        let irFolder = try ImageFolder(infrared)
        let visFolder = try ImageFolder(visible)
        let masks = try segmentation.map { url throws(DatasetError) in try ImageFolder(url) }
        var boxFiles: [String: URL] = [:]
        var boxFormat: BoxFileFormat?
        if let boxes, let names = try? FileManager.default.contentsOfDirectory(atPath: boxes.path) {
            for name in names where !name.hasPrefix(".") {
                let ext = (name as NSString).pathExtension.lowercased()
                guard ext == "txt" || ext == "xml" else { continue }
                let stem = (name as NSString).deletingPathExtension
                boxFiles[stem] = boxes.appendingPathComponent(name)
                boxFormat = boxFormat ?? (ext == "xml" ? .voc : .yolo)
            }
        }
        var pairs: [ImagePair] = []
        var problems: [DatasetProblem] = []
        let allStems = Set(irFolder.filesByStem.keys).union(visFolder.filesByStem.keys).sorted(by: ImageFolder.naturalOrder)
        for stem in allStems {
            switch (irFolder.filesByStem[stem], visFolder.filesByStem[stem]) {
            case let (ir?, vis?):
                let mask = masks?.filesByStem[stem]
                if let masks, mask == nil {
                    problems.append(.missingSegmentation(name: stem, infrared: ir, expectedIn: masks.url))
                }
                pairs.append(ImagePair(name: stem, infrared: ir, visible: vis, segmentation: mask, boxes: boxFiles[stem]))
            case let (ir?, nil):
                problems.append(.missingVisible(name: stem, infrared: ir, expectedIn: visible))
            case let (nil, vis?):
                problems.append(.missingInfrared(name: stem, visible: vis, expectedIn: infrared))
            case (nil, nil):
                break
            }
        }
        guard !pairs.isEmpty else { throw .noPairs(infrared: infrared.path, visible: visible.path) }
        return Listing(pairs: pairs, problems: problems, boxFormat: boxFormat)
    }
}
