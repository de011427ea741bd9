import Foundation
import FuseKit
import FuseKitMetrics
import Testing
#if canImport(FoundationXML)
import FoundationXML
#endif

/// The statistics `fusekit compare` states its differences with, against published values.
@Suite struct ComparisonStatisticsTests {
    @Test func studentTProbabilitiesMatchTables() {
        // Two-sided 5% critical values of Student's t (any statistics table) and t = 1 with 1 degree
        // of freedom (the Cauchy distribution: P(|T| >= 1) = 1/2 exactly).
        for (t, df) in [(12.706, 1), (4.303, 2), (2.776, 4), (2.228, 10), (1.984, 100)] {
            #expect(Swift.abs(ComparisonStatistics.twoSidedTProbability(t, degreesOfFreedom: df) - 0.05) < 2e-4, "t = \(t), df = \(df)")
        }
        #expect(Swift.abs(ComparisonStatistics.twoSidedTProbability(1, degreesOfFreedom: 1) - 0.5) < 1e-12)
        #expect(Swift.abs(ComparisonStatistics.twoSidedTProbability(9.925, degreesOfFreedom: 2) - 0.01) < 1e-4)
        #expect(ComparisonStatistics.twoSidedTProbability(0, degreesOfFreedom: 3) == 1)
    }

    @Test func incompleteBetaMatchesClosedForms() {
        for x in [0.1, 0.37, 0.5, 0.93] {
            #expect(Swift.abs(ComparisonStatistics.regularizedIncompleteBeta(x, a: 1, b: 1) - x) < 1e-12)
            // I_x(a, 1) = x^a and I_x(1, b) = 1 - (1 - x)^b.
            #expect(Swift.abs(ComparisonStatistics.regularizedIncompleteBeta(x, a: 3.5, b: 1) - pow(x, 3.5)) < 1e-12)
            #expect(Swift.abs(ComparisonStatistics.regularizedIncompleteBeta(x, a: 1, b: 2.5) - (1 - pow(1 - x, 2.5))) < 1e-12)
        }
        #expect(Swift.abs(ComparisonStatistics.regularizedIncompleteBeta(0.5, a: 7, b: 7) - 0.5) < 1e-12)
    }

    @Test func pairedTTestByHand() throws {
        // Differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641 with 2 degrees of freedom.
        let test = try #require(ComparisonStatistics.pairedTTest([11, 12, 13], [10, 10, 10]))
        #expect(Swift.abs(test.t - 3.464_101_6) < 1e-6)
        #expect(test.degreesOfFreedom == 2)
        // P(|T_2| >= t) = 1 - t / sqrt(2 + t^2) in closed form.
        #expect(Swift.abs(test.p - (1 - test.t / (2 + test.t * test.t).squareRoot())) < 1e-12)
        #expect(ComparisonStatistics.pairedTTest([1], [0]) == nil)
        #expect(ComparisonStatistics.pairedTTest([1, 2], [1, 2])?.p == 1)
        #expect(ComparisonStatistics.pairedTTest([2, 3], [1, 2])?.p == 0)
    }

    @Test func bootstrapSeesImagesAndSeeds() throws {
        // Method a is better on every image of every seed by 1: the interval excludes zero.
        let a: [ComparisonStatistics.RunSample] = [.perImage([2, 3, 4, 5]), .perImage([2.5, 3, 4, 6])]
        let b: [ComparisonStatistics.RunSample] = [.perImage([1, 2, 3, 4]), .perImage([1.5, 2, 3, 5])]
        let better = try #require(ComparisonStatistics.pairedBootstrap(a, b))
        #expect(better.difference == 1 && better.lower == 1 && better.upper == 1 && better.p == 0 && better.overImages)
        // A difference on one image only, in opposite directions for the two seeds: the interval covers zero.
        let c: [ComparisonStatistics.RunSample] = [.perImage([5, 2, 3, 4]), .perImage([1.5, 2, 3, 5])]
        let d: [ComparisonStatistics.RunSample] = [.perImage([1, 2, 3, 4]), .perImage([5.5, 2, 3, 5])]
        let mixed = try #require(ComparisonStatistics.pairedBootstrap(c, d))
        #expect(mixed.difference == 0 && mixed.lower < 0 && mixed.upper > 0 && mixed.p > 0.5)
        // mIoU recomputed from resampled confusion matrices: identical predictions differ by 0.
        var m = ConfusionMatrix(classCount: 2)
        m.add(prediction: [0, 1, 1, 0], label: [0, 1, 0, 0])
        let same = try #require(ComparisonStatistics.pairedBootstrap([.confusions([m, m])], [.confusions([m, m])]))
        #expect(same.difference == 0 && same.lower == 0 && same.upper == 0)
    }

