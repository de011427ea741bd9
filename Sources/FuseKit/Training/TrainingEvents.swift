import Foundation

/// The kinds of training step (the `phase` of a log line).
public enum TrainingPhase: String, Sendable, Codable, CaseIterable {
    /// A TDFusion meta step: an update of G along the hypergradient.
    case meta
    /// A TDFusion fusion step: F on the fusion loss (G frozen), T on F(x) detached.
    case fusion
    /// A joint step: every loss term, one optimiser step of every trained model.
    case joint
    /// A masked-pretraining step.
    case pretraining
}

/// One finished optimisation step, as logged to `log.jsonl` and shown on the progress bar.
public struct StepRecord: Sendable, Codable {
    /// What kind of step it was.
    public var phase: TrainingPhase
    public var epoch: Int
    /// Index of the step within its phase and epoch.
    public var step: Int
    /// Steps finished since the start of training.
    public var globalStep: Int
    /// The stage, in a recipe of several stages.
    public var stage: String?
    /// Fusion loss L_f (the fusion group's loss in a joint step).
    public var fusionLoss: Double?
    /// Task loss of T on F(x) (the inner step of a meta step; T's own step in the fusion phase).
    public var innerTaskLoss: Double?
    /// Task loss of T'(F'(x')) on the meta-test batch.
    public var outerTaskLoss: Double?
    /// Norm of the hypergradient of G.
    public var hypergradientNorm: Double?
    /// Learning rates by model role (`fusion`, `task`, `loss-generator`), and `eta`, the inner
    /// step size of a meta step.
    public var learningRates: [String: Double]
    /// Wall time of the step.
    public var seconds: Double
    /// Each loss term's value, and each group's weighted sum (`group:NAME`), in joint and
    /// pretraining steps.
    public var losses: [String: Double]?
    /// The weight each loss group got (task weighting).
    public var taskWeights: [String: Double]?

    public init(phase: TrainingPhase, epoch: Int, step: Int, globalStep: Int, fusionLoss: Double?, innerTaskLoss: Double?,
                outerTaskLoss: Double?, hypergradientNorm: Double?, learningRates: [String: Double], seconds: Double,
                losses: [String: Double]? = nil, taskWeights: [String: Double]? = nil) {
        self.phase = phase
        self.epoch = epoch
        self.step = step
        self.globalStep = globalStep
        self.fusionLoss = fusionLoss
        self.innerTaskLoss = innerTaskLoss
        self.outerTaskLoss = outerTaskLoss
        self.hypergradientNorm = hypergradientNorm
        self.learningRates = learningRates
        self.seconds = seconds
        self.losses = losses
        self.taskWeights = taskWeights
    }

    enum CodingKeys: String, CodingKey {
        case phase, epoch, step, seconds, stage, losses
        case taskWeights = "task_weights"
        case globalStep = "global_step"
        case fusionLoss = "L_f"
        case innerTaskLoss = "L_t_inner"
        case outerTaskLoss = "L_t_outer"
        case hypergradientNorm = "hypergradient_norm"
        case learningRates = "lr"
    }
}

/// What happened at the end of an epoch.
public struct EpochSummary: Sendable, Codable {
    public var epoch: Int
    /// Mean fusion loss of the fusion phase.
    public var meanFusionLoss: Double
    /// Mean task loss of the fusion phase.
    public var meanTaskLoss: Double
    /// The task metric on the evaluation pairs (mIoU or mAP50, in percent), when evaluated.
    public var taskMetric: Double?
    /// Whether this epoch gave the best checkpoint so far.
    public var isBest: Bool
}

/// Receives training progress (the CLI shows it as a progress bar or plain lines).
public protocol TrainingObserver: AnyObject {
    /// Training is about to run `totalSteps` steps, starting after `completedSteps` (on resume).
    func trainingWillStart(totalSteps: Int, completedSteps: Int)
    /// A step finished.
    func stepDidFinish(_ record: StepRecord)
    /// An epoch finished.
    func epochDidFinish(_ summary: EpochSummary)
    /// A message for the user.
    func note(_ message: String)
}

/// An observer that ignores everything.
public final class SilentTrainingObserver: TrainingObserver {
    public init() {}
    public func trainingWillStart(totalSteps: Int, completedSteps: Int) {}
    public func stepDidFinish(_ record: StepRecord) {}
    public func epochDidFinish(_ summary: EpochSummary) {}
    public func note(_ message: String) {}
}

/// Errors that stop training.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    /// A loss or gradient became NaN or infinite.
    case nonFinite(quantity: String, phase: TrainingPhase, epoch: Int, step: Int, lastCheckpoint: String?)
    /// `--resume` without a checkpoint to resume from.
    case nothingToResume(directory: String)
    /// `--resume` where no checkpoint loads (each problem names its file and says why).
    case noIntactCheckpoint(directory: String, problems: [String])
    /// The run directory holds a different recipe than the one given.
    case recipeMismatch(directory: String)
    /// Writing a checkpoint or the log failed (a full disk); `intactCheckpoint` is the checkpoint
    /// left to resume from, if any.
    case writeFailed(file: String, reason: String, intactCheckpoint: String?)
    /// Data problems (too few pairs for a batch, missing labels the task needs).
    case data(String)

    public var description: String {
        switch self {
        case .nonFinite(let quantity, let phase, let epoch, let step, let checkpoint):
            let kept = checkpoint.map { "; the last good checkpoint is \($0)" } ?? "; no checkpoint was written yet"
            return "\(quantity) is not finite in the \(phase.rawValue) phase at epoch \(epoch + 1), step \(step + 1): training stopped\(kept)"
        case .nothingToResume(let directory):
            return "nothing to resume in \(directory): no checkpoints/last.safetensors or checkpoints/previous.safetensors"
        case .noIntactCheckpoint(let directory, let problems):
            return "nothing to resume in \(directory): no checkpoint is intact (" + problems.joined(separator: "; ") + ")"
        case .recipeMismatch(let directory):
            return "the run directory \(directory) was started with a different recipe; use another --out or the same recipe"
        case .data(let message):
            return message
        case .writeFailed(let file, let reason, let intact):
            let kept = intact.map { "; \($0) is intact: free some space, then continue with --resume" } ?? "; no checkpoint was written yet"
            return "cannot write \(file): \(reason): training stopped\(kept)"
        }
    }
}

/// Appends step records to `log.jsonl`, one JSON object per line.
final class TrainingLog {
    private let handle: FileHandle
    private let directory: RunDirectory
    private let encoder = TrainingLog.encoder

    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }

    init(directory: RunDirectory, truncate: Bool) throws {
        let url = directory.logFile
        if truncate || !FileManager.default.fileExists(atPath: url.path) {
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        self.directory = directory
        handle = try FileHandle(forWritingTo: url)
        handle.seekToEndOfFile()
    }

    /// Appends one line.
    ///
    /// - Throws: ``TrainingError/writeFailed(file:reason:intactCheckpoint:)`` when the write
    ///   fails (a full disk).
    func append(_ record: StepRecord) throws {
        var line = try encoder.encode(record)
        line.append(UInt8(ascii: "\n"))
        try directory.writing(directory.logFile) { try handle.write(contentsOf: line) }
    }

    deinit { try? handle.close() }
}
