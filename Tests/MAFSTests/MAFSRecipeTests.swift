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
            // Stage I's two heads (De_rec for each source) are FusionDecoders of their own.
            let decoder = MAFSNetwork(stageTwo).namedSpecs().filter { $0.name.hasPrefix("fuse_decoder.") && !$0.spec.isBuffer }
                .reduce(0) { $0 + $1.spec.shape.reduce(1, *) }
            #expect(mafs.configuration.visibleHead == .own)
            #expect(mafs.parameterCount == MAFSNetwork(stageTwo).parameterCount + 2 * decoder)
            if name == "mafs-fmb.yaml" { #expect(MAFSNetwork(stageTwo).parameterCount == 129_187_828) }
            let optimizer = recipe.model(ModelRole("mafs"))!.optimization.optimizer
            #expect(optimizer.kind == .sgd && optimizer.learningRate == 1e-3 && optimizer.momentum == 0.9 && optimizer.weightDecay == 5e-4)
            let kd = recipe.stages.last!.losses.first { $0.term == "distillation" }!
            #expect(kd.parameters.values["temperature"]?.description == "4")
        }
    }
}

/// The learning check on synthetic scenes: recipes/mafs-synthetic.yaml (teacher, stage I, stage II)
/// against the same recipe without stage I (stage II from scratch, the same teacher).
///
/// What holds at this size (16 scenes of 64x64, 32 stage-I and 64 stage-II steps) and is asserted:
/// stage I lowers the masked-reconstruction loss; stage II lowers both task groups in both runs;
/// stage II starts from the stage-I encoder (its first losses differ from the scratch run's).
/// What does NOT hold here: stage II after stage I does not beat stage II from scratch (measured:
/// last-epoch fusion group 0.750 vs 0.591, task group 9.000 vs 8.843, held-out mIoU 8.98% vs 9.17%,
/// both near chance); the comparison is printed, not asserted.
@Suite(.serialized) struct MAFSLearningTests {
    static func run(_ text: String, _ name: String) throws -> (log: [StepRecord], mIoU: Double) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fusekit-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let trainer = try Trainer(setup: try TrainingSetup.make(recipe: try Recipe.parse(text, file: name), registry: StandardPlugins.registry()),
                                  runDirectory: dir)
        let result = try #require(try trainer.run(recipeText: text))
        return (RunDirectory(dir).readLog(), try #require(result.task?.segmentation?.meanIoU))
    }

    static func mean(_ records: ArraySlice<StepRecord>, _ key: String) -> Double {
        records.map { $0.losses?[key] ?? .nan }.reduce(0, +) / Double(records.count)
    }

    @Test func stageTwoAfterStageOneAgainstScratch() throws {
        let text = try MAFSRecipeTests.text("mafs-synthetic.yaml")
        let cut = text.range(of: "  - name: stage-1")!.lowerBound..<text.range(of: "  - name: stage-2")!.lowerBound
        var scratchText = text
        scratchText.removeSubrange(cut)
        let pretrained = try Self.run(text, "mafs-pretrained"), scratch = try Self.run(scratchText, "mafs-scratch")
        let stageOne = pretrained.log.filter { $0.stage == "stage-1" }
        #expect(stageOne.count == 32)
        let epoch = 8
        #expect(Self.mean(stageOne.suffix(epoch), "group:reconstruction") < Self.mean(stageOne.prefix(epoch), "group:reconstruction"))
        var summary: [String] = []
        for (name, run) in [("after stage I", pretrained), ("from scratch", scratch)] {
            let stageTwo = run.log.filter { $0.stage == "stage-2" }
            #expect(stageTwo.count == 64)
            for group in ["group:fusion", "group:task"] {
                #expect(Self.mean(stageTwo.suffix(epoch), group) < Self.mean(stageTwo.prefix(epoch), group), "\(name) \(group)")
            }
            summary.append("\(name): last-epoch fusion \(Self.mean(stageTwo.suffix(epoch), "group:fusion")), task \(Self.mean(stageTwo.suffix(epoch), "group:task")), mIoU \(run.mIoU)")
        }
        let first = { (run: (log: [StepRecord], mIoU: Double)) in run.log.first { $0.stage == "stage-2" }!.losses!["group:fusion"]! }
        #expect(first(pretrained) != first(scratch))
        print("MAFS learning check: " + summary.joined(separator: "; "))
    }
}
