import Foundation
import FuseKitTensor

/// A weights file and, optionally, the part of it to read, written `PATH` or `PATH#PREFIX`.
///
/// `PREFIX` is a dotted name prefix: the tensors whose names start with `PREFIX.` are read,
/// with `PREFIX.` removed. Names in a PyTorch checkpoint are built from its nested
/// dictionaries, so `mafs.pth#MTAN.seg_decoder` reads `torch.load("mafs.pth")["MTAN"]`'s
/// `seg_decoder.*` tensors as `*`, and `runs/x/checkpoints/best.safetensors#task` reads the task
/// network of a FuseKit checkpoint. An empty prefix (`PATH#`) reads every tensor of the file
/// under its full name, without the automatic unwrapping of ``WeightsFile/read(_:checkpointModel:)``.
public struct WeightsReference: Sendable, Equatable, CustomStringConvertible {
    /// The file.
    public var path: String
    /// The dotted prefix to select and remove, or nil for the automatic choice.
    public var prefix: String?

    public init(path: String, prefix: String? = nil) {
        self.path = path
        self.prefix = prefix
    }

    /// Parses `PATH` or `PATH#PREFIX`. A path that exists as written is taken whole, even if it
    /// contains `#`.
    public init(_ text: String) {
        if let hash = text.lastIndex(of: "#"), !FileManager.default.fileExists(atPath: text) {
            self.init(path: String(text[..<hash]), prefix: String(text[text.index(after: hash)...]))
        } else {
            self.init(path: text)
        }
    }

    public var description: String { prefix.map { "\(path)#\($0)" } ?? path }
}

/// Named Float32 tensors read from a weights file, and where in the file they came from.
public struct LoadedWeights: Sendable {
    /// The tensors by name (PyTorch's dotted `state_dict` names).
    public var tensors: [String: Tensor]
    /// The kind of file they came from.
    public var format: WeightsFile.Format
    /// The prefix that was selected and removed from every name (given after `#`, or chosen
    /// automatically, e.g. `model`, `MTAN`, or the model of a FuseKit checkpoint); nil for none.
    public var selectedPrefix: String?
    /// Whether a `module.` prefix (PyTorch's DataParallel) was removed from every name.
    public var removedModulePrefix: Bool

    /// One line saying what was read, e.g. `120 tensors (PyTorch zip checkpoint, under 'model', 'module.' removed)`.
    public var summary: String {
        var parts = [format.rawValue]
        if let selectedPrefix, !selectedPrefix.isEmpty { parts.append("under '\(selectedPrefix)'") }
        if removedModulePrefix { parts.append("'module.' removed") }
        return "\(tensors.count) tensors (\(parts.joined(separator: ", ")))"
    }
}

/// Why a file could not be read as weights; every case names the file. Problems inside a file
/// are reported by the format's own error (``SafeTensorsError``, ``CheckpointError``,
/// ``TorchCheckpointError``), which names the file too.
public enum WeightsFileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// There is no file at the path.
    case fileNotFound(file: String)
    /// The file is none of the formats FuseKit reads.
    case unknownFormat(file: String, reason: String)
    /// The selected part of the file holds no tensor.
    case noTensors(file: String, reason: String)
    /// The file holds several sets of tensors and none is the obvious state dict.
    case ambiguous(file: String, candidates: [String])
    /// No tensor name starts with the given prefix.
    case prefixNotFound(file: String, prefix: String, available: [String])

    /// The path of the file concerned.
    public var file: String {
        switch self {
        case .fileNotFound(let file), .unknownFormat(let file, _), .noTensors(let file, _),
             .ambiguous(let file, _), .prefixNotFound(let file, _, _):
            return file
        }
    }

    public var description: String {
        switch self {
        case .fileNotFound(let file):
            return "weights file '\(file)' does not exist"
        case .unknownFormat(let file, let reason):
            return "'\(file)' is not a weights file FuseKit reads (safetensors, a FuseKit checkpoint, or a PyTorch file written by torch.save): \(reason)"
        case .noTensors(let file, let reason):
            return "weights file '\(file)' holds no tensors" + (reason.isEmpty ? "" : " " + reason)
        case .ambiguous(let file, let candidates):
            return "weights file '\(file)' holds several sets of tensors: \(candidates.joined(separator: ", ")); choose one as '\(file)#KEY' (or '\(file)#' for all of them under their full names)"
        case .prefixNotFound(let file, let prefix, let available):
            return "weights file '\(file)' has no tensors under '\(prefix)'; its tensors are under: \(available.joined(separator: ", "))"
        }
    }
}

