import Foundation
import FuseKitImage

/// A training run mirrored into TensorBoard event files in the run directory's `tensorboard/`
/// folder (`fusekit train --tensorboard`; `tensorboard --logdir runs/` shows every run):
///
/// | TensorBoard | content | step |
/// |---|---|---|
/// | scalars `PHASE/L_f`, `PHASE/L_t_inner`, `PHASE/L_t_outer` | the losses of each step (`meta`, `fusion`, `joint`, `pretraining`) | global step |
/// | scalars `PHASE/loss/TERM` | each loss term and group (`group:NAME`) of joint and pretraining steps | global step |
/// | scalar `meta/hypergradient_norm` | ‖∇θ_G‖ of each meta step | global step |
/// | scalars `lr/ROLE`, `lr/eta` | the learning rates, and the inner step size of a meta step | global step |
/// | scalars `task_weight/GROUP` | the weight each loss group got | global step |
/// | images `preview/PAIR/fused`, `preview/PAIR/w_a` | the per-epoch previews | global step at the epoch's end |
/// | text `recipe` | the recipe | 0 |
///
/// In a recipe of several stages, tags start with the stage's name (`pretrain/joint/L_f`). A
/// resumed run writes a new file that tells TensorBoard to drop what earlier files logged after
/// the checkpoint (the steps it runs again), as ``RunDirectory``'s log does.
final class TrainingTensorBoard {
    let writer: TensorBoardWriter

    /// Starts an event file; a new run logs the recipe, a resumed one (after `completedSteps`)
    /// purges the steps it runs again.
    init(directory: RunDirectory, recipeText: String, resumingAfter completedSteps: Int?) throws {
        writer = try TensorBoardWriter(directory: directory.tensorBoardFolder, purgeFrom: completedSteps.map { $0 + 1 })
        if completedSteps == nil {
            // Indented four spaces: TensorBoard renders text as Markdown, a code block keeps the YAML as it is.
            let block = recipeText.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n")
            try writer.addText("recipe", block, step: 0)
        }
    }

    /// The scalars of one step.
    func log(_ record: StepRecord) throws {
        try writer.addScalars(Self.scalars(of: record), step: record.globalStep)
    }

    /// One preview image.
    func logPreview(_ image: Image, pair: String, kind: String, stage: String?, step: Int) throws {
        try writer.addImage((stage.map { $0 + "/" } ?? "") + "preview/\(pair)/\(kind)", image, step: step)
    }

    /// The tags and values of a step's scalars, in a fixed order.
    static func scalars(of record: StepRecord) -> [(tag: String, value: Double)] {
        let prefix = (record.stage.map { $0 + "/" } ?? "") + record.phase.rawValue + "/"
        var scalars: [(tag: String, value: Double)] = []
        func add(_ tag: String, _ value: Double?) { if let value { scalars.append((tag, value)) } }
        add(prefix + "L_f", record.fusionLoss)
        add(prefix + "L_t_inner", record.innerTaskLoss)
        add(prefix + "L_t_outer", record.outerTaskLoss)
        add(prefix + "hypergradient_norm", record.hypergradientNorm)
        for (term, value) in (record.losses ?? [:]).sorted(by: { $0.key < $1.key }) { add(prefix + "loss/" + term, value) }
        let stagePrefix = record.stage.map { $0 + "/" } ?? ""
        for (role, rate) in record.learningRates.sorted(by: { $0.key < $1.key }) { add(stagePrefix + "lr/" + role, rate) }
        for (group, weight) in (record.taskWeights ?? [:]).sorted(by: { $0.key < $1.key }) { add(stagePrefix + "task_weight/" + group, weight) }
        return scalars
    }
}
