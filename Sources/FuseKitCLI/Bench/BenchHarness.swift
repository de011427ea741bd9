import FuseKit
#if canImport(Glibc)
import Glibc
#endif

/// One timed workload of `fusekit bench`.
struct BenchWorkload {
    /// Name on the command line and in the JSON output.
    let name: String
    /// What it measures.
    let summary: String
    /// Timed runs when `--runs` is not given.
    let defaultRuns: Int
    /// Floating-point operations of one run (for GFLOP/s), if meaningful.
    let flops: Double?
    /// Bytes moved by one run (for GB/s), if meaningful.
    let bytes: Double?
    /// Builds the inputs (untimed) and returns one run.
    let prepare: () -> () -> Void
}

/// The result of timing a workload.
struct BenchResult {
    let workload: BenchWorkload
    let seconds: [Double]

    var median: Double {
        let s = seconds.sorted()
        return s[s.count / 2]
    }

    var rate: String {
        if let flops = workload.flops { return String(format: "%.1f GFLOP/s", flops / median / 1e9) }
        if let bytes = workload.bytes { return String(format: "%.1f GB/s", bytes / median / 1e9) }
        return ""
    }
}

/// Times workloads: one untimed warm-up run, then the median of `runs` runs.
enum BenchHarness {
    static func run(_ workload: BenchWorkload, runs: Int?) -> BenchResult {
        let body = workload.prepare()
        body()
        var times: [Double] = []
        for _ in 0..<max(1, runs ?? workload.defaultRuns) {
            let t0 = Profiler.now()
            body()
            times.append(Profiler.now() - t0)
        }
        return BenchResult(workload: workload, seconds: times)
    }

    /// Peak resident set size of this process in MiB.
    static func peakResidentMiB() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}
