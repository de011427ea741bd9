import Foundation
import FuseKit
import FuseKitPlugins
import Testing
import MAFS

/// The shipped MAFS recipes parse and validate (models built, every stage's terms given what
/// they read), and the synthetic one trains.
@Suite(.serialized) struct MAFSRecipeTests {
    static let recipes = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("recipes")

    static func text(_ name: String) throws -> String {
        try String(contentsOf: recipes.appendingPathComponent(name), encoding: .utf8)
    }

    @Test(arguments: ["mafs-synthetic.yaml", "mafs-fmb.yaml", "mafs-msrs.yaml"])
    func recipeParsesAndValidates(_ name: String) throws {
        let recipe = try Recipe.parse(try Self.text(name), file: name)
        let models = try TrainingSetup.makeModels(recipe: recipe, registry: StandardPlugins.registry())
        let mafs = try #require(models[ModelRole("mafs")] as? MAFSNetwork)
        #expect(recipe.stages.map(\.strategy) == [.joint, .maskedPretraining, .joint])
        #expect(recipe.stages.last!.weighting == TaskWeighting(method: .dynamicWeightAverage(temperature: 500), alphaFair: 0.8))
        #expect(mafs.configuration.irHead == .inn)
        if name != "mafs-synthetic.yaml" {
            #expect(mafs.configuration.resnetLayers == [3, 8, 36, 3])
            var stageTwo = mafs.configuration
            stageTwo.irHead = .none
            let secondHead = MAFSNetwork(stageTwo).namedSpecs().filter { $0.name.hasPrefix("fuse_decoder.") && !$0.spec.isBuffer }
                .reduce(0) { $0 + $1.spec.shape.reduce(1, *) }
            #expect(mafs.parameterCount == MAFSNetwork(stageTwo).parameterCount + secondHead)
            if name == "mafs-fmb.yaml" { #expect(MAFSNetwork(stageTwo).parameterCount == 129_187_828) }
            let optimizer = recipe.model(ModelRole("mafs"))!.optimization.optimizer
            #expect(optimizer.kind == .sgd && optimizer.learningRate == 1e-3 && optimizer.momentum == 0.9 && optimizer.weightDecay == 5e-4)
            let kd = recipe.stages.last!.losses.first { $0.term == "distillation" }!
            #expect(kd.parameters.values["temperature"] == .double(4))
        }
    }
}
