import ArgumentParser
import Foundation
import FuseKit
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
    /// runs (see `BLASKernel`).
    /// A file-size limit (`ulimit -f`) makes a write past it fail with EFBIG, reported like a
    /// full disk, instead of killing the process with SIGXFSZ.
    public static func main(registry: PluginRegistry, arguments: [String]? = nil) -> Never {
        signal(SIGXFSZ, SIG_IGN)
        BLASKernel.reexecuteWithRecommendedKernel()
        CommandContext.installed.withLock { $0 = registry }
        FuseKitCommand.main(arguments)
        exit(0)
    }
}

/// What every subcommand shares: the plugins of this command line.
enum CommandContext {
    static let installed = Mutex(PluginRegistry())

    /// The registered plugins.
    static var registry: PluginRegistry { installed.withLock { $0 } }
}

struct FuseKitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fusekit",
        abstract: "Task-driven infrared-visible image fusion on the CPU: TDFusion, MRFS and MAFS as plugins.",
        version: FuseKitVersion.string,
        subcommands: [VersionCommand.self, DoctorCommand.self, DemoCommand.self, FuseCommand.self, ConvertCommand.self, TrainCommand.self,
                      GradcheckCommand.self, RecipeCommand.self, PluginsCommand.self, LossesCommand.self, InspectCommand.self, BenchCommand.self,
                      EvalCommand.self, EvalSegmentationCommand.self, EvalDetectionCommand.self])
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the FuseKit version.")
    func run() { print("fusekit \(FuseKitVersion.string)") }
}
