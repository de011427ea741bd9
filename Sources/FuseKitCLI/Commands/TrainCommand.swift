import ArgumentParser
import Foundation
import FuseKit
import FuseKitTensor

/// `fusekit train RECIPE`: trains a recipe's models.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the models of a recipe (TDFusion's meta-learning and the other strategies).",
        discussion: """
        The run directory gets the resolved recipe, log.jsonl (one line per step), checkpoints/ (last and best), \
        previews/ (fused images and w_a heat maps per epoch, loss curves), fused/ test images and metrics.json/metrics.md. \
        Started by an MPI launcher (mpirun -np N fusekit train RECIPE, or srun), the N processes train data-parallel: the \
        recipe's batch-size is the global batch, each rank trains on its share, and rank 0 writes the run directory.
        """)

    @Argument(help: "The recipe (YAML), e.g. recipes/tdfusion-msrs-segformer.yaml.")
    var recipe: String

    @Option(help: "Dataset root, overriding the recipe's data.root.")
    var data: String?

    @Option(help: "Run directory (default: runs/<recipe name>).")
    var out: String?

    @Flag(help: "Continue from the run directory's last checkpoint.")
    var resume = false

    @Flag(help: "Also write TensorBoard event files (losses, learning rates, hypergradient norm, task weights, previews, the recipe) to RUN/tensorboard; view them with 'tensorboard --logdir runs/'.")
    var tensorboard = false

    @Option(name: .customLong("stop-after"), help: "Stop after this many steps (writing a checkpoint to resume from).")
    var stopAfter: Int?

    func validate() throws {
        if let stopAfter, stopAfter < 1 { throw ValidationError("--stop-after must be at least 1") }
    }

    func run() throws {
        let url = URL(fileURLWithPath: recipe)
        let parsed = try Recipe.load(from: url)
        let text = try String(contentsOf: url, encoding: .utf8)
        let setup = try TrainingSetup.make(recipe: parsed, registry: CommandContext.registry, dataRoot: data)
        let directory = URL(fileURLWithPath: out ?? "runs/\(parsed.name)")
        let ranks = CommandContext.ranks
        // Rank 0 alone shows progress and results.
        let progress = ranks.isRoot ? TrainingProgress(label: parsed.name, epochs: parsed.totalEpochs) : nil
        if ranks.isRoot && ranks.size > 1 {
            print("data-parallel training over \(ranks.size) ranks, \(parsed.data.batchSize / ranks.size) pairs each per batch of \(parsed.data.batchSize), "
                  + "\(Parallel.threadCount) threads per rank, BatchNorm statistics \(parsed.distributed.batchNorm.rawValue)")
        }
        let trainer = try Trainer(setup: setup, runDirectory: directory, observer: progress ?? SilentTrainingObserver(),
                                  tensorBoard: tensorboard, ranks: ranks)
        let result = try trainer.run(resume: resume, recipeText: text, stopAfter: stopAfter)
        progress?.finish()
        guard ranks.isRoot else { return }
        guard let result else {
            print("stopped after \(stopAfter ?? 0) steps; continue with: fusekit train \(recipe) --out \(directory.path) --resume")
            return
        }
        print(MetricsTable.markdown(fusion: result.fusion, task: result.task), terminator: "")
        print("run directory: \(directory.path)")
    }
}
