import Foundation
import FuseKitMetrics
import FuseKitTensor

/// The report of a comparison: per method the mean ± standard deviation over its runs of every
/// fusion metric and task score, per-class task scores, and for each pair of methods which
/// differences exceed the seed-to-seed noise. Written as Markdown, CSV, JSON and HTML, with bar
/// charts and the picture grid (``write(to:)``).
public struct ComparisonReport: Sendable {
    public var outcome: Comparison.Outcome
    /// Methods in the order given.
    public var methods: [String]
    /// The fusion metrics every method was scored on, in FuseKit's order.
    public var metrics: [String]
    /// What the runs ran on (CPU, BLAS kernel, threads).
    public var machine: String
    /// Every pair of methods (in the order given) on every tested score; computed once, since the
    /// bootstraps resample thousands of times and every format reports them.
    public private(set) var pairTests: [PairTest] = []
    /// The significance level of the verdicts.
    public static let alpha = 0.05

    public init(outcome: Comparison.Outcome, machine: String = ComparisonReport.describeMachine()) {
        self.outcome = outcome
        var methods: [String] = []
        for s in outcome.scores where !methods.contains(s.method) { methods.append(s.method) }
        self.methods = methods
        var common: Set<String>?
        for run in outcome.scores { common = common.map { $0.intersection(run.fusion.keys) } ?? Set(run.fusion.keys) }
        metrics = FusionMetric.allCases.map(\.rawValue).filter { common?.contains($0) ?? false }
        self.machine = machine
        pairTests = testPairs()
    }

    /// The runs of a method, in seed order.
    public func runs(of method: String) -> [RunScores] { outcome.scores.filter { $0.method == method } }

    /// The task of the comparison (every method has the same kind), if any.
    public var task: RunScores.TaskScores? { outcome.scores.first?.task }

    /// A score of each run of `method`: a fusion metric's mean over the images, or a task score.
    public func values(_ method: String, _ score: String) -> [Double] {
        runs(of: method).compactMap { $0.fusion[score] != nil ? $0.fusionMean(score) : $0.task?.scores[score] }
    }

    /// Mean ± standard deviation of a score over a method's runs.
    public func summary(_ method: String, _ score: String) -> SampleSummary { SampleSummary(values(method, score)) }

    /// Per class, the mean ± standard deviation of a method's task score (IoU or AP50).
    public func classSummaries(_ method: String) -> [SampleSummary] {
        let runs = runs(of: method).compactMap(\.task)
        let classes = runs.map(\.classes).max() ?? 0
        return (0..<classes).map { c in SampleSummary(runs.compactMap { c < $0.classScores.count ? $0.classScores[c] : nil }) }
    }

    /// The scores the pairwise tests cover: every fusion metric and the task's headline.
    public var testedScores: [String] { metrics + (task.map { [$0.headlineName] } ?? []) }

    /// The comparison of two methods on one score.
    public struct PairTest: Sendable {
        public var first: String
        public var second: String
        public var score: String
        /// Runs paired by seed order.
        public var pairedRuns: Int
        public var tTest: ComparisonStatistics.PairedTTest?
        public var bootstrap: ComparisonStatistics.Bootstrap?

        /// Whether the difference exceeds the seed-to-seed noise: the paired t-test over seeds
        /// rejects "no difference" at ``ComparisonReport/alpha``.
        public var exceedsSeedNoise: Bool { (tTest?.p).map { $0 < ComparisonReport.alpha } ?? false }
    }

    func testPairs() -> [PairTest] {
        var tests: [PairTest] = []
        for i in methods.indices {
            for j in methods.indices where j > i {
                let (a, b) = (runs(of: methods[i]), runs(of: methods[j]))
                let n = Swift.min(a.count, b.count)
                for score in testedScores {
                    let va = Array(values(methods[i], score).prefix(n)), vb = Array(values(methods[j], score).prefix(n))
                    guard va.count == n, vb.count == n, n > 0 else { continue }
                    let samples = { (runs: [RunScores]) in runs.prefix(n).map { Self.sample($0, score) } }
                    tests.append(PairTest(first: methods[i], second: methods[j], score: score, pairedRuns: n,
                                          tTest: ComparisonStatistics.pairedTTest(va, vb),
                                          bootstrap: ComparisonStatistics.pairedBootstrap(samples(a), samples(b))))
                }
            }
        }
        return tests
    }

