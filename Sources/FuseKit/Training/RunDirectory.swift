import Foundation
import FuseKitNN

/// The folder of one training run and every file in it:
///
/// | path | content |
/// |---|---|
/// | `recipe.yaml` | the recipe as given |
/// | `log.jsonl` | one ``StepRecord`` per line |
/// | `checkpoints/last.safetensors`, `best.safetensors` | models, optimiser states, position (atomic writes, with a checksum) |
/// | `checkpoints/previous.safetensors` | the checkpoint before the last, where `--resume` falls back when the last is damaged |
/// | `previews/` | fused images and w_a heat maps of fixed test pairs per epoch, `loss-curves.png` |
/// | `fused/`, `predictions/` | the test split fused and predicted at the end |
/// | `metrics.json`, `metrics.md` | the final scores |
/// | `tensorboard/` | TensorBoard event files (`fusekit train --tensorboard`; see ``TrainingTensorBoard``) |
public struct RunDirectory: Sendable {
    public let url: URL

    public init(_ url: URL) { self.url = url }

    public var recipeFile: URL { url.appendingPathComponent("recipe.yaml") }
    public var logFile: URL { url.appendingPathComponent("log.jsonl") }
    public var checkpointsFolder: URL { url.appendingPathComponent("checkpoints") }
    public var lastCheckpoint: URL { checkpointsFolder.appendingPathComponent("last.safetensors") }
    public var bestCheckpoint: URL { checkpointsFolder.appendingPathComponent("best.safetensors") }
    /// The checkpoint written before the last one (kept by ``save(_:isBest:)``).
    public var previousCheckpoint: URL { checkpointsFolder.appendingPathComponent("previous.safetensors") }
    public var previewsFolder: URL { url.appendingPathComponent("previews") }
    public var lossCurves: URL { previewsFolder.appendingPathComponent("loss-curves.png") }
    public var fusedFolder: URL { url.appendingPathComponent("fused") }
    public var predictionsFolder: URL { url.appendingPathComponent("predictions") }
    public var metricsJSON: URL { url.appendingPathComponent("metrics.json") }
    public var metricsMarkdown: URL { url.appendingPathComponent("metrics.md") }
    public var tensorBoardFolder: URL { url.appendingPathComponent("tensorboard") }

    /// The preview folder of an epoch (0-based; named from 1): `previews/epoch-001`, or
    /// `previews/STAGE-epoch-001` in a run of several stages.
    public func previews(stage: String?, epoch: Int) -> URL {
        previewsFolder.appendingPathComponent((stage.map { $0 + "-" } ?? "") + String(format: "epoch-%03d", epoch + 1))
    }

