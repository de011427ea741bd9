import Foundation
import FuseKit
import SegFormerTask
import Testing

/// Parameter names, shapes and counts (the official ones), predictions, losses and registration.
@Suite struct SegFormerStructureTests {
    static func shapes(_ module: any Module) -> [String: [Int]] {
        Dictionary(uniqueKeysWithValues: module.namedSpecs().map { ($0.name, $0.spec.shape) })
    }

    @Test func officialParameterCountsAndNames() {
        // PyTorch's counts of TDFusion's SegFormer (nets/Segformer.py, one input channel):
        // sum(p.numel() for p in model.parameters()) and len(model.state_dict()).
        let b0 = SegFormer(SegFormerConfiguration.variant("b0")!)
        #expect(b0.classes == 9 && b0.inputChannels == 1)
        #expect(b0.parameterCount == 3_713_321)
        #expect(b0.namedSpecs().count == 192)
        var b1 = SegFormerConfiguration.variant("b1")!
        #expect(SegFormer(.with { $0.classes = 6 }).parameterCount == 3_712_550)
        #expect(SegFormer(b1).parameterCount == 13_673_289)
        b1.classes = 6
        #expect(SegFormer(b1).parameterCount == 13_672_518)

        let shapes = Self.shapes(b0)
        let expected: [String: [Int]] = [
            "backbone.patch_embed1.proj.weight": [32, 1, 7, 7], "backbone.patch_embed1.proj.bias": [32],
            "backbone.patch_embed1.norm.weight": [32], "backbone.patch_embed2.proj.weight": [64, 32, 3, 3],
            "backbone.block1.0.norm1.weight": [32], "backbone.block1.0.attn.q.weight": [32, 32], "backbone.block1.0.attn.q.bias": [32],
            "backbone.block1.0.attn.kv.weight": [64, 32], "backbone.block1.0.attn.sr.weight": [32, 32, 8, 8],
            "backbone.block1.0.attn.norm.bias": [32], "backbone.block1.0.attn.proj.weight": [32, 32],
            "backbone.block1.0.norm2.bias": [32], "backbone.block1.1.mlp.fc1.weight": [128, 32],
            "backbone.block1.1.mlp.dwconv.dwconv.weight": [128, 1, 3, 3], "backbone.block1.1.mlp.dwconv.dwconv.bias": [128],
            "backbone.block1.1.mlp.fc2.weight": [32, 128], "backbone.norm1.weight": [32],
            "backbone.block3.1.attn.sr.weight": [160, 160, 2, 2], "backbone.block4.1.attn.kv.weight": [512, 256],
            "backbone.norm4.bias": [256],
            "decode_head.linear_c4.proj.weight": [256, 256], "decode_head.linear_c1.proj.weight": [256, 32],
            "decode_head.linear_c2.proj.bias": [256], "decode_head.linear_fuse.conv.weight": [256, 1024, 1, 1],
            "decode_head.linear_fuse.bn.weight": [256], "decode_head.linear_fuse.bn.running_mean": [256],
            "decode_head.linear_fuse.bn.running_var": [256], "decode_head.linear_fuse.bn.num_batches_tracked": [],
            "decode_head.linear_pred.weight": [9, 256, 1, 1], "decode_head.linear_pred.bias": [9],
        ]
        for (name, shape) in expected { #expect(shapes[name] == shape, "\(name): \(shapes[name].map { "\($0)" } ?? "missing")") }
        // Stage 4 has no spatial reduction, hence no `sr` nor `norm` in its attention.
        #expect(shapes["backbone.block4.0.attn.sr.weight"] == nil && shapes["backbone.block4.0.attn.norm.weight"] == nil)
        #expect(shapes["decode_head.linear_fuse.conv.bias"] == nil)
        // The BatchNorm statistics are buffers; everything else trains.
        #expect(b0.namedSpecs().filter(\.spec.isBuffer).map(\.name).sorted()
                == ["decode_head.linear_fuse.bn.num_batches_tracked", "decode_head.linear_fuse.bn.running_mean", "decode_head.linear_fuse.bn.running_var"])
    }

