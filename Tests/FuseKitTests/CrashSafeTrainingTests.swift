import Foundation
import FuseKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The trainer's checkpoints under damage and a full disk: the last two are kept, `--resume`
/// falls back to the previous one when the last is damaged, and a failed write stops training
/// with both checkpoints intact. Resumed runs must end bitwise equal to an uninterrupted one.
@Suite struct CrashSafeTrainingTests {
    /// The tiny recipe of ``TrainerTests`` in one epoch (2 meta steps, 6 fusion steps), with a
    /// checkpoint after every step.
    static let recipe = TrainerTests.recipeText(epochs: 1).replacingOccurrences(of: "checkpoint-every: 4", with: "checkpoint-every: 1")

    /// Collects the trainer's notes.
    final class Notes: TrainingObserver {
        var messages: [String] = []
        func trainingWillStart(totalSteps: Int, completedSteps: Int) {}
        func stepDidFinish(_ record: StepRecord) {}
        func epochDidFinish(_ summary: EpochSummary) {}
        func note(_ message: String) { messages.append(message) }
    }

    static func trainer(_ directory: URL, observer: TrainingObserver = SilentTrainingObserver()) throws -> Trainer {
        let parsed = try Recipe.parse(recipe, file: "tiny.yaml")
        return try Trainer(setup: try TrainingSetup.make(recipe: parsed, registry: TrainerTests.registry()), runDirectory: directory, observer: observer)
    }

    /// The final checkpoint of an uninterrupted run (computed once).
    static let uninterrupted: Checkpoint = {
        let directory = try! TrainerTests.scratch("uninterrupted")
        defer { try? FileManager.default.removeItem(at: directory) }
        _ = try! trainer(directory).run(recipeText: recipe)
        return try! Checkpoint.load(from: RunDirectory(directory).lastCheckpoint)
    }()

    enum Damage: String, CaseIterable, Sendable {
        case truncated, flippedByte

        func apply(to url: URL) throws {
            var bytes = try Data(contentsOf: url)
            switch self {
            case .truncated: bytes = bytes.prefix(bytes.count * 2 / 3)
            case .flippedByte: bytes[bytes.count - 7] ^= 0x20
            }
            try bytes.write(to: url)
        }

        /// What the error of the damaged file says.
        var reason: String { self == .truncated ? "truncated" : "corrupt" }
    }

    @Test func theLastTwoCheckpointsAreKept() throws {
        let directory = try TrainerTests.scratch("kept")
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(try Self.trainer(directory).run(recipeText: Self.recipe, stopAfter: 5) == nil)
        let run = RunDirectory(directory)
        #expect(try Checkpoint.load(from: run.lastCheckpoint).step == 5)
        #expect(try Checkpoint.load(from: run.previousCheckpoint).step == 4)
        #expect(try FileManager.default.contentsOfDirectory(atPath: run.checkpointsFolder.path).sorted() == ["last.safetensors", "previous.safetensors"])
    }

