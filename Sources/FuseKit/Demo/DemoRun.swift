import Foundation
import FuseKitData
import FuseKitImage
import FuseKitMetrics
import FuseKitNN
import FuseKitTensor

/// FuseKit's demo: trains a recipe on synthetic scenes with the learned fusion loss (TDFusion)
/// and with fixed weights w = 1/2, fuses held-out pairs with both, and writes a report that
/// compares the fusion metrics, the task metric and where the learned loss puts its weight.
public struct DemoRun {
    public let recipe: Recipe
    public let recipeText: String
    public let registry: PluginRegistry
    public let output: URL

    public init(recipe: Recipe, recipeText: String, registry: PluginRegistry, output: URL) {
        self.recipe = recipe
        self.recipeText = recipeText
        self.registry = registry
        self.output = output
    }

    /// Mean w_a over warm-object pixels and over the rest, for night and day scenes.
    public struct WeightStatistics: Sendable, Codable {
        public var nightInside: Double
        public var nightOutside: Double
        public var dayInside: Double
        public var dayOutside: Double
        public var nightScenes: Int
        public var dayScenes: Int
    }

    /// What the demo measured.
    public struct Report: Sendable {
        public var learned: MetaTrainer.Result
        public var fixed: MetaTrainer.Result
        public var weights: WeightStatistics
        public var seconds: [String: Double]
    }

    /// Runs both trainings; `observer(name)` gives the progress observer of each.
    public func run(observer: (String, Int) -> TrainingObserver) throws -> Report {
        guard case .synthetic(let synthetic) = recipe.data.source else {
            throw TrainingError.data("the demo needs a recipe on synthetic data (data.synthetic)")
        }
        var seconds: [String: Double] = [:]
        var fixedRecipe = recipe
        fixedRecipe.fusionLoss.weights = .fixed
        var results: [MetaTrainer.Result] = []
        for (name, r) in [("tdfusion", recipe), ("fixed-weights", fixedRecipe)] {
            let started = Date()
            let setup = try TrainingSetup.make(recipe: r, registry: registry)
            let trainer = try MetaTrainer(setup: setup, runDirectory: output.appendingPathComponent(name),
                                          observer: observer(name, r.training.epochs))
            guard let result = try trainer.run(recipeText: recipeText + (r.fusionLoss.weights == .fixed ? "\n# demo: fusion-loss.weights overridden to fixed\n" : "")) else {
                throw TrainingError.data("the demo run '\(name)' stopped early")
            }
            results.append(result)
            seconds[name] = Date().timeIntervalSince(started)
        }
        let learned = results[0], fixed = results[1]
        let setup = try TrainingSetup.make(recipe: recipe, registry: registry)
        let weights = try weightStatistics(setup: setup, state: learned.state, synthetic: synthetic)
        try writeImages(setup: setup, learned: learned.state, fixed: fixed.state, synthetic: synthetic)
        let report = Report(learned: learned, fixed: fixed, weights: weights, seconds: seconds)
        try write(report)
        return report
    }

    /// The held-out scenes (the test split of the recipe's synthetic data).
    func testScenes(_ s: SyntheticSettings) -> [SyntheticScene] {
        SyntheticSceneGenerator(width: s.width, height: s.height, nightProbability: s.nightFraction)
            .scenes(count: s.testCount, seed: s.seed &+ 1_000_003)
    }