    /// What the bootstrap resamples of a run for a score: per-image values or confusion matrices.
    static func sample(_ run: RunScores, _ score: String) -> ComparisonStatistics.RunSample {
        if let values = run.fusion[score] { return .perImage(values) }
        if score == "mIoU", let matrices = run.task?.confusionMatrices, !matrices.isEmpty { return .confusions(matrices) }
        return .whole(run.task?.scores[score] ?? .nan)
    }

    /// CPU model, core count, BLAS kernel and FuseKit's threads.
    public static func describeMachine() -> String {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" } ?? "unknown CPU"
        let cpu = CPUFeatures.current
        return "\(model) (\(cpu.vendor) family \(cpu.family) model \(cpu.model)), \(ProcessInfo.processInfo.activeProcessorCount) cores, OpenBLAS kernel \(BLASKernel.coreName), \(Parallel.threadCount) FuseKit threads"
    }

    // MARK: Text

    static func number(_ value: Double) -> String {
        guard value.isFinite else { return "n/a" }
        return String(format: Swift.abs(value) >= 100 ? "%.1f" : "%.2f", value)
    }

    static func cell(_ s: SampleSummary) -> String {
        guard s.count > 0, s.mean.isFinite else { return "n/a" }
        return s.standardDeviation.map { "\(number(s.mean)) ± \(number($0))" } ?? number(s.mean)
    }

    /// For each column, the ranks of the methods' means: 0 for the best, 1 for the second (higher is better).
    func ranks(_ score: String) -> [String: Int] {
        let ordered = methods.map { ($0, summary($0, score).mean) }.filter { $0.1.isFinite }.sorted { $0.1 > $1.1 }
        return Dictionary(uniqueKeysWithValues: ordered.prefix(2).enumerated().map { ($1.0, $0) })
    }

    /// One sentence on a pair test.
    static func verdict(_ t: PairTest) -> String {
        guard let test = t.tTest else { return "not tested (\(t.pairedRuns) paired run\(t.pairedRuns == 1 ? "" : "s"); the t-test needs 2)" }
        let p = test.p < 0.001 ? "p < 0.001" : String(format: "p = %.3f", test.p)
        let statistic = test.t.isFinite ? String(format: "t(%d) = %.2f", test.degreesOfFreedom, test.t) : "t(\(test.degreesOfFreedom)) = ±∞ (every seed differs by the same amount)"
        return "\(statistic), \(p): " + (t.exceedsSeedNoise ? "exceeds the seed-to-seed noise" : "within the seed-to-seed noise")
    }

    static func interval(_ b: ComparisonStatistics.Bootstrap?) -> String {
        guard let b else { return "n/a" }
        return "[\(number(b.lower)), \(number(b.upper))]"
    }

    /// What the tests are, in words.
    public var testDescription: String {
        "Each pair of methods is compared on runs paired by seed (each method's run with seed k against the other's with seed k; "
            + "every method sees the same training and test scenes). The verdict is a two-sided paired t-test over the seeds' scores at α = \(Self.alpha): a difference "
            + "exceeds the seed-to-seed noise when the t-test rejects \"no difference\". The interval is a 95% paired bootstrap "
            + "(2000 resamples of the seeds and, for the fusion metrics and mIoU, of the test images, the same draws for both methods); "
            + "it also reflects the test images' variability, which the t-test does not."
    }

