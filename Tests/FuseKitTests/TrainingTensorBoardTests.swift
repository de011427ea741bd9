import Foundation
import FuseKit
import Testing

/// `fusekit train --tensorboard`: a tiny run, stopped and resumed, read back with the
/// independent event-file decoder of TensorBoardWriterTests and compared with `log.jsonl`.
@Suite struct TrainingTensorBoardTests {
    static func trainer(_ text: String, _ directory: URL) throws -> Trainer {
        let recipe = try Recipe.parse(text, file: "tiny.yaml")
        return try Trainer(setup: try TrainingSetup.make(recipe: recipe, registry: TrainerTests.registry()), runDirectory: directory,
                           tensorBoard: true)
    }

    @Test func aResumedRunLogsEveryStepPreviewAndTheRecipe() throws {
        let directory = try TrainerTests.scratch("tensorboard")
        defer { try? FileManager.default.removeItem(at: directory) }
        let text = TrainerTests.recipeText(epochs: 1)
        let first = try Self.trainer(text, directory)
        let total = first.totalSteps
        #expect(try first.run(recipeText: text, stopAfter: 5) == nil)
        _ = try #require(try Self.trainer(text, directory).run(resume: true, recipeText: text))

        let folder = RunDirectory(directory).tensorBoardFolder
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix("events.out.tfevents.") }
            .sorted { $0.split(separator: ".").last.flatMap { Int($0) } ?? 0 < $1.split(separator: ".").last.flatMap { Int($0) } ?? 0 }
        #expect(files.count == 2)
        let runs = try files.map { try EventFile.read(folder.appendingPathComponent($0)) }
        let events = runs.flatMap { $0 }

        // The second file starts by dropping what the first logged after the checkpoint at step 5.
        #expect(runs[1].count > 2 && runs[1][1].int(2) == 6 && runs[1][1].message(7)?.int(1) == 1)

        // Scalars: the last value logged at each (tag, step), as TensorBoard keeps them after the purge.
        var scalars: [String: [Int: Float]] = [:]
        var images: [String: [Int]] = [:]
        var texts: [String: String] = [:]
        for event in events {
            let step = event.int(2) ?? 0
            if event.message(7) != nil {
                for tag in scalars.keys { scalars[tag] = scalars[tag]!.filter { $0.key < step } }
            }
            for value in event.message(5)?.messages(1) ?? [] {
                let tag = value.string(1) ?? ""
                if let x = value.float(2) { scalars[tag, default: [:]][step] = x }
                if value.message(4) != nil { images[tag, default: []].append(step) }
                if let tensor = value.message(8), let bytes = tensor.bytes(8) { texts[tag] = String(decoding: bytes, as: UTF8.self) }
            }
        }

        let records = RunDirectory(directory).readLog()
        #expect(records.count == total)
        for record in records {
            let phase = record.phase.rawValue
            #expect(scalars["\(phase)/L_f"]?[record.globalStep] == record.fusionLoss.map(Float.init), "step \(record.globalStep)")
            #expect(scalars["\(phase)/L_t_inner"]?[record.globalStep] == record.innerTaskLoss.map(Float.init))
            #expect(scalars["\(phase)/L_t_outer"]?[record.globalStep] == record.outerTaskLoss.map(Float.init))
            #expect(scalars["\(phase)/hypergradient_norm"]?[record.globalStep] == record.hypergradientNorm.map(Float.init))
            for (role, rate) in record.learningRates {
                #expect(scalars["lr/\(role)"]?[record.globalStep] == Float(rate), "lr/\(role) at \(record.globalStep)")
            }
        }
        #expect(Set((scalars["meta/hypergradient_norm"] ?? [:]).keys) == Set(records.filter { $0.phase == .meta }.map(\.globalStep)))
        #expect(scalars["meta/L_f"]?.count == 2 && scalars["fusion/L_f"]?.count == total - 2)

        // The previews of the epoch's end, and the recipe as a Markdown code block.
        let previews = images.keys.sorted()
        #expect(previews.count == 2 && previews.allSatisfy { $0.hasPrefix("preview/") })
        #expect(previews.contains { $0.hasSuffix("/fused") } && previews.contains { $0.hasSuffix("/w_a") })
        #expect(images.values.allSatisfy { $0 == [total] })
        #expect(texts["recipe"]?.hasPrefix("    name: tiny\n    seed: 3\n") == true)
    }
}