/// The one entry point for reading weights: safetensors files, FuseKit checkpoints and PyTorch
/// checkpoints (`torch.save`, zip or legacy format) into named Float32 tensors.
///
/// Without a `#PREFIX` (see ``WeightsReference``), the tensors are found as follows:
/// - a FuseKit checkpoint: the model named `checkpointModel` (the caller's role, e.g.
///   `fusion`), or its only model;
/// - a PyTorch checkpoint: its dictionary of tensors; when the top level holds no tensor itself,
///   the first of ``nestingKeys`` that holds tensors is opened (`{"model": state_dict,
///   "optimizer": ...}`), else the only entry that holds tensors, repeatedly;
/// - a plain safetensors file: all its tensors.
///
/// Then, when every name starts with `module.` (a model saved inside `nn.DataParallel`), that
/// prefix is removed.
public enum WeightsFile {
    /// The kinds of file read.
    public enum Format: String, Sendable {
        case safetensors = "safetensors"
        case fusekitCheckpoint = "FuseKit checkpoint"
        case torchZip = "PyTorch zip checkpoint"
        case torchLegacy = "PyTorch legacy checkpoint"
    }

    /// Keys under which published checkpoints nest their state dict, tried in this order
    /// (TDFusion/ReFusion and MRFS use `model`, `state_dict` or `module`; MAFS uses `MTAN`).
    public static let nestingKeys = ["state_dict", "model_state_dict", "model", "MTAN", "module", "net", "network", "params"]

    /// The prefix PyTorch's `DataParallel` adds to every name.
    public static let dataParallelPrefix = "module."

    /// Reads the weights a model starts from or runs with: as ``read(_:checkpointModel:)``, and
    /// refusing NaN or infinite values (naming the file and the tensor), which would train or fuse
    /// garbage.
    public static func readModelWeights(_ reference: WeightsReference, checkpointModel: String? = nil) throws -> LoadedWeights {
        let weights = try read(reference, checkpointModel: checkpointModel)
        try SafeTensors.requireFinite(weights.tensors, file: reference.path)
        return weights
    }

    /// Reads the tensors a reference selects.
    ///
    /// - Parameter checkpointModel: the model to read from a FuseKit checkpoint when the
    ///   reference has no `#PREFIX` (e.g. `fusion`).
    /// - Throws: ``WeightsFileError``, or the format's own error; all name the file.
    public static func read(_ reference: WeightsReference, checkpointModel: String? = nil) throws -> LoadedWeights {
        let path = reference.path
        let url = URL(fileURLWithPath: path)
        switch try format(of: path) {
        case .safetensors, .fusekitCheckpoint:
            let (tensors, metadata) = try SafeTensors.read(from: url)
            guard metadata[Checkpoint.versionMetadataKey] != nil else {
                return try finish(tensors.map { ($0.key, $0.value) }, prefix: reference.prefix, format: .safetensors, file: path)
            }
            let checkpoint = try Checkpoint.load(from: url)
            var named: [(String, Tensor)] = []
            for (model, state) in checkpoint.models {
                named += state.stateDict.map { ("\(model).\($0.key)", $0.value) }
            }
            let models = checkpoint.models.keys.sorted()
            var prefix = reference.prefix ?? checkpointModel
            if prefix == nil {
                guard models.count == 1 else {
                    throw WeightsFileError.ambiguous(file: path, candidates: models.map { "'\($0)' (\(checkpoint.models[$0]!.stateDict.count) tensors)" })
                }
                prefix = models[0]
            }
            return try finish(named, prefix: prefix, format: .fusekitCheckpoint, file: path)
        case .torchZip, .torchLegacy:
            let checkpoint = try TorchCheckpoint(contentsOf: url)
            let format: Format = checkpoint.format == .zip ? .torchZip : .torchLegacy
            if let prefix = reference.prefix {
                let selected = try select(try checkpoint.flatten(checkpoint.root), prefix: prefix, file: path)
                return try finish(try checkpoint.tensors(selected).map { ($0.key, $0.value) }, prefix: nil, format: format, file: path, selectedPrefix: prefix)
            }
            let (keys, value) = try unwrap(checkpoint.root, path: [], checkpoint: checkpoint)
            let tensors = try checkpoint.tensors(try checkpoint.flatten(value))
            let selected = keys.isEmpty ? nil : keys.joined(separator: ".")
            if tensors.isEmpty {
                throw WeightsFileError.noTensors(file: path, reason: selected.map { "under '\($0)'" } ?? "(it holds \(checkpoint.root.pythonDescription.prefix(200)))")
            }
            return try finish(tensors.map { ($0.key, $0.value) }, prefix: nil, format: format, file: path, selectedPrefix: selected)
        }
    }

    /// Reads the tensors a reference selects and writes them to a safetensors file (F32 with the
    /// same names, atomically), recording the source in the metadata (`source`).
    ///
    /// - Throws: as ``read(_:checkpointModel:)``, and ``SafeTensorsError/writeFailed(file:reason:)``.
    @discardableResult
    public static func convert(_ reference: WeightsReference, to destination: URL, checkpointModel: String? = nil) throws -> LoadedWeights {
        let loaded = try read(reference, checkpointModel: checkpointModel)
        let source = URL(fileURLWithPath: reference.path).lastPathComponent + (reference.prefix.map { "#" + $0 } ?? "")
        try SafeTensors.write(loaded.tensors, metadata: ["format": "pt", "source": source], to: destination)
        return loaded
    }

