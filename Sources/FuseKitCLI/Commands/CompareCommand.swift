import ArgumentParser
import Foundation
import FuseKit

/// `fusekit compare RECIPE...`: every method on the same data, the same metrics and several seeds.
struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Train recipes under several seeds (or evaluate given weights), score every run on one test split, and report the comparison.",
        discussion: """
        Each recipe is a method, named by its recipe's name; its runs train with seeds 1 to N in place of the recipe's seed \
        (the data seed stays the recipe's, so every method sees the same scenes). The report (OUT/report.md, report.html, report.json, table.csv, runs.csv, \
        charts/, pictures/) gives the mean ± standard deviation of every fusion metric and task score, per-class task scores, \
        and for each pair of methods a paired t-test over seeds and a paired bootstrap over seeds and test images. Run again \
        with the same --out, it keeps finished runs and resumes an interrupted one.
        """)

    @Argument(help: "The recipes (YAML) to compare, e.g. recipes/demo/*.yaml.")
    var recipes: [String]

    @Option(help: "Seeds per method.")
    var seeds = 3

    @Option(help: "Dataset root for every recipe, overriding their data.root (all methods are then scored on its test split).")
    var data: String?

    @Option(help: "Output folder (kept between runs: a comparison resumes where it stopped).")
    var out = "comparison"

    @Option(name: .customLong("weights"), help: ArgumentHelp("Evaluate METHOD's checkpoints instead of training it: METHOD=CHECKPOINT[,CHECKPOINT...] (repeatable; METHOD is the recipe's name).", valueName: "method=checkpoints"))
    var weights: [String] = []

    @Option(help: "Test pairs shown in the picture grid.")
    var pictures = 4

    func validate() throws {
        guard !recipes.isEmpty else { throw ValidationError("name at least one recipe") }
        guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1") }
        guard pictures >= 0 else { throw ValidationError("--pictures cannot be negative") }
        _ = try weightsByMethod()
    }

    func weightsByMethod() throws -> [String: [URL]] {
        var result: [String: [URL]] = [:]
        for entry in weights {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ValidationError("--weights '\(entry)' is not METHOD=CHECKPOINT[,CHECKPOINT...]")
            }
            let files = parts[1].split(separator: ",").map { URL(fileURLWithPath: String($0)) }
            for file in files where !FileManager.default.fileExists(atPath: file.path) {
                throw ValidationError("--weights \(parts[0]): no file \(file.path)")
            }
            result[parts[0], default: []] += files
        }
        return result
    }

    func run() throws {
        guard CommandContext.ranks.size == 1 else {
            throw ComparisonError("fusekit compare runs in one process; start it without an MPI launcher")
        }
        let report = try Self.compare(recipes: recipes.map { URL(fileURLWithPath: $0) }, seeds: seeds, data: data,
                                      output: URL(fileURLWithPath: out), weights: try weightsByMethod(), pictures: pictures)
        print(report.markdown, terminator: "")
        print("report: \(URL(fileURLWithPath: out).appendingPathComponent("report.html").path)")
    }

    /// Runs a comparison with progress on standard error and writes its report.
    static func compare(recipes: [URL], seeds: Int, data: String?, output: URL, weights: [String: [URL]], pictures: Int) throws -> ComparisonReport {
        var methods = try recipes.map { try ComparisonMethod.load($0) }
        let names = Set(methods.map(\.name))
        for name in weights.keys where !names.contains(name) {
            let hint = closestMatch(to: name, in: Array(names)).map { "; did you mean '\($0)'?" } ?? ""
            throw ComparisonError("--weights names '\(name)', which is no recipe's name\(hint) (the methods: \(names.sorted().joined(separator: ", ")))")
        }
        for i in methods.indices { methods[i].weights = weights[methods[i].name] ?? [] }
        let comparison = try Comparison(methods: methods, seedCount: seeds, output: output, registry: CommandContext.registry, dataRoot: data)
        comparison.picturePairs = pictures
        let outcome = try comparison.run(observer: ComparisonProgress())
        let report = ComparisonReport(outcome: outcome)
        try report.write(to: output)
        return report
    }
}