    /// The Markdown report.
    public var markdown: String {
        var lines = ["# FuseKit comparison", ""]
        let runCounts = methods.map { "\($0) (\(runs(of: $0).count) run\(runs(of: $0).count == 1 ? "" : "s"))" }
        lines.append("Methods: \(runCounts.joined(separator: ", ")). Every run is scored on the same test split: \(outcome.testSplit), \(outcome.testPairs) pairs. "
                     + "Figures are the mean ± standard deviation over the runs. Machine: \(machine).")
        lines.append("")
        lines.append("## Fusion metrics (laid out as the TDFusion paper's Table 1; **best**, _second_)")
        lines.append("")
        lines.append(contentsOf: markdownTable(header: ["Method"] + metrics.map { "\($0) ↑" }, scores: metrics))
        if let task {
            lines.append("")
            lines.append("## Task: \(task.kind) (laid out as Table 2, in %)")
            lines.append("")
            lines.append(contentsOf: markdownTable(header: ["Method"] + task.tableColumns, scores: task.tableColumns))
            lines.append("")
            lines.append("## Per-class \(task.classScoreName) (%)")
            lines.append("")
            let names = (0..<task.classes).map { $0 < outcome.classNames.count ? outcome.classNames[$0] : "class \($0)" }
            lines.append("| Method | " + names.joined(separator: " | ") + " |")
            lines.append("|---|" + names.map { _ in "---:" }.joined(separator: "|") + "|")
            for m in methods { lines.append("| \(m) | " + classSummaries(m).map(Self.cell).joined(separator: " | ") + " |") }
        }
        lines.append("")
        lines.append("## Which differences exceed the seed-to-seed noise")
        lines.append("")
        lines.append(testDescription)
        lines.append("")
        if let headline = task?.headlineName {
            for t in pairTests where t.score == headline {
                lines.append("- **\(t.first) vs \(t.second)**, \(headline): \(Self.signed(t.tTest?.meanDifference ?? t.bootstrap?.difference ?? .nan)) points; " + Self.verdict(t) + ".")
            }
            lines.append("")
        }
        lines.append("| Pair | Score | Δ (first − second) | 95% bootstrap interval | Paired t-test over seeds |")
        lines.append("|---|---|---:|---|---|")
        for t in pairTests {
            lines.append("| \(t.first) vs \(t.second) | \(t.score) | \(Self.signed(t.bootstrap?.difference ?? .nan)) | \(Self.interval(t.bootstrap)) | \(Self.verdict(t)) |")
        }
        lines.append("")
        lines.append("## Pictures")
        lines.append("")
        lines.append("![The same test pairs fused by every method](pictures/grid.png)")
        lines.append("")
        lines.append("Charts: " + chartFiles.map { "[\($0.score)](\($0.path))" }.joined(separator: ", ") + ". Runs: `runs/METHOD/seed-S/` (logs, checkpoints, previews, fused test images). Tables as CSV: `table.csv`, `runs.csv`; everything as JSON: `report.json`; this report as HTML: `report.html`.")
        return lines.joined(separator: "\n") + "\n"
    }

    static func signed(_ v: Double) -> String { v.isFinite ? (v >= 0 ? "+" : "") + number(v) : "n/a" }

    func markdownTable(header: [String], scores: [String]) -> [String] {
        var lines = ["| " + header.joined(separator: " | ") + " |", "|---|" + scores.map { _ in "---:" }.joined(separator: "|") + "|"]
        let rank = Dictionary(uniqueKeysWithValues: scores.map { ($0, ranks($0)) })
        for m in methods {
            let cells = scores.map { score -> String in
                let text = Self.cell(summary(m, score))
                switch rank[score]?[m] {
                case 0: return "**\(text)**"
                case 1: return "_\(text)_"
                default: return text
                }
            }
            lines.append("| \(m) | " + cells.joined(separator: " | ") + " |")
        }
        return lines
    }

    // MARK: CSV and JSON

