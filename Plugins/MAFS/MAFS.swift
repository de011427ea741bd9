import FuseKit

/// MAFS (Wang, Zhang, Jia, Ma; IEEE TIP 2025) as one joint network: the stage-II network of the
/// official code (`NetworkStage2`: encoder, dense INN fusion decoder, segmentation decoder), with
/// the official state-dict names (`encoder.*`, `fuse_decoder.*`, `seg_decoder.*`), so converted
/// official checkpoints load with `loadState(from:)`.
///
/// Inputs: visible RGB [B, 3, H, W] and infrared [B, 1, H, W] in [0, 1]. The network needs H and W
/// multiples of 32 (five stride-2 steps); other sizes are zero-padded at the bottom and right and
/// the outputs cropped back (the release patches shapes for some sizes or resizes instead).
/// Outputs: the fused luma Y [B, 1, H, W] in [0, 1] (coloured with the visible chroma for display),
/// the logits [B, K, H, W] and the six auxiliary outputs `out1` ... `out6` at the input size
/// (out1, out3, out5 two-channel: the binary and boundary heads; out2, out4, out6 K-channel).
///
/// Stage I (masked reconstruction, ``MaskedReconstruction``) decodes the visible Y with its own
/// FusionDecoder `rec_decoder_vi` (``VisibleHead``; or with `fuse_decoder` itself) and the
/// infrared image with a second head (``InfraredHead``). The release decodes both with the one
/// `fuse_decoder` on the one feature, so its two reconstructions are identical; that bug is not
/// reproduced. The stage-I heads exist only with `ir-head: inn` or `rec-decoder` (the default
/// `none` keeps the official stage-II parameter set and count).
public struct MAFSNetwork: JointModel, MaskedReconstruction {
    public let configuration: MAFSConfiguration
    let encoder: Child<MAFSEncoder>
    let fuseDecoder: Child<FusionDecoder>
    let segDecoder: Child<SegmentationDecoder>
    let fuseDecoderIR: Child<FusionDecoder>?
    let recDecoderVI: Child<FusionDecoder>?
    let recDecoderIR: Child<RecDecoder>?

    public init(_ configuration: MAFSConfiguration = MAFSConfiguration()) {
        self.configuration = configuration
        encoder = Child("encoder", MAFSEncoder(configuration))
        fuseDecoder = Child("fuse_decoder", FusionDecoder(configuration))
        segDecoder = Child("seg_decoder", SegmentationDecoder(configuration))
        fuseDecoderIR = configuration.irHead == .inn ? Child("fuse_decoder_ir", FusionDecoder(configuration)) : nil
        recDecoderVI = configuration.irHead != .none && configuration.visibleHead == .own ? Child("rec_decoder_vi", FusionDecoder(configuration)) : nil
        recDecoderIR = configuration.irHead == .recDecoder
            ? Child("rec_decoder_ir", RecDecoder(rec: configuration.recChannels, seg: configuration.segChannels, hidden: configuration.simHidden))
            : nil
    }

    public var kind: TaskKind { .segmentation(classes: configuration.numClasses) }
    public var visibleChannels: Int { 3 }
    public var fusedChannels: Int { 1 }
    public var auxiliaryOutputNames: [String] { (1...6).map { "out\($0)" } }

    func checkInput(_ input: JointInput) {
        let (ir, vi) = (input.infrared, input.visible)
        require(vi.rank == 4 && vi.shape[1] == 3, "mafs: the visible input must be RGB [B, 3, H, W], got \(Shape.describe(vi.shape))")
        require(ir.rank == 4 && ir.shape[0] == vi.shape[0] && Array(ir.shape[2...]) == Array(vi.shape[2...]),
                "mafs: infrared \(Shape.describe(ir.shape)) does not match visible \(Shape.describe(vi.shape))")
    }

    /// The network's size multiple.
    public static let sizeMultiple = 32

    /// `x` zero-padded at the bottom and right to multiples of ``sizeMultiple``.
    static func padded(_ x: Tensor) -> Tensor {
        let (h, w) = (x.shape[2], x.shape[3])
        let (ph, pw) = ((sizeMultiple - h % sizeMultiple) % sizeMultiple, (sizeMultiple - w % sizeMultiple) % sizeMultiple)
        return ph == 0 && pw == 0 ? x : x.padded([(0, pw), (0, ph)])  // F.pad order: last axis first
    }

    /// `x` cropped to (h, w) at the top left.
    static func cropped(_ x: Tensor, _ h: Int, _ w: Int) -> Tensor {
        x.shape[2] == h && x.shape[3] == w ? x : x.sliced([0..<x.shape[0], 0..<x.shape[1], 0..<h, 0..<w])
    }

