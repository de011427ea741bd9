import Foundation
import FuseKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `fusekit train` killed with SIGKILL at seeded moments — during a step, during a checkpoint
/// write, while previews are written — and resumed each time must end with the weights, optimiser
/// states and log of an uninterrupted run, bit for bit.
///
/// The moments are events the test sees with inotify in the run directory (the n-th checkpoint
/// temporary file created, the n-th preview file created, the n-th checkpoint renamed into place
/// plus a delay), with n and the delays drawn from a seeded generator and printed. At each moment
/// the child is stopped (SIGSTOP) and the run directory inspected, so the report says what the kill
/// interrupted (a checkpoint write is confirmed by its temporary file still being there); a moment
/// that missed its target (the write had already finished) lets the child go on to the next one.
@Suite(.serialized) struct RandomKillTests {
    static let recipe = """
        name: random-kill
        seed: 4
        data:
          synthetic: { train-count: 3, test-count: 2, width: 32, height: 32, seed: 9 }
          batch-size: 1
          crop: [24, 24]
        fusion:
          plugin: restormer-fusion
          parameters: { dim: 4, blocks: 1, heads: 2 }
          optimizer: { kind: adam, learning-rate: 0.001 }
        loss-generator:
          plugin: restormer-lpn
          parameters: { dim: 4, blocks: 1, heads: 2 }
          optimizer: { kind: normalized-sgd, learning-rate: 0.001 }
        task:
          plugin: tiny-conv-seg
          parameters: { classes: 6 }
          optimizer: { kind: adam, learning-rate: 0.001 }
        training:
          epochs: 3
          meta-steps: 1
          checkpoint-every: 1
          preview-pairs: 2
        evaluation:
          metrics: [EN]
          max-pairs: 2

        """

    /// The seed of the kill moments.
    static let seed: UInt64 = 18

    enum Target: String, Sendable {
        case step = "during a step"
        case checkpointWrite = "during a checkpoint write"
        case previews = "while previews are written"
    }

    /// One planned kill: its target and the seeded parameters of its moment.
    struct Kill: CustomStringConvertible {
        var target: Target
        /// The event count that triggers it (within one child's life).
        var event: Int
        /// Microseconds between the event and the stop.
        var delay: Int

        var description: String {
            switch target {
            case .step: return "\(target.rawValue): \(delay) µs after checkpoint \(event) is in place"
            case .checkpointWrite: return "\(target.rawValue): \(delay) µs after checkpoint temporary file \(event) is created"
            case .previews: return "\(target.rawValue): \(delay) µs after preview file \(event) is created"
            }
        }
    }

    static func plan() -> [Kill] {
        var random = SplitMix64(seed: seed)
        let targets: [Target] = [.step, .checkpointWrite, .previews, .step, .checkpointWrite, .previews]
        return targets.map { target in
            switch target {
            case .step: return Kill(target: target, event: 1, delay: Int(random.next() % 6000))
            case .checkpointWrite: return Kill(target: target, event: 1 + Int(random.next() % 3), delay: Int(random.next() % 200))
            case .previews: return Kill(target: target, event: 1 + Int(random.next() % 2), delay: Int(random.next() % 200))
            }
        }
    }