    @Test func summaryUsesTheSampleStandardDeviation() {
        let s = SampleSummary([1, 2, 3, 4])
        #expect(s.mean == 2.5)
        #expect(Swift.abs(s.standardDeviation! - 1.290_994_4) < 1e-7)
        #expect(SampleSummary([3]).standardDeviation == nil)
    }
}

/// `fusekit compare` on tiny runs: the report's files, resumption, weights-only evaluation and
/// the errors of recipes that cannot be compared.
@Suite(.serialized) struct ComparisonTests {
    static let learned = TrainerTests.recipeText(epochs: 1).replacingOccurrences(of: "name: tiny", with: "name: learned")
    static let fixed = TrainerTests.recipeText(epochs: 1).replacingOccurrences(of: "name: tiny", with: "name: fixed")
        + "fusion-loss:\n  weights: fixed\n"

    static func method(_ text: String) throws -> ComparisonMethod {
        ComparisonMethod(recipe: try Recipe.parse(text, file: "tiny.yaml"), recipeText: text)
    }

    final class Recorder: ComparisonObserver {
        var events: [String] = []
        func runWillStart(method: String, run: String, number: Int, of total: Int, remaining: Double?) -> TrainingObserver {
            events.append("start \(method) \(run) \(number)/\(total)")
            return SilentTrainingObserver()
        }
        func runDidFinish(method: String, run: String, seconds: Double, reused: Bool) { events.append("\(reused ? "reused" : "done") \(method) \(run)") }
        func note(_ message: String) { events.append(message) }
    }

    static func compare(_ methods: [ComparisonMethod], seeds: Int, into folder: URL, observer: Recorder = Recorder()) throws -> Comparison.Outcome {
        let comparison = try Comparison(methods: methods, seedCount: seeds, output: folder, registry: TrainerTests.registry())
        comparison.picturePairs = 2
        return try comparison.run(observer: observer)
    }

