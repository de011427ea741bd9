import Foundation
import FuseKit
import RestormerFusion
import Testing

/// Parity of the Restormer plugins with the PyTorch reference (shared/reference/tdfusion_ref.py),
/// through fixtures generated once by Fixtures/make_restormer_fixtures.py.
@Suite struct RestormerParityTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func load(_ name: String) throws -> [String: Tensor] {
        try SafeTensors.read(from: fixtures.appendingPathComponent(name)).tensors
    }

    static func prefixed(_ tensors: [String: Tensor], _ prefix: String) -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: tensors.compactMap { key, value in
            key.hasPrefix(prefix) ? (String(key.dropFirst(prefix.count)), value) : nil
        })
    }

    static func maxAbsDifference(_ a: Tensor, _ b: Tensor) -> Float {
        precondition(a.shape == b.shape, "\(a.shape) vs \(b.shape)")
        return zip(a.scalars, b.scalars).reduce(0) { Swift.max($0, Swift.abs($1.0 - $1.1)) }
    }

    @Test func officialParameterCounts() {
        #expect(RestormerFusion().parameterCount == 59_856)
        #expect(RestormerLossGenerator().parameterCount == 44_529)
    }

    @Test func fusionNetAndLossGeneratorMatchPyTorch() throws {
        let fixture = try Self.load("restormer_parity.safetensors")
        let f = RestormerFusion(), g = RestormerLossGenerator()
        let stateF = try f.loadState(from: Self.prefixed(fixture, "F."))
        let stateG = try g.loadState(from: Self.prefixed(fixture, "G."))
        let x = fixture["input"]!
        let fused = f.fuse(x, Scope(stateF))
        let weights = g.weights(x, Scope(stateG))
        let fusedError = Self.maxAbsDifference(fused, fixture["fused"]!)
        let weightError = Self.maxAbsDifference(weights, fixture["weights"]!)
        print("parity with PyTorch: F max |difference| \(fusedError), G max |difference| \(weightError)")
        #expect(fusedError <= 1e-5, "F: max |difference| \(fusedError)")
        #expect(weightError <= 1e-5, "G: max |difference| \(weightError)")
    }

    @Test func fusionLossAndItsGradientMatchPyTorch() throws {
        let fixture = try Self.load("restormer_parity.safetensors")
        let f = RestormerFusion()
        let stateF = try f.loadState(from: Self.prefixed(fixture, "F."))
        let x = fixture["input"]!, w = fixture["weights"]!
        let (loss, gradient) = valueWithGradient(at: stateF.parameters) { p in
            FusionLoss()(fused: f.fuse(x, Scope(parameters: p)), sources: x, weights: w)
        }
        let expected = fixture["loss"]!.item
        #expect(Swift.abs(loss.item - expected) <= 1e-4 * Swift.abs(expected), "loss \(loss.item) vs \(expected)")
        let expectedGradient = Self.prefixed(fixture, "dF.")
        #expect(Set(expectedGradient.keys) == Set(gradient.keys))
        // Relative error of the whole gradient and of each parameter's gradient.
        var diff = 0.0, norm = 0.0
        for (name, g) in gradient {
            let e = expectedGradient[name]!
            var d = 0.0, n = 0.0
            for (u, v) in zip(g.scalars, e.scalars) { d += Double(u - v) * Double(u - v); n += Double(v) * Double(v) }
            diff += d
            norm += n
            #expect(d.squareRoot() <= 1e-4 * Swift.max(n.squareRoot(), 1e-3), "\(name): relative error \(d.squareRoot() / Swift.max(n.squareRoot(), 1e-12))")
        }
        print("parity with PyTorch: fusion loss \(loss.item) vs \(expected), gradient relative error \((diff / norm).squareRoot())")
        #expect((diff / norm).squareRoot() <= 1e-4)
        // The official code's squared-weight form.
        let squared = withoutGradient {
            FusionLoss(form: .squaredWeights)(fused: f.fuse(x, Scope(stateF)), sources: x, weights: w)
        }
        let expectedSquared = fixture["loss_squared_weights"]!.item
        #expect(Swift.abs(squared.item - expectedSquared) <= 1e-4 * Swift.abs(expectedSquared))
    }

    @Test func officialStyleCheckpointLoadsAndBadOnesAreNamed() throws {
        let official = try Self.load("refusion_official_style.safetensors")
        #expect(official.keys.contains("project_in_1.conv.weight"))
        let small = RestormerFusion(.with { $0.dim = 8; $0.blocks = 1; $0.heads = 2 })
        let state = try small.loadState(from: official, alias: RestormerFusion.officialAlias)
        #expect(state.parameters.count == small.namedSpecs().count)
        #expect(throws: StateDictError.unexpected(keys: ["project_in_1.conv.weight"])) {
            var one = official.filter { !$0.key.hasSuffix(".conv.weight") }
            one["project_in_1.conv.weight"] = official["project_in_1.conv.weight"]
            _ = try small.loadState(from: one)
        }
        let error = #expect(throws: StateDictError.self) {
            _ = try RestormerFusion().loadState(from: official, alias: RestormerFusion.officialAlias)
        }
        #expect(error?.description == "key 'FM.project_E.weight' has shape [64, 16, 1, 1], the model expects [128, 32, 1, 1]"
                || error?.description.contains("the model expects") == true)
    }

    /// The same official-style weights as saved by torch.save (Fixtures/make_official_pth_fixture.py):
    /// a plain state dict whose duplicated `X.conv.weight` entries share storage with `X.weight`.
    @Test func officialPthCheckpointLoadsDirectly() throws {
        let url = Self.fixtures.appendingPathComponent("refusion_official_style.pth")
        let weights = try WeightsFile.read(WeightsReference(path: url.path))
        #expect(weights.format == .torchZip && weights.selectedPrefix == nil)
        let official = try Self.load("refusion_official_style.safetensors")
        #expect(weights.tensors.keys.sorted() == official.keys.sorted())
        for (name, tensor) in official {
            #expect(weights.tensors[name]?.scalars.map(\.bitPattern) == tensor.scalars.map(\.bitPattern), "\(name)")
        }
        let small = RestormerFusion(.with { $0.dim = 8; $0.blocks = 1; $0.heads = 2 })
        let state = try small.loadState(from: weights.tensors, alias: RestormerFusion.officialAlias)
        #expect(state.parameters.count == small.namedSpecs().count)
        var rng = RandomGenerator(seed: 5)
        let x = Tensor.uniform([1, 2, 12, 16], low: 0, high: 1, using: &rng)
        let reference = try small.loadState(from: official, alias: RestormerFusion.officialAlias)
        #expect(small.fuse(x, Scope(state)).scalars == small.fuse(x, Scope(reference)).scalars)
    }

    @Test func registryBuildsBothPlugins() throws {
        var registry = PluginRegistry()
        RestormerFusionPlugin.register(in: &registry)
        let f = try registry.makeFusion("restormer-fusion", PluginParameters(["dim": .int(8), "heads": .int(4), "blocks": .int(1)]))
        #expect(f.namedSpecs().contains { $0.name == "decoder.0.attn.qkv.weight" && $0.spec.shape == [48, 16, 1, 1] })
        let error = #expect(throws: PluginError.self) { _ = try registry.makeFusion("restormer-fuson") }
        #expect(error?.description.contains("did you mean 'restormer-fusion'?") == true)
        let bad = #expect(throws: PluginError.self) { _ = try registry.makeLossGenerator("restormer-lpn", PluginParameters(["dims": .int(8)])) }
        #expect(bad?.description == "restormer-lpn: unknown parameter 'dims'; did you mean 'dim'?")
        let heads = #expect(throws: PluginError.self) { _ = try registry.makeFusion("restormer-fusion", PluginParameters(["heads": .int(5)])) }
        #expect(heads?.description == "restormer-fusion: parameter 'heads': 5 heads must divide dim 16")
    }

    @Test func gradientChecksOfTheBlocks() {
        // Tiny configuration: every parameter of F and G checked in both modes.
        var rng = RandomGenerator(seed: 3)
        let x = Tensor.uniform([1, 2, 5, 6], using: &rng)
        let tiny = RestormerConfiguration.with { $0.dim = 4; $0.blocks = 1; $0.heads = 2 }
        let f = RestormerFusion(tiny), g = RestormerLossGenerator(tiny)
        let pf = f.initialState(seed: 1).parameters
        var pg = g.initialState(seed: 2).parameters
        // PReLU has a kink at 0 that finite differences cannot straddle; a slope of 1 removes it
        // while its own parameter stays checked.
        pg["out2.weight"] = Tensor([1])
        let rf = GradientCheck.check("restormer-fusion", parameters: pf.merging(["input": x]) { a, _ in a }) { d in
            var p = d
            let input = p.removeValue(forKey: "input")!
            return f.fuse(input, Scope(parameters: p))
        }
        #expect(rf.passed, "\(rf)")
        let rg = GradientCheck.check("restormer-lpn", parameters: pg.merging(["input": x]) { a, _ in a }) { d in
            var p = d
            let input = p.removeValue(forKey: "input")!
            return g.weights(input, Scope(parameters: p))
        }
        #expect(rg.passed, "\(rg)")
    }
}
