import Foundation
import FuseKitMetrics
import FuseKitTensor

/// Mean and sample standard deviation (n − 1) of a set of values.
public struct SampleSummary: Sendable, Equatable {
    public var count: Int
    public var mean: Double
    /// Nil with fewer than two values.
    public var standardDeviation: Double?

    public init(_ values: [Double]) {
        count = values.count
        mean = values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count)
        if values.count >= 2 {
            let m = mean
            standardDeviation = (values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(values.count - 1)).squareRoot()
        }
    }
}

/// The tests `fusekit compare` states its differences with.
public enum ComparisonStatistics {
    /// A paired two-sided Student t-test of the differences `a[i] − b[i]` (the runs paired by seed).
    public struct PairedTTest: Sendable, Equatable {
        public var meanDifference: Double
        public var t: Double
        public var degreesOfFreedom: Int
        public var p: Double
    }

    /// Nil with fewer than two pairs; when every difference is the same, t is infinite (p = 0)
    /// unless they are all zero (p = 1).
    public static func pairedTTest(_ a: [Double], _ b: [Double]) -> PairedTTest? {
        precondition(a.count == b.count, "pairedTTest: \(a.count) against \(b.count) values")
        guard a.count >= 2 else { return nil }
        let d = zip(a, b).map { $0 - $1 }
        let summary = SampleSummary(d)
        let df = d.count - 1
        guard let sd = summary.standardDeviation, sd > 0 else {
            return summary.mean == 0 ? PairedTTest(meanDifference: 0, t: 0, degreesOfFreedom: df, p: 1)
                : PairedTTest(meanDifference: summary.mean, t: summary.mean > 0 ? .infinity : -.infinity, degreesOfFreedom: df, p: 0)
        }
        let t = summary.mean / (sd / Double(d.count).squareRoot())
        return PairedTTest(meanDifference: summary.mean, t: t, degreesOfFreedom: df, p: twoSidedTProbability(t, degreesOfFreedom: df))
    }

    /// P(|T| ≥ |t|) for Student's t with `degreesOfFreedom`: I_{ν/(ν+t²)}(ν/2, 1/2).
    public static func twoSidedTProbability(_ t: Double, degreesOfFreedom nu: Int) -> Double {
        guard t.isFinite else { return 0 }
        let v = Double(nu)
        return regularizedIncompleteBeta(v / (v + t * t), a: v / 2, b: 0.5)
    }

    /// I_x(a, b), by the continued fraction of Lentz's method (converges for x < (a+1)/(a+b+2),
    /// else through the symmetry I_x(a, b) = 1 − I_{1−x}(b, a)).
    public static func regularizedIncompleteBeta(_ x: Double, a: Double, b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        if x > (a + 1) / (a + b + 2) { return 1 - regularizedIncompleteBeta(1 - x, a: b, b: a) }
        let logGammas: Double = lgamma(a + b) - lgamma(a) - lgamma(b)
        let logFront: Double = logGammas + a * Foundation.log(x) + b * Foundation.log(1 - x)
        let tiny = 1e-300
        var c = 1.0, d = 1 - (a + b) * x / (a + 1)
        if Swift.abs(d) < tiny { d = tiny }
        d = 1 / d
        var fraction = d
        for m in 1...300 {
            let m = Double(m)
            let even: Double = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
            let odd: Double = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
            for numerator in [even, odd] {
                d = 1 + numerator * d
                if Swift.abs(d) < tiny { d = tiny }
                c = 1 + numerator / c
                if Swift.abs(c) < tiny { c = tiny }
                d = 1 / d
                fraction *= d * c
            }
            if Swift.abs(d * c - 1) < 1e-15 { break }
        }
        return exp(logFront) * fraction / a
    }

    /// A paired bootstrap of a difference of scores: resamples the seeds (the same seeds for both
    /// methods) and the test images (the same images for both), recomputes the score difference
    /// of each resample, and reports the percentile interval and a two-sided p-value.
    public struct Bootstrap: Sendable, Equatable {
        public var difference: Double
        public var lower: Double
        public var upper: Double
        public var p: Double
        public var resamples: Int
        /// Whether images were resampled too (per-image scores exist), not only seeds.
        public var overImages: Bool
    }

    /// The scores of one run that a bootstrap resamples.
    public enum RunSample: Sendable {
        /// One value per image; the score is their mean (fusion metrics).
        case perImage([Double])
        /// One confusion matrix per image; the score is the mIoU (in percent) of their sum.
        case confusions([ConfusionMatrix])
        /// A single value per run: only seeds are resampled (detection mAP).
        case whole(Double)

        var imageCount: Int? {
            switch self {
            case .perImage(let v): v.count
            case .confusions(let c): c.count
            case .whole: nil
            }
        }

        func score(images: [Int]?) -> Double {
            switch self {
            case .perImage(let values):
                guard let images else { return values.reduce(0, +) / Double(values.count) }
                return images.reduce(0) { $0 + values[$1] } / Double(images.count)
            case .confusions(let matrices):
                guard var sum = matrices.first.map({ ConfusionMatrix(classCount: $0.classCount, ignoreIndex: $0.ignoreIndex) }) else { return .nan }
                for i in images ?? Array(matrices.indices) { sum.merge(matrices[i]) }
                return sum.report().meanIoU.map { $0 * 100 } ?? .nan
            case .whole(let value):
                return value
            }
        }
    }

    /// The bootstrap of `a − b` over paired runs (`a[i]` and `b[i]` share seed i) with `resamples`
    /// draws from a fixed seed (so a report is reproducible).
    public static func pairedBootstrap(_ a: [RunSample], _ b: [RunSample], resamples: Int = 2000, seed: UInt64 = 1) -> Bootstrap? {
        precondition(a.count == b.count, "pairedBootstrap: \(a.count) against \(b.count) runs")
        guard !a.isEmpty else { return nil }
        let imageCounts = Set((a + b).map(\.imageCount))
        let images = imageCounts.count == 1 ? imageCounts.first! : nil
        func difference(seeds: [Int], images: [Int]?) -> Double {
            seeds.reduce(0) { $0 + a[$1].score(images: images) - b[$1].score(images: images) } / Double(seeds.count)
        }
        let observed = difference(seeds: Array(a.indices), images: nil)
        var rng = RandomGenerator(seed: seed)
        var draws: [Double] = []
        draws.reserveCapacity(resamples)
        for _ in 0..<resamples {
            let seeds = a.indices.map { _ in rng.nextInt(below: a.count) }
            let picked = images.map { n in (0..<n).map { _ in rng.nextInt(below: n) } }
            let value = difference(seeds: seeds, images: picked)
            if value.isFinite { draws.append(value) }
        }
        guard !draws.isEmpty else { return nil }
        draws.sort()
        func quantile(_ q: Double) -> Double { draws[Swift.min(draws.count - 1, Swift.max(0, Int((q * Double(draws.count - 1)).rounded())))] }
        let below = Double(draws.filter { $0 <= 0 }.count) / Double(draws.count)
        let above = Double(draws.filter { $0 >= 0 }.count) / Double(draws.count)
        return Bootstrap(difference: observed, lower: quantile(0.025), upper: quantile(0.975), p: Swift.min(1, 2 * Swift.min(below, above)),
                         resamples: draws.count, overImages: images != nil)
    }
}
