import FuseKit

/// The "MLP" of the official decoder: one linear layer nested as `proj`.
struct DecoderProjection: Module {
    let proj: ChannelLinear
    init(_ inChannels: Int, _ outChannels: Int) { proj = ChannelLinear(inChannels, outChannels) }
    var children: [(name: String, module: any Module)] { [("proj", proj)] }
}

/// mmcv's `ConvModule` as TDFusion writes it: a bias-free 1x1 convolution then BatchNorm
/// (`conv`, `bn`); the ReLU follows in the head.
struct ConvNormModule: Module {
    let conv: Conv2d
    let bn: BatchNorm2d
    var children: [(name: String, module: any Module)] { [("conv", conv), ("bn", bn)] }
}

/// SegFormer's all-MLP decoder. Each stage output c_k is projected by a linear layer to
/// `decoderDim` channels and upsampled (bilinear, align_corners=False) to the size of c1; the four
/// maps, concatenated as [c4, c3, c2, c1], are fused by a bias-free 1x1 convolution, BatchNorm and
/// ReLU; then channel dropout and a 1x1 classifier give logits at 1/4 of the input size.
///
/// Official names: `linear_c{1..4}.proj`, `linear_fuse.conv`, `linear_fuse.bn`, `linear_pred`.
///
/// The fusion convolution is linear, and so are the projections and the bilinear resize, so the
/// head applies each stage's slice of the fusion weight before upsampling (composing it with the
/// projection when that is cheaper): the same function as concatenating full-resolution maps,
/// at a fraction of the cost (the fused 4·dim -> dim product at 1/4 resolution is most of the
/// official head's work).
public struct SegFormerHead: Module {
    public let inChannels: [Int]
    public let decoderDim: Int
    public let classes: Int
    let projections: [DecoderProjection]
    let fuse: ConvNormModule
    let dropout: ChannelDropout
    let classifier: Conv2d

    /// A head over stages with `inChannels` channels (four entries).
    public init(inChannels: [Int], decoderDim: Int, classes: Int, dropout: Float = 0.1,
                batchNormEpsilon: Float = 1e-3, batchNormMomentum: Float = 0.03) {
        require(inChannels.count == 4, "SegFormerHead: four stage widths are needed, got \(inChannels)")
        require(classes >= 1 && decoderDim >= 1, "SegFormerHead: classes \(classes) and decoder width \(decoderDim) must be positive")
        self.inChannels = inChannels
        self.decoderDim = decoderDim
        self.classes = classes
        projections = inChannels.map { DecoderProjection($0, decoderDim) }
        fuse = ConvNormModule(conv: Conv2d(4 * decoderDim, decoderDim, kernelSize: 1, bias: false),
                              bn: BatchNorm2d(decoderDim, eps: batchNormEpsilon, momentum: batchNormMomentum))
        self.dropout = ChannelDropout(dropout)
        classifier = Conv2d(decoderDim, classes, kernelSize: 1)
    }

    public var children: [(name: String, module: any Module)] {
        [("linear_c4", projections[3]), ("linear_c3", projections[2]), ("linear_c2", projections[1]),
         ("linear_c1", projections[0]), ("linear_fuse", fuse), ("linear_pred", classifier)]
    }

    /// Logits [B, classes, h1, w1] from the four stage outputs (c1 first, as the encoder returns them).
    public func callAsFunction(_ features: [Tensor], _ p: Scope) -> Tensor {
        require(features.count == 4, "SegFormerHead: four feature maps are needed, got \(features.count)")
        for (k, f) in features.enumerated() {
            require(f.rank == 4 && f.shape[1] == inChannels[k],
                    "SegFormerHead: stage \(k + 1) must have \(inChannels[k]) channels, got \(Shape.describe(f.shape))")
        }
        let e = decoderDim
        let size = (features[0].shape[2], features[0].shape[3])
        let fuseScope = p.child("linear_fuse")
        let fuseWeight = fuseScope.child("conv")["weight"].reshaped([e, 4 * e])
        var fused: Tensor? = nil
        // Concatenation order of the official head: c4, c3, c2, c1.
        for (slot, k) in [3, 2, 1, 0].enumerated() {
            let projection = p.child("linear_c\(k + 1)").child("proj")
            let weight = projection["weight"], bias = projection["bias"]
            let slice = fuseWeight.sliced(axis: 1, (slot * e)..<((slot + 1) * e))
            let c = features[k]
            let pixels = c.shape[0] * c.shape[2] * c.shape[3]
            var y: Tensor
            if inChannels[k] < pixels {
                // (slice · W) c + slice · b: one product at the stage's resolution.
                let composedWeight = Tensor.matmul(slice, weight)
                let composedBias = Tensor.matmul(slice, bias.reshaped([e, 1])).reshaped([e])
                y = ChannelLinear.apply(c, weight: composedWeight, bias: composedBias)
            } else {
                y = ChannelLinear.apply(ChannelLinear.apply(c, weight: weight, bias: bias), weight: slice, bias: nil)
            }
            y = y.resizedBilinear(to: size, alignCorners: false)
            fused = fused.map { $0 + y } ?? y
        }
        let normalized = fuse.bn(fused!, fuseScope.child("bn")).relu()
        return classifier(dropout(normalized, p), p.child("linear_pred"))
    }
}