    func weightStatistics(setup: TrainingSetup, state: MetaTrainer.State, synthetic: SyntheticSettings) throws -> WeightStatistics {
        guard let generator = setup.lossGenerator else { throw TrainingError.data("the demo recipe needs a loss generator") }
        var sums: [TimeOfDay: (inside: Double, nIn: Int, outside: Double, nOut: Int, scenes: Int)] = [:]
        for scene in testScenes(synthetic) {
            let sources = Tensor.concat([scene.infraredGray.tensor(), scene.visibleGray.tensor()], axis: 1)
            let wa = withoutGradient { generator.weights(sources, Scope(state.generator)) }.sliced(axis: 1, 0..<1).scalars
            var entry = sums[scene.timeOfDay] ?? (0, 0, 0, 0, 0)
            for (i, warm) in scene.warmMask.values.enumerated() {
                if warm != 0 { entry.inside += Double(wa[i]); entry.nIn += 1 } else { entry.outside += Double(wa[i]); entry.nOut += 1 }
            }
            entry.scenes += 1
            sums[scene.timeOfDay] = entry
        }
        func mean(_ t: TimeOfDay, _ inside: Bool) -> Double {
            guard let e = sums[t] else { return .nan }
            return inside ? e.inside / Double(Swift.max(e.nIn, 1)) : e.outside / Double(Swift.max(e.nOut, 1))
        }
        return WeightStatistics(nightInside: mean(.night, true), nightOutside: mean(.night, false), dayInside: mean(.day, true),
                                dayOutside: mean(.day, false), nightScenes: sums[.night]?.scenes ?? 0, dayScenes: sums[.day]?.scenes ?? 0)
    }

    /// Sources, both fusions, the w_a heat map and both segmentations of each held-out scene.
    func writeImages(setup: TrainingSetup, learned: MetaTrainer.State, fixed: MetaTrainer.State, synthetic: SyntheticSettings) throws {
        let folder = output.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let palette = [PaletteColor(red: 40, green: 40, blue: 40), PaletteColor(red: 230, green: 60, blue: 60),
                       PaletteColor(red: 60, green: 120, blue: 230), PaletteColor(red: 150, green: 150, blue: 150),
                       PaletteColor(red: 200, green: 160, blue: 90), PaletteColor(red: 70, green: 180, blue: 80)]
        for (i, scene) in testScenes(synthetic).enumerated() {
            let name = String(format: "%02d-%@", i, scene.timeOfDay.rawValue)
            let ir = scene.infraredGray, vi = scene.visibleGray
            try ir.write(to: folder.appendingPathComponent("\(name)-ir.png"))
            try vi.write(to: folder.appendingPathComponent("\(name)-vi.png"))
            try scene.segmentation.write(to: folder.appendingPathComponent("\(name)-label.png"), palette: palette)
            for (tag, state) in [("tdfusion", learned), ("fixed", fixed)] {
                let fuser = Fuser(fusion: setup.fusion, state: state.fusion)
                try fuser.fuse(infrared: ir, visible: vi).gray.write(to: folder.appendingPathComponent("\(name)-fused-\(tag).png"))
                let sources = Tensor.concat([ir.tensor(), vi.tensor()], axis: 1)
                let prediction = withoutGradient { setup.task.predict(setup.taskInput(fuser.fuse(sources: sources)), Scope(state.task)) }
                if case .segmentation(let map) = prediction {
                    var classes = map
                    if classes.shape[1] != scene.segmentation.height || classes.shape[2] != scene.segmentation.width {
                        classes = classes.unsqueezed(at: 1).resizedNearest(to: (scene.segmentation.height, scene.segmentation.width)).squeezed(at: 1)
                    }
                    let labels = LabelMap(width: scene.segmentation.width, height: scene.segmentation.height, values: classes.scalars.map { Int32($0) })
                    try labels.write(to: folder.appendingPathComponent("\(name)-segmentation-\(tag).png"), palette: palette)
                }
            }
            if let generator = setup.lossGenerator {
                let sources = Tensor.concat([ir.tensor(), vi.tensor()], axis: 1)
                let wa = withoutGradient { generator.weights(sources, Scope(learned.generator)) }.sliced(axis: 1, 0..<1).scalars
                try HeatMap.render(wa, width: ir.width, height: ir.height).write(to: folder.appendingPathComponent("\(name)-w_a.png"))
            }
        }
    }

