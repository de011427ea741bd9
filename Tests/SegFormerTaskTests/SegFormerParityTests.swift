import Foundation
import FuseKit
import SegFormerTask
import ParityTestSupport
import Testing

/// SegFormer against a PyTorch transcription of the official code (TDFusion's copy of NVlabs'
/// MixVisionTransformer and SegFormerHead) and of the plugin's OHEM loss: the committed fixture
/// (Fixtures/segformer_reference.py --write, computed in float64) holds the weights, the input,
/// the labels and, for each case, the logits, the loss, the gradient of the loss with respect to
/// every parameter and the input, and after a training pass the BatchNorm statistics. Every
/// element is compared. The width is reduced; every code path runs (see the script).
@Suite struct SegFormerParityTests {
    static let fixtureURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/segformer_parity.safetensors")

    /// Logits and the loss; the gradients (through the whole network, float32 against float64).
    static let outputTolerance = TensorTolerance(relative: 1e-5, absolute: 2e-6)
    static let gradientTolerance = TensorTolerance(relative: 1e-4, absolute: 2e-5)

    struct Fixture {
        let tensors: [String: Tensor]
        let configuration: SegFormerConfiguration
        /// Case name: (GELU, OHEM threshold and minimum kept, training mode).
        let cases: [String: (gelu: GELUForm, ohem: (Float, Int)?, training: Bool)]

        struct Unreadable: Error { let what: String }

        init() throws {
            let (tensors, metadata) = try SafeTensors.read(from: SegFormerParityTests.fixtureURL)
            self.tensors = tensors
            func json(_ key: String) throws -> [String: Any] {
                guard let text = metadata[key], let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                    throw Unreadable(what: "metadata '\(key)'")
                }
                return object
            }
            let c = try json("configuration")
            func ints(_ key: String) throws -> [Int] {
                guard let value = c[key] as? [Int] else { throw Unreadable(what: "configuration '\(key)'") }
                return value
            }
            func int(_ key: String) throws -> Int {
                guard let value = c[key] as? Int else { throw Unreadable(what: "configuration '\(key)'") }
                return value
            }
            var configuration = SegFormerConfiguration()
            (configuration.classes, configuration.inputChannels) = (try int("classes"), try int("in_chans"))
            (configuration.embedDims, configuration.heads) = (try ints("dims"), try ints("heads"))
            (configuration.depths, configuration.reductionRatios) = (try ints("depths"), try ints("srs"))
            (configuration.mlpRatio, configuration.decoderEmbed) = (try int("mlp_ratio"), try int("decoder_embed"))
            // Parity is deterministic: no dropout, no stochastic depth.
            (configuration.dropout, configuration.dropPath) = (0, 0)
            self.configuration = configuration
            var cases: [String: (gelu: GELUForm, ohem: (Float, Int)?, training: Bool)] = [:]
            for (name, value) in try json("cases") {
                guard let entry = value as? [Any], entry.count == 3, let gelu = (entry[0] as? String).flatMap(GELUForm.init(rawValue:)),
                      let training = entry[2] as? Bool else { throw Unreadable(what: "case '\(name)'") }
                let ohem = (entry[1] as? [Double]).map { (Float($0[0]), Int($0[1])) }
                cases[name] = (gelu, ohem, training)
            }
            self.cases = cases
        }

        func prefixed(_ prefix: String) -> [String: Tensor] {
            Dictionary(uniqueKeysWithValues: tensors.compactMap { key, value in
                key.hasPrefix(prefix) ? (String(key.dropFirst(prefix.count)), value) : nil
            })
        }
    }

    @Test func theFixtureCoversEveryCase() throws {
        let fixture = try Fixture()
        #expect(Set(fixture.cases.keys) == ["exact", "tanh", "ohem", "train"])
        #expect(Set(fixture.cases.values.map(\.gelu)) == Set(GELUForm.allCases))
        #expect(fixture.cases.values.contains { $0.training } && fixture.cases.values.contains { $0.ohem != nil })
        // Spatial reduction on and off, a stage of two blocks.
        #expect(fixture.configuration.reductionRatios.contains(1) && fixture.configuration.reductionRatios.contains { $0 > 1 })
        #expect(fixture.configuration.depths.contains { $0 > 1 })
    }

    @Test(arguments: ["exact", "tanh", "ohem", "train"])
    func logitsLossGradientsAndStatisticsMatchPyTorch(_ name: String) throws {
        let fixture = try Fixture()
        let setting = try #require(fixture.cases[name])
        var configuration = fixture.configuration
        configuration.gelu = setting.gelu
        if let (threshold, minKept) = setting.ohem {
            (configuration.ohem, configuration.ohemThreshold, configuration.ohemMinKept) = (true, threshold, minKept)
        }
        let net = SegFormer(configuration)
        let state = try net.loadState(from: fixture.prefixed("state."))
        let x = try #require(fixture.tensors["input"]), labels = try #require(fixture.tensors["labels"])
        let targets = TaskTargets(segmentation: labels)
        let compare = ParityComparison(fixture.tensors)

        let logits = withoutGradient { net.logits(x, Scope(state, context: ForwardContext(training: setting.training))) }
        compare("logits", logits, "\(name).logits", Self.outputTolerance)
        let context = ForwardContext(training: setting.training)
        let (loss, gradient) = valueWithGradient(at: state.parameters.merging(["<input>": x]) { a, _ in a }) { values in
            var parameters = values
            let input = parameters.removeValue(forKey: "<input>")!
            return net.loss(input, targets: targets, Scope(parameters: parameters, buffers: state.buffers, context: context))
        }
        compare("loss", loss.reshaped([1]), "\(name).loss", Self.outputTolerance)
        let expectedGradients = fixture.prefixed("\(name).grad.")
        #expect(Set(expectedGradients.keys) == Set(state.parameters.keys).union(["input"]))
        for (key, g) in gradient { compare("gradients", g, "\(name).grad.\(key == "<input>" ? "input" : key)", Self.gradientTolerance) }
        if setting.training {
            var updated = state
            updated.absorb(context)
            let expectedBuffers = fixture.prefixed("\(name).buffer.")
            #expect(Set(expectedBuffers.keys) == Set(state.buffers.keys))
            for key in expectedBuffers.keys { compare("statistics", updated.buffers[key]!, "\(name).buffer.\(key)", Self.outputTolerance) }
        }
        print("segformer parity (\(name)): largest error / allowed error per kind: \(compare.summary)")
    }
}