    func encode(_ input: JointInput, computeSegF: Bool = false, _ p: Scope) -> EncoderFeatures {
        checkInput(input)
        let thermal = Self.padded(input.infrared.sliced(axis: 1, 0..<1)), rgb = Self.padded(input.visible)
        return encoder.run(in: p) { encoder, scope in encoder(rgb: rgb, thermal: thermal, computeSegF: computeSegF, scope) }
    }

    /// The stage-II forward pass.
    public func forward(_ input: JointInput, _ p: Scope) -> JointOutput {
        let (h, w) = (input.visible.shape[2], input.visible.shape[3])
        let features = encode(input, p)
        let seg = segDecoder.run(in: p) { decoder, scope in decoder(recF1: features.recF1, levels: features.levels, scope) }
        let fused = fuseDecoder(features.recF, p)
        var auxiliary: [String: Tensor] = [:]
        for (name, value) in zip(auxiliaryOutputNames, seg.auxiliary) { auxiliary[name] = Self.cropped(value, h, w) }
        return JointOutput(fused: Self.cropped(fused, h, w), logits: Self.cropped(seg.logits, h, w), auxiliary: auxiliary)
    }

    /// Stage I: (infrared, visible Y) reconstructions [B, 1, H, W] from masked inputs.
    public func reconstruct(_ input: JointInput, _ p: Scope) -> (infrared: Tensor, visible: Tensor) {
        require(configuration.irHead != InfraredHead.none, "mafs: masked reconstruction needs a second head; set ir-head: inn (or rec-decoder)")
        let (h, w) = (input.visible.shape[2], input.visible.shape[3])
        let features = encode(input, computeSegF: configuration.irHead == .recDecoder, p)
        let visible = recDecoderVI.map { $0(features.recF, p) } ?? fuseDecoder(features.recF, p)
        let infrared: Tensor
        if let fuseDecoderIR {
            infrared = fuseDecoderIR(features.recF, p)
        } else {
            infrared = recDecoderIR!((features.recF, features.segF!), p)
        }
        return (Self.cropped(infrared, h, w), Self.cropped(visible, h, w))
    }
}

/// Registers `mafs`.
public enum MAFSPlugin {
    public static func register(in registry: inout PluginRegistry) {
        registry.registerJoint("mafs", summary: "MAFS (TIP 2025): masked-autoencoder pretrained joint fusion and segmentation net (official variant: ResNet-152 streams)",
                               configuration: MAFSConfiguration.self,
                               gradcheck: GradcheckSettings(configure: { $0 = MAFSConfiguration.gradcheckSized }, inputSize: (64, 64), batch: 2,
                                                            prepareState: GradcheckPoint.awayFromNormalizationKinks)) { MAFSNetwork($0) }
    }
}

extension MAFSConfiguration {
    /// The smallest configuration the network's shapes allow, for `fusekit gradcheck`.
    static var gradcheckSized: MAFSConfiguration {
        var c = MAFSConfiguration()
        c.numClasses = 3
        c.resnetBlock = .basic
        c.resnetLayers = [1, 1, 1, 1]
        c.resnetPlanes = [8, 8, 8, 8]
        c.sfmChannels = 8
        c.camChannels = 8
        c.phfChannels = 4
        c.recChannels = 4
        c.simHidden = 4
        c.innSplit = 2
        c.innBlocks = 3
        c.innDenseWidth = 2
        c.segChannels = 8
        c.fpnGroups = 2
        c.invptHeads = [1, 1, 1]
        c.leffHidden = 4
        c.eaefAttentionReduction = 4
        c.fusionModuleReduction = 2
        return c
    }
}

/// MAFS's colour conversions (`utils.RGB2YCrCb`, `utils.YCbCr2RGB`), with the release's constants
/// and clamps; they differ from FuseKit's ``Color`` by the rounded inverse constants and the clamps.
public enum MAFSColor {
    /// RGB [B, 3, H, W] in [0, 1] of a fused luma [B, 1, H, W] and the chroma of `colour` (the
    /// visible image): Cr = 0.713 (R - Y) + 0.5, Cb = 0.564 (B - Y) + 0.5, clamped; then
    /// R = Y + 1.403 (Cr - 0.5), G = Y - 0.714 (Cr - 0.5) - 0.344 (Cb - 0.5), B = Y + 1.773 (Cb - 0.5), clamped.
    public static func rgb(luma y: Tensor, chromaOf colour: Tensor) -> Tensor {
        let c = colour.chunked(3, axis: 1)
        let visibleY = c[0] * 0.299 + c[1] * 0.587 + c[2] * 0.114
        let cr = ((c[0] - visibleY) * 0.713 + 0.5).clamped(min: 0, max: 1) - 0.5
        let cb = ((c[2] - visibleY) * 0.564 + 0.5).clamped(min: 0, max: 1) - 0.5
        return Tensor.concat([y + cr * 1.403, y - cr * 0.714 - cb * 0.344, y + cb * 1.773], axis: 1).clamped(min: 0, max: 1)
    }
}
