import Foundation
import FuseKitImage
import FuseKitTensor

/// Fusion metrics exactly as `docs/metrics.md` defines them (the CDDFuse evaluator's
/// conventions, SSIM with data range 255). Images are ``GrayImage`` levels on the 0...255 scale;
/// every metric computes in Double. F is the fused image, A the infrared source, B the visible one.
///
/// Degenerate images (constant, 1 x 1, tiny) give defined values or, through ``evaluate``, a
/// clear error; the evaluator's values on real images are unchanged:
/// - SSIM needs at least 7 x 7 pixels: ``evaluate`` throws
///   ``FusionMetricError/imageTooSmall(metric:width:height:minimum:)`` (skimage raises too;
///   ``structuralSimilarity(_:_:)`` alone returns NaN).
/// - A VIF scale whose window no longer fits adds nothing (the evaluator's scipy would swap or
///   reject the arguments there), and VIF is 1 when no scale has information (the evaluator's
///   NaN rule); from about 50 x 50 pixels every scale takes part, as in the evaluator.
/// - SCD: a correlation with a constant image or difference is 0 (numpy gives NaN).
/// - Qabf: when the sources have no edges at all (the weights sum to 0, where the evaluator
///   divides 0 by 0), the unweighted mean of the preservation values, the limit of the formula
///   as the source edges fade uniformly.
/// - EN, SD, SF, AG and MI are defined for every size (a constant image has 0 for all five).
/// Non-finite samples (NaN, infinities, e.g. from a diverged network) are refused by
/// ``evaluate`` with ``FusionMetricError/nonFinite(image:count:x:y:)``.
public enum FusionMetrics {
    /// Computes the requested metrics of one fused image against its sources.
    ///
    /// - Parameters:
    ///   - metrics: which metrics (all nine by default).
    ///   - convention: ``PairConvention/sum`` (the evaluator's) or ``PairConvention/perPairMean``
    ///     (MI, VIF and SSIM halved).
    /// - Throws: ``FusionMetricError/sizeMismatch(fused:infrared:visible:)`` when sizes differ,
    ///   ``FusionMetricError/nonFinite(image:count:x:y:)`` for NaN or infinite samples,
    ///   ``FusionMetricError/imageTooSmall(metric:width:height:minimum:)`` for SSIM below 7 x 7.
    public static func evaluate(fused: GrayImage, infrared: GrayImage, visible: GrayImage,
                                metrics: [FusionMetric] = FusionMetric.allCases,
                                convention: PairConvention = .sum) throws(FusionMetricError) -> [FusionMetric: Double] {
        guard fused.width == infrared.width, fused.height == infrared.height,
              fused.width == visible.width, fused.height == visible.height else {
            throw .sizeMismatch(fused: "\(fused.width)x\(fused.height)", infrared: "\(infrared.width)x\(infrared.height)",
                                visible: "\(visible.width)x\(visible.height)")
        }
        for (name, image) in [("fused", fused), ("infrared", infrared), ("visible", visible)] {
            let bad = image.values.indices.filter { !image.values[$0].isFinite }
            if let first = bad.first {
                throw .nonFinite(image: name, count: bad.count, x: first % image.width, y: first / image.width)
            }
        }
        if metrics.contains(.ssim), fused.width < SSIM.window || fused.height < SSIM.window {
            throw .imageTooSmall(metric: .ssim, width: fused.width, height: fused.height, minimum: SSIM.window)
        }
        let f = Plane(fused), a = Plane(infrared), b = Plane(visible)
        var results: [FusionMetric: Double] = [:]
        for metric in metrics where results[metric] == nil {
            let value: Double
            switch metric {
            case .en: value = entropy(f)
            case .sd: value = standardDeviation(f)
            case .sf: value = spatialFrequency(f)
            case .ag: value = averageGradient(f)
            case .mi: value = mutualInformation(f, a) + mutualInformation(f, b)
            case .scd: value = correlationOfDifferences(fused: f, a, b)
            case .vif: value = VIF.sumOverSources(fused: f, a, b)
            case .qabf: value = Qabf.compute(fused: f, a, b)
            case .ssim: value = SSIM.sumOverSources(fused: f, a, b)
            }
            results[metric] = (convention == .perPairMean && metric.isSumOverPairs) ? value / 2 : value
        }
        return results
    }