    /// Creates the folders, removes what killed runs left of their checkpoint writes and writes
    /// the recipe.
    func prepare(recipeText: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: checkpointsFolder, withIntermediateDirectories: true)
        try fm.createDirectory(at: previewsFolder, withIntermediateDirectories: true)
        removeStaleTemporaryFiles()
        try recipeText.write(to: recipeFile, atomically: true, encoding: .utf8)
    }

    /// Removes the temporary files of checkpoint writes (`.NAME.PID.NONCE.tmp`, `.link`) whose
    /// process is gone (killed while writing).
    func removeStaleTemporaryFiles() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpointsFolder.path)) ?? []
        for name in names where name.hasPrefix(".") && (name.hasSuffix(".tmp") || name.hasSuffix(".link")) {
            let parts = name.split(separator: ".")
            guard parts.count >= 4, let pid = Int32(parts[parts.count - 3]) else { continue }
            if pid != getpid() && (kill(pid, 0) == 0 || errno == EPERM) { continue }
            try? FileManager.default.removeItem(at: checkpointsFolder.appendingPathComponent(name))
        }
    }

    /// Whether a last checkpoint exists.
    public var hasCheckpoint: Bool { FileManager.default.fileExists(atPath: lastCheckpoint.path) }

    /// The checkpoints to resume from, newest first.
    var resumeCandidates: [URL] { [lastCheckpoint, previousCheckpoint] }

    /// The newest intact checkpoint, for resuming, with a note for each newer one that is damaged
    /// (truncated, corrupt). A damaged file is renamed to `NAME.damaged` (kept for inspection), so
    /// that the next save does not keep it as the previous checkpoint.
    ///
    /// - Throws: ``TrainingError/nothingToResume(directory:)`` without any checkpoint,
    ///   ``TrainingError/noIntactCheckpoint(directory:problems:)`` when none loads.
    func loadCheckpointForResuming() throws -> (checkpoint: Checkpoint, notes: [String]) {
        let fm = FileManager.default
        guard resumeCandidates.contains(where: { fm.fileExists(atPath: $0.path) }) else {
            throw TrainingError.nothingToResume(directory: url.path)
        }
        let found: (checkpoint: Checkpoint, file: URL, refused: [(file: URL, error: any Error)])
        do {
            found = try Checkpoint.loadNewestIntact(resumeCandidates)
        } catch {
            let problems = resumeCandidates.filter { fm.fileExists(atPath: $0.path) }.map(Self.loadError)
            throw TrainingError.noIntactCheckpoint(directory: url.path, problems: problems)
        }
        var notes: [String] = []
        for (file, error) in found.refused {
            let aside = file.appendingPathExtension("damaged")
            try? fm.removeItem(at: aside)
            let moved = (try? fm.moveItem(at: file, to: aside)) != nil
            notes.append("cannot resume from \(file.path): \(error)"
                         + (moved ? "; moved it to \(aside.lastPathComponent)" : "")
                         + "; resuming from the previous checkpoint \(found.file.path) (step \(found.checkpoint.step))")
        }
        return (found.checkpoint, notes)
    }

    /// Why `file` does not load (its errors name it).
    private static func loadError(_ file: URL) -> String {
        do {
            _ = try Checkpoint.load(from: file)
            return "\(file.path) loads"
        } catch {
            return "\(error)"
        }
    }

    /// Writes the last checkpoint, keeping the one it replaces as the previous checkpoint, and
    /// the best one too when `isBest`. A failed write (a full disk) leaves the checkpoints as they
    /// were.
    ///
    /// - Throws: ``TrainingError/writeFailed(file:reason:intactCheckpoint:)``.
    func save(_ checkpoint: Checkpoint, isBest: Bool = false) throws {
        try writing(lastCheckpoint) { try checkpoint.save(to: lastCheckpoint, keepingPreviousAt: previousCheckpoint) }
        if isBest { try writing(bestCheckpoint) { try checkpoint.save(to: bestCheckpoint) } }
    }

    /// Runs a write of `file`, turning its failure into a ``TrainingError/writeFailed(file:reason:intactCheckpoint:)``
    /// that names the checkpoint left to resume from.
    func writing(_ file: URL, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch {
            let reason: String
            if let error = error as? SafeTensorsError, case .writeFailed(_, let why) = error { reason = why } else { reason = "\(error)" }
            let intact = resumeCandidates.first { FileManager.default.fileExists(atPath: $0.path) }
            throw TrainingError.writeFailed(file: file.path, reason: reason, intactCheckpoint: intact?.path)
        }
    }

    /// The log for appending; on resume, the lines of steps after `completedSteps` (run again)
    /// are dropped first.
    func openLog(resumingAfter completedSteps: Int?) throws -> TrainingLog {
        if let completedSteps {
            let kept = readLog().filter { $0.globalStep <= completedSteps }
            let encoder = TrainingLog.encoder
            let lines = try kept.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
            try (lines.joined(separator: "\n") + (lines.isEmpty ? "" : "\n")).write(to: logFile, atomically: true, encoding: .utf8)
        }
        return try TrainingLog(directory: self, truncate: completedSteps == nil)
    }

    /// Every record of the log (lines that do not parse are skipped).
    public func readLog() -> [StepRecord] {
        guard let text = try? String(contentsOf: logFile, encoding: .utf8) else { return [] }
        let decoder = JSONDecoder()
        return text.split(separator: "\n").compactMap { try? decoder.decode(StepRecord.self, from: Data($0.utf8)) }
    }

    /// Writes the final scores as JSON and Markdown.
    func writeMetrics(fusion: FusionEvaluation, task: TaskEvaluation?, extra: [String: Any]) throws {
        var json = extra
        json["fusion"] = fusion.jsonObject
        if let task { json["task"] = task.jsonObject }
        try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]).write(to: metricsJSON)
        try MetricsTable.markdown(fusion: fusion, task: task).write(to: metricsMarkdown, atomically: true, encoding: .utf8)
    }
}