    @Test func officialInitialisation() {
        let state = SegFormer().initialState(seed: 1)
        func std(_ name: String) -> Double {
            let v = state.parameters[name]!.scalars.map(Double.init)
            let mean = v.reduce(0, +) / Double(v.count)
            return (v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(v.count)).squareRoot()
        }
        // Linear layers: truncated normal, std 0.02, zero bias.
        #expect(Swift.abs(std("backbone.block2.0.mlp.fc1.weight") - 0.02) < 0.002)
        #expect(state.parameters["backbone.block2.0.attn.q.bias"]!.scalars.allSatisfy { $0 == 0 })
        // Convolutions: normal with std sqrt(2 / fan_out) (fan_out = 7·7·32 for the first embedding,
        // 3·3 for the depthwise ones), zero bias.
        #expect(Swift.abs(std("backbone.patch_embed1.proj.weight") - (2.0 / (49 * 32)).squareRoot()) < 0.004)
        #expect(Swift.abs(std("backbone.block1.0.mlp.dwconv.dwconv.weight") - (2.0 / 9).squareRoot()) < 0.05)
        #expect(state.parameters["backbone.block1.0.attn.sr.bias"]!.scalars.allSatisfy { $0 == 0 })
        // LayerNorm and BatchNorm: weight 1, bias 0.
        #expect(state.parameters["backbone.norm3.weight"]!.scalars.allSatisfy { $0 == 1 })
        #expect(state.parameters["decode_head.linear_fuse.bn.bias"]!.scalars.allSatisfy { $0 == 0 })
        #expect(state.buffers["decode_head.linear_fuse.bn.running_var"]!.scalars.allSatisfy { $0 == 1 })
    }

    @Test func officialStyleStateDictLoads() throws {
        let net = SegFormer()
        let saved = net.initialState(seed: 3).stateDict
        let loaded = try net.loadState(from: saved)
        #expect(loaded.parameters.count == 189 && loaded.buffers.count == 3)
        var wrong = saved
        wrong["decode_head.linear_pred.weight"] = Tensor.zeros([6, 256, 1, 1])
        #expect(throws: StateDictError.shapeMismatch(key: "decode_head.linear_pred.weight", expected: [9, 256, 1, 1], found: [6, 256, 1, 1])) {
            _ = try net.loadState(from: wrong)
        }
    }

    @Test func tinyConvSegmenterStructure() {
        let net = TinyConvSegmenter()
        // nn.Sequential(Conv2d(1, 16, 3, padding=1), ReLU, Conv2d(16, 16, 3, padding=1), ReLU, Conv2d(16, 9, 1)).
        #expect(Self.shapes(net) == ["0.weight": [16, 1, 3, 3], "0.bias": [16], "2.weight": [16, 16, 3, 3], "2.bias": [16],
                                     "4.weight": [9, 16, 1, 1], "4.bias": [9]])
        #expect(net.parameterCount == 160 + 2_320 + 153)
        #expect(net.kind == .segmentation(classes: 9) && net.inputChannels == 1)
    }

    @Test func predictionsAreClassMapsAtTheInputSize() {
        let net = SegFormer(.with {
            ($0.classes, $0.inputChannels) = (5, 2)
            ($0.embedDims, $0.heads, $0.depths, $0.decoderEmbed) = ([8, 8, 16, 16], [1, 2, 2, 4], [1, 1, 1, 1], 16)
        })
        let state = net.initialState(seed: 2)
        var rng = RandomGenerator(seed: 3)
        let images = Tensor.uniform([2, 2, 38, 53], using: &rng)
        let logits = net.logits(images, Scope(state))
        #expect(logits.shape == [2, 5, 10, 14])
        guard case .segmentation(let maps) = net.predict(images, Scope(state)) else { Issue.record("not a class map"); return }
        #expect(maps.shape == [2, 38, 53])
        #expect(maps.scalars.allSatisfy { $0 >= 0 && $0 < 5 && $0 == $0.rounded() })
        let expected = logits.resizedBilinear(to: (38, 53), alignCorners: true).argmax(axis: 1)
        #expect(maps.scalars == expected.scalars)

        let tiny = TinyConvSegmenter(.with { ($0.classes, $0.inputChannels) = (3, 2) })
        guard case .segmentation(let tinyMaps) = tiny.predict(images, Scope(tiny.initialState(seed: 4))) else { Issue.record("not a class map"); return }
        #expect(tinyMaps.shape == [2, 38, 53])
    }
}

