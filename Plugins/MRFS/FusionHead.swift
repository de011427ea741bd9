import FuseKit
import SegFormerTask

/// A head convolution as MRFS's `init_weight` draws it for training: weight N(0, 2 / fan_in)
/// (`kaiming_normal_`, fan_in, ReLU), bias PyTorch's default.
func headConvolution(_ inChannels: Int, _ outChannels: Int, kernelSize: Int) -> Conv2d {
    Conv2d(inChannels, outChannels, kernelSize: kernelSize,
           weightInit: DecoderConvolutionInit.kaimingNormal.weight(inChannels: inChannels, kernelArea: kernelSize * kernelSize))
}

/// One of the fusion head's point convolutions (the official `PointConv`): 1x1 convolution,
/// BatchNorm, ReLU. Names: `pconv.0`, `pconv.1`.
public struct PointConvolution: UnaryModule {
    let pconv: Child<Sequential>

    public init(_ inChannels: Int, _ outChannels: Int, batchNormEpsilon: Float, batchNormMomentum: Float) {
        pconv = Child("pconv", Sequential([headConvolution(inChannels, outChannels, kernelSize: 1),
                                           BatchNorm2d(outChannels, eps: batchNormEpsilon, momentum: batchNormMomentum), Activation(.relu)]))
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor { pconv(x, p) }
}

/// MRFS's fusion head (the official `CNNHead`): a point convolution (1x1, BatchNorm, ReLU, to
/// `embed` channels) on each of the eight IGM-Att maps, each resized bilinearly (align_corners
/// false) to the input size, concatenated as [1 rgb, 1 ir, ..., 4 rgb, 4 ir, rgb, ir] with the
/// raw inputs (8 embed + 6 channels), then a 3x3 convolution, BatchNorm, ReLU, a 1x1 convolution
/// to RGB and a sigmoid. Names: `PointConv_{1-4}_{rgb,ir}.pconv.{0,1}`, `CNN_fuse.{0,1,3}`.
public struct FusionHead: Layer {
    public let embed: Int
    let pointConvolutions: [Child<PointConvolution>]
    let fuse: Child<Sequential>

    /// A head over stages of `inChannels` channels (four entries).
    public init(inChannels: [Int], embed: Int, batchNormEpsilon: Float, batchNormMomentum: Float) {
        require(inChannels.count == 4, "FusionHead: four stage widths are needed, got \(inChannels)")
        self.embed = embed
        pointConvolutions = (0..<4).flatMap { k in
            ["rgb", "ir"].map { stream in
                Child("PointConv_\(k + 1)_\(stream)", PointConvolution(inChannels[k], embed, batchNormEpsilon: batchNormEpsilon,
                                                                       batchNormMomentum: batchNormMomentum))
            }
        }
        fuse = Child("CNN_fuse", Sequential([headConvolution(8 * embed + 6, embed, kernelSize: 3),
                                             BatchNorm2d(embed, eps: batchNormEpsilon, momentum: batchNormMomentum), Activation(.relu),
                                             headConvolution(embed, 3, kernelSize: 1), Activation(.sigmoid)]))
    }

    /// The fused RGB image [B, 3, H, W] from the IGM-Att maps [rgb1, ir1, ..., rgb4, ir4] and the
    /// network's inputs (RGB and the replicated infrared image, [B, 3, H, W] each).
    public func callAsFunction(_ input: (vision: [Tensor], rgb: Tensor, infrared: Tensor), _ p: Scope) -> Tensor {
        require(input.vision.count == 8, "FusionHead: eight IGM-Att maps are needed, got \(input.vision.count)")
        let size = (input.rgb.shape[2], input.rgb.shape[3])
        let maps = zip(pointConvolutions, input.vision).map { conv, x in conv(x, p).resizedBilinear(to: size, alignCorners: false) }
        return fuse(Tensor.concat(maps + [input.rgb, input.infrared], axis: 1), p)
    }
}
