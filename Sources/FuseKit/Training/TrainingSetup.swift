import Foundation
import FuseKitData
import FuseKitNN
import FuseKitTensor

/// The networks and data a recipe names, built and checked before training starts.
public struct TrainingSetup: Sendable {
    public var recipe: Recipe
    public var fusion: any FusionNet
    /// nil when the recipe uses fixed weights (w = 1/2).
    public var lossGenerator: (any LossGenerator)?
    public var task: any TaskNet
    /// Training pairs (with labels).
    public var trainSource: any PairedSampleSource
    /// Test pairs (with labels when the dataset has them).
    public var testSource: any PairedSampleSource
    /// Initial weights read from the recipe's `weights` files, by role.
    public var initialWeights: [String: [String: Tensor]]

    /// Builds the plugins (validating their parameters) and opens the data.
    /// - Parameter dataRoot: overrides `data.root` of a folder recipe (`fusekit train --data`).
    public static func make(recipe: Recipe, registry: PluginRegistry, dataRoot: String? = nil) throws -> TrainingSetup {
        let fusion = try registry.makeFusion(recipe.fusion.plugin, recipe.fusion.parameters)
        let generator = recipe.fusionLoss.weights == .learned
            ? try registry.makeLossGenerator(recipe.lossGenerator.plugin, recipe.lossGenerator.parameters) : nil
        let task = try registry.makeTask(recipe.task.model.plugin, recipe.task.model.parameters)
        var train: any PairedSampleSource
        var test: any PairedSampleSource
        switch recipe.data.source {
        case .synthetic(let s):
            let generatorOfScenes = SyntheticSceneGenerator(width: s.width, height: s.height, nightProbability: s.nightFraction)
            train = generatorOfScenes.samples(count: s.trainCount, seed: s.seed)
            test = generatorOfScenes.samples(count: s.testCount, seed: s.seed &+ 1_000_003)
        case .folder(let root, let layout, let trainSplit, let testSplit):
            let base = URL(fileURLWithPath: dataRoot ?? root)
            let chosen = try layout.map { name -> DatasetLayout in
                guard let l = DatasetLayout(name: name) else { throw RecipeError(file: recipe.file, line: nil, "unknown data layout '\(name)'") }
                return l
            }
            train = try PairedDataset(root: base, layout: chosen, split: trainSplit ?? "train").validatedForTraining()
            let testSet = try PairedDataset(root: base, layout: chosen, split: testSplit ?? "test")
            let (usable, skipped) = testSet.droppingInconsistentPairs()
            for problem in skipped { FileHandle.standardError.write(Data("warning: skipping test pair: \(problem)\n".utf8)) }
            test = usable
        }
        var weights: [String: [String: Tensor]] = [:]
        for (role, settings) in [("fusion", recipe.fusion), ("lossGenerator", recipe.lossGenerator), ("task", recipe.task.model)] {
            if let path = settings.weights { weights[role] = try WeightsFile.read(WeightsReference(path), checkpointModel: role).tensors }
        }
        return TrainingSetup(recipe: recipe, fusion: fusion, lossGenerator: generator, task: task, trainSource: train,
                             testSource: test, initialWeights: weights)
    }

    /// Maps fused images [B, 1, H, W] to the task network's input: bilinear resize to the task
    /// input size, and the gray channel repeated when the task expects colour.
    public var taskInput: @Sendable (Tensor) -> Tensor {
        let size = recipe.task.inputSize
        let channels = task.inputChannels
        return { fused in
            var x = fused
            if let size, size.height != x.shape[2] || size.width != x.shape[3] {
                x = x.resizedBilinear(to: (size.height, size.width))
            }
            if channels > 1 { x = Tensor.concat([Tensor](repeating: x, count: channels), axis: 1) }
            return x
        }
    }
}

/// Names used for the models in checkpoints and logs.
public enum ModelRole {
    public static let fusion = "fusion"
    public static let lossGenerator = "lossGenerator"
    public static let task = "task"
}

extension TrainingBatch {
    /// The network input cat(a, b) [B, 2, H, W].
    public var sources: Tensor { Tensor.concat([infrared, visible], axis: 1) }

    /// The labels as the task networks take them.
    public var targets: TaskTargets { TaskTargets(segmentation: segmentation, boxes: boxes) }
}