/// The cross-entropy with ignored pixels and resizing, and hard example mining on hand-made cases.
@Suite struct SegmentationLossTests {
    @Test func crossEntropyIgnoresLabelAndAveragesOverTheRest() {
        // One image, two classes, three pixels: logits (0, 0), (log 3, 0), (2, -2); labels 0, 255, 1.
        let logits = Tensor(shape: [1, 2, 1, 3], scalars: [0, logf(3), 2, 0, 0, -2])
        let labels = Tensor(shape: [1, 1, 3], scalars: [0, 255, 1])
        let loss = SegmentationLoss()(logits: logits, labels: labels).item
        let expected = (logf(2) + (logf(expf(2) + expf(-2)) + 2)) / 2
        #expect(Swift.abs(loss - expected) < 1e-5, "\(loss) vs \(expected)")
        // Every pixel ignored: loss 0.
        #expect(SegmentationLoss()(logits: logits, labels: Tensor.full([1, 1, 3], 255)).item == 0)
        // Another ignore index.
        let other = SegmentationLoss(ignoreIndex: 1)(logits: logits, labels: Tensor(shape: [1, 1, 3], scalars: [0, 1, 1])).item
        #expect(Swift.abs(other - logf(2)) < 1e-5)
    }

    @Test func logitsAreResizedWithAlignedCornersToTheLabelSize() {
        var rng = RandomGenerator(seed: 7)
        let logits = Tensor.normal([2, 4, 3, 5], using: &rng)
        let labels = Tensor(shape: [2, 9, 13], scalars: (0..<(2 * 9 * 13)).map { (i: Int) -> Float in i % 5 == 0 ? 255 : Float(i % 4) })
        let loss = SegmentationLoss()(logits: logits, labels: labels).item
        let reference = Losses.crossEntropy(logits: logits.resizedBilinear(to: (9, 13), alignCorners: true), targets: labels, ignoreIndex: 255).item
        #expect(Swift.abs(loss - reference) < 1e-6)
        let misaligned = Losses.crossEntropy(logits: logits.resizedBilinear(to: (9, 13), alignCorners: false), targets: labels, ignoreIndex: 255).item
        #expect(Swift.abs(loss - misaligned) > 1e-4)
    }

    /// Eight pixels of a two-class problem, labelled 0, whose probabilities of class 0 are given;
    /// the last one is ignored.
    static let probabilities: [Float] = [0.9, 0.8, 0.6, 0.5, 0.3, 0.95, 0.2, 0.1]
    static var logits: Tensor {
        Tensor(shape: [1, 2, 1, 8], scalars: probabilities.map { logf($0) } + probabilities.map { logf(1 - $0) })
    }
    static let labels = Tensor(shape: [1, 1, 8], scalars: [0, 0, 0, 0, 0, 0, 0, 255])
    static func meanLoss(_ kept: [Float]) -> Float { kept.map { -logf($0) }.reduce(0, +) / Float(kept.count) }

