import FuseKit
import FuseKitPlugins
import Foundation
import Testing
import MAFS

/// The network's parameter counts and state-dict names against the official ones
/// (Tests/MAFSTests/Fixtures/README.md, section 1: `python3 mafs_reference.py`, checked against
/// the official modules by verify_official.py).
@Suite struct MAFSStructureTests {
    static func configuration(_ variant: String) throws -> MAFSConfiguration {
        try MAFSFixture.network(variant).configuration
    }

    @Test func officialCountIsTheReleasedOne() throws {
        let net = MAFSNetwork(try Self.configuration("official"))
        #expect(net.parameterCount == 129_187_828)
        #expect(net.namedSpecs().count == 2981)
    }

    @Test func minimalCountMatchesTheTranscription() throws {
        let net = MAFSNetwork(try Self.configuration("minimal"))
        #expect(net.parameterCount == 571_535)
        #expect(net.namedSpecs().count == 1159)
    }

    /// Every parameter of the minimal network has a gradient in the fixture and every buffer a
    /// post-training value, under the same name and shape.
    @Test func minimalNamesAndShapesAreTheOfficialOnes() throws {
        let fixture = try MAFSFixture.tensors()
        let net = MAFSNetwork(try Self.configuration("minimal"))
        var expected: [String: [Int]] = [:]
        for (key, value) in fixture {
            if key.hasPrefix("eval.grad.") { expected[String(key.dropFirst("eval.grad.".count))] = value.shape }
            if key.hasPrefix("train.buffer.") { expected[String(key.dropFirst("train.buffer.".count))] = value.shape }
        }
        let ours = Dictionary(uniqueKeysWithValues: net.namedSpecs().map { ($0.name, $0.spec.shape) })
        #expect(Set(ours.keys).subtracting(expected.keys).sorted() == [])
        #expect(Set(expected.keys).subtracting(ours.keys).sorted() == [])
        for (name, shape) in ours where expected[name] != nil {
            #expect(expected[name]! == shape, "\(name): \(shape) vs \(expected[name]!)")
        }
    }

    /// What `fusekit inspect mafs --param variant=...` prints: the total of the summarised tree
    /// (one forward pass of a random 64x64 pair), and the output shapes.
    @Test(arguments: [("official", 129_187_828, 15), ("minimal", 571_535, 9)])
    func inspectSummary(_ variant: String, _ count: Int, _ classes: Int) throws {
        let descriptor = try StandardPlugins.registry().descriptor("mafs")
        let summary = try descriptor.summary(PluginParameters(["variant": .string(variant)]), height: 64, width: 64)
        #expect(summary.parameters == count)
        #expect(summary.text().contains(MAFSStructureTests.grouped(count)))
        #expect(summary.root.outputShapes.contains([1, classes, 64, 64]) && summary.root.outputShapes.contains([1, 1, 64, 64]))
    }

    /// 129187828 as the summary prints it (thousands grouped by commas).
    static func grouped(_ n: Int) -> String {
        let digits = Array(String(n))
        return String(digits.enumerated().flatMap { i, d in (i > 0 && (digits.count - i) % 3 == 0) ? [",", d] : [d] })
    }

    @Test func stageOneHeadsAreFusionDecoders() throws {
        var c = try Self.configuration("minimal")
        c.irHead = .inn
        let plain = MAFSNetwork(try Self.configuration("minimal"))
        let decoder = plain.namedSpecs().filter { $0.name.hasPrefix("fuse_decoder.") && !$0.spec.isBuffer }
            .reduce(0) { $0 + $1.spec.shape.reduce(1, *) }
        #expect(MAFSNetwork(c).parameterCount == plain.parameterCount + 2 * decoder)
        c.visibleHead = .fusionDecoder
        #expect(MAFSNetwork(c).parameterCount == plain.parameterCount + decoder)
    }

    /// With its own visible head, stage I does not read (so does not train) stage II's fuse_decoder;
    /// with `visible-head: fusion-decoder` it does.
    @Test func stageOneLeavesTheFusionDecoderAloneWithItsOwnHead() throws {
        var rng = RandomGenerator(seed: 3)
        let input = JointInput(infrared: Tensor.uniform([1, 1, 32, 32], using: &rng), visible: Tensor.uniform([1, 3, 32, 32], using: &rng))
        for (head, readsFusionDecoder) in [("own", false), ("fusion-decoder", true)] {
            let net = try MAFSFixture.network("minimal", ["ir-head": .string("inn"), "visible-head": .string(head)])
            let state = net.initialState(seed: 1)
            let names = state.parameters.keys.filter { $0.hasPrefix("fuse_decoder.") }.sorted()
            let (_, gradient) = valueWithGradient(at: state.parameters) { p in
                let rec = net.reconstruct(input, Scope(parameters: p, buffers: state.buffers, context: ForwardContext(training: true, rng: RandomGenerator(seed: 1))))
                return rec.visible.sum() + rec.infrared.sum()
            }
            let touched = names.contains { name in gradient[name]?.scalars.contains { $0 != 0 } ?? false }
            #expect(touched == readsFusionDecoder, "visible-head \(head)")
        }
    }
}

/// Sizes that are not multiples of 32 are padded inside and cropped back.
@Suite struct MAFSInputSizeTests {
    @Test func anySizeIsPaddedAndCropped() throws {
        let net = try MAFSFixture.network("minimal", ["ir-head": .string("inn")])
        let scope = Scope(net.initialState(seed: 1))
        var rng = RandomGenerator(seed: 2)
        let input = JointInput(infrared: Tensor.uniform([1, 1, 40, 70], using: &rng), visible: Tensor.uniform([1, 3, 40, 70], using: &rng))
        let out = net.forward(input, scope)
        #expect(out.fused.shape == [1, 1, 40, 70] && out.logits.shape == [1, 9, 40, 70])
        #expect(out.auxiliary.values.allSatisfy { $0.shape[2] == 40 && $0.shape[3] == 70 })
        let rec = net.reconstruct(input, scope)
        #expect(rec.infrared.shape == [1, 1, 40, 70] && rec.visible.shape == [1, 1, 40, 70])
        let exact = JointInput(infrared: input.infrared.sliced([0..<1, 0..<1, 0..<32, 0..<64]), visible: input.visible.sliced([0..<1, 0..<3, 0..<32, 0..<64]))
        #expect(net.forward(exact, scope).fused.shape == [1, 1, 32, 64])
    }
}
