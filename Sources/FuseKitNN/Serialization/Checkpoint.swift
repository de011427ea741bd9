import Foundation
import FuseKitTensor

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything needed to resume training exactly, in one safetensors file: the parameters and
/// buffers of several named models (e.g. `fusion`, `lossGenerator`, `task`), their optimizer
/// states, the step and epoch, the random generator's state and free-form string metadata (e.g.
/// the resolved recipe).
///
/// Layout of the file (F32 tensors, names sorted):
///
/// | key | content |
/// |---|---|
/// | `<model>.param.<name>` | a parameter |
/// | `<model>.buffer.<name>` | a buffer |
/// | `<model>.optim.<slot>.<name>` | an optimizer slot (`exp_avg`, `momentum_buffer`, ...) |
/// | `__metadata__` `fusekit.checkpoint` | format version |
/// | `__metadata__` `fusekit.checksum` | `crc32c:` and 8 hexadecimal digits (see below) |
/// | `__metadata__` `fusekit.step`, `fusekit.epoch` | counters |
/// | `__metadata__` `fusekit.models` | JSON array of the model names |
/// | `__metadata__` `fusekit.optim.<model>.step` | the optimizer state's step |
/// | `__metadata__` `fusekit.rng` | the four RNG state words, hexadecimal, comma-separated |
/// | `__metadata__` `user.<key>` | ``metadata`` |
///
/// Model and slot names must be non-empty and contain no dot. ``save(to:)`` is atomic (a
/// temporary file renamed into place) and ``load(from:)`` restores every tensor bit for bit.
///
/// The checksum is the CRC-32C of the whole content: each tensor's name, dtype, shape and data
/// offsets (names sorted), every metadata entry but the checksum (keys sorted), then the data
/// section byte for byte. ``load(from:)`` verifies it, so a file damaged after it was written
/// (a flipped bit, a torn copy) is refused with ``CheckpointError/checksumMismatch(file:stored:computed:)``
/// and a truncated one with ``SafeTensorsError/truncated(file:reason:)``. Files of format
/// version 1, written before checksums existed, still load, unverified.
///
/// Equality is bitwise over every tensor, as ``OptimizerState``'s.
public struct Checkpoint: Sendable, Equatable {
    /// Parameters and buffers of each model, by model name.
    public var models: [String: ModelState]
    /// Optimizer state of each model that has one, by model name.
    public var optimizers: [String: OptimizerState]
    /// Global training step (optimizer updates so far).
    public var step: Int
    /// Epochs completed.
    public var epoch: Int
    /// The random generator, to continue its stream.
    public var random: RandomGenerator?
    /// Free-form strings (the recipe, versions, notes).
    public var metadata: [String: String]

    /// Current version of the file layout (2: with a checksum).
    public static let formatVersion = 2

    /// The versions ``load(from:)`` reads: 1 (no checksum, loaded unverified) and 2.
    public static let readableVersions = 1...formatVersion

    /// The first version whose files carry a checksum.
    static let firstVersionWithChecksum = 2

    /// A checkpoint of the given contents.
    public init(models: [String: ModelState] = [:], optimizers: [String: OptimizerState] = [:],
                step: Int = 0, epoch: Int = 0, random: RandomGenerator? = nil, metadata: [String: String] = [:]) {
        self.models = models
        self.optimizers = optimizers
        self.step = step
        self.epoch = epoch
        self.random = random
        self.metadata = metadata
    }

    // MARK: Keys

    private enum Part {
        static let parameter = "param"
        static let buffer = "buffer"
        static let optimizer = "optim"
    }

    private enum MetadataKey {
        static let version = "fusekit.checkpoint"
        static let checksum = "fusekit.checksum"
        static let step = "fusekit.step"
        static let epoch = "fusekit.epoch"
        static let models = "fusekit.models"
        static let random = "fusekit.rng"
        static let userPrefix = "user."
        static func optimizerStep(_ model: String) -> String { "fusekit.optim.\(model).step" }
    }

    /// The metadata key that marks a safetensors file as a FuseKit checkpoint.
    static var versionMetadataKey: String { MetadataKey.version }