    @Test(arguments: Damage.allCases)
    func resumeFallsBackToThePreviousCheckpoint(damage: Damage) throws {
        let directory = try TrainerTests.scratch("fallback-\(damage)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = RunDirectory(directory)
        #expect(try Self.trainer(directory).run(recipeText: Self.recipe, stopAfter: 5) == nil)
        try damage.apply(to: run.lastCheckpoint)

        let notes = Notes()
        _ = try Self.trainer(directory, observer: notes).run(resume: true, recipeText: Self.recipe)
        let fallback = try #require(notes.messages.first { $0.hasPrefix("cannot resume from") }, "notes: \(notes.messages)")
        print("fallback note: \(fallback)")
        #expect(fallback.contains(run.lastCheckpoint.path) && fallback.contains(damage.reason))
        #expect(fallback.contains("resuming from the previous checkpoint \(run.previousCheckpoint.path) (step 4)"))
        #expect(notes.messages.contains("resuming at stage 1, epoch 1, step 4"))
        // The damaged file is set aside, not kept as a previous checkpoint by the next save.
        #expect(FileManager.default.fileExists(atPath: run.lastCheckpoint.path + ".damaged"))
        #expect(try Checkpoint.load(from: run.lastCheckpoint) == Self.uninterrupted)
    }

    @Test func resumeWithoutAnIntactCheckpointNamesEveryFile() throws {
        let directory = try TrainerTests.scratch("none-intact")
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = RunDirectory(directory)
        #expect(try Self.trainer(directory).run(recipeText: Self.recipe, stopAfter: 3) == nil)
        try Damage.truncated.apply(to: run.lastCheckpoint)
        try Damage.flippedByte.apply(to: run.previousCheckpoint)
        let error = #expect(throws: TrainingError.self) { _ = try Self.trainer(directory).run(resume: true, recipeText: Self.recipe) }
        guard case .noIntactCheckpoint(let path, let problems)? = error else {
            Issue.record("expected noIntactCheckpoint, got \(String(describing: error))")
            return
        }
        print("no intact checkpoint: \(error!)")
        #expect(path == directory.path && problems.count == 2)
        #expect(problems[0].contains(run.lastCheckpoint.path) && problems[0].contains("truncated"))
        #expect(problems[1].contains(run.previousCheckpoint.path) && problems[1].contains("corrupt"))
        // Nothing was set aside or overwritten.
        #expect(!FileManager.default.fileExists(atPath: run.lastCheckpoint.path + ".damaged"))
    }

    /// A full disk, simulated with a file-size limit (it binds root too) in a child process:
    /// the checkpoint write after step 6 fails, training stops with an error naming the file, the
    /// system's reason and the intact checkpoint; both checkpoints stay as they were, with no
    /// temporary file; resuming later ends exactly as an uninterrupted run.
    @Test func aFullDiskDuringACheckpointWriteStopsTrainingAndKeepsBothCheckpoints() async throws {
        let directory = try TrainerTests.scratch("full-disk")
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = RunDirectory(directory)
        #expect(try Self.trainer(directory).run(recipeText: Self.recipe, stopAfter: 5) == nil)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: run.lastCheckpoint.path)[.size] as? Int)
        let limit = size / 2
        // The limit leaves room for the log and the recipe, not for a checkpoint.
        #expect(size > 16 * 1024)
        let path = directory.path
        await #expect(processExitsWith: .exitCode(0)) { [path = path as String, limit = limit as Int] in
            signal(SIGXFSZ, SIG_IGN)
            var rl = rlimit(rlim_cur: rlim_t(limit), rlim_max: rlim_t(limit))
            setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &rl)
            let run = RunDirectory(URL(fileURLWithPath: path))
            do {
                _ = try CrashSafeTrainingTests.trainer(run.url).run(resume: true, recipeText: CrashSafeTrainingTests.recipe)
                exit(2)
            } catch let error as TrainingError {
                guard case .writeFailed(let file, let reason, let intact) = error else { exit(3) }
                FileHandle.standardError.write(Data("full disk: \(error)\n".utf8))
                let message = error.description
                let expected = file == run.lastCheckpoint.path && reason.contains(String(cString: strerror(EFBIG)))
                    && intact == run.lastCheckpoint.path && message.contains("training stopped") && message.contains("--resume")
                exit(expected ? 0 : 4)
            } catch {
                exit(5)
            }
        }
        #expect(try Checkpoint.load(from: run.lastCheckpoint).step == 5)
        #expect(try Checkpoint.load(from: run.previousCheckpoint).step == 4)
        #expect(try FileManager.default.contentsOfDirectory(atPath: run.checkpointsFolder.path).sorted() == ["last.safetensors", "previous.safetensors"])
        // The log holds the steps the stopped run did before the failed write.
        #expect(run.readLog().map(\.globalStep) == Array(1...6))
        _ = try Self.trainer(directory).run(resume: true, recipeText: Self.recipe)
        #expect(try Checkpoint.load(from: run.lastCheckpoint) == Self.uninterrupted)
    }
}
