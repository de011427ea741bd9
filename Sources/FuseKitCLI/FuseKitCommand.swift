import ArgumentParser
import FuseKit

@main
struct FuseKitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fusekit",
        abstract: "Task-driven infrared-visible image fusion (TDFusion) on the CPU.",
        version: FuseKitVersion.string,
        subcommands: [VersionCommand.self, DemoCommand.self, FuseCommand.self, ConvertCommand.self, TrainCommand.self, GradcheckCommand.self, RecipeCommand.self, PluginsCommand.self, BenchCommand.self, EvalCommand.self, EvalSegmentationCommand.self, EvalDetectionCommand.self])
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the FuseKit version.")
    func run() { print("fusekit \(FuseKitVersion.string)") }
}
