import FuseKit
import SegFormerTask

/// MRFS's backbone (the official `RGBXTransformer`): two Mix Transformer streams with their own
/// weights, one for the visible RGB image and one for the infrared image replicated to three
/// channels. After every stage, IGM-Att exchanges information between the two maps (its outputs
/// feed the next stage and the fusion head) and PC-Att fuses them into one map for the
/// segmentation head. The fusion branch alone (`mrfs-fusion`) is built without PC-Att.
///
/// Names as the official state dict, directly under the backbone: `patch_embed{k}`, `block{k}`,
/// `norm{k}` (RGB), `extra_patch_embed{k}`, `extra_block{k}`, `extra_norm{k}` (infrared),
/// `IGMAVCs.{0-3}`, `PCASCs.{0-3}`, registered in the official order.
public struct DualStreamTransformer: Layer {
    let rgbStream: MixVisionTransformer
    let infraredStream: MixVisionTransformer
    let igm: Child<ModuleList<IGMAttention>>
    let pc: Child<ModuleList<PCAttention>>?
    /// The smallest image side whose every stage map covers its spatial-reduction window.
    public let minimumSide: Int

    /// What one pass computes, stage by stage.
    public struct Features {
        /// The stream outputs after each stage's norm, before IGM-Att: (RGB, infrared) per stage.
        public var streams: [(rgb: Tensor, infrared: Tensor)] = []
        /// The IGM-Att outputs [rgb1, ir1, ..., rgb4, ir4] (the fusion head's input).
        public var vision: [Tensor] = []
        /// The PC-Att outputs of the four stages (the segmentation head's input); empty without PC-Att.
        public var semantic: [Tensor] = []
    }

    /// The backbone of `configuration`; `includesPCAttention: false` leaves PC-Att out (it only
    /// feeds the segmentation head).
    public init(_ configuration: MRFSConfiguration, includesPCAttention: Bool = true) {
        let c = configuration
        let rates = c.dropPathRates
        func stream(_ rates: [[Float]], _ prefix: String) -> MixVisionTransformer {
            MixVisionTransformer(inputChannels: 3, embedDims: c.embedDims, heads: c.heads, reductionRatios: c.reductionRatios,
                                 mlpRatio: c.mlpRatio, dropPathRates: rates, gelu: .exact, namePrefix: prefix)
        }
        minimumSide = Self.minimumSide(reductionRatios: c.reductionRatios)
        rgbStream = stream(rates.rgb, "")
        infraredStream = stream(rates.infrared, "extra_")
        igm = Child("IGMAVCs", ModuleList(c.embedDims.map { IGMAttention(dim: $0, reduction: c.igmReduction) }))
        pc = includesPCAttention
            ? Child("PCASCs", ModuleList((0..<4).map { PCAttention(dim: c.embedDims[$0], heads: c.heads[$0], reduction: c.reductionRatios[$0]) }))
            : nil
    }

    /// The smallest side s whose stage maps (⌈s/4⌉, then halved and rounded up) are each at least
    /// the stage's reduction ratio.
    static func minimumSide(reductionRatios: [Int]) -> Int {
        func fits(_ side: Int) -> Bool {
            var size = (side + 3) / 4
            for (k, ratio) in reductionRatios.enumerated() {
                if k > 0 { size = (size + 1) / 2 }
                if size < ratio { return false }
            }
            return true
        }
        var side = 1
        while !fits(side) { side += 1 }
        return side
    }

    /// The official registration order: the eight patch embeddings, then per stage the RGB
    /// blocks and norm and the infrared ones, then IGM-Att and PC-Att.
    public var children: [(name: String, module: any Module)] {
        let all = Dictionary(uniqueKeysWithValues: (rgbStream.children + infraredStream.children).map { ($0.name, $0.module) })
        var names = ["", "extra_"].flatMap { prefix in (1...4).map { "\(prefix)patch_embed\($0)" } }
        for k in 1...4 { names += ["block\(k)", "norm\(k)", "extra_block\(k)", "extra_norm\(k)"] }
        return names.map { ($0, all[$0]!) } + [(igm.name, igm.module as any Module)] + (pc.map { [($0.name, $0.module as any Module)] } ?? [])
    }

    /// The stage outputs of visible RGB images and infrared images replicated to three channels,
    /// both [B, 3, H, W].
    public func callAsFunction(_ images: (rgb: Tensor, infrared: Tensor), _ p: Scope) -> Features {
        require(images.rgb.rank == 4 && images.rgb.shape[1] == 3 && images.rgb.shape == images.infrared.shape,
                "MRFS backbone: RGB \(Shape.describe(images.rgb.shape)) and infrared \(Shape.describe(images.infrared.shape)) must both be [B, 3, H, W]")
        require(images.rgb.shape[2] >= minimumSide && images.rgb.shape[3] >= minimumSide,
                "MRFS backbone: images of \(images.rgb.shape[2])x\(images.rgb.shape[3]) are too small; the spatial reductions need "
                + "at least \(minimumSide) pixels a side")
        var features = Features()
        var (rgb, infrared) = (images.rgb, images.infrared)
        let igmItems = igm.items(), pcItems = pc?.items()
        for k in 0..<4 {
            rgb = rgbStream.stage(k, rgb, p)
            infrared = infraredStream.stage(k, infrared, p)
            features.streams.append((rgb, infrared))
            (rgb, infrared) = igmItems[k]((rgb, infrared), p)
            features.vision += [rgb, infrared]
            if let pcItems { features.semantic.append(pcItems[k]((rgb, infrared), p)) }
        }
        return features
    }
}
