import Foundation
import FuseKit
import RestormerFusion
import SegFormerTask
import Testing
import YOLOTask

/// Recipes: the shipped ones are valid, and mistakes are reported with file, line and key.
@Suite struct RecipeTests {
    static let recipes = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("recipes")

    static func registry() -> PluginRegistry {
        var registry = PluginRegistry()
        RestormerFusionPlugin.register(in: &registry)
        SegFormerTaskPlugin.register(in: &registry)
        YOLOTaskPlugin.register(in: &registry)
        return registry
    }

    static func build(_ recipe: Recipe) throws {
        let registry = registry()
        _ = try registry.makeFusion(recipe.fusion.plugin, recipe.fusion.parameters)
        _ = try registry.makeLossGenerator(recipe.lossGenerator.plugin, recipe.lossGenerator.parameters)
        _ = try registry.makeTask(recipe.task.model.plugin, recipe.task.model.parameters)
    }

    static func text(_ name: String) throws -> String {
        try String(contentsOf: recipes.appendingPathComponent(name), encoding: .utf8)
    }

    @Test(arguments: ["demo.yaml", "tdfusion-msrs-segformer.yaml", "tdfusion-fmb-segformer.yaml",
                      "tdfusion-m3fd-yolov8.yaml", "tdfusion-llvip-yolov8.yaml"])
    func shippedRecipesAreValid(_ name: String) throws {
        let recipe = try Recipe.load(from: Self.recipes.appendingPathComponent(name))
        try Self.build(recipe)
        if name != "demo.yaml" {
            // The official settings.
            #expect(recipe.training.epochs == 40 && recipe.training.metaSteps == 200)
            #expect(recipe.fusion.optimizer.kind == .adam && recipe.fusion.optimizer.learningRate == 1e-4)
            #expect(recipe.lossGenerator.optimizer.kind == .normalizedSGD)
            #expect(recipe.data.batchSize == 2 && recipe.data.crop?.width == 256 && recipe.data.modalitySwap)
            #expect(recipe.training.innerLearningRate == nil && recipe.training.hypergradient == .exact)
            #expect(recipe.fusion.schedule == LearningRateSchedule(.step(size: 10, gamma: 0.1)))
        }
    }

    @Test func swappingTheTaskNetIsOneLine() throws {
        let original = try Self.text("tdfusion-msrs-segformer.yaml")
        let line = original.split(separator: "\n", omittingEmptySubsequences: false).first { $0.contains("plugin: segformer") }!
        let swapped = original.replacingOccurrences(of: String(line), with: "  plugin: tiny-conv-seg")
        let recipe = try Recipe.parse(swapped, file: "swapped.yaml")
        try Self.build(recipe)
        #expect(recipe.task.model.plugin == "tiny-conv-seg")
        #expect(try Self.registry().makeTask("tiny-conv-seg", recipe.task.model.parameters).kind == .segmentation(classes: 9))
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

    @Test func mistakesNameTheFileLineAndKey() {
        #expect(Self.error(Self.base) == "no error")
        #expect(Self.error(Self.base + "training:\n  epochs: 2\n  meta-step: 3\n")
                == "bad.yaml:11: unknown key 'meta-step' in 'training'; did you mean 'meta-steps'? (allowed: epochs, meta-steps, inner-learning-rate, hypergradient, phases, fusion-task-weight, schedule-unit, fusion-steps-per-epoch, checkpoint-every, log-every, preview-pairs)")
        #expect(Self.error(Self.base + "training:\n  epochs: ten\n") == "bad.yaml:10: 'training.epochs' must be an integer, got 'ten'")
        #expect(Self.error(Self.base.replacingOccurrences(of: "plugin: restormer-fusion", with: "plugin: restormer-fuson"))
                .hasPrefix("unknown fusion plugin 'restormer-fuson'; did you mean 'restormer-fusion'?"))
        #expect(Self.error(Self.base.replacingOccurrences(of: "{ classes: 6 }", with: "{ clases: 6 }"))
                == "tiny-conv-seg: unknown parameter 'clases' (line 8); did you mean 'classes'?")
        #expect(Self.error(Self.base.replacingOccurrences(of: "{ classes: 6 }", with: "{ classes: six }"))
                == "tiny-conv-seg: parameter 'classes' (line 8) must be an integer, got string six")
        #expect(Self.error(Self.base + "hypergradient: exact\n").hasPrefix("bad.yaml:9: unknown key 'hypergradient'"))
        #expect(Self.error(Self.base + "training:\n  hypergradient: exakt\n")
                == "bad.yaml:10: 'training.hypergradient' must be one of exact, finite-difference, got 'exakt'; did you mean 'exact'?")
        #expect(Self.error("name: t\nfusion:\n  plugin: restormer-fusion\n") == "bad.yaml:1: missing required key 'data'")
        #expect(Self.error("name: t\ndata: [1, 2\n").hasPrefix("bad.yaml:3: malformed YAML"))
        #expect(Self.error(Self.base + "evaluation:\n  metrics: [EN, XYZ]\n").hasPrefix("bad.yaml:10: unknown metric 'XYZ'"))
    }

    @Test func missingRecipeFileIsNamed() {
        #expect(throws: RecipeError.self) { _ = try Recipe.load(from: URL(fileURLWithPath: "/nonexistent/recipe.yaml")) }
        let message = (try? Recipe.load(from: URL(fileURLWithPath: "/nonexistent/recipe.yaml"))).map { _ in "" }
            ?? { do { _ = try Recipe.load(from: URL(fileURLWithPath: "/nonexistent/recipe.yaml")); return "" } catch { return "\(error)" } }()
        #expect(message.hasPrefix("/nonexistent/recipe.yaml: cannot read the recipe"))
    }
}
