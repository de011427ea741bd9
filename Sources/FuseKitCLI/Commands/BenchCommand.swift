import ArgumentParser
import Foundation
import FuseKit

/// `fusekit bench`: times the benchmark workloads (median of several runs after a warm-up).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time FuseKit's benchmark workloads (median of N runs after one warm-up).",
        discussion: "Workloads: \(BenchCommand.catalogue.map(\.name).joined(separator: ", ")). Without --workload, the model workloads run; '--workload kernels' runs the kernel micro-benchmarks, '--workload scaling' F's forward pass at 240x320 and 960x1280.")

    static var catalogue: [BenchWorkload] { ModelWorkloads.all + ModelWorkloads.scaling + [ModelWorkloads.segformerMetaStep] + KernelWorkloads.all }

    @Flag(help: "Print one JSON object {workload: seconds, ..., peak_rss_mib: MiB} on stdout.")
    var json = false

    @Option(name: .customLong("workload"), help: "A workload to run (repeatable), or 'kernels' for all kernel workloads.")
    var workloads: [String] = []

    @Option(help: "Timed runs per workload (default: 5, or 3 for the meta step, 10 for kernels).")
    var runs: Int?

    @Flag(help: "Also print the time share of each operation kind.")
    var profile = false

    func validate() throws {
        let names = Set(Self.catalogue.map(\.name) + ["kernels", "scaling"])
        for w in workloads where !names.contains(w) {
            let hint = closestMatch(to: w, in: Array(names)).map { " (did you mean '\($0)'?)" } ?? ""
            throw ValidationError("unknown workload '\(w)'\(hint); available: \(names.sorted().joined(separator: ", "))")
        }
        if let runs, runs < 1 { throw ValidationError("--runs must be at least 1") }
    }

    func run() throws {
        var selected: [BenchWorkload] = []
        if workloads.isEmpty {
            selected = ModelWorkloads.all
        } else {
            for name in workloads {
                if name == "kernels" { selected += KernelWorkloads.all }
                else if name == "scaling" { selected += ModelWorkloads.scaling }
                else { selected += Self.catalogue.filter { $0.name == name } }
            }
        }
        var results: [BenchResult] = []
        for workload in selected {
            if !json { FileHandle.standardError.write(Data("running \(workload.name): \(workload.summary)\n".utf8)) }
            if profile { Profiler.start() }
            let result = BenchHarness.run(workload, runs: runs)
            results.append(result)
            if profile {
                let entries = Profiler.stop()
                printProfile(entries, runs: result.seconds.count + 1, to: json ? .standardError : .standardOutput)
            }
            if !json {
                print(String(format: "%-22@ median %8.4f s  (min %.4f, max %.4f, %d runs)  %@", workload.name as NSString,
                             result.median, result.seconds.min()!, result.seconds.max()!, result.seconds.count, result.rate as NSString))
            }
        }
        let peak = BenchHarness.peakResidentMiB()
        if json {
            var object: [String: Double] = [:]
            for r in results { object[r.workload.name] = r.median }
            object["peak_rss_mib"] = peak
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(String(format: "peak RSS %.0f MiB", peak))
        }
    }

    enum Stream { case standardOutput, standardError }

    func printProfile(_ entries: [String: Profiler.Entry], runs: Int, to stream: Stream) {
        let total = entries.values.reduce(0) { $0 + $1.seconds }
        var lines = ["  op kind                       share     s/run   calls/run  GFLOP/s"]
        for (op, e) in entries.sorted(by: { $0.value.seconds > $1.value.seconds }) {
            let gflops = e.flops > 0 ? String(format: "%8.1f", e.flops / e.seconds / 1e9) : "       -"
            lines.append(String(format: "  %-28@ %5.1f%%  %8.4f  %9.1f  %@", op as NSString, 100 * e.seconds / max(total, 1e-12),
                                e.seconds / Double(runs), Double(e.calls) / Double(runs), gflops as NSString))
        }
        let text = lines.joined(separator: "\n") + "\n"
        switch stream {
        case .standardOutput: print(text, terminator: "")
        case .standardError: FileHandle.standardError.write(Data(text.utf8))
        }
    }
}
