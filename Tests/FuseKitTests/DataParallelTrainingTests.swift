import Foundation
import FuseKitNN
import Testing

/// Data-parallel training through the built `fusekit` under OpenMPI's `mpirun`: 2 ranks, each on
/// half of every batch, must reproduce 1 process on the whole batch to float-summation tolerance
/// (synchronised BatchNorm, no dropout), for the meta, joint and masked-pretraining strategies;
/// a NaN stops both ranks with one message; a run resumes with another number of ranks.
@Suite(.serialized) struct DataParallelTrainingTests {
    static let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }

    struct Run {
        var status: Int32
        var output: String
        var directory: URL
    }

    /// `fusekit train` on `recipe` with `ranks` processes (1: without mpirun).
    static func train(_ recipe: String, ranks: Int, name: String, extra: [String] = []) throws -> Run {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fusekit-mpi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let recipeFile = folder.appendingPathComponent("\(name).yaml")
        try recipe.write(to: recipeFile, atomically: true, encoding: .utf8)
        return try train(recipeFile, ranks: ranks, out: folder.appendingPathComponent("run"), extra: extra)
    }

    static func train(_ recipeFile: URL, ranks: Int, out: URL, extra: [String] = []) throws -> Run {
        let process = Process()
        let fusekit = BuiltExecutable.fusekit.path
        try #require(FileManager.default.isExecutableFile(atPath: fusekit), "build the fusekit product first (swift build --build-tests builds it)")
        let arguments = ["train", recipeFile.path, "--out", out.path] + extra
        if ranks == 1 {
            process.executableURL = BuiltExecutable.fusekit
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: try #require(mpirun, "mpirun is missing: install openmpi-bin (.ci/install-system-packages does)"))
            process.arguments = ["--allow-run-as-root", "--oversubscribe", "-np", String(ranks), fusekit] + arguments
        }
        var environment = ProcessInfo.processInfo.environment
        environment["FUSEKIT_THREADS"] = "1"
        environment["OMPI_MCA_btl"] = "self,vader"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self), directory: out)
    }

    /// The largest relative difference between the weights of two checkpoints, per model:
    /// ‖a − b‖₂ / ‖b‖₂ over all its parameters and buffers. (Per tensor it can be large where the
    /// true gradient is zero: Adam turns the rounding noise of, e.g., the bias of a LayerNorm whose
    /// output feeds a BatchNorm into full-size steps of either sign.)
    static func largestWeightDifference(_ a: URL, _ b: URL) throws -> (value: Double, model: String) {
        let x = try Checkpoint.load(from: a.appendingPathComponent("checkpoints/last.safetensors"))
        let y = try Checkpoint.load(from: b.appendingPathComponent("checkpoints/last.safetensors"))
        #expect(x.step == y.step && Set(x.models.keys) == Set(y.models.keys))
        var worst = (value: 0.0, model: "")
        for (model, state) in x.models {
            let other = try #require(y.models[model])
            var difference = 0.0, norm = 0.0
            for (name, tensor) in state.stateDict {
                let reference = try #require(other.stateDict[name]).scalars
                for (p, q) in zip(tensor.scalars, reference) {
                    difference += Double(p - q) * Double(p - q)
                    norm += Double(q) * Double(q)
                }
            }
            let relative = (difference / Swift.max(norm, 1e-30)).squareRoot()
            if relative > worst.value { worst = (relative, model) }
        }
        return worst
    }

    /// The largest relative difference of the logged losses (every numeric field but times and
    /// learning rates), step by step.
    static func largestLossDifference(_ a: URL, _ b: URL) throws -> (value: Double, field: String) {
        func records(_ run: URL) throws -> [[String: Any]] {
            try String(contentsOf: run.appendingPathComponent("log.jsonl"), encoding: .utf8).split(separator: "\n").map {
                try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
            }
        }
        func losses(_ record: [String: Any]) -> [String: Double] {
            var values: [String: Double] = [:]
            for (key, value) in record where key != "seconds" && key != "lr" {
                if let number = value as? Double { values[key] = number }
                if let nested = value as? [String: Double], key == "losses" { for (k, v) in nested { values["losses." + k] = v } }
            }
            return values
        }
        let x = try records(a), y = try records(b)
        #expect(x.count == y.count && !x.isEmpty)
        var worst = (value: 0.0, field: "")
        for (step, (r, s)) in zip(x, y).enumerated() {
            let p = losses(r), q = losses(s)
            #expect(Set(p.keys) == Set(q.keys))
            for (key, value) in p {
                let reference = q[key] ?? .nan
                let difference = abs(value - reference) / Swift.max(abs(reference), 1e-6)
                if !(difference <= worst.value) { worst = (difference, "step \(step + 1) \(key)") }
            }
        }
        return worst
    }

    static func recipe(strategy: String, steps: Int = 20) -> String {
        let models = """
        fusion:
          plugin: restormer-fusion
          parameters: { dim: 8, blocks: 1, heads: 2 }
          optimizer: { kind: adam, learning-rate: 1.0e-3 }
        task:
          plugin: segformer
          parameters: { classes: 6, embed-dims: [16, 32, 40, 64], depths: [1, 1, 1, 1], decoder-embed: 32, drop-path: 0, dropout: 0 }
          optimizer: { kind: adam, learning-rate: 1.0e-3 }
        """
        let training: String
        switch strategy {
        case "meta":
            training = """
            loss-generator:
              plugin: restormer-lpn
              parameters: { dim: 8, blocks: 1, heads: 2 }
              optimizer: { kind: adam, learning-rate: 1.0e-3 }
            fusion-loss: { weights: learned }
            training: { epochs: 2, meta-steps: 4, steps-per-epoch: \(steps / 2 - 4), hypergradient: exact, preview-pairs: 1 }
            """
        case "joint":
            training = """
            training:
              strategy: joint
              epochs: 2
              steps-per-epoch: \(steps / 2)
              losses: [{ term: intensity-max }, { term: sobel-max }, { term: task-loss }]
              weighting: { method: dwa, temperature: 2 }
              preview-pairs: 1
            """
        default:
            training = """
            stages:
              - name: pretraining
                strategy: masked-pretraining
                train: [fusion]
                epochs: 1
                steps-per-epoch: \(steps / 2)
                losses: [{ term: masked-l1, weight: 5 }, { term: masked-gradient-l1, weight: 5 }]
                preview-pairs: 0
              - name: joint
                strategy: joint
                train: [fusion, task]
                epochs: 1
                steps-per-epoch: \(steps / 2)
                losses: [{ term: intensity-max }, { term: task-loss }]
                preview-pairs: 1
            """
        }
        return """
        name: data-parallel-\(strategy)
        seed: 3
        data:
          synthetic: { train-count: 40, test-count: 2, width: 40, height: 40, night-fraction: 0.5, seed: 5 }
          batch-size: 4
          crop: [32, 32]
          flips: true
        \(models)
        \(training)
        distributed: { batch-norm: synchronized, bucket-mib: 0.25 }
        evaluation: { metrics: [EN], max-pairs: 2 }
        """
    }

    @Test(arguments: ["meta", "joint", "pretraining"])
    func twoRanksReproduceOneProcess(strategy: String) throws {
        try #require(Self.mpirun != nil, "mpirun is missing: install openmpi-bin (.ci/install-system-packages does)")
        let one = try Self.train(Self.recipe(strategy: strategy), ranks: 1, name: strategy)
        #expect(one.status == 0, "1 process: \(one.output)")
        let two = try Self.train(Self.recipe(strategy: strategy), ranks: 2, name: strategy)
        #expect(two.status == 0, "2 ranks: \(two.output)")
        guard one.status == 0 && two.status == 0 else { return }
        #expect(two.output.contains("data-parallel training over 2 ranks, 2 pairs each per batch of 4"))
        let weights = try Self.largestWeightDifference(two.directory, one.directory)
        let losses = try Self.largestLossDifference(two.directory, one.directory)
        print("data parallel (\(strategy)), 2 ranks vs 1 process over 20 steps: largest relative difference of weights "
              + "\(weights.value) (\(weights.model)), of logged losses \(losses.value) (\(losses.field))")
        #expect(weights.value < 1e-3, "weights differ by \(weights.value) in \(weights.model)")
        #expect(losses.value < 1e-3, "losses differ by \(losses.value) at \(losses.field)")
    }

    @Test func aRunResumesWithAnotherNumberOfRanks() throws {
        try #require(Self.mpirun != nil, "mpirun is missing: install openmpi-bin (.ci/install-system-packages does)")
        let whole = try Self.train(Self.recipe(strategy: "joint"), ranks: 1, name: "joint")
        #expect(whole.status == 0, "\(whole.output)")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fusekit-mpi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let recipeFile = folder.appendingPathComponent("joint.yaml")
        try Self.recipe(strategy: "joint").write(to: recipeFile, atomically: true, encoding: .utf8)
        let out = folder.appendingPathComponent("run")
        let first = try Self.train(recipeFile, ranks: 2, out: out, extra: ["--stop-after", "7"])
        #expect(first.status == 0, "\(first.output)")
        let rest = try Self.train(recipeFile, ranks: 1, out: out, extra: ["--resume"])
        #expect(rest.status == 0, "\(rest.output)")
        guard whole.status == 0 && rest.status == 0 else { return }
        let weights = try Self.largestWeightDifference(out, whole.directory)
        print("data parallel: 2 ranks for 7 steps, resumed by 1 process to step 20, against 1 process throughout: "
              + "largest relative weight difference \(weights.value) (\(weights.model))")
        #expect(weights.value < 1e-3)
    }

    @Test func aBatchThatDoesNotSplitIsOneClearError() throws {
        try #require(Self.mpirun != nil, "mpirun is missing: install openmpi-bin (.ci/install-system-packages does)")
        let run = try Self.train(Self.recipe(strategy: "joint").replacingOccurrences(of: "batch-size: 4", with: "batch-size: 3"),
                                 ranks: 2, name: "odd")
        #expect(run.status != 0)
        let message = "the batch of 3 does not split evenly over 2 ranks"
        #expect(run.output.components(separatedBy: message).count == 2, "expected the message once: \(run.output)")
    }

    @Test func aNaNOnTheRanksStopsThemTogetherWithOneMessage() throws {
        try #require(Self.mpirun != nil, "mpirun is missing: install openmpi-bin (.ci/install-system-packages does)")
        let exploding = Self.recipe(strategy: "joint").replacingOccurrences(of: "learning-rate: 1.0e-3", with: "learning-rate: 1.0e+30")
        let run = try Self.train(exploding, ranks: 2, name: "nan")
        #expect(run.status != 0)
        #expect(run.output.components(separatedBy: "is not finite").count == 2, "expected one message: \(run.output)")
        #expect(!run.output.contains("MPI_ABORT"), "the ranks stop by themselves, not by an abort: \(run.output)")
    }
}
