import Foundation
import Testing

/// Every `fusekit` subcommand given missing or contradictory options prints a one-line reason
/// and its usage, and exits with status 64 (EX_USAGE). The subcommands are listed from the
/// command line itself (`--experimental-dump-help`), so a new subcommand without a case here fails.
@Suite struct CommandLineUsageTests {
    struct Misuse: Sendable, CustomTestStringConvertible {
        /// The subcommand's path, e.g. "recipe check".
        var command: String
        var arguments: [String]
        /// What the reason line says.
        var reason: String

        var testDescription: String { "fusekit " + arguments.joined(separator: " ") }
    }

    static func misuse(_ command: String, _ arguments: [String], _ reason: String) -> Misuse {
        Misuse(command: command, arguments: command.split(separator: " ").map(String.init) + arguments, reason: reason)
    }

    static let misuses: [Misuse] = [
        misuse("version", ["extra"], "Unexpected argument 'extra'"),
        misuse("doctor", ["--coretype", "extra"], "Unexpected argument 'extra'"),
        misuse("demo", ["--out"], "Missing value for '--out <out>'"),
        misuse("demo", ["--seeds", "0"], "--seeds must be at least 1"),
        misuse("compare", [], "Missing expected argument '<recipes> ...'"),
        misuse("compare", ["a.yaml", "--weights", "no-equals-sign"], "--weights 'no-equals-sign' is not METHOD=CHECKPOINT[,CHECKPOINT...]"),
        misuse("fuse", ["--ir", "a.png", "--vis", "b.png", "--out", "o"], "fuse needs --weights FILE"),
        misuse("fuse", ["--weights", "w.pth", "--vis", "b.png", "--out", "o"], "Missing expected argument '--ir <ir>'"),
        misuse("convert", ["a.pth"], "Missing expected argument '<destination>'"),
        misuse("convert", ["a.pth", "a.pth"], "SOURCE and DESTINATION are the same file"),
        misuse("train", [], "Missing expected argument '<recipe>'"),
        misuse("train", ["r.yaml", "--stop-after", "0"], "--stop-after must be at least 1"),
        misuse("gradcheck", ["--plugin", "no-such-plugin"], "no plugin 'no-such-plugin'"),
        misuse("gradcheck", ["--task", "restormer-fusion"], "--task 'restormer-fusion' is not a task plugin"),
        // `check` is the default subcommand.
        misuse("recipe", [], "Missing expected argument '<file>'"),
        misuse("recipe check", [], "Missing expected argument '<file>'"),
        misuse("plugins", ["extra"], "Unexpected argument 'extra'"),
        misuse("losses", ["extra"], "Unexpected argument 'extra'"),
        misuse("inspect", [], "Missing expected argument '<plugin>'"),
        misuse("inspect", ["restormer-fusion", "--depth=-1"], "--depth must not be negative"),
        misuse("inspect", ["restormer-fusion", "--input-size", "64"], "--input-size must be HxW"),
        misuse("bench", ["--runs", "0"], "--runs must be at least 1"),
        misuse("bench", ["--workload", "no-such-workload"], "unknown workload 'no-such-workload'"),
        misuse("eval", ["--ir", "a", "--fused", "c"], "Missing expected argument '--vis <vis>'"),
        misuse("eval", ["--ir", "a", "--vis", "b", "--fused", "c", "--metrics", ","], "--metrics lists no metric"),
        misuse("eval-seg", ["--pred", "p", "--labels", "l"], "Missing expected argument '--classes <classes>'"),
        misuse("eval-seg", ["--pred", "p", "--labels", "l", "--classes", "0"], "--classes must be positive"),
        misuse("eval-seg", ["--pred", "p", "--labels", "l", "--classes", "3", "--class-names", "a,b"], "--class-names lists 2 names for 3 classes"),
        misuse("eval-det", ["--pred", "p"], "Missing expected argument '--labels <labels>'"),
        misuse("eval-det", ["--pred", "p", "--labels", "l", "--max-detections", "0"], "--max-detections must be at least 1"),
    ]

    /// The subcommand paths of `fusekit` (nested ones as "recipe check"), from its own help dump.
    static func subcommands() throws -> [String] {
        let (status, stdout, stderr) = try FusekitExecutable.run(["--experimental-dump-help"])
        guard status == 0 else { throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "dump-help failed: \(stderr)"]) }
        struct Command: Decodable {
            var commandName: String
            var subcommands: [Command]?
        }
        struct Dump: Decodable { var command: Command }
        let root = try JSONDecoder().decode(Dump.self, from: Data(stdout.utf8)).command
        func paths(_ command: Command, _ prefix: String) -> [String] {
            (command.subcommands ?? []).filter { $0.commandName != "help" }.flatMap { sub -> [String] in
                let path = prefix.isEmpty ? sub.commandName : prefix + " " + sub.commandName
                return [path] + paths(sub, path)
            }
        }
        return paths(root, "")
    }

    @Test func everySubcommandHasAMisuseCase() throws {
        try #require(FusekitExecutable.exists, "build the fusekit product first (swift build --build-tests builds it)")
        let listed = try Self.subcommands()
        print("fusekit subcommands: \(listed.joined(separator: ", "))")
        #expect(listed.count >= 15)
        #expect(Set(listed) == Set(Self.misuses.map(\.command)), "subcommands without a misuse case: \(Set(listed).subtracting(Self.misuses.map(\.command)).sorted())")
    }

    @Test(arguments: misuses)
    func misuseExitsWith64AReasonAndTheUsage(_ misuse: Misuse) throws {
        try #require(FusekitExecutable.exists, "build the fusekit product first (swift build --build-tests builds it)")
        let scratch = try TrainerTests.scratch("usage")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let (status, stdout, stderr) = try FusekitExecutable.run(misuse.arguments, workingDirectory: scratch)
        #expect(status == 64, "exit status \(status); stderr: \(stderr)")
        #expect(stdout.isEmpty, "stdout: \(stdout)")
        let lines = stderr.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        let reason = try #require(lines.first, "nothing on stderr")
        #expect(reason.hasPrefix("Error: ") && reason.contains(misuse.reason), "reason line: \(reason)")
        // The reason is one line: the next one is ArgumentParser's help for the option or the usage.
        #expect(lines.count > 1 && (lines[1].hasPrefix("Help: ") || lines[1].hasPrefix("Usage: ")), "stderr: \(stderr)")
        #expect(lines.contains { $0.hasPrefix("Usage: fusekit \(misuse.command)") }, "no usage of 'fusekit \(misuse.command)' in: \(stderr)")
        // Nothing was written in the working directory.
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).isEmpty)
    }
}
