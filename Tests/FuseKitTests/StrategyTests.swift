import Foundation
import FuseKit
import FuseKitPlugins
import Testing

/// The training strategies beyond TDFusion's: joint multi-task training, masked pretraining and
/// recipes of several stages.
@Suite struct StrategyTests {
    static let recipes = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("recipes")

    static func scratch(_ name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("fusekit-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func trainer(_ text: String, _ directory: URL, file: String = "test.yaml") throws -> Trainer {
        try Trainer(setup: try TrainingSetup.make(recipe: try Recipe.parse(text, file: file), registry: StandardPlugins.registry()),
                    runDirectory: directory)
    }

    /// The share of the majority class among the labelled test pixels (a trivial segmenter's mIoU
    /// is at most this over the number of classes; its pixel accuracy is this).
    static func majorityBaseline(_ setup: TrainingSetup) throws -> (mIoU: Double, classes: Int) {
        var counts: [Int32: Int] = [:]
        for i in 0..<setup.testSource.count {
            for v in try setup.testSource.sample(at: i, includeColor: false).segmentation!.values where v != 255 { counts[v, default: 0] += 1 }
        }
        let total = counts.values.reduce(0, +), top = counts.values.max()!
        // Predicting the majority class everywhere: IoU of that class = top / total, 0 elsewhere;
        // mIoU over the classes present.
        return (Double(top) / Double(total) / Double(counts.count), counts.count)
    }

    @Test(arguments: ["joint-synthetic.yaml", "two-stage-synthetic.yaml"])
    func shippedSyntheticRecipesLearn(_ name: String) throws {
        let dir = try Self.scratch(name)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = Self.recipes.appendingPathComponent(name)
        let text = try String(contentsOf: url, encoding: .utf8)
        let started = Date()
        let trainer = try Self.trainer(text, dir, file: url.path)
        let result = try #require(try trainer.run(recipeText: text))
        let mIoU = try #require(result.task?.segmentation?.meanIoU)
        let baseline = try Self.majorityBaseline(trainer.setup)
        print("\(name): held-out mIoU \(String(format: "%.1f", 100 * mIoU))% vs majority class \(String(format: "%.1f", 100 * baseline.mIoU))% "
              + "(\(trainer.totalSteps) steps, \(String(format: "%.0f", Date().timeIntervalSince(started))) s)")
        // The trained cascade beats predicting the majority class by at least 2x.
        #expect(mIoU >= 2 * baseline.mIoU, "mIoU \(mIoU) vs majority \(baseline.mIoU)")
        let log = RunDirectory(dir).readLog()
        #expect(log.count == trainer.totalSteps)
        // Task weights are logged every step of the joint stage that trains the fusion net.
        let lastStage = trainer.setup.recipe.stages.count > 1 ? trainer.setup.recipe.stages.last!.name : nil
        #expect(log.filter { $0.phase == .joint && $0.stage == lastStage }.allSatisfy { $0.taskWeights?["fusion"] != nil && $0.taskWeights?["task"] != nil })
        #expect(FileManager.default.fileExists(atPath: RunDirectory(dir).lossCurves.path))
    }

    static let tinyStages = """
    name: tiny-stages
    seed: 4
    data:
      synthetic: { train-count: 4, test-count: 2, width: 32, height: 32, seed: 5 }
      batch-size: 1
      crop: [16, 16]
      modality-swap: false
    models:
      fusion: { plugin: restormer-fusion, parameters: { dim: 4, blocks: 1, heads: 2 }, optimizer: { kind: adam, learning-rate: 0.001 } }
      task: { plugin: tiny-conv-seg, parameters: { classes: 6 } }
      teacher: { plugin: tiny-conv-seg, parameters: { classes: 6 } }
    stages:
      - name: teacher
        strategy: joint
        epochs: 1
        train: [teacher]
        losses: [{ term: cross-entropy }]
        checkpoint-every: 3
        preview-pairs: 1
      - name: pretraining
        strategy: masked-pretraining
        epochs: 1
        train: [fusion]
        masking: { grid: 4 }
        losses: [{ term: masked-l1, weight: 5 }, { term: masked-gradient-l1, weight: 5 }]
        checkpoint-every: 3
        preview-pairs: 1
      - name: joint
        strategy: joint
        epochs: 2
        train: [fusion, task]
        frozen: [teacher]
        losses:
          - { term: intensity-max }
          - { term: cross-entropy }
          - { term: distillation, parameters: { temperature: 4 } }
        weighting: { method: dwa, temperature: 2, alpha-fair: 0.8 }
        checkpoint-every: 3
        preview-pairs: 1
    evaluation:
      metrics: [EN]

    """

    static func logLines(_ directory: URL) throws -> [String] {
        try String(contentsOf: directory.appendingPathComponent("log.jsonl"), encoding: .utf8).split(separator: "\n").map {
            String($0).replacingOccurrences(of: #""seconds":[0-9.e-]+,?"#, with: "", options: .regularExpression)
        }
    }

    /// Per-step schedules start again in every stage: the fusion net's warm-up begins at its
    /// start factor in the pretraining stage and again in the joint stage.
    @Test func perStepSchedulesStartAtEachStage() throws {
        let dir = try Self.scratch("stage-schedules")
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = """
        name: stage-schedules
        seed: 4
        data:
          synthetic: { train-count: 4, test-count: 1, width: 32, height: 32, seed: 5 }
          batch-size: 1
          crop: [16, 16]
          modality-swap: false
        models:
          fusion:
            plugin: restormer-fusion
            parameters: { dim: 4, blocks: 1, heads: 2 }
            optimizer: { kind: adam, learning-rate: 0.001 }
            schedule: { kind: constant, warmup: 4, warmup-start-factor: 0.25 }
        stages:
          - { name: pretraining, strategy: masked-pretraining, epochs: 1, train: [fusion], schedule-unit: step, masking: { grid: 4 },
              losses: [{ term: masked-l1 }], preview-pairs: 0 }
          - { name: joint, strategy: joint, epochs: 1, train: [fusion], schedule-unit: step, losses: [{ term: intensity-max }], preview-pairs: 0 }
        evaluation: { metrics: [EN] }
        """
        _ = try Self.trainer(text, dir).run(recipeText: text)
        let rates = RunDirectory(dir).readLog().map { $0.learningRates["fusion"]! }
        #expect(rates.count == 8)
        let start = Double(Float(0.001) * 0.25)
        #expect(abs(rates[0] - start) < 1e-9 && abs(rates[4] - start) < 1e-9, "\(rates)")
        #expect(rates[3] > rates[0] && rates[7] > rates[4])
    }

    @Test func resumingAcrossStageBoundariesIsExact() throws {
        let straight = try Self.scratch("stages-straight"), interrupted = try Self.scratch("stages-interrupted")
        defer {
            try? FileManager.default.removeItem(at: straight)
            try? FileManager.default.removeItem(at: interrupted)
        }
        let text = Self.tinyStages
        let trainer = try Self.trainer(text, straight)
        #expect(trainer.stepsPerEpoch == [4, 4, 4] && trainer.totalSteps == 16)
        _ = try trainer.run(recipeText: text)
        // Inside the teacher stage, exactly at the teacher/pretraining boundary, inside
        // pretraining, at the start of the joint stage and inside it.
        for stop in [2, 4, 6, 8, 11] {
            #expect(try Self.trainer(text, interrupted).run(resume: stop != 2, recipeText: text, stopAfter: stop) == nil)
        }
        _ = try Self.trainer(text, interrupted).run(resume: true, recipeText: text)
        #expect(try Self.logLines(interrupted) == Self.logLines(straight))
        let a = try Checkpoint.load(from: straight.appendingPathComponent("checkpoints/last.safetensors"))
        let b = try Checkpoint.load(from: interrupted.appendingPathComponent("checkpoints/last.safetensors"))
        #expect(Set(a.models.keys) == ["fusion", "task", "teacher"])
        for role in a.models.keys { #expect(a.models[role]!.parameters.mapValues(\.scalars) == b.models[role]!.parameters.mapValues(\.scalars)) }
        let log = RunDirectory(straight).readLog()
        #expect(log.map(\.stage) == [String?](repeating: "teacher", count: 4) + [String?](repeating: "pretraining", count: 4)
                + [String?](repeating: "joint", count: 8))
        #expect(log.filter { $0.phase == .pretraining }.allSatisfy { $0.losses?["masked-l1"] != nil })
    }

    static func error(_ text: String) -> String {
        do {
            _ = try TrainingSetup.makeModels(recipe: try Recipe.parse(text, file: "bad.yaml"), registry: StandardPlugins.registry())
            return "no error"
        } catch {
            return String(describing: error)
        }
    }

    @Test func badStagesNameTheFileAndLine() {
        #expect(Self.error(Self.tinyStages) == "no error")
        #expect(Self.error(Self.tinyStages.replacingOccurrences(of: "{ term: intensity-max }", with: "{ term: intensity-maxx }"))
                .hasPrefix("bad.yaml:34: stage 'joint': unknown loss term 'intensity-maxx'; did you mean 'intensity-max'?"))
        #expect(Self.error(Self.tinyStages.replacingOccurrences(of: "train: [fusion, task]", with: "train: [fusion, student]"))
                .hasPrefix("bad.yaml:31: 'stages[2].train[1]' names the model 'student', which the recipe does not define"))
        // The teacher frozen in the joint stage without an earlier stage or a weights file.
        let noTeacherStage = Self.tinyStages.replacingOccurrences(of: "train: [teacher]", with: "train: [task]")
        #expect(Self.error(noTeacherStage)
                == "bad.yaml:32: stage 'joint' uses 'teacher' frozen, but no earlier stage trains it and it has no 'weights' file")
        #expect(Self.error(Self.tinyStages.replacingOccurrences(of: "{ term: distillation, parameters: { temperature: 4 } }",
                                                                with: "{ term: distillation, parameters: { temperature: -4 } }"))
                .contains("loss term 'distillation': parameter 'temperature' (line 36): must be positive, got -4.0"))
        #expect(Self.error(Self.tinyStages.replacingOccurrences(of: "losses: [{ term: cross-entropy }]", with: "losses: []"))
                .hasPrefix("bad.yaml:13: the joint stage 'teacher' lists no 'losses'"))
        #expect(Self.error(Self.tinyStages.replacingOccurrences(of: "{ term: intensity-max }", with: "{ term: color }"))
                .contains("the loss term 'color' needs RGB fused images"))
    }
}