    /// Tables 1 and 2 side by side, one line per method: each fusion metric, then the task's
    /// Table-2 scores, each as a mean and an sd column, and the number of runs.
    public var tableCSV: String {
        let scores = metrics + (task?.tableColumns ?? [])
        var lines = [(["method"] + scores.flatMap { [$0, "\($0)_sd"] } + ["runs"]).map(ReportFormat.csvField).joined(separator: ",")]
        for m in methods {
            let cells = scores.flatMap { score -> [String] in
                let s = summary(m, score)
                return [ReportFormat.csvNumber(s.mean), s.standardDeviation.map(ReportFormat.csvNumber) ?? ""]
            }
            lines.append(([ReportFormat.csvField(m)] + cells + [String(runs(of: m).count)]).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `method,run,seed,score,value`: one line per run and score.
    public var runsCSV: String {
        var lines = ["method,run,seed,score,value"]
        for r in outcome.scores {
            let scores = metrics.map { ($0, r.fusionMean($0) ?? .nan) } + (r.task?.scores.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } ?? [])
            for (score, value) in scores {
                lines.append([ReportFormat.csvField(r.method), r.run, r.seed.map(String.init) ?? "", ReportFormat.csvField(score), ReportFormat.csvNumber(value)].joined(separator: ","))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Everything as one JSON object.
    public var json: String {
        typealias J = ReportFormat.JSON
        func summaryJSON(_ s: SampleSummary) -> String { J.object([("mean", J.number(s.mean)), ("sd", J.number(s.standardDeviation)), ("runs", "\(s.count)")]) }
        let methodObjects = methods.map { m -> (String, String) in
            var members = [("fusion", J.object(metrics.map { ($0, summaryJSON(summary(m, $0))) }))]
            if let task {
                members.append(("task", J.object(task.scores.keys.sorted().map { ($0, summaryJSON(summary(m, $0))) })))
                members.append(("per_class_\(task.classScoreName)", J.array(classSummaries(m).map(summaryJSON))))
            }
            members.append(("runs", J.array(runs(of: m).map { r in
                J.object([("run", J.string(r.run)), ("seed", r.seed.map { "\($0)" } ?? "null"), ("seconds", J.number(r.seconds)),
                          ("fusion", J.object(metrics.map { ($0, J.number(r.fusionMean($0))) })),
                          ("task", r.task.map { t in J.object(t.scores.keys.sorted().map { ($0, J.number(t.scores[$0])) }) } ?? "null")])
            })))
            return (m, J.object(members))
        }
        let tests = pairTests.map { t in
            J.object([("first", J.string(t.first)), ("second", J.string(t.second)), ("score", J.string(t.score)), ("paired_runs", "\(t.pairedRuns)"),
                      ("difference", J.number(t.bootstrap?.difference)), ("bootstrap_95", J.array([J.number(t.bootstrap?.lower), J.number(t.bootstrap?.upper)])),
                      ("bootstrap_p", J.number(t.bootstrap?.p)), ("bootstrap_over_images", t.bootstrap.map { "\($0.overImages)" } ?? "null"),
                      ("t", J.number(t.tTest?.t)), ("degrees_of_freedom", t.tTest.map { "\($0.degreesOfFreedom)" } ?? "null"), ("t_test_p", J.number(t.tTest?.p)),
                      ("exceeds_seed_noise", "\(t.exceedsSeedNoise)")])
        }
        return J.object([("test_split", J.string(outcome.testSplit)), ("test_pairs", "\(outcome.testPairs)"), ("machine", J.string(machine)),
                         ("class_names", J.array(outcome.classNames.map(J.string))), ("methods", J.object(methodObjects)),
                         ("tests", J.object([("description", J.string(testDescription)), ("alpha", J.number(Self.alpha)), ("pairs", J.array(tests))]))]) + "\n"
    }

    // MARK: Files

    /// The bar charts: each fusion metric and each task score, relative to the report folder.
    public var chartFiles: [(score: String, path: String)] {
        (metrics + (task?.tableColumns ?? [])).map { ($0, "charts/\($0).png") }
    }

    /// Writes report.md, report.html, report.json, table.csv, runs.csv, charts/ and pictures/grid.png into `folder`.
    public func write(to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("charts"), withIntermediateDirectories: true)
        for chart in chartFiles {
            let bars = methods.map { BarChart.Bar(label: $0, values: values($0, chart.score)) }
            let unit = metrics.contains(chart.score) ? "" : " (%)"
            try BarChart.render(title: "\(chart.score)\(unit): mean, sd and each run", bars: bars).write(to: folder.appendingPathComponent(chart.path))
        }
        try outcome.pictures.render().write(to: outcome.pictures.folder.appendingPathComponent("grid.png"))
        for (name, text) in [("report.md", markdown), ("report.html", html), ("report.json", json), ("table.csv", tableCSV), ("runs.csv", runsCSV)] {
            try text.write(to: folder.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
    }
}
