import FuseKit

// The small layers MAFS's blocks are built of, with the official state-dict names. Every
// convolution here is a `Conv` (PyTorch's Conv2d with the initialisation the official code gives
// it); norms and activations are FuseKit's.

/// How a convolution's weight starts when training from scratch (README section 4).
enum ConvInit: Sendable {
    /// PyTorch's default: kaiming-uniform with a = √5 (U(±1/√fan_in)), bias U(±1/√fan_in).
    case pytorch
    /// torchvision's ResNet: kaiming-normal, fan-out, ReLU gain: N(0, 2 / (out k²)).
    case kaimingNormalFanOut
    /// xavier-normal with gain 1, N(0, 2 / (fan_in + fan_out)), bias 0 (FeatureExtract's override).
    case xavierNormal
    /// detectron2's c2_xavier_fill: kaiming-uniform with a = 1, U(±√(3 / fan_in)), bias 0.
    case c2Xavier
    /// A truncated normal of std 0.02 (InvPT's mt_proj), bias PyTorch's default.
    case truncatedNormal

    func initializers(inPerGroup: Int, out: Int, kernel: (Int, Int)) -> (weight: Initializer?, bias: Initializer?) {
        let area = kernel.0 * kernel.1
        let fanIn = inPerGroup * area, fanOut = out * area
        switch self {
        case .pytorch: return (nil, nil)
        case .kaimingNormalFanOut: return (.normal(mean: 0, std: (2 / Float(fanOut)).squareRoot()), .constant(0))
        case .xavierNormal: return (.normal(mean: 0, std: (2 / Float(fanIn + fanOut)).squareRoot()), .constant(0))
        case .c2Xavier: return (.uniform(bound: (3 / Float(fanIn)).squareRoot()), .constant(0))
        case .truncatedNormal: return (.truncatedNormal(std: 0.02), nil)
        }
    }
}

/// `nn.Conv2d` with the official initialisation (``ConvInit``): FuseKit's ``Conv2d`` whose
/// parameters (`weight`, `bias`) are this module's own.
struct Conv: UnaryModule {
    let conv: Conv2d
    let weightInit: Initializer?
    let biasInit: Initializer?

    /// A square-kernel convolution; `padding` defaults to "same" (dilation (k - 1) / 2).
    init(_ inChannels: Int, _ outChannels: Int, _ kernel: Int, stride: Int = 1, padding: Int? = nil, dilation: Int = 1,
         groups: Int = 1, bias: Bool = true, initialization: ConvInit = .pytorch) {
        conv = Conv2d(inChannels, outChannels, kernelSize: kernel, stride: stride, padding: padding, dilation: dilation,
                      groups: groups, bias: bias)
        (weightInit, biasInit) = initialization.initializers(inPerGroup: inChannels / groups, out: outChannels, kernel: (kernel, kernel))
    }

    var ownParameters: [ParameterSpec] {
        conv.ownParameters.map { spec in
            var spec = spec
            if let initializer = spec.name == "weight" ? weightInit : biasInit { spec.initializer = initializer }
            return spec
        }
    }

    var children: [(name: String, module: any Module)] { [] }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor { conv(x, p) }
}

/// The activation after a convolution and its norm.
enum ConvActivation: Sendable {
    case none, relu, relu6
    case leakyRelu(Float)

    func apply(_ x: Tensor) -> Tensor {
        switch self {
        case .none: return x
        case .relu: return x.relu()
        case .relu6: return x.clamped(min: 0, max: 6)
        case .leakyRelu(let slope): return x.leakyRelu(slope: slope)
        }
    }
}

/// conv -> BatchNorm -> activation, each child under the name its official class uses: `conv`/`bn`
/// (Fusion_block's BasicConv2d and ConvBNReLU, CAI_ARM), `conv`/`bnop` (MayNet's ConvBNReLU),
/// `conv`/`bn1` (ConvBlock), `basicconv.0`/`basicconv.1` (BBasicConv2d).
struct ConvNorm: UnaryModule {
    let conv: Child<Conv>
    let norm: Child<BatchNorm2d>
    let activation: ConvActivation

    init(_ inChannels: Int, _ outChannels: Int, _ kernel: Int, stride: Int = 1, dilation: Int = 1, bias: Bool = false,
         names: (conv: String, norm: String) = ("conv", "bn"), activation: ConvActivation) {
        conv = Child(names.conv, Conv(inChannels, outChannels, kernel, stride: stride, dilation: dilation, bias: bias))
        norm = Child(names.norm, BatchNorm2d(outChannels))
        self.activation = activation
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor { activation.apply(norm(conv(x, p), p)) }
}

/// `nn.ReLU6` (a position in an `nn.Sequential`).
struct ReLU6: UnaryModule {
    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor { x.clamped(min: 0, max: 6) }
}

/// `nn.AdaptiveAvgPool2d(1)`: [B, C, H, W] -> [B, C, 1, 1].
struct GlobalAveragePool: UnaryModule {
    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor { x.mean(axes: [2, 3], keepDims: true) }
}

/// Bilinear resizing by an integral factor, PyTorch's `nn.Upsample(scale_factor=f, mode="bilinear")`
/// (`alignCorners` false) or `nn.UpsamplingBilinear2d(scale_factor=f)` (true).
struct BilinearUpsample: UnaryModule {
    let factor: Int
    let alignCorners: Bool

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        x.resizedBilinear(to: (x.shape[2] * factor, x.shape[3] * factor), alignCorners: alignCorners)
    }
}

/// Restormer's per-pixel LayerNorm ("WithBias", eps 1e-5) as MAFS's Fusion_block nests it (`body`).
struct BodyLayerNorm: UnaryModule {
    let body: Child<ChannelLayerNorm>
    init(_ channels: Int) { body = Child("body", ChannelLayerNorm(channels)) }
    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor { body(x, p) }
}

extension Tensor {
    /// Bilinear x2 with aligned corners (`nn.UpsamplingBilinear2d(scale_factor=2)`).
    func upsampledTwiceAligned() -> Tensor { resizedBilinear(to: (shape[2] * 2, shape[3] * 2), alignCorners: true) }
}
