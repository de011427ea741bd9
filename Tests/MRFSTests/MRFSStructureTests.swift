import Foundation
import FuseKit
import FuseKitPlugins
import MRFS
import Testing

/// Parameter counts and official state-dict names of the named configurations, what `fusekit
/// inspect mrfs` prints, initialisation, loading and bad input.
@Suite struct MRFSStructureTests {
    static func shapes(_ module: any Module) -> [String: [Int]] {
        Dictionary(uniqueKeysWithValues: module.namedSpecs().map { ($0.name, $0.spec.shape) })
    }

    /// The counts of the official modules (Fixtures/README.md, `python3 mrfs_reference.py`): total
    /// parameters and state-dict tensors (with the 30 BatchNorm buffers) at 9 classes.
    @Test(arguments: [("b4", 134_963_348, 1914), ("b0", 10_909_140, 602), ("minimal", 1_554_180, 450)])
    func officialParameterCounts(_ variant: String, _ parameters: Int, _ tensors: Int) throws {
        let net = MRFS(try #require(MRFSConfiguration.variant(variant)))
        #expect(net.parameterCount == parameters)
        #expect(net.namedSpecs().count == tensors)
        #expect(net.namedSpecs().filter(\.spec.isBuffer).count == 30)
    }

    @Test func partCountsOfTheMinimalConfiguration() throws {
        let c = try #require(MRFSConfiguration.variant("minimal"))
        let specs = MRFS(c).namedSpecs().filter { !$0.spec.isBuffer }
        func count(_ prefix: String) -> Int { specs.filter { $0.name.hasPrefix(prefix) }.reduce(0) { $0 + Shape.count($1.spec.shape) } }
        #expect((0..<4).map { count("backbone.IGMAVCs.\($0).") } == [1_074, 3_826, 14_706, 57_970])
        #expect((0..<4).map { count("backbone.PCASCs.\($0).") } == [70_160, 83_488, 136_256, 279_168])
        #expect(count("decode_head.") == 32_777 && count("aux_head.") == 27_459)
        let rgbStream = ["patch_embed", "block", "norm"].flatMap { name in (1...4).map { "backbone.\(name)\($0)." } }
        #expect(rgbStream.reduce(0) { $0 + count($1) } == 423_648)
        #expect(rgbStream.reduce(0) { $0 + count($1.replacingOccurrences(of: "backbone.", with: "backbone.extra_")) } == 423_648)
        // The decoder embed 256 of mrfs.md's "larger variant".
        var b0 = try #require(MRFSConfiguration.variant("b0"))
        b0.decoderEmbed = 256
        #expect(MRFS(b0).parameterCount == 9_987_540)
    }

    @Test func officialStateDictNames() throws {
        let shapes = Self.shapes(MRFS(try #require(MRFSConfiguration.variant("minimal"))))
        let expected: [String: [Int]] = [
            "backbone.patch_embed1.proj.weight": [16, 3, 7, 7], "backbone.extra_patch_embed1.norm.bias": [16],
            "backbone.extra_block2.0.attn.kv.weight": [64, 32], "backbone.extra_block2.0.attn.sr.weight": [32, 32, 4, 4],
            "backbone.block1.0.mlp.dwconv.dwconv.weight": [64, 1, 3, 3], "backbone.extra_norm4.weight": [128],
            "backbone.IGMAVCs.0.MA.ca_gate.mlp.0.weight": [8, 32], "backbone.IGMAVCs.0.MA.ca_gate.mlp.2.bias": [32],
            "backbone.IGMAVCs.0.MA.sa_gate.mlp.0.weight": [16, 4, 1, 1], "backbone.IGMAVCs.0.MA.sa_gate.mlp.2.weight": [2, 16, 1, 1],
            "backbone.IGMAVCs.0.gate.0.weight": [8, 32], "backbone.IGMAVCs.0.gate.2.weight": [16, 8],
            "backbone.PCASCs.0.CA_x1toX2.q1.weight": [16, 16], "backbone.PCASCs.0.CA_x1toX2.kv2.weight": [32, 16],
            "backbone.PCASCs.0.CA_x1toX2.sr.weight": [16, 16, 8, 8], "backbone.PCASCs.0.CA_x1toX2.norm.weight": [16],
            "backbone.PCASCs.3.SA_x2.kv.weight": [256, 128], "backbone.PCASCs.3.proj.bias": [128],
            "decode_head.linear_c4.proj.weight": [64, 128], "decode_head.linear_fuse.0.weight": [64, 256, 1, 1],
            "decode_head.linear_fuse.0.bias": [64], "decode_head.linear_fuse.1.running_var": [64],
            "decode_head.linear_fuse.1.num_batches_tracked": [], "decode_head.linear_pred.weight": [9, 64, 1, 1],
            "aux_head.PointConv_4_ir.pconv.0.weight": [16, 128, 1, 1], "aux_head.PointConv_1_rgb.pconv.1.running_mean": [16],
            "aux_head.CNN_fuse.0.weight": [16, 134, 3, 3], "aux_head.CNN_fuse.1.weight": [16], "aux_head.CNN_fuse.3.weight": [3, 16, 1, 1],
        ]
        for (name, shape) in expected { #expect(shapes[name] == shape, "\(name): \(shapes[name].map { "\($0)" } ?? "missing")") }
        // No q/kv biases in PC-Att; no spatial reduction in stage 4.
        #expect(shapes["backbone.PCASCs.0.SA_x1.q.bias"] == nil && shapes["backbone.PCASCs.0.CA_x2toX1.kv2.bias"] == nil)
        #expect(shapes["backbone.PCASCs.3.SA_x1.sr.weight"] == nil && shapes["backbone.block4.0.attn.sr.weight"] == nil)
        // The fusion branch alone: the backbone without PC-Att and the fusion head, same names.
        let fusion = Self.shapes(MRFSFusion(try #require(MRFSConfiguration.variant("minimal"))))
        #expect(fusion.keys.allSatisfy { shapes[$0] == fusion[$0] })
        #expect(Set(shapes.keys).subtracting(fusion.keys).allSatisfy { $0.hasPrefix("backbone.PCASCs.") || $0.hasPrefix("decode_head.") })
    }

    /// What `fusekit inspect mrfs --param variant=...` prints as the total.
    @Test(arguments: [("b4", 134_963_348, "134,963,348"), ("b0", 10_909_140, "10,909,140"), ("minimal", 1_554_180, "1,554,180")])
    func inspectPrintsTheOfficialCounts(_ variant: String, _ parameters: Int, _ printed: String) throws {
        let descriptor = try StandardPlugins.registry().descriptor("mrfs")
        let summary = try descriptor.summary(try PluginParameters.parsing(["variant=\(variant)"], plugin: "mrfs"), height: 64, width: 64)
        #expect(summary.parameters == parameters)
        #expect(summary.text(maxDepth: 1).contains("Total parameters: \(printed)"))
    }

    @Test func officialInitialisation() throws {
        let net = MRFS(try #require(MRFSConfiguration.variant("minimal")))
        let state = net.initialState(seed: 1)
        func std(_ name: String) -> Double {
            let v = state.parameters[name]!.scalars.map(Double.init)
            let mean = v.reduce(0, +) / Double(v.count)
            return (v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(v.count)).squareRoot()
        }
        // Backbone Linear layers (MiT, IGM-Att, PC-Att): truncated normal 0.02, zero bias.
        #expect(abs(std("backbone.PCASCs.3.SA_x1.q.weight") - 0.02) < 0.002)
        #expect(abs(std("backbone.IGMAVCs.3.gate.0.weight") - 0.02) < 0.003)
        #expect(state.parameters["backbone.IGMAVCs.2.MA.ca_gate.mlp.0.bias"]!.scalars.allSatisfy { $0 == 0 })
        // Head convolutions: N(0, 2 / fan_in); BatchNorm 1 and 0, running variance 1.
        #expect(abs(std("aux_head.CNN_fuse.0.weight") - (2.0 / (134 * 9)).squareRoot()) < 0.004)
        #expect(abs(std("decode_head.linear_fuse.0.weight") - (2.0 / 256).squareRoot()) < 0.006)
        #expect(state.parameters["aux_head.CNN_fuse.1.weight"]!.scalars.allSatisfy { $0 == 1 })
        #expect(state.buffers["decode_head.linear_fuse.1.running_var"]!.scalars.allSatisfy { $0 == 1 })
    }

    @Test func outputsAndBadInputs() throws {
        let net = MRFS(try #require(MRFSConfiguration.variant("minimal")))
        let state = net.initialState(seed: 2)
        var rng = RandomGenerator(seed: 3)
        let input = JointInput(infrared: Tensor.uniform([1, 1, 40, 52], using: &rng), visible: Tensor.uniform([1, 3, 40, 52], using: &rng))
        let out = withoutGradient { net.forward(input, Scope(state)) }
        #expect(out.fused.shape == [1, 3, 40, 52] && out.logits.shape == [1, 9, 40, 52])
        #expect(out.auxiliary[MRFS.quarterLogits]?.shape == [1, 9, 10, 13])
        #expect(out.fused.scalars.allSatisfy { $0 > 0 && $0 < 1 })
        #expect(net.minimumSide == 29)
        #expect(net.kind == .segmentation(classes: 9) && net.visibleChannels == 3 && net.fusedChannels == 3)
        // Parameters that cannot build a model are refused with the parameter's name.
        let registry = StandardPlugins.registry()
        #expect(throws: (any Error).self) { _ = try registry.makeJoint("mrfs", try PluginParameters.parsing(["heads=[3,1,2,4]", "variant=minimal"], plugin: "mrfs")) }
    }

    @Test func officialLayoutStateDictLoads() throws {
        let net = MRFS(try #require(MRFSConfiguration.variant("minimal")))
        let saved = net.initialState(seed: 3).stateDict
        let loaded = try net.loadState(from: saved)
        #expect(loaded.parameters.count == 420 && loaded.buffers.count == 30)
        var wrong = saved
        wrong["decode_head.linear_pred.weight"] = Tensor.zeros([5, 64, 1, 1])
        #expect(throws: StateDictError.shapeMismatch(key: "decode_head.linear_pred.weight", expected: [9, 64, 1, 1], found: [5, 64, 1, 1])) {
            _ = try net.loadState(from: wrong)
        }
    }
}