    // MARK: Single metrics (public entry points)

    /// EN: Shannon entropy (bits) of the histogram of the rounded levels.
    public static func entropy(_ image: GrayImage) -> Double { entropy(Plane(image)) }

    /// SD: population standard deviation.
    public static func standardDeviation(_ image: GrayImage) -> Double { standardDeviation(Plane(image)) }

    /// SF: spatial frequency.
    public static func spatialFrequency(_ image: GrayImage) -> Double { spatialFrequency(Plane(image)) }

    /// AG: average gradient (numpy.gradient differences).
    public static func averageGradient(_ image: GrayImage) -> Double { averageGradient(Plane(image)) }

    /// Mutual information (nats) between the rounded levels of two images of equal size.
    public static func mutualInformation(_ first: GrayImage, _ second: GrayImage) -> Double {
        precondition(first.width == second.width && first.height == second.height, "mutualInformation: sizes differ")
        return mutualInformation(Plane(first), Plane(second))
    }

    /// SCD: corr(A, F - B) + corr(B, F - A).
    public static func correlationOfDifferences(fused: GrayImage, infrared: GrayImage, visible: GrayImage) -> Double {
        correlationOfDifferences(fused: Plane(fused), Plane(infrared), Plane(visible))
    }

    /// Pixel-domain multiscale VIF of `distorted` against `reference` (one pair).
    public static func visualInformationFidelity(reference: GrayImage, distorted: GrayImage) -> Double {
        precondition(reference.width == distorted.width && reference.height == distorted.height, "VIF: sizes differ")
        return VIF.pair(reference: Plane(reference), distorted: Plane(distorted))
    }

    /// Q^{AB/F} of a fused image against its two sources.
    public static func qabf(fused: GrayImage, infrared: GrayImage, visible: GrayImage) -> Double {
        Qabf.compute(fused: Plane(fused), Plane(infrared), Plane(visible))
    }

    /// SSIM of two images (scikit-image defaults: 7x7 uniform window, sample covariance,
    /// K1 0.01, K2 0.03, data range 255, mean over the region where the window fits).
    public static func structuralSimilarity(_ first: GrayImage, _ second: GrayImage) -> Double {
        precondition(first.width == second.width && first.height == second.height, "SSIM: sizes differ")
        return SSIM.pair(Plane(first), Plane(second))
    }

    // MARK: Implementations

    static func roundedLevels(_ p: Plane) -> [Int] {
        p.values.map { v in
            let r = v.rounded(.toNearestOrEven)
            return r.isNaN ? 0 : Int(min(max(r, 0), 255))
        }
    }

    static func entropy(_ p: Plane) -> Double {
        var histogram = [Int](repeating: 0, count: 256)
        for level in roundedLevels(p) { histogram[level] += 1 }
        let n = Double(p.count)
        var sum = 0.0
        for count in histogram where count > 0 {
            let probability = Double(count) / n
            sum -= probability * log2(probability)
        }
        return sum
    }

    static func standardDeviation(_ p: Plane) -> Double {
        let n = Double(p.count)
        let mean = p.values.reduce(0, +) / n
        let squares = p.values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        return (squares / n).squareRoot()
    }

    static func spatialFrequency(_ p: Plane) -> Double {
        let (w, h) = (p.width, p.height)
        var horizontal = 0.0, vertical = 0.0
        p.values.withUnsafeBufferPointer { v in
            for y in 0..<h {
                let row = y * w
                for x in 0..<(w - 1) {
                    let d = v[row + x + 1] - v[row + x]
                    horizontal += d * d
                }
                if y + 1 < h {
                    for x in 0..<w {
                        let d = v[row + w + x] - v[row + x]
                        vertical += d * d
                    }
                }
            }
        }
        let horizontalMean = w > 1 ? horizontal / Double(h * (w - 1)) : 0
        let verticalMean = h > 1 ? vertical / Double((h - 1) * w) : 0
        return (horizontalMean + verticalMean).squareRoot()
    }

