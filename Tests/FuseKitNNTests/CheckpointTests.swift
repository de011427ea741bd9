import Foundation
import FuseKitNN
import FuseKitTensor
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Checkpoints: exact round trips, identical resumption, atomic replacement and errors that
/// name the file.
@Suite struct CheckpointTests {
    typealias Support = SerializationTestSupport

    static func model(seed: UInt64) -> ModelState {
        ModelState(
            parameters: [
                "encoder1.0.attn.qkv.weight": Support.random([6, 2, 1, 1], seed: seed),
                "encoder1.0.attn.qkv.bias": Support.random([6], seed: seed + 1),
                "temperature": Tensor(shape: [2, 1, 1], scalars: [-0.0, Float(bitPattern: 0x7FA0_0001)]),
            ],
            buffers: [
                "bn.running_mean": Tensor([.leastNonzeroMagnitude, -.infinity, 3]),
                "bn.num_batches_tracked": Tensor(1234),
            ])
    }

    /// A checkpoint after a few real optimizer steps.
    static func sample() -> Checkpoint {
        let fusion = model(seed: 1)
        var adamState = OptimizerState()
        var parameters = fusion.parameters
        for step in 0..<3 {
            let gradients = parameters.mapValues { Support.random($0.shape, seed: UInt64(10 + step)) }
            parameters = Adam().update(parameters, gradients: gradients, state: &adamState, learningRate: 1e-3)
        }
        var sgdState = OptimizerState()
        let task = model(seed: 5)
        _ = SGD(momentum: 0.9).update(task.parameters, gradients: task.parameters, state: &sgdState, learningRate: 0.1)
        var rng = RandomGenerator(seed: 42)
        _ = rng.next()
        return Checkpoint(
            models: ["fusion": ModelState(parameters: parameters, buffers: fusion.buffers),
                     "lossGenerator": ModelState(parameters: ["head.weight": Support.random([3, 3], seed: 9)]),
                     "task": task],
            optimizers: ["fusion": adamState, "task": sgdState, "lossGenerator": OptimizerState(step: 7)],
            step: 1200, epoch: 12, random: rng,
            metadata: ["recipe": "model: restormer\nlr: 1e-4 # \"quoted\" ✓", "empty": ""])
    }

    /// Makes tampered metadata a version-1 file (no checksum, loaded unverified), so that the
    /// checks after the checksum's are reached.
    static func markUnverified(_ metadata: inout [String: String]) {
        metadata["fusekit.checkpoint"] = "1"
        metadata["fusekit.checksum"] = nil
    }

    @Test func roundTripIsBitwise() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let url = directory.appendingPathComponent("checkpoint.safetensors")
        let saved = Self.sample()
        try saved.save(to: url)
        let loaded = try Checkpoint.load(from: url)
        #expect(loaded == saved)
        #expect(loaded.step == 1200 && loaded.epoch == 12)
        #expect(loaded.metadata == saved.metadata)
        #expect(loaded.optimizers["lossGenerator"] == OptimizerState(step: 7))
        let temperature = try #require(loaded.models["fusion"]?.parameters["temperature"])
        #expect(temperature.scalars.map(\.bitPattern) == saved.models["fusion"]!.parameters["temperature"]!.scalars.map(\.bitPattern))
        var a = try #require(saved.random), b = try #require(loaded.random)
        #expect((0..<4).map { _ in a.next() } == (0..<4).map { _ in b.next() })
        #expect(Support.contents(of: directory) == ["checkpoint.safetensors"])

