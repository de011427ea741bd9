import FuseKit
import SegFormerTask

/// MRFS (Zhang et al., CVPR 2024, "Mutually Reinforcing Image Fusion and Segmentation") as a
/// joint model: one dual-stream Mix Transformer backbone with IGM-Att and PC-Att after every
/// stage, a SegFormer head on the PC-Att maps (logits resized bilinearly to the input size) and
/// a CNN fusion head on the IGM-Att maps and the raw inputs (a sigmoid RGB image). Visible RGB
/// and infrared both in [0, 1], no normalisation; the infrared image [B, 1, H, W] is replicated
/// to three channels, as the official data loader does.
///
/// Parameter names are the official state-dict keys (`backbone.*`, `decode_head.*`,
/// `aux_head.*`), so a converted official checkpoint loads by name; the heads' BatchNorms carry
/// `num_batches_tracked` as a buffer, as PyTorch does. See ``MRFSConfiguration`` for the sizes
/// and the official code's choices (the stage-2 stochastic depth, the heads' BatchNorm epsilon).
public struct MRFS: JointModel {
    /// The parameters it was built from.
    public let configuration: MRFSConfiguration
    let backbone: Child<DualStreamTransformer>
    let decodeHead: Child<SegFormerHead>
    let auxHead: Child<FusionHead>

    public init(_ configuration: MRFSConfiguration = MRFSConfiguration()) {
        let c = configuration
        self.configuration = c
        backbone = Child("backbone", DualStreamTransformer(c))
        decodeHead = Child("decode_head", SegFormerHead(inChannels: c.embedDims, decoderDim: c.decoderEmbed, classes: c.classes,
                                                        dropout: c.dropout, batchNormEpsilon: c.batchNormEps,
                                                        batchNormMomentum: c.batchNormMomentum, fuseLayout: .sequential,
                                                        convolutionInit: .kaimingNormal))
        auxHead = Child("aux_head", FusionHead(inChannels: c.embedDims, embed: c.fusionEmbed, batchNormEpsilon: c.batchNormEps,
                                               batchNormMomentum: c.batchNormMomentum))
    }

    public var kind: TaskKind { .segmentation(classes: configuration.classes) }
    public var visibleChannels: Int { 3 }
    public var fusedChannels: Int { 3 }
    public var auxiliaryOutputNames: [String] { [Self.quarterLogits] }

    /// The name of the segmentation head's own output, logits at 1/4 of the input size.
    public static let quarterLogits = "logits-quarter"

    /// The smallest image side the model takes (the stage maps must cover the spatial reductions).
    public var minimumSide: Int { backbone.minimumSide }

    public func forward(_ input: JointInput, _ p: Scope) -> JointOutput {
        let (rgb, infrared) = Self.networkInputs(input)
        let features = backbone((rgb, infrared), p)
        let quarter = decodeHead(features.semantic, p)
        let logits = quarter.resizedBilinear(to: (rgb.shape[2], rgb.shape[3]), alignCorners: false)
        let fused = auxHead((features.vision, rgb, infrared), p)
        return JointOutput(fused: fused, logits: logits, auxiliary: [Self.quarterLogits: quarter])
    }

    /// The backbone's stage outputs alone (for inspection and tests).
    public func features(_ input: JointInput, _ p: Scope) -> DualStreamTransformer.Features {
        backbone(Self.networkInputs(input), p)
    }

    /// The visible image as RGB and the infrared image replicated to three channels.
    static func networkInputs(_ input: JointInput) -> (rgb: Tensor, infrared: Tensor) {
        let (ir, vis) = (input.infrared, input.visible)
        require(vis.rank == 4 && vis.shape[1] == 3, "mrfs: the visible images must be RGB [B, 3, H, W], got \(Shape.describe(vis.shape))")
        require(ir.rank == 4 && (ir.shape[1] == 1 || ir.shape[1] == 3) && ir.shape[0] == vis.shape[0] && Array(ir.shape[2...]) == Array(vis.shape[2...]),
                "mrfs: the infrared images \(Shape.describe(ir.shape)) must be [B, 1, H, W] of the visible images' size \(Shape.describe(vis.shape))")
        return (vis, FusionTargets.withChannels(ir, 3))
    }
}

/// MRFS's fusion branch as a TDFusion fusion net F: the dual-stream backbone with IGM-Att (no
/// PC-Att, which only feeds segmentation) and the CNN fusion head, on the gray source pair
/// [B, 2, H, W] (infrared, visible; each replicated to three channels), giving the luma of the
/// fused RGB image [B, 1, H, W]. Its parameters are the joint model's `backbone.*` (without
/// `PCASCs`) and `aux_head.*`.
///
/// MRFS's segmentation branch is not offered as a TDFusion task net: a task net sees the fused
/// image alone, while PC-Att and IGM-Att need the two source streams; on one image the branch is
/// SegFormer's MiT and head, which is `segformer`.
public struct MRFSFusion: FusionNet {
    public let configuration: MRFSConfiguration
    let backbone: Child<DualStreamTransformer>
    let auxHead: Child<FusionHead>

    public init(_ configuration: MRFSConfiguration = MRFSConfiguration()) {
        let c = configuration
        self.configuration = c
        backbone = Child("backbone", DualStreamTransformer(c, includesPCAttention: false))
        auxHead = Child("aux_head", FusionHead(inChannels: c.embedDims, embed: c.fusionEmbed, batchNormEpsilon: c.batchNormEps,
                                               batchNormMomentum: c.batchNormMomentum))
    }

    /// The smallest image side the net takes (the stage maps must cover the spatial reductions).
    public var minimumSide: Int { backbone.minimumSide }

    public func fuse(_ sources: Tensor, _ p: Scope) -> Tensor {
        require(sources.rank == 4 && sources.shape[1] == 2, "mrfs-fusion: input must be [B, 2, H, W], got \(Shape.describe(sources.shape))")
        let infrared = FusionTargets.withChannels(sources.sliced(axis: 1, 0..<1), 3)
        let rgb = FusionTargets.withChannels(sources.sliced(axis: 1, 1..<2), 3)
        let features = backbone((rgb, infrared), p)
        return Color.luma(auxHead((features.vision, rgb, infrared), p))
    }
}
