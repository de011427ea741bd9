import ArgumentParser
import Foundation
import FuseKit

/// `fusekit demo`: the README's main job.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Train a small TDFusion and a fixed-weight baseline on synthetic scenes and compare them (a few minutes on a CPU).",
        discussion: "Writes report.md and report.json, the fused images, w_a heat maps and segmentations (images/), and both training runs.")

    @Option(help: "Output folder.")
    var out = "demo-output"

    @Option(help: "The demo recipe (default: recipes/demo.yaml of this checkout).")
    var recipe: String?

    /// recipes/demo.yaml relative to the working directory, else to this source file's checkout.
    static func defaultRecipe() -> URL {
        let local = URL(fileURLWithPath: "recipes/demo.yaml")
        if FileManager.default.fileExists(atPath: local.path) { return local }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("recipes/demo.yaml")
    }

    func run() throws {
        let url = recipe.map { URL(fileURLWithPath: $0) } ?? Self.defaultRecipe()
        let parsed = try Recipe.load(from: url)
        let text = try String(contentsOf: url, encoding: .utf8)
        let output = URL(fileURLWithPath: out)
        if FileManager.default.fileExists(atPath: output.path) { try FileManager.default.removeItem(at: output) }
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        let started = Date()
        var observers: [TrainingProgress] = []
        let demo = DemoRun(recipe: parsed, recipeText: text, registry: CommandContext.registry, output: output)
        let report = try demo.run { name, epochs in
            observers.last?.finish()
            let o = TrainingProgress(label: name, epochs: epochs)
            observers.append(o)
            return o
        }
        observers.last?.finish()
        print(demo.markdown(report), terminator: "")
        print(String(format: "demo finished in %.0f s; report: %@", Date().timeIntervalSince(started), output.appendingPathComponent("report.md").path))
    }
}
