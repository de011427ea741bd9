import ArgumentParser
import Foundation
import FuseKit

/// `fusekit inspect PLUGIN`: the module tree with output shapes and parameter counts.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print a plugin's module tree with output shapes and parameter counts (like torchinfo's summary).",
        discussion: "Runs one forward pass of a random input of --input-size through the plugin built with the given parameters.")

    @Argument(help: "The plugin (see 'fusekit plugins').")
    var plugin: String

    @Option(name: .customLong("param"), help: "A plugin parameter as KEY=VALUE (repeatable), e.g. --param variant=b0.")
    var parameters: [String] = []

    @Option(name: .customLong("input-size"), help: "Input height and width as HxW.")
    var inputSize = "64x64"

    @Option(help: "Show modules down to this depth (the root is 0).")
    var depth: Int?

    @Flag(help: "Print one JSON object whose 'parameters' field is the total, with the tree below it.")
    var json = false

    func size() throws -> (height: Int, width: Int) {
        let parts = inputSize.lowercased().split(separator: "x").compactMap { Int($0) }
        guard parts.count == 2, parts.allSatisfy({ $0 > 0 }) else { throw ValidationError("--input-size must be HxW, e.g. 64x64; got '\(inputSize)'") }
        return (parts[0], parts[1])
    }

    func validate() throws {
        _ = try size()
        if let depth, depth < 0 { throw ValidationError("--depth must not be negative") }
    }

    func run() throws {
        let descriptor = try CommandContext.registry.descriptor(plugin)
        let (h, w) = try size()
        let summary = try descriptor.summary(try PluginParameters.parsing(parameters, plugin: plugin), height: h, width: w)
        print(json ? summary.json(plugin: plugin) : summary.text(maxDepth: depth ?? .max))
    }
}
