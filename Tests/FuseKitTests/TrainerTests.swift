import Foundation
import FuseKit
import RestormerFusion
import Testing

/// The meta-trainer on tiny synthetic runs: artefacts, exact resumption, NaN handling.
@Suite struct TrainerTests {
    static func registry() -> PluginRegistry {
        var registry = PluginRegistry()
        RestormerFusionPlugin.register(in: &registry)
        registry.registerTask("test-seg", summary: "smooth tiny segmenter (tests)", configuration: TestSegmenterConfiguration.self) {
            SmoothTinySegmenter(classes: $0.classes)
        }
        return registry
    }

    static func recipeText(epochs: Int = 2, fusionOptimizer: String = "{ kind: adam, learning-rate: 0.001 }",
                           extraTraining: String = "") -> String {
        """
        name: tiny
        seed: 3
        data:
          synthetic: { train-count: 6, test-count: 3, width: 32, height: 32, seed: 5 }
          batch-size: 1
          crop: [24, 24]
        fusion:
          plugin: restormer-fusion
          parameters: { dim: 4, blocks: 1, heads: 2 }
          optimizer: \(fusionOptimizer)
        loss-generator:
          plugin: restormer-lpn
          parameters: { dim: 4, blocks: 1, heads: 2 }
          optimizer: { kind: normalized-sgd, learning-rate: 0.001 }
        task:
          plugin: test-seg
          parameters: { classes: 6 }
          input-size: [16, 16]
          optimizer: { kind: adam, learning-rate: 0.001 }
        training:
          epochs: \(epochs)
          meta-steps: 2
          checkpoint-every: 4
          preview-pairs: 1\(extraTraining)
        evaluation:
          metrics: [EN, SF, Qabf]

        """
    }

