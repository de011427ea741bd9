import Foundation
import FuseKitImage
import FuseKitMetrics
import Testing

/// Constant, 1 x 1 and tiny images: every metric gives a defined (finite) value or `evaluate`
/// throws a clear error; nothing traps and no NaN reaches a mean.
@Suite("Fusion metrics on degenerate images")
struct DegenerateImageTests {
    static func constant(_ width: Int, _ height: Int, _ level: Float) -> GrayImage {
        GrayImage(width: width, height: height, values: [Float](repeating: level, count: width * height))
    }

    static func noise(_ width: Int, _ height: Int, seed: Int) -> GrayImage {
        GrayImage(width: width, height: height, values: (0..<(width * height)).map { i in
            Float((i * 7919 + seed * 104_729 + (i / width) * i * 13) % 256)
        })
    }

    /// Q at a pixel where neither image has an edge: the strength quirk gives G = 0, equal
    /// angles give Aa = 1.
    static let flatPreservation = 0.9994 / (1 + exp(7.5)) * 0.9879 / (1 + exp(-22 * 0.2))

    @Test(arguments: [(1, 1), (1, 5), (3, 2), (6, 6), (7, 7), (16, 9), (64, 48)])
    func everyMetricIsDefined(width: Int, height: Int) throws {
        let withSSIM = width >= 7 && height >= 7
        let metrics = withSSIM ? FusionMetric.allCases : FusionMetric.allCases.filter { $0 != .ssim }
        let cases: [(String, GrayImage, GrayImage, GrayImage)] = [
            ("all black", Self.constant(width, height, 0), Self.constant(width, height, 0), Self.constant(width, height, 0)),
            ("all white", Self.constant(width, height, 255), Self.constant(width, height, 255), Self.constant(width, height, 255)),
            ("constant fused", Self.constant(width, height, 128), Self.noise(width, height, seed: 1), Self.noise(width, height, seed: 2)),
            ("constant sources", Self.noise(width, height, seed: 3), Self.constant(width, height, 0), Self.constant(width, height, 255)),
            ("fused equal to a constant offset of the visible", Self.noise(width, height, seed: 4), Self.noise(width, height, seed: 5),
             GrayImage(width: width, height: height, values: Self.noise(width, height, seed: 4).values.map { $0 - 10 })),
        ]
        for (name, f, a, b) in cases {
            let values = try FusionMetrics.evaluate(fused: f, infrared: a, visible: b, metrics: metrics)
            for metric in metrics {
                #expect(values[metric]?.isFinite == true, "\(width)x\(height) \(name): \(metric.rawValue) = \(String(describing: values[metric]))")
            }
        }

        let black = try FusionMetrics.evaluate(fused: cases[0].1, infrared: cases[0].2, visible: cases[0].3, metrics: metrics)
        for metric in [FusionMetric.en, .sd, .sf, .ag, .mi, .scd] { #expect(black[metric] == 0, "\(metric.rawValue)") }
        #expect(black[.vif] == 2)  // no information at any scale: 1 per pair, the evaluator's rule
        #expect(abs(black[.qabf]! - Self.flatPreservation) < 1e-12)
        if withSSIM { #expect(black[.ssim] == 2) }
    }

    @Test func ssimBelowItsWindowIsAClearError() {
        let tiny = Self.constant(6, 9, 10)
        #expect(throws: FusionMetricError.imageTooSmall(metric: .ssim, width: 6, height: 9, minimum: 7)) {
            _ = try FusionMetrics.evaluate(fused: tiny, infrared: tiny, visible: tiny)
        }
        #expect(FusionMetricError.imageTooSmall(metric: .ssim, width: 6, height: 9, minimum: 7).description
            == "SSIM needs images of at least 7x7 pixels, these are 6x9 (leave SSIM out of the metrics)")
    }

    @Test func nonFiniteSamplesAreAClearError() {
        let a = Self.noise(10, 8, seed: 1)
        var f = Self.noise(10, 8, seed: 2)
        f.values[23] = .nan
        f.values[40] = .infinity
        #expect(throws: FusionMetricError.nonFinite(image: "fused", count: 2, x: 3, y: 2)) {
            _ = try FusionMetrics.evaluate(fused: f, infrared: a, visible: a)
        }
        #expect(throws: FusionMetricError.nonFinite(image: "visible", count: 2, x: 3, y: 2)) {
            _ = try FusionMetrics.evaluate(fused: a, infrared: a, visible: f, metrics: [.en])
        }
        #expect(FusionMetricError.nonFinite(image: "fused", count: 2, x: 3, y: 2).description
            == "the fused image has 2 NaN or infinite samples (the first at x 3, y 2): no metric is computed")
    }

    /// 16-bit PNG extremes (levels 0 and 65535) and constant 16-bit images read as finite levels
    /// 0 and 255, and their metrics are defined.
    @Test func sixteenBitExtremesReadAsFiniteLevels() throws {
        let extremes = Image(width: 8, height: 8, channels: 1, bitDepth: 16, pixels: (0..<64).map { $0 % 2 == 0 ? 0 : 1 })
        let decoded = try Image(encoded: try extremes.encoded(as: .png, bitDepth: 16))
        #expect(decoded.bitDepth == 16 && decoded.pixels == extremes.pixels)
        let levels = GrayImage(decoded)
        #expect(Set(levels.values) == [0, 255])
        let flat = GrayImage(try Image(encoded: try Image(width: 8, height: 8, channels: 1, repeating: 1).encoded(as: .png, bitDepth: 16)))
        #expect(Set(flat.values) == [255])
        let values = try FusionMetrics.evaluate(fused: levels, infrared: flat, visible: levels)
        #expect(values.values.allSatisfy { $0.isFinite })
        #expect(values[.en] == 1 && values[.sd] == 127.5)
    }
}