    static func averageGradient(_ p: Plane) -> Double {
        let (w, h) = (p.width, p.height)
        var sum = 0.0
        p.values.withUnsafeBufferPointer { v in
            for y in 0..<h {
                for x in 0..<w {
                    let i = y * w + x
                    var gx = 0.0, gy = 0.0
                    if w > 1 {
                        if x == 0 { gx = v[i + 1] - v[i] } else if x == w - 1 { gx = v[i] - v[i - 1] } else { gx = (v[i + 1] - v[i - 1]) / 2 }
                    }
                    if h > 1 {
                        if y == 0 { gy = v[i + w] - v[i] } else if y == h - 1 { gy = v[i] - v[i - w] } else { gy = (v[i + w] - v[i - w]) / 2 }
                    }
                    sum += ((gx * gx + gy * gy) / 2).squareRoot()
                }
            }
        }
        return sum / Double(p.count)
    }

    static func mutualInformation(_ first: Plane, _ second: Plane) -> Double {
        let x = roundedLevels(first), y = roundedLevels(second)
        var joint = [Int](repeating: 0, count: 256 * 256)
        var rows = [Int](repeating: 0, count: 256), columns = [Int](repeating: 0, count: 256)
        for i in 0..<x.count {
            joint[x[i] * 256 + y[i]] += 1
            rows[x[i]] += 1
            columns[y[i]] += 1
        }
        let n = Double(x.count)
        var mi = 0.0
        for i in 0..<256 where rows[i] > 0 {
            for j in 0..<256 {
                let count = joint[i * 256 + j]
                guard count > 0 else { continue }
                let nij = Double(count)
                mi += nij / n * log(nij * n / (Double(rows[i]) * Double(columns[j])))
            }
        }
        return max(mi, 0)
    }

    static func correlationOfDifferences(fused f: Plane, _ a: Plane, _ b: Plane) -> Double {
        func correlation(_ x: [Double], _ y: [Double]) -> Double {
            let n = Double(x.count)
            let mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
            var sxy = 0.0, sxx = 0.0, syy = 0.0
            for i in 0..<x.count {
                let dx = x[i] - mx, dy = y[i] - my
                sxy += dx * dy
                sxx += dx * dx
                syy += dy * dy
            }
            // A constant series has no linear relation with anything (numpy: 0 / 0 = NaN).
            guard sxx > 0, syy > 0 else { return 0 }
            return sxy / (sxx * syy).squareRoot()
        }
        let fMinusA = zip(f.values, a.values).map { $0 - $1 }
        let fMinusB = zip(f.values, b.values).map { $0 - $1 }
        return correlation(a.values, fMinusB) + correlation(b.values, fMinusA)
    }
}

/// A gray plane in Double, the working type of the metrics.
struct Plane {
    var width: Int
    var height: Int
    var values: [Double]

    init(width: Int, height: Int, values: [Double]) {
        self.width = width
        self.height = height
        self.values = values
    }

    init(_ image: GrayImage) {
        self.init(width: image.width, height: image.height, values: image.values.map { Double($0) })
    }

    var count: Int { width * height }
}

/// Hands raw pointers to the parallel workers, each of which writes disjoint rows.
struct SharedPointer<T>: @unchecked Sendable {
    let base: UnsafeMutablePointer<T>
    init(_ base: UnsafeMutablePointer<T>) { self.base = base }
}

/// Rows per parallel chunk so that each chunk holds roughly `work` operations.
func rowGrain(width: Int, costPerPixel: Int = 1, work: Int = 60_000) -> Int {
    max(1, work / max(1, width * costPerPixel))
}
