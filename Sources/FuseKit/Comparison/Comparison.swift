import Foundation
import FuseKitData
import FuseKitImage
import FuseKitNN
import FuseKitTensor

/// One method of a comparison: a recipe trained under several seeds, or checkpoints of it
/// evaluated as they are.
public struct ComparisonMethod: Sendable {
    /// The recipe's name, which names the method in the report.
    public var name: String { recipe.name }
    public var recipe: Recipe
    public var recipeText: String
    /// Checkpoints to evaluate instead of training (one run each); empty: train.
    public var weights: [URL]

    public init(recipe: Recipe, recipeText: String, weights: [URL] = []) {
        self.recipe = recipe
        self.recipeText = recipeText
        self.weights = weights
    }

    /// Loads a recipe file.
    public static func load(_ url: URL, weights: [URL] = []) throws -> ComparisonMethod {
        ComparisonMethod(recipe: try Recipe.load(from: url), recipeText: try String(contentsOf: url, encoding: .utf8), weights: weights)
    }
}

/// What a comparison tells its observer (the CLI draws progress bars from it).
public protocol ComparisonObserver: AnyObject {
    /// Run `number` of `total` starts (`run` is `seed-S` or `weights-K`); `remaining` estimates the
    /// seconds left for the whole comparison (nil until a run has been timed). Returns the observer
    /// of its training.
    func runWillStart(method: String, run: String, number: Int, of total: Int, remaining: Double?) -> TrainingObserver
    /// The run finished (`reused`: its scores were already there from an earlier, interrupted comparison).
    func runDidFinish(method: String, run: String, seconds: Double, reused: Bool)
    /// A message for the user.
    func note(_ message: String)
}

/// `fusekit compare`: trains every method under the same seeds (or evaluates given weights),
/// scores every run on one test split, and writes the report (``ComparisonReport``).
///
/// Everything lives under `output`: `runs/METHOD/seed-S/` (each a full run directory plus its
/// `scores.json`), `pictures/`, `charts/` and the report files. Started again on the same folder,
/// it keeps the finished runs, resumes an interrupted one from its last checkpoint, and trains
/// the rest.
public final class Comparison {
    public let methods: [ComparisonMethod]
    /// Each method trains with seeds 1 through `seedCount`, whatever its recipe's seed (so that
    /// run k of every method has the same seed); the data seed stays the recipe's.
    public let seedCount: Int
    public let output: URL
    public let registry: PluginRegistry
    public let dataRoot: String?
    /// How many test pairs the picture grid shows.
    public var picturePairs = 4

    public init(methods: [ComparisonMethod], seedCount: Int, output: URL, registry: PluginRegistry, dataRoot: String? = nil) throws {
        guard !methods.isEmpty else { throw ComparisonError("no recipe to compare") }
        guard seedCount >= 1 else { throw ComparisonError("--seeds must be at least 1") }
        var seen: [String: String] = [:]
        for m in methods {
            if let other = seen[m.name] {
                throw ComparisonError("two recipes are named '\(m.name)' (\(other) and \(m.recipe.file)): a method is named by its recipe's name, so give each its own")
            }
            seen[m.name] = m.recipe.file
        }
        self.methods = methods
        self.seedCount = seedCount
        self.output = output
        self.registry = registry
        self.dataRoot = dataRoot
    }

    /// A run of a method: its folder, and the seed or weights it runs with.
    public struct Run: Sendable {
        public var method: ComparisonMethod
        public var name: String
        public var seed: UInt64?
        public var weights: URL?
        public var folder: URL
        /// Whether it is its method's first run (whose models the picture grid shows).
        public var isFirstOfMethod: Bool
        /// The recipe text the run is trained from: the method's, with the seed it overrides noted.
        public var recipeText: String {
            seed.map { method.recipeText + "\n# fusekit compare: trained with seed \($0)\n" } ?? method.recipeText
        }
    }

