import ArgumentParser
import Foundation
import FuseKit
import FuseKitTensor
import Synchronization

/// The `fusekit` command line as a library: a program passes the plugins it links and gets
/// every subcommand with them.
///
/// ```swift
/// import FuseKitCLI
/// import FuseKitPlugins
/// import MyPlugin
///
/// var registry = CommandContext.registry
/// MyPlugin.register(in: &registry)
/// FuseKitCommandLine.main(registry: registry)
/// ```
public enum FuseKitCommandLine {
    /// Parses the arguments (by default the process's), runs the subcommand with `registry`'s
    /// plugins and exits.
    /// Restarts once with a faster OpenBLAS kernel when OpenBLAS picked an older one than the CPU
    /// runs (see `BLASKernel`). `ranks` (called after that restart) gives the processes of a
    /// data-parallel run when an MPI launcher started this one, e.g. `MPICollective.launched`.
    /// A file-size limit (`ulimit -f`) makes a write past it fail with EFBIG, reported like a
    /// full disk, instead of killing the process with SIGXFSZ.
    public static func main(registry: PluginRegistry, arguments: [String]? = nil,
                            ranks: () -> (any Collective)? = { nil }) -> Never {
        signal(SIGXFSZ, SIG_IGN)
        BLASKernel.reexecuteWithRecommendedKernel()
        let collective = ranks() ?? SingleProcess()
        if collective.size > 1 && getenv("FUSEKIT_THREADS") == nil {
            // N ranks on one machine share its cores.
            let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
            setenv("FUSEKIT_THREADS", String(Swift.max(1, cores / collective.ranksOnThisMachine)), 1)
        }
        CommandContext.installed.withLock { $0 = registry }
        CommandContext.installedRanks.withLock { $0 = collective }
        guard collective.size > 1 else {
            FuseKitCommand.main(arguments)
            exit(0)
        }
        // Errors every rank meets alike (usage, the recipe, the training's own agreed stops) are
        // reported by rank 0; the others stop quietly with the same status.
        func stopTogether(_ error: Error) -> Never {
            if collective.isRoot { FuseKitCommand.exit(withError: error) }
            exit(FuseKitCommand.exitCode(for: error).rawValue)
        }
        var command: ParsableCommand
        do {
            command = try FuseKitCommand.parseAsRoot(arguments)
        } catch {
            stopTogether(error)
        }
        do {
            try command.run()
            exit(0)
        } catch let error where error is TrainingError || error is RecipeError {
            stopTogether(error)
        } catch {
            // This rank's own problem (a file only it could not read): report it, stop every rank.
            FileHandle.standardError.write(Data("fusekit (rank \(collective.rank)): \(FuseKitCommand.fullMessage(for: error))\n".utf8))
            collective.abort(exitCode: FuseKitCommand.exitCode(for: error).rawValue)
        }
    }
}

/// What every subcommand shares: the plugins of this command line, and the ranks of a
/// data-parallel run.
enum CommandContext {
    static let installed = Mutex(PluginRegistry())
    static let installedRanks = Mutex<any Collective>(SingleProcess())

    /// The registered plugins.
    static var registry: PluginRegistry { installed.withLock { $0 } }
    /// The processes of this run (one unless started by an MPI launcher).
    static var ranks: any Collective { installedRanks.withLock { $0 } }
}

struct FuseKitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fusekit",
        abstract: "Task-driven infrared-visible image fusion on the CPU: TDFusion, MRFS and MAFS as plugins.",
        version: FuseKitVersion.string,
        subcommands: [VersionCommand.self, DoctorCommand.self, DemoCommand.self, CompareCommand.self, FuseCommand.self, ConvertCommand.self, TrainCommand.self,
                      GradcheckCommand.self, RecipeCommand.self, PluginsCommand.self, LossesCommand.self, InspectCommand.self, BenchCommand.self,
                      EvalCommand.self, EvalSegmentationCommand.self, EvalDetectionCommand.self])
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the FuseKit version.")
    func run() { print("fusekit \(FuseKitVersion.string)") }
}
