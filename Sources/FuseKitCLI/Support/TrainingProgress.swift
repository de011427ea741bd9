import Foundation
import FuseKit

/// Shows training on a progress bar (a terminal) or as periodic plain lines (logs, CI).
final class TrainingProgress: TrainingObserver {
    private var bar: ProgressBar?
    private let label: String
    private let epochs: Int
    private var lastRecord: StepRecord?

    init(label: String, epochs: Int) {
        self.label = label
        self.epochs = epochs
    }

    func trainingWillStart(totalSteps: Int, completedSteps: Int) {
        bar = ProgressBar(total: totalSteps, label: label, unit: "step")
        bar?.update(completed: completedSteps, status: "starting")
    }

    func stepDidFinish(_ r: StepRecord) {
        lastRecord = r
        var status = (r.stage.map { "\($0) " } ?? "") + "epoch \(r.epoch + 1) \(r.phase.rawValue)"
        if let lf = r.fusionLoss { status += " L_f \(Self.short(lf))" }
        if let lt = r.outerTaskLoss ?? r.innerTaskLoss { status += " L_t \(Self.short(lt))" }
        if let g = r.hypergradientNorm { status += " |∇G| \(String(format: "%.1e", g))" }
        if r.phase == .pretraining, let l = r.losses?["group:reconstruction"] { status += " L_rec \(Self.short(l))" }
        if let w = r.taskWeights, w.values.contains(where: { $0 != 1 }) {
            status += " λ " + w.keys.sorted().map { "\($0) \(String(format: "%.3f", w[$0]!))" }.joined(separator: " ")
        }
        bar?.update(completed: r.globalStep, status: status)
    }

    func epochDidFinish(_ s: EpochSummary) {
        var line = "epoch \(s.epoch + 1): mean L_f \(Self.short(s.meanFusionLoss)), mean L_t \(Self.short(s.meanTaskLoss))"
        if let m = s.taskMetric { line += String(format: ", task metric %.2f%%", m) }
        if s.isBest { line += " (best so far)" }
        bar?.log(line)
    }

    func note(_ message: String) {
        if let bar { bar.log(message) } else { FileHandle.standardError.write(Data((message + "\n").utf8)) }
    }

    func finish() { bar?.finish() }

    static func short(_ v: Double) -> String { String(format: Swift.abs(v) < 0.01 ? "%.2e" : "%.4f", v) }
}
