import ArgumentParser
import FuseKit

@main
struct FuseKitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fusekit",
        abstract: "Task-driven infrared-visible image fusion (TDFusion) on the CPU.",
        version: FuseKitVersion.string,
        subcommands: [VersionCommand.self, DoctorCommand.self, DemoCommand.self, FuseCommand.self, TrainCommand.self, GradcheckCommand.self, RecipeCommand.self, PluginsCommand.self, BenchCommand.self, EvalCommand.self, EvalSegmentationCommand.self, EvalDetectionCommand.self])

    /// Restarts once with a faster OpenBLAS kernel when OpenBLAS picked an older one than the
    /// CPU runs (see `BLASKernel`), then runs the command.
    static func main() {
        BLASKernel.reexecuteWithRecommendedKernel()
        main(nil)
    }
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the FuseKit version.")
    func run() { print("fusekit \(FuseKitVersion.string)") }
}
