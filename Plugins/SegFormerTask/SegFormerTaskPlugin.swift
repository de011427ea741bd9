import FuseKit

/// Registers the segmentation task networks `segformer` and `tiny-conv-seg`.
///
/// `segformer` parameters: `variant` (b0 | b1), `classes`, `input-channels`, `drop-path`,
/// `dropout`, `gelu` (exact | tanh), `ohem`, `ohem-threshold`, `ohem-min-kept`, `ignore-index`.
/// There is no `input-size`: the trainer resizes the fused images to the task size before the
/// task net sees them, and the net works at any size of at least 32x32.
///
/// `tiny-conv-seg` parameters: `classes`, `input-channels`.
public enum SegFormerTaskPlugin {
    static let segformerParameters = [
        ParameterDoc("variant", .string, default: "b0", "Mix Transformer size: b0 (TDFusion's setting) or b1"),
        ParameterDoc("classes", .int, default: "9", "segmentation classes (MSRS 9, FMB 15)"),
        ParameterDoc("input-channels", .int, default: "1", "channels of the input images (1 for fused gray images)"),
        ParameterDoc("drop-path", .double, default: "0.1", "largest stochastic-depth rate (rises linearly over the blocks)"),
        ParameterDoc("dropout", .double, default: "0.1", "channel dropout before the decoder's classifier"),
        ParameterDoc("gelu", .string, default: "exact", "GELU of the Mix-FFN: exact (NVlabs) or tanh (TDFusion's copy)"),
        ParameterDoc("ohem", .bool, default: "false", "online hard example mining cross-entropy instead of the plain mean"),
        ParameterDoc("ohem-threshold", .double, default: "0.7", "OHEM: pixels whose true-class probability is below this are hard"),
        ParameterDoc("ohem-min-kept", .int, default: "0", "OHEM: pixels kept at least per batch (0: 1/16 of the labelled pixels)"),
        ParameterDoc("ignore-index", .int, default: "255", "label value excluded from the loss"),
    ]

    static let tinyParameters = [
        ParameterDoc("classes", .int, default: "9", "segmentation classes"),
        ParameterDoc("input-channels", .int, default: "1", "channels of the input images"),
    ]

    static func common(_ p: PluginParameters) throws -> (classes: Int, inputChannels: Int) {
        let classes = try p.int("classes", default: 9), inputChannels = try p.int("input-channels", default: 1)
        try p.require(classes >= 1, "classes", "must be positive, got \(classes)")
        try p.require(inputChannels >= 1, "input-channels", "must be positive, got \(inputChannels)")
        return (classes, inputChannels)
    }

    /// Builds `segformer` from recipe parameters, throwing `PluginError` on bad values.
    static func makeSegFormer(_ p: PluginParameters) throws -> SegFormer {
        let (classes, inputChannels) = try common(p)
        let variant = try p.string("variant", default: "b0")
        let named = SegFormerConfiguration.variant(variant)
        try p.require(named != nil, "variant", "must be b0 or b1, got '\(variant)'")
        var configuration = named!
        let dropPath = try p.double("drop-path", default: 0.1), dropout = try p.double("dropout", default: 0.1)
        try p.require(dropPath >= 0 && dropPath < 1, "drop-path", "must be in [0, 1), got \(dropPath)")
        try p.require(dropout >= 0 && dropout < 1, "dropout", "must be in [0, 1), got \(dropout)")
        let geluName = try p.string("gelu", default: "exact")
        let gelu = GELUForm(rawValue: geluName)
        try p.require(gelu != nil, "gelu", "must be exact or tanh, got '\(geluName)'")
        configuration.dropPathRate = Float(dropPath)
        configuration.dropout = Float(dropout)
        configuration.gelu = gelu!
        let ignoreIndex = try p.int("ignore-index", default: 255)
        try p.require(ignoreIndex < 0 || ignoreIndex >= classes, "ignore-index", "\(ignoreIndex) is one of the \(classes) class indices")
        let ohem = try p.bool("ohem", default: false)
        let threshold = try p.double("ohem-threshold", default: 0.7), minKept = try p.int("ohem-min-kept", default: 0)
        try p.require(threshold > 0 && threshold <= 1, "ohem-threshold", "must be in (0, 1], got \(threshold)")
        try p.require(minKept >= 0, "ohem-min-kept", "must not be negative, got \(minKept)")
        let mining = ohem ? HardExampleMining(threshold: Float(threshold), minKept: minKept) : nil
        return SegFormer(configuration: configuration, classes: classes, inputChannels: inputChannels,
                         criterion: SegmentationLoss(ignoreIndex: ignoreIndex, hardExampleMining: mining))
    }

    /// Adds `segformer` and `tiny-conv-seg` to `registry`.
    public static func register(in registry: inout PluginRegistry) {
        registry.registerTask("segformer", summary: "SegFormer (MiT-b0/b1 encoder, all-MLP decoder), TDFusion's segmentation net",
                              parameters: segformerParameters,
                              gradcheck: GradcheckSettings(parameters: ["classes": .int(3)], inputSize: (32, 32))) { p in
            try makeSegFormer(p)
        }
        registry.registerTask("tiny-conv-seg", summary: "tiny conv segmentation net (3x3-16, 3x3-16, 1x1) for tests and benchmarks",
                              parameters: tinyParameters,
                              gradcheck: GradcheckSettings(parameters: ["classes": .int(3)], inputSize: (12, 12))) { p in
            let (classes, inputChannels) = try common(p)
            return TinyConvSegmenter(classes: classes, inputChannels: inputChannels)
        }
    }
}
