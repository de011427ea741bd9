import Foundation
import FuseKitImage
import FuseKitMetrics
import Testing

/// The shared data folder: `../shared/data` beside the repository (or `FUSEKIT_SHARED_DATA`).
func sharedDataFolder() -> URL {
    if let override = ProcessInfo.processInfo.environment["FUSEKIT_SHARED_DATA"] {
        return URL(fileURLWithPath: override)
    }
    let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return repository.deletingLastPathComponent().appendingPathComponent("shared/data")
}

/// Whether the TNO pairs of the shared data folder are there (tests that read them are skipped
/// with this reason otherwise).
let sharedTNOAvailable = FileManager.default.fileExists(atPath: sharedDataFolder().appendingPathComponent("tno/average-fusion-metrics.json").path)
let sharedTNOMissing: Comment = "needs the TNO pairs in ../shared/data/tno (or FUSEKIT_SHARED_DATA), which are absent"

struct ReferenceFile: Decodable {
    struct Entry: Decodable {
        var name: String
        var values: [String: Double]

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyKey.self)
            name = try container.decode(String.self, forKey: AnyKey(stringValue: "name"))
            var values: [String: Double] = [:]
            for key in container.allKeys where key.stringValue != "name" {
                values[key.stringValue] = try container.decode(Double.self, forKey: key)
            }
            self.values = values
        }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    var images: [Entry]
    var mean: [String: Double]
}

@Suite("TNO reference values", .enabled(if: sharedTNOAvailable, sharedTNOMissing))
struct TNOReferenceTests {
    static let tno = sharedDataFolder().appendingPathComponent("tno")

    static func reference() throws -> ReferenceFile {
        let data = try Data(contentsOf: tno.appendingPathComponent("average-fusion-metrics.json"))
        return try JSONDecoder().decode(ReferenceFile.self, from: data)
    }

    /// The relative error every metric stays below, per image and for the mean; the README
    /// states the same figure. (metrics.md asks for 1e-4, and 1e-3 for MI, VIF and SSIM; the
    /// implementation reproduces the evaluator far more closely, so the tests hold it to that.)
    static let tolerance = 1e-6

    @Test("all nine metrics reproduce the evaluator on the 25 TNO pairs")
    func reproducesReference() throws {
        let reference = try Self.reference()
        #expect(reference.images.count == 25)
        var worst: [FusionMetric: Double] = [:]
        var sums: [FusionMetric: Double] = [:]
        for entry in reference.images {
            let ir = try GrayImage(contentsOf: Self.tno.appendingPathComponent("ir/\(entry.name).png"))
            let vi = try GrayImage(contentsOf: Self.tno.appendingPathComponent("vi/\(entry.name).png"))
            let fused = try GrayImage(contentsOf: Self.tno.appendingPathComponent("average/\(entry.name).png"))
            let values = try FusionMetrics.evaluate(fused: fused, infrared: ir, visible: vi)
            for metric in FusionMetric.allCases {
                let expected = try #require(entry.values[metric.rawValue])
                let actual = try #require(values[metric])
                let relative = abs(actual - expected) / abs(expected)
                worst[metric] = max(worst[metric] ?? 0, relative)
                sums[metric, default: 0] += actual
                #expect(relative < Self.tolerance, "\(entry.name) \(metric.rawValue): \(actual) vs \(expected)")
            }
        }
        for metric in FusionMetric.allCases {
            let mean = sums[metric]! / Double(reference.images.count)
            let expected = try #require(reference.mean[metric.rawValue])
            #expect(abs(mean - expected) / abs(expected) < Self.tolerance, "mean \(metric.rawValue)")
        }
        let report = FusionMetric.allCases.map { "\($0.rawValue) \(String(format: "%.2e", worst[$0] ?? 0))" }.joined(separator: ", ")
        print("TNO worst relative errors: \(report)")
    }
}
