import FuseKitImage
import FuseKitNN
import FuseKitTensor

/// Fuses infrared-visible pairs with a trained fusion network, as TDFusion's test code does:
/// gray sources (the visible image's luma when it is in colour), the network's output min-max
/// normalised per image, and the visible chroma put back when a source is in colour (fused
/// chroma when both are).
public struct Fuser: Sendable {
    /// The fusion network.
    public let fusion: any FusionNet
    /// Its weights.
    public let state: ModelState
    /// Min-max normalise the fused luma per image (the official code does).
    public var normalizes: Bool

    public init(fusion: any FusionNet, state: ModelState, normalizes: Bool = true) {
        self.fusion = fusion
        self.state = state
        self.normalizes = normalizes
    }

    /// The fusion of one pair.
    public struct Output: Sendable {
        /// The network's output [1, 1, H, W] before normalisation (what a task net is given).
        public var raw: Tensor
        /// Fused luma, one channel in [0, 1].
        public var gray: Image
        /// Fused colour image, when a source is in colour.
        public var color: Image?
    }

    /// Raw network output [B, 1, H, W] for sources [B, 2, H, W] (evaluation mode, no gradients).
    public func fuse(sources: Tensor) -> Tensor {
        withoutGradient { fusion.fuse(sources, Scope(state)) }
    }

    /// Whether an image carries colour (three or more channels that are not all equal).
    public static func isColor(_ image: Image) -> Bool {
        guard image.channels >= 3 else { return false }
        let plane = image.planeSize, p = image.pixels
        for i in 0..<plane where p[i] != p[plane + i] || p[i] != p[2 * plane + i] { return true }
        return false
    }

    /// Fuses one pair of equally sized images (any size, gray or colour).
    public func fuse(infrared: Image, visible: Image) -> Output {
        precondition(infrared.width == visible.width && infrared.height == visible.height,
                     "Fuser: infrared \(infrared.width)x\(infrared.height) and visible \(visible.width)x\(visible.height) differ in size")
        let a = infrared.grayLevels().image(), b = visible.grayLevels().image()
        let raw = fuse(sources: Tensor.concat([a.tensor(), b.tensor()], axis: 1))
        return Self.output(raw: raw, infrared: infrared, visible: visible, normalizes: normalizes)
    }

    /// The output images of a network's fused tensor [1, C, H, W] for a pair: with one channel, the
    /// luma (coloured with the sources' chroma when a source is in colour); with three, RGB (its
    /// luma as the gray image). `normalizes` min-max normalises over the whole image first.
    public static func output(raw: Tensor, infrared: Image, visible: Image, normalizes: Bool) -> Output {
        var fused = raw.scalars
        if normalizes, let lo = fused.min(), let hi = fused.max(), hi > lo {
            let scale = 1 / (hi - lo)
            fused = fused.map { ($0 - lo) * scale }
        }
        if raw.shape[1] == 3 {
            let color = Image(width: visible.width, height: visible.height, channels: 3, pixels: fused).clamped()
            return Output(raw: raw, gray: color.grayscale(), color: color)
        }
        let gray = Image(width: visible.width, height: visible.height, channels: 1, pixels: fused).clamped()
        let infraredIsColor = isColor(infrared), visibleIsColor = isColor(visible)
        guard infraredIsColor || visibleIsColor else { return Output(raw: raw, gray: gray, color: nil) }
        let plane = gray.planeSize
        let vis = visible.yCrCb().pixels, ir = infrared.yCrCb().pixels
        var crcb: [Float]
        if infraredIsColor && visibleIsColor {
            crcb = Image.fusedChroma(Array(ir[plane..<(2 * plane)]), Array(vis[plane..<(2 * plane)]))
                + Image.fusedChroma(Array(ir[(2 * plane)...]), Array(vis[(2 * plane)...]))
        } else {
            crcb = Array((visibleIsColor ? vis : ir)[plane...])
        }
        let ycrcb = Image(width: gray.width, height: gray.height, channels: 3, pixels: gray.pixels + crcb)
        return Output(raw: raw, gray: gray, color: Image.rgb(fromYCrCb: ycrcb))
    }
}