        // The layout is plain safetensors with prefixed keys.
        let (tensors, metadata) = try SafeTensors.read(from: url)
        #expect(tensors["fusion.param.encoder1.0.attn.qkv.weight"] != nil)
        #expect(tensors["fusion.buffer.bn.num_batches_tracked"]?.item == 1234)
        #expect(tensors["fusion.optim.exp_avg.encoder1.0.attn.qkv.weight"] != nil)
        #expect(tensors["task.optim.momentum_buffer.temperature"] != nil)
        #expect(metadata["user.recipe"] == saved.metadata["recipe"])
        #expect(metadata["fusekit.step"] == "1200")
    }

    @Test func differentContentsAreNotEqual() {
        let base = Self.sample()
        var changed = base
        changed.models["fusion"]?.buffers["bn.running_mean"] = Tensor([0, -.infinity, 3])
        #expect(changed != base)
        var nanChanged = base
        nanChanged.models["fusion"]?.parameters["temperature"] = Tensor(shape: [2, 1, 1], scalars: [-0.0, Float(bitPattern: 0x7FA0_0002)])
        #expect(nanChanged != base)
        var signChanged = base
        signChanged.models["fusion"]?.parameters["temperature"] = Tensor(shape: [2, 1, 1], scalars: [0.0, Float(bitPattern: 0x7FA0_0001)])
        #expect(signChanged != base)
    }

    /// Training 4 steps straight gives the same bits as 2 steps, save, load, 2 more steps.
    @Test func resumingContinuesIdentically() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let url = directory.appendingPathComponent("resume.safetensors")
        let optimizer = AdamW(weightDecay: 0.05)

        func train(_ parameters: inout [String: Tensor], _ state: inout OptimizerState, _ rng: inout RandomGenerator, steps: Int) {
            for _ in 0..<steps {
                var gradients: [String: Tensor] = [:]
                for name in parameters.keys.sorted() {
                    gradients[name] = Tensor.normal(parameters[name]!.shape, using: &rng)
                }
                parameters = optimizer.update(parameters, gradients: gradients, state: &state, learningRate: 1e-2)
            }
        }
        let initial = Self.model(seed: 3).parameters
        var straight = initial, straightState = OptimizerState(), straightRNG = RandomGenerator(seed: 8)
        train(&straight, &straightState, &straightRNG, steps: 4)

        var resumed = initial, resumedState = OptimizerState(), resumedRNG = RandomGenerator(seed: 8)
        train(&resumed, &resumedState, &resumedRNG, steps: 2)
        try Checkpoint(models: ["fusion": ModelState(parameters: resumed)], optimizers: ["fusion": resumedState],
                       step: 2, random: resumedRNG).save(to: url)
        let loaded = try Checkpoint.load(from: url)
        resumed = try #require(loaded.models["fusion"]).parameters
        resumedState = try #require(loaded.optimizers["fusion"])
        resumedRNG = try #require(loaded.random)
        train(&resumed, &resumedState, &resumedRNG, steps: 2)

        #expect(Checkpoint(models: ["m": ModelState(parameters: resumed)], optimizers: ["m": resumedState])
            == Checkpoint(models: ["m": ModelState(parameters: straight)], optimizers: ["m": straightState]))
        #expect(resumedRNG == straightRNG)
    }

    /// A reader loading the checkpoint while it is rewritten over and over always sees one of
    /// the complete versions.
    @Test func concurrentReadersSeeOldOrNewNeverPartial() async throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let url = directory.appendingPathComponent("live.safetensors")
        let first = Checkpoint(models: ["m": ModelState(parameters: ["w": Support.random([64, 1024], seed: 1)])], step: 1)
        let second = Checkpoint(models: ["m": ModelState(parameters: ["w": Support.random([64, 1024], seed: 2)])], step: 2)
        try first.save(to: url)
        let writer = Task.detached {
            for i in 0..<16 { try (i % 2 == 0 ? second : first).save(to: url) }
        }
        let reader = Task.detached { () throws -> Int in
            var consistent = 0
            for _ in 0..<24 {
                let loaded = try Checkpoint.load(from: url)
                if loaded == first || loaded == second { consistent += 1 }
            }
            return consistent
        }
        try await writer.value
        #expect(try await reader.value == 24)
        #expect(Support.contents(of: directory) == ["live.safetensors"])
    }

    /// When the final rename fails (the destination is a directory), the temporary file is
    /// removed and the destination is untouched.
    @Test func failedReplaceLeavesNoTemporaryFiles() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let blocker = directory.appendingPathComponent("checkpoint.safetensors")
        try FileManager.default.createDirectory(at: blocker, withIntermediateDirectories: false)
        try Data("keep".utf8).write(to: blocker.appendingPathComponent("inside.txt"))
        #expect {
            try Self.sample().save(to: blocker)
        } throws: { error in
            guard let error = error as? SafeTensorsError, case .writeFailed(let file, _) = error else { return false }
            return file == blocker.path
        }
        #expect(Support.contents(of: directory) == ["checkpoint.safetensors"])
        #expect(Support.contents(of: blocker) == ["inside.txt"])
    }

    /// A save that fails part-way through writing (here the file-size limit, which binds root
    /// too) leaves the previous checkpoint intact and no temporary file. Runs in a child process
    /// so the limit does not affect other tests.
    @Test func failedWriteKeepsOldCheckpoint() async throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let url = directory.appendingPathComponent("checkpoint.safetensors")
        let old = Checkpoint(models: ["m": ModelState(parameters: ["w": Tensor([1, 2])])], step: 1)
        try old.save(to: url)
        let path = url.path
        await #expect(processExitsWith: .success) { [path = path as String] in
            signal(SIGXFSZ, SIG_IGN)
            var limit = rlimit(rlim_cur: 64 * 1024, rlim_max: 64 * 1024)
            setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &limit)
            let big = Checkpoint(models: ["m": ModelState(parameters: ["w": Tensor.zeros([256, 1024])])], step: 2)
            do {
                try big.save(to: URL(fileURLWithPath: path))
                exit(2)  // the write should have failed
            } catch {
                exit(error is SafeTensorsError ? 0 : 3)
            }
        }
        #expect(try Checkpoint.load(from: url) == old)
        #expect(Support.contents(of: directory) == ["checkpoint.safetensors"])
    }

    @Test func corruptCheckpointErrorNamesTheFile() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let url = directory.appendingPathComponent("corrupt_ckpt.safetensors")
        try Self.sample().save(to: url)
        let bytes = try Data(contentsOf: url)
        try bytes.prefix(bytes.count - 100).write(to: url)
        #expect {
            _ = try Checkpoint.load(from: url)
        } throws: { error in
            guard let error = error as? SafeTensorsError, case .truncated = error else { return false }
            return error.description.contains("corrupt_ckpt.safetensors")
        }
    }

    @Test func plainWeightsAreNotACheckpoint() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let url = directory.appendingPathComponent("weights.safetensors")
        try SafeTensors.write(["conv.weight": Tensor([1])], metadata: ["format": "pt"], to: url)
        #expect(throws: CheckpointError.notACheckpoint(file: url.path)) { _ = try Checkpoint.load(from: url) }
        #expect(CheckpointError.notACheckpoint(file: url.path).description.contains("weights.safetensors"))
    }

    @Test(arguments: [
        (["fusekit.rng": "1,2,3"], "fusekit.rng"),
        (["fusekit.step": "twelve"], "not an integer"),
        (["fusekit.models": "fusion"], "fusekit.models"),
        (["fusekit.checkpoint": "99"], "unsupported checkpoint format version"),
    ])
    func inconsistentMetadataIsReported(overrides: [String: String], reason: String) throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let url = directory.appendingPathComponent("tampered.safetensors")
        try Self.sample().save(to: url)
        var (tensors, metadata) = try SafeTensors.read(from: url)
        Self.markUnverified(&metadata)
        metadata.merge(overrides) { _, new in new }
        try SafeTensors.write(tensors, metadata: metadata, to: url)
        tensors.removeAll()
        #expect {
            _ = try Checkpoint.load(from: url)
        } throws: { error in
            guard let error = error as? CheckpointError, case .invalidContent(let file, let text) = error else { return false }
            return file == url.path && text.contains(reason) && error.description.contains("tampered.safetensors")
        }
    }

    @Test func strayTensorIsReported() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let url = directory.appendingPathComponent("stray.safetensors")
        try Checkpoint(models: ["fusion": ModelState()]).save(to: url)
        var (tensors, metadata) = try SafeTensors.read(from: url)
        Self.markUnverified(&metadata)
        tensors["detector.param.w"] = Tensor([1])
        metadata["fusekit.step"] = "0"
        try SafeTensors.write(tensors, metadata: metadata, to: url)
        #expect {
            _ = try Checkpoint.load(from: url)
        } throws: { error in
            "\(error)".contains("detector.param.w") && "\(error)".contains("stray.safetensors")
        }
    }

    @Test func modelNameWithDotIsRejected() throws {
        let directory = try Support.makeScratchDirectory()
        defer { Support.cleanUp(directory) }
        let url = directory.appendingPathComponent("dots.safetensors")
        #expect(throws: CheckpointError.self) {
            try Checkpoint(models: ["fusion.v2": ModelState()]).save(to: url)
        }
        #expect(Support.contents(of: directory).isEmpty)
    }
}
