import Foundation
import FuseKitNN

/// The folder of one training run and every file in it:
///
/// | path | content |
/// |---|---|
/// | `recipe.yaml` | the recipe as given |
/// | `log.jsonl` | one ``StepRecord`` per line |
/// | `checkpoints/last.safetensors`, `best.safetensors` | models, optimiser states, position (atomic writes) |
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

    /// Creates the folders and writes the recipe.
    func prepare(recipeText: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: checkpointsFolder, withIntermediateDirectories: true)
        try fm.createDirectory(at: previewsFolder, withIntermediateDirectories: true)
        try recipeText.write(to: recipeFile, atomically: true, encoding: .utf8)
    }

    /// Whether a last checkpoint exists.
    public var hasCheckpoint: Bool { FileManager.default.fileExists(atPath: lastCheckpoint.path) }

    /// The last checkpoint, for resuming.
    func loadLastCheckpoint() throws -> Checkpoint {
        guard hasCheckpoint else { throw TrainingError.nothingToResume(directory: url.path) }
        return try Checkpoint.load(from: lastCheckpoint)
    }

    /// Writes the last checkpoint, and the best one too when `isBest`.
    func save(_ checkpoint: Checkpoint, isBest: Bool = false) throws {
        try checkpoint.save(to: lastCheckpoint)
        if isBest { try checkpoint.save(to: bestCheckpoint) }
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
        return try TrainingLog(url: logFile, truncate: completedSteps == nil)
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
