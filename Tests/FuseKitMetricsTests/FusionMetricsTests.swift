import Foundation
import FuseKitImage
import FuseKitMetrics
import Testing

@Suite("Fusion metrics")
struct FusionMetricsTests {
    static func image(_ width: Int, _ height: Int, _ value: (Int, Int) -> Float) -> GrayImage {
        GrayImage(width: width, height: height, values: (0..<(width * height)).map { value($0 % width, $0 / width) })
    }

    static func noise(_ width: Int, _ height: Int, seed: Int) -> GrayImage {
        image(width, height) { x, y in Float((x * 7919 + y * 104_729 + seed * 31 + x * y * 13) % 256) }
    }

    @Test("closed forms: EN, SD, SF, AG and MI on simple images")
    func closedForms() {
        let halves = Self.image(8, 8) { x, _ in x < 4 ? 0 : 255 }
        #expect(FusionMetrics.entropy(halves) == 1)
        #expect(FusionMetrics.standardDeviation(halves) == 127.5)
        #expect(abs(FusionMetrics.mutualInformation(halves, halves) - log(2)) < 1e-12)
        let flat = Self.image(6, 5) { _, _ in 42 }
        #expect(FusionMetrics.spatialFrequency(flat) == 0 && FusionMetrics.averageGradient(flat) == 0 && FusionMetrics.entropy(flat) == 0)
        let ramp = Self.image(6, 4) { x, _ in Float(2 * x) }
        #expect(abs(FusionMetrics.averageGradient(ramp) - 2.0.squareRoot()) < 1e-12)
        #expect(abs(FusionMetrics.spatialFrequency(ramp) - 2) < 1e-12)  // horizontal differences 2, vertical 0
    }

    @Test("a fused image identical to both sources: SSIM 1 + 1, VIF 1 + 1, Qabf near its ceiling")
    func identity() throws {
        let a = Self.noise(40, 32, seed: 1)
        let values = try FusionMetrics.evaluate(fused: a, infrared: a, visible: a, metrics: [.ssim, .vif, .qabf, .mi])
        #expect(abs(values[.ssim]! - 2) < 1e-12)
        #expect(abs(values[.vif]! - 2) < 1e-6)
        #expect(abs(values[.qabf]! - 0.9994 * 0.9879 / (1 + exp(-22 * 0.2))) < 1e-3)
        #expect(abs(values[.mi]! - 2 * FusionMetrics.mutualInformation(a, a)) < 1e-12)
    }

    @Test("the per-pair convention halves MI, VIF and SSIM only")
    func perPair() throws {
        let f = Self.noise(48, 40, seed: 3), a = Self.noise(48, 40, seed: 4), b = Self.noise(48, 40, seed: 5)
        let sum = try FusionMetrics.evaluate(fused: f, infrared: a, visible: b)
        let mean = try FusionMetrics.evaluate(fused: f, infrared: a, visible: b, convention: .perPairMean)
        for metric in FusionMetric.allCases {
            let expected = metric.isSumOverPairs ? sum[metric]! / 2 : sum[metric]!
            #expect(mean[metric]! == expected, "\(metric.rawValue)")
        }
        // The pair functions add up to the combined metrics.
        #expect(abs(sum[.ssim]! - FusionMetrics.structuralSimilarity(f, a) - FusionMetrics.structuralSimilarity(f, b)) < 1e-12)
        #expect(abs(sum[.vif]! - FusionMetrics.visualInformationFidelity(reference: a, distorted: f)
                    - FusionMetrics.visualInformationFidelity(reference: b, distorted: f)) < 1e-12)
        #expect(abs(sum[.scd]! - FusionMetrics.correlationOfDifferences(fused: f, infrared: a, visible: b)) < 1e-15)
    }

    @Test("sizes must agree; metric names parse case-insensitively")
    func validation() {
        let a = Self.noise(10, 10, seed: 1), b = Self.noise(11, 10, seed: 1)
        #expect(throws: FusionMetricError.self) { try FusionMetrics.evaluate(fused: a, infrared: a, visible: b) }
        #expect(FusionMetric(name: "qabf") == .qabf && FusionMetric(name: " En ") == .en && FusionMetric(name: "PSNR") == nil)
    }
}