    @Test(arguments: [
        // More hard pixels (p < 0.7: 0.6, 0.5, 0.3, 0.2) than the minimum: exactly the hard ones.
        (2, [Float(0.6), 0.5, 0.3, 0.2]),
        // Default minimum, 7 labelled / 16 -> 1: the hard ones.
        (0, [0.6, 0.5, 0.3, 0.2]),
        // Not more hard pixels than the minimum: the minimum's worth of hardest pixels (the
        // ignored 0.1 never counts).
        (4, [0.6, 0.5, 0.3, 0.2]),
        (5, [0.8, 0.6, 0.5, 0.3, 0.2]),
        // A minimum above the labelled count: every labelled pixel.
        (100, [0.9, 0.8, 0.6, 0.5, 0.3, 0.95, 0.2]),
    ])
    func hardExampleMiningKeepsTheHardPixels(minKept: Int, kept: [Float]) {
        let loss = SegmentationLoss(hardExampleMining: HardExampleMining(threshold: 0.7, minKept: minKept))
        let value = loss(logits: Self.logits, labels: Self.labels).item
        let expected = Self.meanLoss(kept)
        #expect(Swift.abs(value - expected) < 1e-5, "min kept \(minKept): \(value) vs \(expected)")
    }

    @Test func hardExampleMiningSendsGradientsOnlyToKeptPixels() {
        let loss = SegmentationLoss(hardExampleMining: HardExampleMining(threshold: 0.7, minKept: 5))
        let (_, gradients) = valueWithGradient(at: [Self.logits]) { loss(logits: $0[0], labels: Self.labels) }
        let g = gradients[0].scalars
        // Kept: pixels 1 (0.8), 2, 3, 4, 6; not kept: 0 (0.9), 5 (0.95), 7 (ignored).
        for pixel in 0..<8 {
            let touched = g[pixel] != 0 || g[8 + pixel] != 0
            #expect(touched == [1, 2, 3, 4, 6].contains(pixel), "pixel \(pixel)")
        }
        // d/dz0 of -log softmax_0 over 5 kept pixels: (p - 1) / 5.
        #expect(Swift.abs(g[4] - (0.3 - 1) / 5) < 1e-5)
    }

    @Test func hardestPixelsAreSelectedAsBySorting() {
        // Quantised random losses (many ties) with a threshold no pixel reaches: the selection is
        // the `minKept` largest losses, ties taken in pixel order, as a stable sort gives.
        var rng = RandomGenerator(seed: 17)
        for trial in 0..<20 {
            let count = 1 + rng.nextInt(below: 300)
            let losses = (0..<count).map { _ in Float(rng.nextInt(below: 12)) / 4 }
            let labelled = (0..<count).map { _ in rng.nextInt(below: 5) != 0 }
            let minKept = 1 + rng.nextInt(below: count + 5)
            let (mask, kept) = HardExampleMining(threshold: 1e-6, minKept: minKept).selection(losses: losses, labelled: labelled)
            let order = (0..<count).filter { labelled[$0] }.sorted { losses[$0] > losses[$1] || (losses[$0] == losses[$1] && $0 < $1) }
            var expected = [Float](repeating: 0, count: count)
            for i in order.prefix(minKept) { expected[i] = 1 }
            #expect(mask == expected && kept == Swift.min(minKept, order.count), "trial \(trial)")
        }
    }

    @Test func thresholdOneKeepsEveryImperfectPixel() {
        let mining = HardExampleMining(threshold: 1, minKept: 1)
        let selection = mining.selection(losses: [0, 0.1, 0.2, 0.3], labelled: [true, true, true, false])
        #expect(selection.mask == [0, 1, 1, 0] && selection.kept == 2)
        let none = mining.selection(losses: [0.5], labelled: [false])
        #expect(none.kept == 0)
    }
}

/// Registration of `segformer` and `tiny-conv-seg`, with parameter checks.
@Suite struct SegFormerPluginTests {
    static var registry: PluginRegistry {
        var registry = PluginRegistry()
        SegFormerTaskPlugin.register(in: &registry)
        return registry
    }

