import Foundation
import FuseKit

/// Shows a comparison: a line per run naming the method, the seed, the run's number and the time
/// left for the whole comparison, then the run's own training bar.
final class ComparisonProgress: ComparisonObserver {
    private var training: TrainingProgress?
    private let started = Date()

    func runWillStart(method: String, run: String, number: Int, of total: Int, remaining: Double?) -> TrainingObserver {
        training?.finish()
        let eta = remaining.map { ", about \(ProgressBar.duration($0)) left in all" } ?? ""
        let progress = TrainingProgress(label: "\(method) \(run) [\(number)/\(total)]", epochs: 0)
        training = progress
        note("run \(number)/\(total): \(method), \(run)\(eta)")
        return progress
    }

    func runDidFinish(method: String, run: String, seconds: Double, reused: Bool) {
        training?.finish()
        training = nil
        note(reused ? "\(method) \(run): already finished (scores kept from an earlier run of this comparison)"
             : "\(method) \(run): done in \(ProgressBar.duration(seconds)) (\(ProgressBar.duration(Date().timeIntervalSince(started))) so far)")
    }

    func note(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}