    @Test func killedAndResumedTrainingEndsBitwiseEqualToAnUninterruptedRun() throws {
        try #require(FusekitExecutable.exists, "build the fusekit product first (swift build --build-tests builds it)")
        let scratch = try TrainerTests.scratch("random-kill")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let recipeFile = scratch.appendingPathComponent("random-kill.yaml")
        try Self.recipe.write(to: recipeFile, atomically: true, encoding: .utf8)
        let started = Date()

        let straight = RunDirectory(scratch.appendingPathComponent("straight"))
        let reference = try FusekitExecutable.run(["train", recipeFile.path, "--out", straight.url.path])
        try #require(reference.status == 0, "the uninterrupted run failed: \(reference.stderr)")

        let killed = RunDirectory(scratch.appendingPathComponent("killed"))
        for folder in [killed.checkpointsFolder, killed.previewsFolder] {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        }
        var landed: [Target] = []
        var launches = 0
        for (index, kill) in Self.plan().enumerated() {
            let watch = try DirectoryWatch([killed.checkpointsFolder, killed.previewsFolder])
            launches += 1
            let arguments = ["train", recipeFile.path, "--out", killed.url.path] + (launches > 1 ? ["--resume"] : [])
            let child = try FusekitExecutable.start(arguments, logs: scratch, name: "launch-\(launches)")
            let outcome = try Self.stopAndKill(child.process, at: kill, watching: watch, in: killed)
            let stderr = (try? String(contentsOf: child.stderr, encoding: .utf8)) ?? ""
            guard let outcome else {
                Issue.record("kill \(index + 1) (\(kill)): the run ended (status \(child.process.terminationStatus)) before the moment came; stderr: \(stderr)")
                break
            }
            print("kill \(index + 1) of \(Self.plan().count) [seed \(Self.seed)], \(kill): \(outcome.report)")
            landed.append(outcome.target)
        }
        launches += 1
        let last = try FusekitExecutable.start(["train", recipeFile.path, "--out", killed.url.path, "--resume"], logs: scratch, name: "launch-\(launches)")
        last.process.waitUntilExit()
        let lastError = (try? String(contentsOf: last.stderr, encoding: .utf8)) ?? ""
        try #require(last.process.terminationStatus == 0, "the last resume failed: \(lastError)")
        print("random kills: \(landed.count) kills, \(launches) launches, \(String(format: "%.1f", Date().timeIntervalSince(started))) s in all")

        #expect(Set(landed) == [.step, .checkpointWrite, .previews], "the kills landed \(landed.map(\.rawValue))")
        let expected = try Checkpoint.load(from: straight.lastCheckpoint), actual = try Checkpoint.load(from: killed.lastCheckpoint)
        #expect(actual.step == 12 && actual.epoch == 3)
        #expect(actual == expected, "the resumed run's final checkpoint differs from the uninterrupted run's")
        #expect(try TrainerTests.logLines(killed.url) == TrainerTests.logLines(straight.url))
        // Temporary files of killed writes are gone (the resumed runs remove them).
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: killed.checkpointsFolder.path).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty, "left in checkpoints/: \(leftovers)")
    }

    struct Outcome {
        var target: Target
        var report: String
    }

    /// Waits for `kill`'s moment, stops the child, checks what it interrupts and kills it; nil
    /// when the child exits first. A moment that missed its target lets the child continue to
    /// the next event of the same kind.
    static func stopAndKill(_ process: Process, at kill: Kill, watching watch: DirectoryWatch, in run: RunDirectory) throws -> Outcome? {
        var seen = 0
        let pid = process.processIdentifier
        while process.isRunning {
            for event in watch.next(timeout: 0.05) {
                let isCheckpoint = event.folder == run.checkpointsFolder.path
                let matches: Bool
                switch kill.target {
                case .step: matches = isCheckpoint && event.kind == .movedTo && event.name == run.lastCheckpoint.lastPathComponent
                case .checkpointWrite: matches = isCheckpoint && event.kind == .created && event.name.hasPrefix(".") && event.name.hasSuffix(".tmp")
                case .previews: matches = !isCheckpoint && event.kind == .created && !event.isDirectory && !event.name.contains("loss-curves")
                }
                guard matches else { continue }
                seen += 1
                guard seen >= kill.event else { continue }
                if kill.delay > 0 { usleep(UInt32(kill.delay)) }
                guard Glibc.kill(pid, SIGSTOP) == 0 else { return nil }
                let path = URL(fileURLWithPath: event.folder).appendingPathComponent(event.name).path
                let writing = Self.checkpointWriteInProgress(run)
                let report: String
                switch kill.target {
                case .checkpointWrite:
                    guard FileManager.default.fileExists(atPath: path) else {
                        Glibc.kill(pid, SIGCONT)
                        continue
                    }
                    report = "stopped with \(event.name) still being written"
                case .previews:
                    guard writing == nil else {
                        Glibc.kill(pid, SIGCONT)
                        continue
                    }
                    report = "stopped after \(event.name) (a preview being written) appeared in \(URL(fileURLWithPath: event.folder).lastPathComponent), before the epoch's loss curves and checkpoint"
                case .step:
                    guard writing == nil else {
                        Glibc.kill(pid, SIGCONT)
                        continue
                    }
                    let logged = run.readLog().last?.globalStep ?? 0
                    report = "stopped in step \(logged + 1) (\(logged) logged), no checkpoint write in progress"
                }
                Glibc.kill(pid, SIGKILL)
                process.waitUntilExit()
                return Outcome(target: kill.target, report: report)
            }
        }
        process.waitUntilExit()
        return nil
    }

    /// The temporary checkpoint file being written, if any.
    static func checkpointWriteInProgress(_ run: RunDirectory) -> String? {
        ((try? FileManager.default.contentsOfDirectory(atPath: run.checkpointsFolder.path)) ?? []).first { $0.hasSuffix(".tmp") }
    }
}

/// Files created or moved into some folders (and their new subfolders), seen with inotify.
final class DirectoryWatch {
    enum Kind { case created, movedTo }

    struct Event {
        var folder: String
        var name: String
        var kind: Kind
        var isDirectory: Bool
    }

    private let descriptor: Int32
    private var folders: [Int32: String] = [:]

    init(_ urls: [URL]) throws {
        descriptor = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        for url in urls { try add(url.path) }
    }

    deinit { close(descriptor) }

    private func add(_ folder: String) throws {
        let watch = inotify_add_watch(descriptor, folder, UInt32(IN_CREATE | IN_MOVED_TO))
        guard watch >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        folders[watch] = folder
    }

    /// The events of the next `timeout` seconds (or fewer, once some arrived).
    func next(timeout: Double) -> [Event] {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(timeout * 1000)) > 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return [] }
        var events: [Event] = []
        var offset = 0
        let headerSize = MemoryLayout<inotify_event>.size
        while offset + headerSize <= count {
            let (watch, mask, length) = buffer.withUnsafeBytes { raw -> (Int32, UInt32, Int) in
                let header = raw.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                return (header.wd, header.mask, Int(header.len))
            }
            let nameBytes = buffer[(offset + headerSize)..<(offset + headerSize + length)].prefix { $0 != 0 }
            let name = String(decoding: nameBytes, as: UTF8.self)
            offset += headerSize + length
            guard let folder = folders[watch] else { continue }
            let isDirectory = mask & UInt32(IN_ISDIR) != 0
            if isDirectory { try? add(folder + "/" + name) }
            events.append(Event(folder: folder, name: name, kind: mask & UInt32(IN_MOVED_TO) != 0 ? .movedTo : .created, isDirectory: isDirectory))
        }
        return events
    }
}

/// SplitMix64, for the seeded kill moments.
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
