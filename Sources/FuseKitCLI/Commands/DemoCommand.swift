import ArgumentParser
import Foundation
import FuseKit

/// `fusekit demo`: the README's main job, a comparison of the four methods on synthetic scenes.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Compare TDFusion (learned w), fixed w = 1/2, MRFS and MAFS on synthetic scenes, each trained with 3 seeds (about 5 minutes on 2 cores).",
        discussion: """
        The same as `fusekit compare` of the recipes in recipes/demo/ (\(methods.joined(separator: ", "))): report.md and report.html \
        with the fusion metrics, mIoU and per-class IoU as mean ± standard deviation over the seeds, which differences exceed the \
        seed-to-seed noise, bar charts and a picture grid. Run again with the same --out, it keeps finished runs.
        """)

    /// The demo's methods, in the report's order: recipes/demo/NAME.yaml.
    static let methods = ["tdfusion", "fixed-weights", "mrfs", "mafs"]

    @Option(help: "Output folder.")
    var out = "demo-output"

    @Option(help: "Seeds per method.")
    var seeds = 3

    @Option(help: "The folder of the demo recipes (default: recipes/demo of this checkout).")
    var recipes: String?

    func validate() throws {
        guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1") }
    }

    /// recipes/demo relative to the working directory, else to this source file's checkout.
    static func defaultFolder() -> URL {
        let local = URL(fileURLWithPath: "recipes/demo")
        if FileManager.default.fileExists(atPath: local.path) { return local }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("recipes/demo")
    }

    func run() throws {
        let folder = recipes.map { URL(fileURLWithPath: $0) } ?? Self.defaultFolder()
        let started = Date()
        let output = URL(fileURLWithPath: out)
        let report = try CompareCommand.compare(recipes: Self.methods.map { folder.appendingPathComponent("\($0).yaml") }, seeds: seeds,
                                                data: nil, output: output, weights: [:], pictures: 4)
        print(report.markdown, terminator: "")
        print(String(format: "demo finished in %.0f s; report: %@ (open it in a browser) and %@", Date().timeIntervalSince(started),
                     output.appendingPathComponent("report.html").path, output.appendingPathComponent("report.md").path))
    }
}