    /// The kind of a file, from its first bytes (and, for safetensors, its metadata).
    ///
    /// - Throws: ``WeightsFileError/fileNotFound(file:)``, ``WeightsFileError/unknownFormat(file:reason:)``.
    public static func format(of path: String) throws -> Format {
        let url = URL(fileURLWithPath: path)
        let head: [UInt8]
        do {
            head = try TorchCheckpoint.firstBytes(of: url, count: 9)
        } catch TorchCheckpointError.fileNotFound {
            throw WeightsFileError.fileNotFound(file: path)
        }
        if head.starts(with: TorchCheckpoint.zipSignature) { return .torchZip }
        // safetensors: an 8-byte header length, then the JSON header. (Checked before the
        // pickle's PROTO byte 0x80, which a header length can start with.)
        if head.count == 9, head[8] == UInt8(ascii: "{") {
            let metadata = try SafeTensors.readHeader(from: url).metadata
            return metadata[Checkpoint.versionMetadataKey] != nil ? .fusekitCheckpoint : .safetensors
        }
        if head.first == 0x80 { return .torchLegacy }
        throw WeightsFileError.unknownFormat(
            file: path, reason: head.count < 9 ? "it has only \(head.count) bytes" : "it starts with \(head.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " "))")
    }

    // MARK: Selection

    /// The part of a PyTorch checkpoint's object that holds its state dict, and the keys that
    /// lead to it.
    private static func unwrap(_ value: PickleValue, path: [String], checkpoint: TorchCheckpoint) throws -> ([String], PickleValue) {
        guard case .dict(let entries) = value,
              !entries.contains(where: { if case .tensor = $0.value { return true } else { return false } }) else {
            return (path, value)
        }
        for key in nestingKeys {
            if let nested = value[key], tensorCount(nested) > 0 {
                return try unwrap(nested, path: path + [key], checkpoint: checkpoint)
            }
        }
        let holders = entries.filter { tensorCount($0.value) > 0 }
        if holders.count == 1 {
            return try unwrap(holders[0].value, path: path + [holders[0].key.pythonDescription], checkpoint: checkpoint)
        }
        guard holders.isEmpty else {
            let prefix = path.isEmpty ? "" : path.joined(separator: ".") + "."
            throw WeightsFileError.ambiguous(
                file: checkpoint.path, candidates: holders.map { "'\(prefix)\($0.key.pythonDescription)' (\(tensorCount($0.value)) tensors)" })
        }
        return (path, value)
    }

    private static func tensorCount(_ value: PickleValue) -> Int {
        switch value {
        case .tensor: return 1
        case .dict(let entries): return entries.reduce(0) { $0 + tensorCount($1.value) }
        case .list(let items), .tuple(let items): return items.reduce(0) { $0 + tensorCount($1) }
        default: return 0
        }
    }

    /// The items whose names start with `prefix.`, with that removed (all items for an empty prefix).
    static func select<T>(_ items: [(name: String, tensor: T)], prefix: String, file: String) throws -> [(name: String, tensor: T)] {
        guard !prefix.isEmpty else { return items }
        let start = prefix.hasSuffix(".") ? prefix : prefix + "."
        let selected = items.filter { $0.name.hasPrefix(start) }.map { (name: String($0.name.dropFirst(start.count)), tensor: $0.tensor) }
        guard !selected.isEmpty else {
            // List the groups one level below the longest part of the prefix that exists.
            let components = start.dropLast().split(separator: ".", omittingEmptySubsequences: false)
            let base = (0 ..< components.count).reversed().lazy
                .map { components.prefix($0).map { $0 + "." }.joined() }
                .first { base in items.contains { $0.name.hasPrefix(base) } } ?? ""
            var groups: [String: Int] = [:]
            for item in items where item.name.hasPrefix(base) {
                groups[base + String(item.name.dropFirst(base.count).split(separator: ".", maxSplits: 1).first ?? ""), default: 0] += 1
            }
            throw WeightsFileError.prefixNotFound(
                file: file, prefix: prefix, available: groups.keys.sorted().map { "'\($0)' (\(groups[$0]!) tensors)" })
        }
        return selected
    }

    private static func finish(_ named: [(String, Tensor)], prefix: String?, format: Format, file: String,
                               selectedPrefix: String? = nil) throws -> LoadedWeights {
        var items = named.map { (name: $0.0, tensor: $0.1) }
        if let prefix { items = try select(items, prefix: prefix, file: file) }
        let removesModule = !items.isEmpty && items.allSatisfy { $0.name.hasPrefix(dataParallelPrefix) }
        if removesModule { items = items.map { (String($0.name.dropFirst(dataParallelPrefix.count)), $0.tensor) } }
        guard !items.isEmpty else { throw WeightsFileError.noTensors(file: file, reason: "") }
        // Names are unique: every source has unique names and prefix removal is injective.
        let tensors = Dictionary(items.map { ($0.name, $0.tensor) }, uniquingKeysWith: { first, _ in first })
        return LoadedWeights(tensors: tensors, format: format, selectedPrefix: selectedPrefix ?? prefix, removedModulePrefix: removesModule)
    }
}