    static func scratch(_ name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("fusekit-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func trainer(_ text: String, _ directory: URL) throws -> Trainer {
        let recipe = try Recipe.parse(text, file: "tiny.yaml")
        return try Trainer(setup: try TrainingSetup.make(recipe: recipe, registry: registry()), runDirectory: directory)
    }

    static func logLines(_ directory: URL) throws -> [String] {
        try String(contentsOf: directory.appendingPathComponent("log.jsonl"), encoding: .utf8).split(separator: "\n").map { line in
            // Compare everything but the wall time.
            String(line).replacingOccurrences(of: #""seconds":[0-9.e-]+,?"#, with: "", options: .regularExpression)
        }
    }

    @Test func runWritesEveryArtefact() throws {
        let dir = try Self.scratch("artefacts")
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = Self.recipeText()
        let trainer = try Self.trainer(text, dir)
        #expect(trainer.totalSteps == 2 * (2 + 6))
        let result = try #require(try trainer.run(recipeText: text))
        let fm = FileManager.default
        for path in ["recipe.yaml", "log.jsonl", "checkpoints/last.safetensors", "metrics.json", "metrics.md",
                     "previews/loss-curves.png", "previews/epoch-001", "previews/epoch-002"] {
            #expect(fm.fileExists(atPath: dir.appendingPathComponent(path).path), "missing \(path)")
        }
        let epochPreviews = try fm.contentsOfDirectory(atPath: dir.appendingPathComponent("previews/epoch-002").path)
        #expect(epochPreviews.contains { $0.hasSuffix("-fused.png") } && epochPreviews.contains { $0.hasSuffix("-w_a.png") })
        #expect(try fm.contentsOfDirectory(atPath: dir.appendingPathComponent("fused").path).count == 3)
        let predictions = try fm.contentsOfDirectory(atPath: dir.appendingPathComponent("predictions").path)
        #expect(predictions.count == 3 && predictions.allSatisfy { $0.hasSuffix(".png") })
        let lines = try Self.logLines(dir)
        #expect(lines.count == 16)
        #expect(lines.filter { $0.contains("\"phase\":\"meta\"") }.count == 4)
        #expect(lines[0].contains("\"L_t_outer\"") && lines[0].contains("\"hypergradient_norm\""))
        #expect(result.fusion.images.count == 3 && result.fusion.mean[.en] != nil)
        #expect(result.task?.segmentation != nil)
        let checkpoint = try Checkpoint.load(from: dir.appendingPathComponent("checkpoints/last.safetensors"))
        #expect(Set(checkpoint.models.keys) == ["fusion", "loss-generator", "task"])
        #expect(checkpoint.epoch == 2 && checkpoint.step == 16)
        #expect(checkpoint.metadata["recipe"] == text)
    }

    @Test func resumingAfterAnInterruptionGivesIdenticalLosses() throws {
        let straight = try Self.scratch("straight"), interrupted = try Self.scratch("interrupted")
        defer {
            try? FileManager.default.removeItem(at: straight)
            try? FileManager.default.removeItem(at: interrupted)
        }
        let text = Self.recipeText()
        _ = try Self.trainer(text, straight).run(recipeText: text)
        // Stop inside the first epoch's fusion phase, then again inside the second epoch's meta phase.
        #expect(try Self.trainer(text, interrupted).run(recipeText: text, stopAfter: 5) == nil)
        #expect(try Self.trainer(text, interrupted).run(resume: true, recipeText: text, stopAfter: 9) == nil)
        _ = try Self.trainer(text, interrupted).run(resume: true, recipeText: text)
        #expect(try Self.logLines(interrupted) == Self.logLines(straight))
        let a = try Checkpoint.load(from: straight.appendingPathComponent("checkpoints/last.safetensors"))
        let b = try Checkpoint.load(from: interrupted.appendingPathComponent("checkpoints/last.safetensors"))
        #expect(a.models["fusion"]!.parameters.mapValues(\.scalars) == b.models["fusion"]!.parameters.mapValues(\.scalars))
        #expect(a.models["loss-generator"]!.parameters.mapValues(\.scalars) == b.models["loss-generator"]!.parameters.mapValues(\.scalars))
    }

    @Test func resumeRefusesADifferentRecipeOrNoCheckpoint() throws {
        let dir = try Self.scratch("mismatch")
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = Self.recipeText()
        #expect(throws: TrainingError.nothingToResume(directory: dir.path)) { _ = try Self.trainer(text, dir).run(resume: true, recipeText: text) }
        _ = try Self.trainer(text, dir).run(recipeText: text, stopAfter: 2)
        let other = Self.recipeText(epochs: 3)
        #expect(throws: TrainingError.recipeMismatch(directory: dir.path)) { _ = try Self.trainer(other, dir).run(resume: true, recipeText: other) }
    }

    @Test func nonFiniteLossStopsTrainingAndKeepsTheLastCheckpoint() throws {
        let dir = try Self.scratch("nan")
        defer { try? FileManager.default.removeItem(at: dir) }
        // A step so large that F's parameters overflow once the fusion phase starts.
        let text = Self.recipeText(fusionOptimizer: "{ kind: sgd, learning-rate: 1.0e+38 }",
                                   extraTraining: "\n  checkpoint-every: 1\n  inner-learning-rate: 0.001")
            .replacingOccurrences(of: "  checkpoint-every: 4\n", with: "")
        let error = #expect(throws: TrainingError.self) { _ = try Self.trainer(text, dir).run(recipeText: text) }
        guard case .nonFinite(let quantity, let phase, _, _, let kept)? = error else {
            Issue.record("expected a non-finite error, got \(String(describing: error))")
            return
        }
        #expect(quantity.contains("loss"))
        #expect([.meta, .fusion].contains(phase))
        let message = error!.description
        #expect(message.contains("not finite in the \(phase.rawValue) phase") && message.contains("last good checkpoint"))
        let checkpoint = try Checkpoint.load(from: URL(fileURLWithPath: try #require(kept)))
        #expect(checkpoint.models["fusion"]!.parameters.values.allSatisfy { $0.scalars.allSatisfy(\.isFinite) })
    }

    @Test func fixedWeightsAblationTrainsWithoutALossGenerator() throws {
        let dir = try Self.scratch("fixed")
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = Self.recipeText(epochs: 1) + "fusion-loss:\n  weights: fixed\n"
        let trainer = try Self.trainer(text, dir)
        #expect(trainer.setup.recipe.stages[0].trained.map(\.role) == [.fusion, .task])
        #expect(trainer.totalSteps == 6)
        _ = try trainer.run(recipeText: text)
        let checkpoint = try Checkpoint.load(from: dir.appendingPathComponent("checkpoints/last.safetensors"))
        #expect(Set(checkpoint.models.keys) == ["fusion", "task"])
    }
}