    @Test func defaultsAreTDFusionsSetting() throws {
        let net = try Self.registry.makeTask("segformer")
        #expect(net.kind == .segmentation(classes: 9) && net.inputChannels == 1)
        #expect(net.parameterCount == 3_713_321)
        let segformer = try #require(net as? SegFormer)
        let b0 = try #require(SegFormerConfiguration.variant("b0"))
        #expect(segformer.configuration.embedDims == b0.embedDims && segformer.configuration.decoderEmbed == 256)
        #expect(segformer.configuration.gelu == .exact && segformer.configuration.dropPath == 0.1 && segformer.configuration.dropout == 0.1)
        #expect(segformer.criterion == SegmentationLoss(ignoreIndex: 255))
    }

    @Test func theDeclarationDocumentsEveryParameter() throws {
        let descriptor = try Self.registry.descriptor("segformer", kind: .task)
        #expect(descriptor.parameters.map(\.name) == [
            "classes", "input-channels", "embed-dims", "heads", "depths", "reduction-ratios", "mlp-ratio", "decoder-embed", "drop-path",
            "dropout", "gelu", "batch-norm-eps", "batch-norm-momentum", "ohem", "ohem-threshold", "ohem-min-kept", "ignore-index"])
        #expect(descriptor.parameters.allSatisfy { !$0.help.isEmpty })
        #expect(descriptor.parameters.first { $0.name == "embed-dims" }?.defaultValue == "[32, 64, 160, 256]")
        #expect(descriptor.parameters.first { $0.name == "gelu" }?.typeName == "one of exact, tanh")
        #expect(descriptor.variants.map(\.name) == ["b0", "b1"])
        let tiny = try Self.registry.descriptor("tiny-conv-seg", kind: .task)
        #expect(tiny.parameters.map(\.name) == ["classes", "input-channels"] && tiny.variants.isEmpty)
    }

    @Test func parametersConfigureTheNetwork() throws {
        let parameters = PluginParameters(["variant": .string("b1"), "classes": .int(15), "input-channels": .int(3), "drop-path": .double(0.2),
                                           "dropout": .int(0), "gelu": .string("tanh"), "ohem": .bool(true), "ohem-threshold": .double(0.6),
                                           "ohem-min-kept": .int(1000), "ignore-index": .int(-1)])
        let net = try #require(try Self.registry.makeTask("segformer", parameters) as? SegFormer)
        #expect(net.configuration.embedDims == [64, 128, 320, 512] && net.classes == 15 && net.inputChannels == 3)
        #expect(net.configuration.dropPath == 0.2 && net.configuration.dropout == 0 && net.configuration.gelu == .tanh)
        #expect(net.criterion == SegmentationLoss(ignoreIndex: -1, hardExampleMining: HardExampleMining(threshold: 0.6, minKept: 1000)))
        // Given parameters override the variant's; every size is a parameter.
        let custom = PluginParameters(["variant": .string("b1"), "embed-dims": .list([.int(16), .int(32), .int(48), .int(64)]),
                                       "heads": .list([.int(1), .int(2), .int(3), .int(4)]), "depths": .list([.int(1), .int(2), .int(1), .int(1)]),
                                       "reduction-ratios": .list([.int(4), .int(2), .int(1), .int(1)]), "mlp-ratio": .int(2),
                                       "decoder-embed": .int(32)])
        let small = try #require(try Self.registry.makeTask("segformer", custom) as? SegFormer)
        #expect(small.namedSpecs().map(\.spec.shape).contains([32, 128, 1, 1]))
        let expected = SegFormer(.with {
            ($0.embedDims, $0.heads, $0.depths, $0.reductionRatios, $0.mlpRatio, $0.decoderEmbed) =
                ([16, 32, 48, 64], [1, 2, 3, 4], [1, 2, 1, 1], [4, 2, 1, 1], 2, 32)
        })
        #expect(small.namedSpecs().map(\.name) == expected.namedSpecs().map(\.name) && small.parameterCount == expected.parameterCount)
        #expect(!small.namedSpecs().contains { $0.name.hasPrefix("backbone.block3.0.attn.sr") })
        let tiny = try Self.registry.makeTask("tiny-conv-seg", PluginParameters(["classes": .int(6), "input-channels": .int(2)]))
        #expect(tiny.kind == .segmentation(classes: 6) && tiny.inputChannels == 2 && tiny is TinyConvSegmenter)
        #expect(Set(Self.registry.all.map(\.name)) == ["segformer", "tiny-conv-seg"])
    }

    @Test(arguments: [
        ("variant", ParameterValue.string("b2"), "segformer: parameter 'variant': must be one of b0, b1, got 'b2'"),
        ("classes", .int(0), "segformer: parameter 'classes': must be positive, got 0"),
        ("input-channels", .int(-1), "segformer: parameter 'input-channels': must be positive, got -1"),
        ("embed-dims", .list([.int(32), .int(64)]), "segformer: parameter 'embed-dims': must have 4 values, got 2"),
        ("heads", .list([.int(3), .int(2), .int(5), .int(8)]), "segformer: parameter 'heads': stage 1: 3 heads must divide 32 channels"),
        ("depths", .list([.int(2), .int(0), .int(2), .int(2)]), "segformer: parameter 'depths': every value must be positive, got 0"),
        ("drop-path", .double(1), "segformer: parameter 'drop-path': must be in [0.0, 1.0), got 1.0"),
        ("dropout", .double(-0.1), "segformer: parameter 'dropout': must be in [0.0, 1.0), got -0.1"),
        ("gelu", .string("fast"), "segformer: parameter 'gelu' must be one of exact, tanh, got string fast"),
        ("ohem-threshold", .double(1.5), "segformer: parameter 'ohem-threshold': must be in (0, 1], got 1.5"),
        ("ohem-min-kept", .int(-5), "segformer: parameter 'ohem-min-kept': must be at least 0, got -5"),
        ("ignore-index", .int(3), "segformer: parameter 'ignore-index': 3 is one of the 9 class indices"),
        ("classes", .string("nine"), "segformer: parameter 'classes' must be an integer, got string nine"),
        ("drop_path", .double(0.1), "segformer: unknown parameter 'drop_path'; did you mean 'drop-path'?"),
    ])
    func wrongValuesAreRejected(key: String, value: ParameterValue, message: String) {
        let error = #expect(throws: PluginError.self) { _ = try Self.registry.makeTask("segformer", PluginParameters([key: value])) }
        #expect(error?.description == message)
    }

    /// What `fusekit gradcheck --plugin NAME` runs: the registered small configuration, VJP and JVP
    /// of the class logits against finite differences, every parameter and the input.
    @Test(arguments: ["segformer", "tiny-conv-seg"])
    func registeredGradientCheckPasses(_ name: String) throws {
        let report = PluginGradcheck.check(try Self.registry.descriptor(name, kind: .task))
        print(report)
        #expect(report.passed, "\(report)")
    }

    /// The rest of the nets' loss, which the registered check leaves out: their criterion on
    /// quarter-size logits (SegFormer's), resized to the labels, with ignored pixels.
    @Test func criterionOnQuarterSizeLogitsPassesItsGradientCheck() {
        var rng = RandomGenerator(seed: 31)
        let logits = Tensor.normal([2, 3, 4, 5], using: &rng)
        let labels = Tensor(shape: [2, 16, 20], scalars: (0..<640).map { $0 % 11 == 0 ? 255 : Float(rng.nextInt(below: 3)) })
        let criterion = SegFormer(SegFormerConfiguration()).criterion
        #expect(criterion == TinyConvSegmenter(TinyConvSegmenterConfiguration()).criterion)
        let report = GradientCheck.check("criterion", inputs: [logits]) { criterion(logits: $0[0], labels: labels) }
        print(report)
        #expect(report.passed, "\(report)")
    }

    @Test func tinyNetRejectsWrongValues() {
        let error = #expect(throws: PluginError.self) { _ = try Self.registry.makeTask("tiny-conv-seg", PluginParameters(["classes": .int(0)])) }
        #expect(error?.description == "tiny-conv-seg: parameter 'classes': must be positive, got 0")
    }
}
