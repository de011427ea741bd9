import FuseKit

/// The "MLP" of the official decoder: one linear layer nested as `proj`.
public struct DecoderProjection: UnaryModule {
    public let proj: Child<ChannelLinear>
    public init(_ inChannels: Int, _ outChannels: Int) { proj = Child("proj", ChannelLinear(inChannels, outChannels)) }
    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor { proj(x, p) }
}

/// A 1x1 convolution, BatchNorm and ReLU, in one of two official layouts (``Layout``).
public struct ConvNormModule: UnaryModule {
    /// How the official code writes the module.
    public enum Layout: Sendable {
        /// mmcv's `ConvModule` as TDFusion writes it: a bias-free convolution `conv` and `bn`.
        case convModule
        /// `nn.Sequential(Conv2d, BatchNorm2d, ReLU)` (MRFS's `DecoderHead`): a convolution with
        /// a bias, `0`, and `1`.
        case sequential
    }

    public let conv: Child<Conv2d>
    public let bn: Child<BatchNorm2d>

    /// The module in `layout`; `weightInit` replaces PyTorch's default initialisation of the
    /// convolution's weight.
    public init(_ inChannels: Int, _ outChannels: Int, batchNormEpsilon: Float, batchNormMomentum: Float,
                layout: Layout = .convModule, weightInit: Initializer? = nil) {
        let sequential = layout == .sequential
        conv = Child(sequential ? "0" : "conv", Conv2d(inChannels, outChannels, kernelSize: 1, bias: sequential, weightInit: weightInit))
        bn = Child(sequential ? "1" : "bn", BatchNorm2d(outChannels, eps: batchNormEpsilon, momentum: batchNormMomentum))
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor { bn(conv(x, p), p).relu() }
}

/// How a decoder initialises its convolutions' weights (biases keep PyTorch's default).
public enum DecoderConvolutionInit: Sendable {
    /// PyTorch's default (kaiming-uniform, a = √5).
    case pytorchDefault
    /// N(0, 2 / fan_in): `kaiming_normal_(mode="fan_in", nonlinearity="relu")`, MRFS's `init_weight`.
    case kaimingNormal

    /// The initialiser of a convolution weight with `inChannels` inputs and `kernelArea` taps each
    /// (nil: PyTorch's default).
    public func weight(inChannels: Int, kernelArea: Int = 1) -> Initializer? {
        switch self {
        case .pytorchDefault: return nil
        case .kaimingNormal: return .normal(mean: 0, std: (2 / Float(Swift.max(inChannels * kernelArea, 1))).squareRoot())
        }
    }
}

/// SegFormer's all-MLP decoder. Each stage output c_k is projected by a linear layer to
/// `decoderDim` channels and upsampled (bilinear, align_corners=False) to the size of c1; the four
/// maps, concatenated as [c4, c3, c2, c1], are fused by a bias-free 1x1 convolution, BatchNorm and
/// ReLU; then channel dropout and a 1x1 classifier give logits at 1/4 of the input size.
///
/// Official names: `linear_c{1..4}.proj`, `linear_fuse.conv`, `linear_fuse.bn`, `linear_pred`
/// (registered c4 first, as the official code); MRFS's copy has `linear_fuse.0` (with a bias)
/// and `linear_fuse.1` (``ConvNormModule/Layout/sequential``).
///
/// The fusion convolution is linear, and so are the projections and the bilinear resize, so the
/// head applies each stage's slice of the fusion weight before upsampling (composing it with the
/// projection when that is cheaper): the same function as concatenating full-resolution maps,
/// at a fraction of the cost (the fused 4·dim -> dim product at 1/4 resolution is most of the
/// official head's work).
public struct SegFormerHead: Layer {
    public let decoderDim: Int
    public let classes: Int
    let linearC4, linearC3, linearC2, linearC1: Child<DecoderProjection>
    let linearFuse: Child<ConvNormModule>
    let dropout: ChannelDropout
    let linearPred: Child<Conv2d>

    /// A head over stages with `inChannels` channels (four entries, c1 first); `fuseLayout` and
    /// `convolutionInit` as the official code at hand writes the fusion module and initialises
    /// the convolutions.
    public init(inChannels: [Int], decoderDim: Int, classes: Int, dropout: Float, batchNormEpsilon: Float, batchNormMomentum: Float,
                fuseLayout: ConvNormModule.Layout = .convModule, convolutionInit: DecoderConvolutionInit = .pytorchDefault) {
        require(inChannels.count == 4, "SegFormerHead: four stage widths are needed, got \(inChannels)")
        require(classes >= 1 && decoderDim >= 1, "SegFormerHead: classes \(classes) and decoder width \(decoderDim) must be positive")
        self.decoderDim = decoderDim
        self.classes = classes
        linearC4 = Child("linear_c4", DecoderProjection(inChannels[3], decoderDim))
        linearC3 = Child("linear_c3", DecoderProjection(inChannels[2], decoderDim))
        linearC2 = Child("linear_c2", DecoderProjection(inChannels[1], decoderDim))
        linearC1 = Child("linear_c1", DecoderProjection(inChannels[0], decoderDim))
        linearFuse = Child("linear_fuse", ConvNormModule(4 * decoderDim, decoderDim, batchNormEpsilon: batchNormEpsilon,
                                                         batchNormMomentum: batchNormMomentum, layout: fuseLayout,
                                                         weightInit: convolutionInit.weight(inChannels: 4 * decoderDim)))
        self.dropout = ChannelDropout(dropout)
        linearPred = Child("linear_pred", Conv2d(decoderDim, classes, kernelSize: 1, weightInit: convolutionInit.weight(inChannels: decoderDim)))
    }

    /// Channels of the four stages the head takes, c1 first.
    public var inChannels: [Int] { [linearC1, linearC2, linearC3, linearC4].map(\.proj.inFeatures) }

    /// Logits [B, classes, h1, w1] from the four stage outputs (c1 first, as the encoder returns them).
    public func callAsFunction(_ features: [Tensor], _ p: Scope) -> Tensor {
        require(features.count == 4, "SegFormerHead: four feature maps are needed, got \(features.count)")
        let widths = inChannels
        for (k, f) in features.enumerated() {
            require(f.rank == 4 && f.shape[1] == widths[k],
                    "SegFormerHead: stage \(k + 1) must have \(widths[k]) channels, got \(Shape.describe(f.shape))")
        }
        let e = decoderDim
        let size = (features[0].shape[2], features[0].shape[3])
        let fused = linearFuse.run(in: p) { fuse, fuseScope in
            let mixed = fuse.conv.run(in: fuseScope) { conv, convScope in
                let fuseWeight = convScope[conv.weight].reshaped([e, 4 * e])
                var sum: Tensor? = nil
                // Concatenation order of the official head: c4, c3, c2, c1.
                for (slot, (projection, c)) in zip([linearC4, linearC3, linearC2, linearC1], features.reversed()).enumerated() {
                    let slice = fuseWeight.sliced(axis: 1, (slot * e)..<((slot + 1) * e))
                    let y = projection.run(in: p) { module, scope in module.proj(c, scope, followedBy: slice) }
                        .resizedBilinear(to: size, alignCorners: false)
                    sum = sum.map { $0 + y } ?? y
                }
                return conv.bias.map { sum! + convScope[$0].reshaped([1, e, 1, 1]) } ?? sum!
            }
            return fuse.bn(mixed, fuseScope).relu()
        }
        return linearPred(dropout(fused, p), p)
    }
}