    func write(_ report: Report) throws {
        let metrics = recipe.evaluation.metrics
        let learnedMean = report.learned.fusion.mean, fixedMean = report.fixed.fusion.mean
        let w = report.weights
        var json: [String: Any] = [
            "fusion": ["tdfusion": Dictionary(uniqueKeysWithValues: metrics.compactMap { m in learnedMean[m].map { (m.rawValue, $0) } }),
                       "fixed-weights": Dictionary(uniqueKeysWithValues: metrics.compactMap { m in fixedMean[m].map { (m.rawValue, $0) } })],
            "w_a": ["night_inside_warm": w.nightInside, "night_outside_warm": w.nightOutside, "day_inside_warm": w.dayInside,
                    "day_outside_warm": w.dayOutside, "night_scenes": w.nightScenes, "day_scenes": w.dayScenes],
            "seconds": report.seconds,
        ]
        if let t = report.learned.task { json["task_tdfusion"] = t.jsonObject }
        if let t = report.fixed.task { json["task_fixed_weights"] = t.jsonObject }
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: output.appendingPathComponent("report.json"))
        try markdown(report).write(to: output.appendingPathComponent("report.md"), atomically: true, encoding: .utf8)
    }

    /// The Markdown report.
    public func markdown(_ report: Report) -> String {
        let metrics = recipe.evaluation.metrics
        let a = report.learned.fusion.mean, b = report.fixed.fusion.mean
        func f(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "-" }
        var lines = ["# FuseKit demo: TDFusion vs fixed fusion-loss weights", ""]
        lines.append("Synthetic scenes (\(recipe.name) recipe), \(recipe.training.epochs) epochs each; training took "
                     + report.seconds.keys.sorted().map { String(format: "%@ %.0f s", $0, report.seconds[$0]!) }.joined(separator: ", ") + ".")
        lines.append("")
        lines.append("## Fusion metrics on the held-out scenes (mean)")
        lines.append("")
        lines.append("| run | " + metrics.map(\.rawValue).joined(separator: " | ") + " |")
        lines.append("|---|" + metrics.map { _ in "---:" }.joined(separator: "|") + "|")
        lines.append("| TDFusion (learned w) | " + metrics.map { f(a[$0]) }.joined(separator: " | ") + " |")
        lines.append("| fixed w = 1/2 | " + metrics.map { f(b[$0]) }.joined(separator: " | ") + " |")
        lines.append("")
        lines.append("## Task: \(recipe.task.model.plugin) on the fused images")
        lines.append("")
        let name = report.learned.task?.headlineName ?? "metric"
        lines.append("| run | \(name) % |")
        lines.append("|---|---:|")
        lines.append("| TDFusion (learned w) | \(f(report.learned.task?.headline)) |")
        lines.append("| fixed w = 1/2 | \(f(report.fixed.task?.headline)) |")
        lines.append("")
        let w = report.weights
        lines.append("## Where the learned loss puts its weight")
        lines.append("")
        lines.append("Mean w_a (the infrared source's weight; w_b = 1 - w_a) on \(w.nightScenes) night and \(w.dayScenes) day held-out scenes:")
        lines.append("")
        lines.append("| scenes | inside warm objects | elsewhere |")
        lines.append("|---|---:|---:|")
        lines.append("| night | \(f(w.nightInside)) | \(f(w.nightOutside)) |")
        lines.append("| day | \(f(w.dayInside)) | \(f(w.dayOutside)) |")
        lines.append("")
        if w.nightInside.isFinite && w.nightOutside.isFinite {
            let favours = w.nightInside > w.nightOutside
            lines.append(favours
                ? String(format: "At night the learned loss gives the infrared source more weight on warm objects (%.3f) than elsewhere (%.3f), the behaviour TDFusion aims for.", w.nightInside, w.nightOutside)
                : String(format: "At night the learned loss does NOT favour the infrared source on warm objects (%.3f inside vs %.3f elsewhere) in this short run.", w.nightInside, w.nightOutside))
        }
        lines.append("")
        lines.append("Images: `images/` (sources, both fusions, the w_a heat map and both segmentations per scene); training runs with logs, checkpoints, per-epoch previews and loss curves: `tdfusion/`, `fixed-weights/`.")
        return lines.joined(separator: "\n") + "\n"
    }
}