    /// Every run, method by method.
    public var runs: [Run] {
        methods.flatMap { method -> [Run] in
            let folder = output.appendingPathComponent("runs").appendingPathComponent(method.name)
            if !method.weights.isEmpty {
                return method.weights.enumerated().map { k, url in
                    Run(method: method, name: "weights-\(k + 1)", seed: nil, weights: url, folder: folder.appendingPathComponent("weights-\(k + 1)"),
                        isFirstOfMethod: k == 0)
                }
            }
            return (1...seedCount).map { k in
                let seed = UInt64(k)
                return Run(method: method, name: "seed-\(seed)", seed: seed, weights: nil, folder: folder.appendingPathComponent("seed-\(seed)"),
                           isFirstOfMethod: k == 1)
            }
        }
    }

    /// Each method's setup (with its recipe's seed), checked to be comparable: every method is
    /// scored on the same test pairs and has the same task. Nothing is trained.
    public func checkedSetups() throws -> [TrainingSetup] {
        let setups = try methods.map { try TrainingSetup.make(recipe: $0.recipe, registry: registry, dataRoot: dataRoot) }
        try checkCommonGround(setups)
        return setups
    }

    /// The setup of a run: its method's, with the run's seed (the seed changes neither the
    /// networks nor the data, so nothing is built again).
    static func setup(_ run: Run, from methodSetup: TrainingSetup) -> TrainingSetup {
        var setup = methodSetup
        if let seed = run.seed { setup.recipe.seed = seed }
        return setup
    }

    func checkCommonGround(_ setups: [TrainingSetup]) throws {
        let first = setups[0]
        let names = (0..<first.testSource.count).map { try? first.testSource.sample(at: $0, includeColor: false).name }
        for (method, setup) in zip(methods, setups).dropFirst() {
            let others = (0..<setup.testSource.count).map { try? setup.testSource.sample(at: $0, includeColor: false).name }
            let split = { (s: TrainingSetup) in Self.describeTestSplit(s.recipe.data, dataRoot: self.dataRoot) }
            guard others == names, split(setup) == split(first) else {
                throw ComparisonError("'\(method.name)' is tested on \(split(setup)) but '\(methods[0].name)' on \(split(first)): "
                                      + "a comparison scores every method on the same test split (give --data ROOT, or the same data block in every recipe)")
            }
        }
        let kinds = setups.map { s in s.joint?.model.kind ?? s.task?.kind }
        if Set(kinds.map { $0.map(String.init(describing:)) ?? "none" }).count > 1 {
            let described = zip(methods, kinds).map { "\($0.name): \($1.map(String.init(describing:)) ?? "no task")" }
            throw ComparisonError("the methods do not share one task (\(described.joined(separator: ", "))): their task scores cannot be compared")
        }
    }

    /// The test split a data block names, for messages and the report.
    static func describeTestSplit(_ data: DataSettings, dataRoot: String?) -> String {
        switch data.source {
        case .synthetic(let s):
            return "synthetic scenes (\(s.testCount) test scenes of \(s.width)x\(s.height), night fraction \(s.nightFraction), data seed \(s.seed))"
        case .folder(let root, _, _, let testSplit):
            return "\(dataRoot ?? root) split '\(testSplit ?? "test")'"
        }
    }

    /// What the comparison produced.
    public struct Outcome: Sendable {
        public var scores: [RunScores]
        public var testSplit: String
        public var testPairs: Int
        public var classNames: [String]
        public var pictures: PictureGrid
    }

