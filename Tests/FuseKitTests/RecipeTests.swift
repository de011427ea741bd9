import Foundation
import FuseKit
import FuseKitPlugins
import RestormerFusion
import SegFormerTask
import Testing
import YOLOTask

/// Recipes: the shipped ones are valid, and mistakes are reported with file, line and key.
@Suite struct RecipeTests {
    static let recipes = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("recipes")

    /// Every plugin FuseKit ships (the shipped recipes use any of them).
    static func registry() -> PluginRegistry { StandardPlugins.registry() }

    static func build(_ recipe: Recipe) throws {
        _ = try TrainingSetup.makeModels(recipe: recipe, registry: registry())
    }

    static func text(_ name: String) throws -> String {
        try String(contentsOf: recipes.appendingPathComponent(name), encoding: .utf8)
    }

    /// Every recipe in `recipes/` and its folders (as `demo/tdfusion.yaml`) is valid.
    static var shipped: [String] {
        (FileManager.default.subpaths(atPath: recipes.path) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
    }

    /// The demo's recipes (`fusekit demo`) form one comparison: the same test split, the same task.
    @Test func demoRecipesAreComparable() throws {
        let folder = Self.recipes.appendingPathComponent("demo")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files == ["fixed-weights.yaml", "mafs.yaml", "mrfs.yaml", "tdfusion.yaml"])
        let methods = try files.map { try ComparisonMethod.load(folder.appendingPathComponent($0)) }
        let comparison = try Comparison(methods: methods, seedCount: 3, output: FileManager.default.temporaryDirectory, registry: Self.registry())
        let setups = try comparison.checkedSetups()
        #expect(setups.allSatisfy { $0.testSource.count >= 32 }, "the demo scores every method on at least 32 test scenes")
    }

    @Test(arguments: shipped)
    func shippedRecipesAreValid(_ name: String) throws {
        let recipe = try Recipe.load(from: Self.recipes.appendingPathComponent(name))
        try Self.build(recipe)
        if name.hasPrefix("tdfusion-") && !name.hasSuffix("-synthetic.yaml") {
            // The official settings.
            let stage = try #require(recipe.stages.first)
            #expect(recipe.stages.count == 1 && stage.strategy == .meta)
            #expect(stage.epochs == 40 && stage.metaSteps == 200)
            let fusion = try #require(recipe.model(.fusion)).optimization
            #expect(fusion.optimizer.kind == .adam && fusion.optimizer.learningRate == 1e-4)
            #expect(recipe.model(.lossGenerator)?.optimization.optimizer.kind == .normalizedSGD)
            #expect(recipe.data.batchSize == 2 && recipe.data.crop?.width == 256 && recipe.data.modalitySwap)
            #expect(stage.innerLearningRate == nil && stage.hypergradient == .exact)
            #expect(fusion.schedule == LearningRateSchedule(.step(size: 10, gamma: 0.1)))
            #expect(stage.trained.map(\.role) == [.fusion, .lossGenerator, .task])
        }
    }

    @Test func aLearnedLossWithoutALossGeneratorListsTheCandidates() {
        #expect(Self.error(Self.base).hasPrefix("bad.yaml:1: the meta stage 'training' trains no 'loss-generator' model; learned fusion-loss weights need a 'loss-generator' model"))
        #expect(Self.error(Self.base + "fusion-loss:\n  weights: fixed\n") == "no error")
    }

    @Test func swappingTheTaskNetIsOneLine() throws {
        let original = try Self.text("tdfusion-msrs-segformer.yaml")
        let line = original.split(separator: "\n", omittingEmptySubsequences: false).first { $0.contains("plugin: segformer") }!
        let swapped = original.replacingOccurrences(of: String(line), with: "  plugin: tiny-conv-seg")
        let recipe = try Recipe.parse(swapped, file: "swapped.yaml")
        try Self.build(recipe)
        let task = try #require(recipe.model(.task))
        #expect(task.plugin == "tiny-conv-seg")
        #expect(try Self.registry().makeTask("tiny-conv-seg", task.parameters).kind == .segmentation(classes: 9))
    }

    static func error(_ text: String) -> String {
        do {
            let recipe = try Recipe.parse(text, file: "bad.yaml")
            try build(recipe)
            return "no error"
        } catch {
            return String(describing: error)
        }
    }

    static let base = """
    name: t
    data:
      synthetic: { train-count: 4, test-count: 2 }
    fusion:
      plugin: restormer-fusion
    task:
      plugin: tiny-conv-seg
      parameters: { classes: 6 }

    """

    static let withGenerator = base + "loss-generator:\n  plugin: restormer-lpn\n"

    @Test func mistakesNameTheFileLineAndKey() {
        #expect(Self.error(Self.withGenerator) == "no error")
        let base = Self.withGenerator
        #expect(Self.error(base + "training:\n  epochs: 2\n  meta-step: 3\n")
                .hasPrefix("bad.yaml:13: unknown key 'meta-step' in 'training'; did you mean 'meta-steps'? (allowed: name, strategy, epochs,"))
        #expect(Self.error(base + "training:\n  epochs: ten\n") == "bad.yaml:12: 'training.epochs' must be an integer, got 'ten'")
        #expect(Self.error(base.replacingOccurrences(of: "plugin: restormer-fusion", with: "plugin: restormer-fuson"))
                .hasPrefix("bad.yaml:5: model 'fusion': unknown plugin 'restormer-fuson'; did you mean 'restormer-fusion'?"))
        #expect(Self.error(base.replacingOccurrences(of: "{ classes: 6 }", with: "{ clases: 6 }"))
                == "tiny-conv-seg: unknown parameter 'clases' (line 8); did you mean 'classes'?")
        #expect(Self.error(base.replacingOccurrences(of: "{ classes: 6 }", with: "{ classes: six }"))
                == "tiny-conv-seg: parameter 'classes' (line 8) must be an integer, got string six")
        #expect(Self.error(base + "hypergradient: exact\n").hasPrefix("bad.yaml:11: unknown key 'hypergradient'"))
        #expect(Self.error(base + "training:\n  hypergradient: exakt\n")
                == "bad.yaml:12: 'training.hypergradient' must be one of exact, finite-difference, got 'exakt'; did you mean 'exact'?")
        #expect(Self.error("name: t\nfusion:\n  plugin: restormer-fusion\n") == "bad.yaml:1: missing required key 'data'")
        #expect(Self.error("name: t\ndata: [1, 2\n").hasPrefix("bad.yaml:3: malformed YAML"))
        #expect(Self.error(base + "evaluation:\n  metrics: [EN, XYZ]\n").hasPrefix("bad.yaml:12: unknown metric 'XYZ'"))
    }

    @Test func missingRecipeFileIsNamed() {
        #expect(throws: RecipeError.self) { _ = try Recipe.load(from: URL(fileURLWithPath: "/nonexistent/recipe.yaml")) }
        let message = (try? Recipe.load(from: URL(fileURLWithPath: "/nonexistent/recipe.yaml"))).map { _ in "" }
            ?? { do { _ = try Recipe.load(from: URL(fileURLWithPath: "/nonexistent/recipe.yaml")); return "" } catch { return "\(error)" } }()
        #expect(message.hasPrefix("/nonexistent/recipe.yaml: cannot read the recipe"))
    }
}