    private static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && !name.contains(".")
    }

    // MARK: Saving

    /// Writes the checkpoint atomically to `url`: the destination keeps its previous contents
    /// unless the complete new file was written.
    ///
    /// - Throws: ``CheckpointError/invalidContent(file:reason:)`` for an invalid model or slot
    ///   name, ``SafeTensorsError/writeFailed(file:reason:)`` when writing fails.
    public func save(to url: URL) throws {
        let (tensors, fileMetadata) = try fileContents(for: url)
        try SafeTensors.write(tensors, metadata: fileMetadata, to: url)
    }

    /// The tensors and metadata of the file, checksum included; `url` names it in errors.
    private func fileContents(for url: URL) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let names = Set(models.keys).union(optimizers.keys).sorted()
        if let bad = names.first(where: { !Checkpoint.isValidName($0) }) {
            throw CheckpointError.invalidContent(file: url.path, reason: "model name '\(bad)' must be non-empty and contain no dot")
        }
        var tensors: [String: Tensor] = [:]
        var fileMetadata: [String: String] = [
            MetadataKey.version: String(Checkpoint.formatVersion),
            MetadataKey.step: String(step),
            MetadataKey.epoch: String(epoch),
            MetadataKey.models: "[" + models.keys.sorted().map(SafeTensors.jsonString).joined(separator: ",") + "]",
        ]
        for (name, model) in models {
            for (key, tensor) in model.parameters { tensors["\(name).\(Part.parameter).\(key)"] = tensor.detached() }
            for (key, tensor) in model.buffers { tensors["\(name).\(Part.buffer).\(key)"] = tensor.detached() }
        }
        for (name, state) in optimizers {
            fileMetadata[MetadataKey.optimizerStep(name)] = String(state.step)
            for (slot, slotTensors) in state.slots {
                guard Checkpoint.isValidName(slot) else {
                    throw CheckpointError.invalidContent(
                        file: url.path, reason: "optimizer slot name '\(slot)' of model '\(name)' must be non-empty and contain no dot")
                }
                for (key, tensor) in slotTensors { tensors["\(name).\(Part.optimizer).\(slot).\(key)"] = tensor.detached() }
            }
        }
        if let random {
            fileMetadata[MetadataKey.random] = random.state.map { String($0, radix: 16) }.joined(separator: ",")
        }
        for (key, value) in metadata { fileMetadata[MetadataKey.userPrefix + key] = value }
        if let empty = tensors.keys.first(where: { $0.hasSuffix(".") }) {
            throw CheckpointError.invalidContent(file: url.path, reason: "tensor key '\(empty)' has an empty tensor name")
        }
        var crc = Checkpoint.checksumOfTable(SafeTensors.layout(of: tensors), metadata: fileMetadata)
        for (name, _) in SafeTensors.layout(of: tensors) {
            SafeTensors.withStoredBytes(of: tensors[name]!) { crc.update($0) }
        }
        fileMetadata[MetadataKey.checksum] = Checkpoint.checksumText(crc.value)
        return (tensors, fileMetadata)
    }

    /// Writes the checkpoint atomically to `url` (see ``save(to:)``), keeping the file that was
    /// there as `previous`. At every moment both names hold a complete checkpoint (or nothing,
    /// before the first saves): the old file is linked as `previous` before the new one replaces
    /// `url`, and a failed write changes neither.
    public func save(to url: URL, keepingPreviousAt previous: URL) throws {
        let (tensors, fileMetadata) = try fileContents(for: url)
        try SafeTensors.write(tensors, metadata: fileMetadata, to: url, beforeReplacing: {
            try Checkpoint.keep(url, as: previous)
        })
    }

    /// Makes `previous` a name of the file at `url` (if there is one), atomically replacing
    /// whatever `previous` was.
    private static func keep(_ url: URL, as previous: URL) throws {
        guard FileManager.default.fileExists(atPath: url.path) else { return }
        let staging = previous.deletingLastPathComponent()
            .appendingPathComponent(".\(previous.lastPathComponent).\(getpid()).\(UInt32.random(in: 0 ... .max)).link").path
        if link(url.path, staging) == 0 {
            guard rename(staging, previous.path) == 0 else {
                let reason = AtomicFile.errorText()
                unlink(staging)
                throw SafeTensorsError.writeFailed(file: url.path, reason: "cannot keep the previous checkpoint as '\(previous.path)': \(reason)")
            }
            return
        }
        // No hard links on this file system: move it; until the new file is renamed into
        // place, only `previous` holds a checkpoint.
        guard rename(url.path, previous.path) == 0 else {
            throw SafeTensorsError.writeFailed(file: url.path, reason: "cannot keep the previous checkpoint as '\(previous.path)': \(AtomicFile.errorText())")
        }
    }

    /// The first of `candidates` (newest first) that exists and loads, with what was wrong with
    /// the ones before it (missing files are skipped silently).
    ///
    /// - Throws: the error of the first existing candidate when none loads, or
    ///   ``SafeTensorsError/fileNotFound(file:)`` of the first when none exists.
    public static func loadNewestIntact(_ candidates: [URL]) throws -> (checkpoint: Checkpoint, file: URL, refused: [(file: URL, error: any Error)]) {
        var refused: [(file: URL, error: any Error)] = []
        for url in candidates where FileManager.default.fileExists(atPath: url.path) {
            do {
                return (try load(from: url), url, refused)
            } catch {
                refused.append((url, error))
            }
        }
        if let first = refused.first { throw first.error }
        throw SafeTensorsError.fileNotFound(file: candidates.first?.path ?? "")
    }

    // MARK: Checksum

    /// The CRC-32C state after the tensor table and the metadata (without the checksum entry);
    /// the data section follows.
    static func checksumOfTable(_ table: [(name: String, info: SafeTensors.TensorInfo)], metadata: [String: String]) -> CRC32C {
        var canonical = ""
        for (name, info) in table.sorted(by: { $0.name < $1.name }) {
            canonical += "\(name)\0\(info.dtype.rawValue)\0\(info.shape.map(String.init).joined(separator: ","))\0"
            canonical += "\(info.dataOffsets.lowerBound),\(info.dataOffsets.upperBound)\0"
        }
        canonical += "\u{1}"
        for key in metadata.keys.sorted() where key != MetadataKey.checksum {
            canonical += "\(key)\0\(metadata[key]!)\0"
        }
        var crc = CRC32C()
        crc.update(Array(canonical.utf8))
        return crc
    }

    static func checksumText(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "crc32c:" + String(repeating: "0", count: 8 - digits.count) + digits
    }

    // MARK: Loading

    /// Reads a checkpoint written by ``save(to:)``.
    ///
    /// - Throws: ``SafeTensorsError`` when the file is missing or not valid safetensors,
    ///   ``CheckpointError`` when it is not a FuseKit checkpoint or its contents are inconsistent;
    ///   both name the file.
    public static func load(from url: URL) throws -> Checkpoint {
        let path = url.path
        let file = try MappedFile(path: path)
        let header = try SafeTensors.parseHeader(file)
        let fileMetadata = header.metadata
        func invalid(_ reason: String) -> CheckpointError { .invalidContent(file: path, reason: reason) }
        func integer(_ key: String) throws -> Int {
            guard let text = fileMetadata[key] else { throw invalid("missing metadata '\(key)'") }
            guard let value = Int(text) else { throw invalid("metadata '\(key)' is '\(text)', not an integer") }
            return value
        }

        guard let versionText = fileMetadata[MetadataKey.version] else {
            throw CheckpointError.notACheckpoint(file: path)
        }
        guard let version = Int(versionText), readableVersions.contains(version) else {
            throw invalid("unsupported checkpoint format version '\(versionText)' (this build reads versions \(readableVersions.lowerBound) to \(readableVersions.upperBound))")
        }
        if version >= firstVersionWithChecksum {
            guard let stored = fileMetadata[MetadataKey.checksum] else {
                throw invalid("metadata '\(MetadataKey.checksum)' is missing (version \(version) files carry one)")
            }
            var crc = checksumOfTable(header.tensors.map { ($0.key, $0.value) }, metadata: fileMetadata)
            crc.update(SafeTensors.dataSection(of: file, header))
            let computed = checksumText(crc.value)
            guard stored == computed else { throw CheckpointError.checksumMismatch(file: path, stored: stored, computed: computed) }
        }
        let tensors = SafeTensors.tensors(of: file, header)
        var checkpoint = Checkpoint(step: try integer(MetadataKey.step), epoch: try integer(MetadataKey.epoch))

        guard let modelsText = fileMetadata[MetadataKey.models],
              let names = try? JSONDecoder().decode([String].self, from: Data(modelsText.utf8)) else {
            throw invalid("metadata '\(MetadataKey.models)' is missing or not a JSON array of strings")
        }
        for name in names {
            guard isValidName(name) else { throw invalid("model name '\(name)' must be non-empty and contain no dot") }
            checkpoint.models[name] = ModelState()
        }
        for key in fileMetadata.keys where key.hasPrefix("fusekit.optim.") && key.hasSuffix(".step") {
            let name = String(key.dropFirst("fusekit.optim.".count).dropLast(".step".count))
            guard isValidName(name), MetadataKey.optimizerStep(name) == key else {
                throw invalid("metadata key '\(key)' does not name a model (expected fusekit.optim.<model>.step)")
            }
            checkpoint.optimizers[name] = OptimizerState(step: try integer(key))
        }

        for (key, tensor) in tensors {
            let parts = key.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            // A name ending in a dot has an empty last component, which ``save(to:)`` refuses.
            guard parts.count == 3, !parts[2].isEmpty, !parts[2].hasSuffix(".") else {
                throw invalid("tensor '\(key)' is not of the form <model>.param|buffer|optim.<name>")
            }
            let (model, part, rest) = (parts[0], parts[1], parts[2])
            switch part {
            case Part.parameter, Part.buffer:
                guard checkpoint.models[model] != nil else {
                    throw invalid("tensor '\(key)' belongs to model '\(model)', which is not listed in '\(MetadataKey.models)'")
                }
                if part == Part.parameter {
                    checkpoint.models[model]?.parameters[rest] = tensor
                } else {
                    checkpoint.models[model]?.buffers[rest] = tensor
                }
            case Part.optimizer:
                guard checkpoint.optimizers[model] != nil else {
                    throw invalid("tensor '\(key)' is optimizer state but there is no '\(MetadataKey.optimizerStep(model))' metadata")
                }
                guard let split = OptimizerState.splitFlattenedKey(rest) else {
                    throw invalid("tensor '\(key)' is not of the form <model>.optim.<slot>.<parameter>")
                }
                checkpoint.optimizers[model]?.slots[split.slot, default: [:]][split.parameter] = tensor
            default:
                throw invalid("tensor '\(key)' is neither a parameter, a buffer nor optimizer state")
            }
        }

        if let randomText = fileMetadata[MetadataKey.random] {
            let words = randomText.split(separator: ",").compactMap { UInt64($0, radix: 16) }
            guard words.count == 4, words.contains(where: { $0 != 0 }),
                  randomText.split(separator: ",", omittingEmptySubsequences: false).count == 4 else {
                throw invalid("metadata '\(MetadataKey.random)' is '\(randomText)', not four hexadecimal words (not all zero)")
            }
            checkpoint.random = RandomGenerator(state: words)
        }
        for (key, value) in fileMetadata where key.hasPrefix(MetadataKey.userPrefix) {
            checkpoint.metadata[String(key.dropFirst(MetadataKey.userPrefix.count))] = value
        }
        return checkpoint
    }

    // MARK: Equality

    public static func == (lhs: Checkpoint, rhs: Checkpoint) -> Bool {
        guard lhs.step == rhs.step, lhs.epoch == rhs.epoch, lhs.random == rhs.random,
              lhs.metadata == rhs.metadata, lhs.optimizers == rhs.optimizers,
              lhs.models.count == rhs.models.count else { return false }
        for (name, model) in lhs.models {
            guard let other = rhs.models[name],
                  TensorBits.equal(model.parameters, other.parameters),
                  TensorBits.equal(model.buffers, other.buffers) else { return false }
        }
        return true
    }
}

/// A file that is valid safetensors but not a valid FuseKit checkpoint; the cases name the file.
public enum CheckpointError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file has no `fusekit.checkpoint` metadata (e.g. a plain weights file).
    case notACheckpoint(file: String)
    /// The contents are inconsistent or cannot be represented.
    case invalidContent(file: String, reason: String)
    /// The checksum stored in the file does not match its contents: the file was damaged after
    /// it was written.
    case checksumMismatch(file: String, stored: String, computed: String)

    /// The path of the file concerned.
    public var file: String {
        switch self {
        case .notACheckpoint(let file), .invalidContent(let file, _), .checksumMismatch(let file, _, _): return file
        }
    }

    public var description: String {
        switch self {
        case .notACheckpoint(let file):
            return "'\(file)' is not a FuseKit checkpoint (no 'fusekit.checkpoint' metadata)"
        case .invalidContent(let file, let reason):
            return "checkpoint '\(file)' is invalid: \(reason)"
        case .checksumMismatch(let file, let stored, let computed):
            return "checkpoint '\(file)' is corrupt: its contents have checksum \(computed) but it was written with \(stored) (damaged after it was written)"
        }
    }
}