    /// The `src` of every `img` element, parsing the page as XML (which fails unless it is well formed).
    final class ImageSources: NSObject, XMLParserDelegate {
        var sources: [String] = []
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
            if name == "img", let src = attributes["src"] { sources.append(src) }
        }
    }

    @Test func reportFilesAndWellFormedHTML() throws {
        let folder = try TrainerTests.scratch("compare-report")
        defer { try? FileManager.default.removeItem(at: folder) }
        let outcome = try Self.compare([try Self.method(Self.learned), try Self.method(Self.fixed)], seeds: 2, into: folder)
        #expect(outcome.scores.map(\.run) == ["seed-1", "seed-2", "seed-1", "seed-2"])
        let report = ComparisonReport(outcome: outcome)
        try report.write(to: folder)
        for file in ["report.md", "report.html", "report.json", "table.csv", "runs.csv", "pictures/grid.png", "charts/EN.png", "charts/mIoU.png"] {
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent(file).path), "\(file) is missing")
        }
        let html = try Data(contentsOf: folder.appendingPathComponent("report.html"))
        let parser = XMLParser(data: html)
        let images = ImageSources()
        parser.delegate = images
        #expect(parser.parse(), "report.html is not well formed: \(String(describing: parser.parserError))")
        // 3 fusion metrics and mAcc, mIoU as charts; 2 pairs x (3 sources + learned fused, w_a, segmentation + fixed fused, segmentation).
        #expect(images.sources.count == 5 + 2 * 8, "\(images.sources)")
        for src in images.sources {
            #expect(!src.contains("://") && !src.hasPrefix("/"), "\(src) is not a file beside the report")
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent(src).path), "report.html shows \(src), which does not exist")
        }
        // Every pair of methods is tested on every score, with the seeds paired.
        #expect(report.pairTests.count == 4)
        #expect(report.pairTests.allSatisfy { $0.pairedRuns == 2 && $0.tTest != nil && $0.bootstrap != nil })
        let json = try JSONSerialization.jsonObject(with: Data(report.json.utf8)) as? [String: Any]
        #expect((json?["methods"] as? [String: Any])?.keys.sorted() == ["fixed", "learned"])
        #expect(report.markdown.contains("| learned |") && report.markdown.contains("exceed"))
        let table = report.tableCSV.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        #expect(table.first?.joined(separator: ",") == "method,EN,EN_sd,SF,SF_sd,Qabf,Qabf_sd,mAcc,mAcc_sd,mIoU,mIoU_sd,runs")
        #expect(table.count == 3 && table.dropFirst().allSatisfy { $0.count == 12 && $0.last == "2" })
    }

    @Test func resumesAfterAnInterruption() throws {
        let whole = try TrainerTests.scratch("compare-whole"), interrupted = try TrainerTests.scratch("compare-interrupted")
        defer { for f in [whole, interrupted] { try? FileManager.default.removeItem(at: f) } }
        let methods = [try Self.method(Self.fixed)]
        let reference = try Self.compare(methods, seeds: 2, into: whole)
        // The comparison was killed during its second run: that run has a checkpoint but no scores.
        let comparison = try Comparison(methods: methods, seedCount: 2, output: interrupted, registry: TrainerTests.registry())
        let first = try Self.compare(methods, seeds: 1, into: interrupted)
        let second = comparison.runs[1]
        var recipe = methods[0].recipe
        recipe.seed = try #require(second.seed)
        let partial = try Trainer(setup: try TrainingSetup.make(recipe: recipe, registry: TrainerTests.registry()), runDirectory: second.folder)
        #expect(try partial.run(recipeText: second.recipeText, stopAfter: 2) == nil)
        let observer = Recorder()
        let resumed = try Self.compare(methods, seeds: 2, into: interrupted, observer: observer)
        #expect(observer.events.contains("reused fixed seed-1"))
        #expect(observer.events.contains { $0.contains("resuming the interrupted run") })
        #expect(observer.events.contains("done fixed seed-2"))
        #expect(first.scores[0].fusion == reference.scores[0].fusion)
        // The resumed run scores exactly as the uninterrupted one.
        #expect(resumed.scores.map(\.fusion) == reference.scores.map(\.fusion))
        #expect(resumed.scores.map { $0.task?.imageConfusions } == reference.scores.map { $0.task?.imageConfusions })
    }

    @Test func weightsAreEvaluatedAsTrained() throws {
        let folder = try TrainerTests.scratch("compare-weights")
        defer { try? FileManager.default.removeItem(at: folder) }
        let trained = try Self.compare([try Self.method(Self.fixed)], seeds: 1, into: folder.appendingPathComponent("trained"))
        var method = try Self.method(Self.fixed)
        method.weights = [folder.appendingPathComponent("trained/runs/fixed/seed-1/checkpoints/last.safetensors")]
        let evaluated = try Self.compare([method], seeds: 3, into: folder.appendingPathComponent("evaluated"))
        #expect(evaluated.scores.map(\.run) == ["weights-1"])
        #expect(evaluated.scores[0].fusion == trained.scores[0].fusion)
        #expect(evaluated.scores[0].task == trained.scores[0].task)
    }

    @Test func refusesRecipesThatCannotBeCompared() throws {
        let folder = try TrainerTests.scratch("compare-refused")
        defer { try? FileManager.default.removeItem(at: folder) }
        let otherData = Self.fixed.replacingOccurrences(of: "test-count: 3", with: "test-count: 4")
        #expect {
            try Self.compare([try Self.method(Self.learned), try Self.method(otherData)], seeds: 1, into: folder)
        } throws: { "\($0)".contains("same test split") && "\($0)".contains("4 test scenes") }
        #expect {
            try Self.compare([try Self.method(Self.fixed), try Self.method(Self.fixed)], seeds: 1, into: folder)
        } throws: { "\($0)".contains("two recipes are named 'fixed'") }
    }
}