    /// Trains (or evaluates) every run not already finished, then gathers their scores.
    public func run(observer: ComparisonObserver) throws -> Outcome {
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        let setups = try checkedSetups()
        let setupsByMethod = Dictionary(uniqueKeysWithValues: zip(methods.map(\.name), setups))
        let plan = runs
        var durations: [String: [Double]] = [:]
        var scores: [RunScores] = []
        let grid = PictureGrid(folder: output.appendingPathComponent("pictures"), methods: methods.map(\.name))
        // The sources in colour when any method reads colour.
        try grid.writeSources((setups.first { $0.recipe.data.visible == .rgb } ?? setups[0]).testSource, pairs: picturePairs)
        for (index, run) in plan.enumerated() {
            let started = Date()
            if let reused = RunScores.read(in: run.folder), reused.recipeText == run.recipeText, reused.weights == run.weights?.path {
                _ = observer.runWillStart(method: run.method.name, run: run.name, number: index + 1, of: plan.count, remaining: nil)
                observer.runDidFinish(method: run.method.name, run: run.name, seconds: reused.seconds, reused: true)
                scores.append(reused)
                if run.isFirstOfMethod, !grid.hasPictures(of: run.method.name) {
                    let setup = Self.setup(run, from: setupsByMethod[run.method.name]!)
                    let trainer = try Trainer(setup: setup, runDirectory: run.folder)
                    try grid.writePictures(of: run.method.name, setup: setup, state: trainer.restoredState(from: RunDirectory(run.folder).lastCheckpoint), pairs: picturePairs)
                }
                continue
            }
            let remaining = Self.remainingSeconds(plan[index...], durations: durations)
            let training = observer.runWillStart(method: run.method.name, run: run.name, number: index + 1, of: plan.count, remaining: remaining)
            let setup = Self.setup(run, from: setupsByMethod[run.method.name]!)
            let trainer = try Trainer(setup: setup, runDirectory: run.folder, observer: training)
            let result: Trainer.Result
            if let weights = run.weights {
                result = try trainer.evaluate(checkpoint: weights)
            } else {
                let resume = RunDirectory(run.folder).hasCheckpoint
                if resume { observer.note("\(run.method.name) \(run.name): resuming the interrupted run from its last checkpoint") }
                do {
                    guard let finished = try trainer.run(resume: resume, recipeText: run.recipeText) else {
                        throw ComparisonError("\(run.method.name) \(run.name) stopped before the end")
                    }
                    result = finished
                } catch TrainingError.recipeMismatch {
                    throw ComparisonError("\(run.folder.path) holds a run of a different recipe than \(run.method.recipe.file): remove that folder or compare into another --out")
                }
            }
            let seconds = Date().timeIntervalSince(started)
            let runScores = RunScores(method: run.method.name, run: run.name, seed: run.seed, weights: run.weights?.path, recipeText: run.recipeText,
                                      seconds: seconds, fusion: result.fusion, task: result.task)
            try runScores.write(in: run.folder)
            if run.isFirstOfMethod {
                try grid.writePictures(of: run.method.name, setup: setup, state: result.state, pairs: picturePairs)
            }
            durations[run.method.name, default: []].append(seconds)
            scores.append(runScores)
            observer.runDidFinish(method: run.method.name, run: run.name, seconds: seconds, reused: false)
        }
        let names: [String]
        if case .synthetic = methods[0].recipe.data.source { names = SceneClass.names } else { names = [] }
        return Outcome(scores: scores, testSplit: Self.describeTestSplit(setups[0].recipe.data, dataRoot: dataRoot),
                       testPairs: setups[0].testSource.count, classNames: names, pictures: grid)
    }

    /// Seconds left for `pending` runs: each method's mean time so far, else the mean of all timed runs.
    static func remainingSeconds(_ pending: ArraySlice<Run>, durations: [String: [Double]]) -> Double? {
        let all = durations.values.flatMap { $0 }
        guard !all.isEmpty else { return nil }
        let overall = all.reduce(0, +) / Double(all.count)
        return pending.reduce(0) { total, run in
            let own = durations[run.method.name] ?? []
            return total + (own.isEmpty ? overall : own.reduce(0, +) / Double(own.count))
        }
    }
}

/// A comparison that cannot run, said in one sentence.
public struct ComparisonError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
