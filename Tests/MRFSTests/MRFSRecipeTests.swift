import Foundation
import FuseKit
import FuseKitPlugins
import MRFS
import Testing

/// The MRFS recipes: the official settings of the dataset recipes, and the synthetic one learns.
@Suite struct MRFSRecipeTests {
    static let recipes = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("recipes")

    static func load(_ name: String) throws -> (recipe: Recipe, setup: [ModelRole: any Module]) {
        let recipe = try Recipe.load(from: recipes.appendingPathComponent(name))
        return (recipe, try TrainingSetup.makeModels(recipe: recipe, registry: StandardPlugins.registry()))
    }

    @Test(arguments: ["mrfs-synthetic.yaml", "mrfs-msrs.yaml", "mrfs-fmb.yaml", "tdfusion-mrfs-synthetic.yaml"])
    func recipeParsesAndBuilds(_ name: String) throws {
        let (recipe, models) = try Self.load(name)
        #expect(!models.isEmpty)
        if name.hasPrefix("mrfs-") {
            let stage = try #require(recipe.stages.first)
            #expect(recipe.stages.count == 1 && stage.strategy == .joint && recipe.data.visible == .rgb)
            #expect(models[ModelRole("joint")] is MRFS)
        }
    }

    /// Crops smaller than MRFS's spatial reductions allow are a recipe error naming the file, the
    /// line and both sizes (they stopped training with a fatal error), for the joint model and the
    /// fusion branch alike.
    @Test(arguments: [("mrfs-synthetic.yaml", "  crop: [48, 48]", "model 'joint' (mrfs)"),
                      ("tdfusion-mrfs-synthetic.yaml", "  crop: [48, 48]", "model 'fusion' (mrfs-fusion)")])
    func cropsTooSmallForTheNetworkAreARecipeError(_ name: String, _ crop: String, _ model: String) throws {
        let text = try String(contentsOf: Self.recipes.appendingPathComponent(name), encoding: .utf8)
        #expect(text.contains(crop))
        let small = text.replacingOccurrences(of: crop, with: "  crop: [24, 28]")
        #expect {
            try TrainingSetup.make(recipe: try Recipe.parse(small, file: "small.yaml"), registry: StandardPlugins.registry())
        } throws: { error in
            let message = "\(error)"
            return message.hasPrefix("small.yaml:") && message.contains("\(model) needs images of at least 29x29 pixels, but data.crop is 24x28")
        }
    }

    /// The official settings (MFNet/ and FMB/ train.py, config.py, loss_utils.py).
    @Test(arguments: [("mrfs-msrs.yaml", 9, 0.5, 1.7, 0.2, 181), ("mrfs-fmb.yaml", 15, 0.8, 1.0, 1.0, 204)])
    func datasetRecipesHaveTheOfficialSettings(_ name: String, _ classes: Int, _ gamma: Double, _ contrast: Double,
                                               _ gradientWeight: Double, _ stepsPerEpoch: Int) throws {
        let (recipe, models) = try Self.load(name)
        let net = try #require(models[ModelRole("joint")] as? MRFS)
        #expect(net.parameterCount == (classes == 9 ? 134_963_348 : 134_963_348 + 6 * 513))
        #expect(net.configuration.batchNormEps == 0.01 && net.configuration.batchNormMomentum == 0.01)
        let stage = try #require(recipe.stages.first)
        let joint = try #require(recipe.model(ModelRole("joint")))
        let optimizer = joint.optimization.optimizer
        #expect(optimizer.kind == .adamw && optimizer.learningRate == 6e-5 && optimizer.weightDecay == 0.01)
        #expect(optimizer.beta1 == 0.9 && optimizer.beta2 == 0.999)
        // WarmUpPolyLR(power 0.9) with nepochs = warm_up_epoch = 5000: the warm-up spans the run.
        let total = 5000 * stepsPerEpoch
        #expect(joint.optimization.schedule == LearningRateSchedule(.poly(power: 0.9, total: total, minimum: 0),
                                                                     warmup: .init(steps: total, startFactor: 0)))
        #expect(stage.scheduleUnit == .step && stage.epochs == 5000)
        #expect(recipe.data.batchSize == 6 && recipe.data.crop?.width == 640 && recipe.data.crop?.height == 480)
        #expect(recipe.data.flips && !recipe.data.rotations && !recipe.data.modalitySwap)
        #expect(recipe.data.scales == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75])
        #expect(stage.visibleGamma == gamma && stage.infraredContrast == contrast)
        // L = 1 L_seg + 0.1 (0.5 L_int + w_g L_grad + 1 L_col).
        let weights = Dictionary(uniqueKeysWithValues: stage.losses.map { ($0.term, $0.weight) })
        let official = ["cross-entropy": 1, "intensity-max": 0.1 * 0.5, "sobel-max": 0.1 * gradientWeight, "color": 0.1 * 1]
        #expect(Set(weights.keys) == Set(official.keys))
        for (term, weight) in official { #expect(abs((weights[term] ?? .nan) - weight) < 1e-12, "\(term): \(weights[term] ?? .nan)") }
        #expect(stage.weighting == TaskWeighting())
        // No weight decay on biases and norm weights (group_weight): exactly the 1-D parameters.
        let oneDimensional = Set(net.namedSpecs().filter { !$0.spec.isBuffer && $0.spec.shape.count == 1 }.map(\.name))
        #expect(net.parametersWithoutDecay == oneDimensional)
        #expect(oneDimensional.allSatisfy { $0.hasSuffix(".bias") || $0.contains("norm") || $0.hasSuffix(".1.weight") })
    }

    /// The share of the majority class among the labelled test pixels, over the classes present
    /// (a segmenter predicting that class everywhere has this mIoU).
    static func majorityBaseline(_ setup: TrainingSetup) throws -> Double {
        var counts: [Int32: Int] = [:]
        for i in 0..<setup.testSource.count {
            for v in try setup.testSource.sample(at: i, includeColor: false).segmentation!.values where v != 255 { counts[v, default: 0] += 1 }
        }
        let total = counts.values.reduce(0, +), top = counts.values.max()!
        return Double(top) / Double(total) / Double(counts.count)
    }

    @Test func syntheticRecipeLearns() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fusekit-mrfs-synthetic-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = Self.recipes.appendingPathComponent("mrfs-synthetic.yaml")
        let text = try String(contentsOf: url, encoding: .utf8)
        let started = Date()
        let trainer = try Trainer(setup: try TrainingSetup.make(recipe: try Recipe.parse(text, file: url.path), registry: StandardPlugins.registry()),
                                  runDirectory: directory)
        let result = try #require(try trainer.run(recipeText: text))
        let mIoU = try #require(result.task?.segmentation?.meanIoU)
        let baseline = try Self.majorityBaseline(trainer.setup)
        print("mrfs-synthetic: held-out mIoU \(String(format: "%.1f", 100 * mIoU))% vs majority class \(String(format: "%.1f", 100 * baseline))% "
              + "(\(trainer.totalSteps) steps, \(String(format: "%.0f", Date().timeIntervalSince(started))) s)")
        // The margin: at least twice the majority-class mIoU.
        #expect(mIoU >= 2 * baseline, "mIoU \(mIoU) vs majority \(baseline)")
        let log = RunDirectory(directory).readLog()
        #expect(log.count == trainer.totalSteps)
        #expect(log.allSatisfy { $0.losses?["color"] != nil && $0.losses?["sobel-max"] != nil && $0.losses?["cross-entropy"] != nil })
    }

    /// TDFusion's meta-learned loss with MRFS's fusion branch as F: the short run completes, with
    /// exact hypergradients through the dual-stream backbone at every meta step.
    @Test func tdfusionWithTheMRFSFusionBranchTrains() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fusekit-tdfusion-mrfs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = Self.recipes.appendingPathComponent("tdfusion-mrfs-synthetic.yaml")
        let text = try String(contentsOf: url, encoding: .utf8)
        let setup = try TrainingSetup.make(recipe: try Recipe.parse(text, file: url.path), registry: StandardPlugins.registry())
        #expect(setup.models[.fusion] is MRFSFusion)
        let trainer = try Trainer(setup: setup, runDirectory: directory)
        _ = try #require(try trainer.run(recipeText: text))
        let log = RunDirectory(directory).readLog()
        #expect(log.count == trainer.totalSteps)
        let meta = log.filter { $0.phase == .meta }
        #expect(meta.count == 4 && meta.allSatisfy { ($0.hypergradientNorm ?? .nan).isFinite && $0.hypergradientNorm! > 0 })
    }
}
