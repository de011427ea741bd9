import FuseKit

// Building blocks of SegFormer's Mix Transformer (MiT) encoder, written channel-first: every
// feature map stays NCHW from the patch embedding to the decoder. The official code keeps tokens
// [B, N, C] and transposes them to NCHW around every convolution; here the token-wise linear
// layers are 1x1 convolutions with the official [out, in] weights (same storage, reshaped), the
// LayerNorms normalise over the channel axis, and attention is computed on [B, heads, d, N] slices,
// so a block needs no transpose at all. Parameter names and shapes are the official ones.

/// The initialisation of every convolution in the official MiT code: weights drawn from
/// N(0, 2 / fan_out) with fan_out = kH · kW · out / groups, biases zero.
func fanOutNormal(kernel: Int, outChannels: Int, groups: Int) -> Initializer {
    let fanOut = max(1, kernel * kernel * outChannels / groups)
    return .normal(mean: 0, std: (2 / Float(fanOut)).squareRoot())
}

/// The initialisation of every `nn.Linear` weight in the official MiT code (biases are zero).
let truncatedNormal02 = Initializer.truncatedNormal(std: 0.02)

/// A token-wise `nn.Linear(inFeatures, outFeatures)` applied to the channels of an NCHW map:
/// parameters `weight` [out, in] and `bias` [out], as the official state dict stores them; the
/// product is a 1x1 convolution (one GEMM per image, no transpose).
public struct ChannelLinear: UnaryModule {
    public let inFeatures: Int
    public let outFeatures: Int
    /// Initialiser of the weight.
    public let weightInit: Initializer
    /// Initialiser of the bias.
    public let biasInit: Initializer

    /// A linear layer with the given initialisers (PyTorch's `nn.Linear` default when nil).
    public init(_ inFeatures: Int, _ outFeatures: Int, weightInit: Initializer? = nil, biasInit: Initializer? = nil) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.weightInit = weightInit ?? .kaimingUniform(fanIn: inFeatures)
        self.biasInit = biasInit ?? .uniform(bound: 1 / Float(max(inFeatures, 1)).squareRoot())
    }

    /// A linear layer initialised as the official MiT code does (truncated normal, std 0.02; bias 0).
    static func mit(_ inFeatures: Int, _ outFeatures: Int) -> ChannelLinear {
        ChannelLinear(inFeatures, outFeatures, weightInit: truncatedNormal02, biasInit: .constant(0))
    }

    public var ownParameters: [ParameterSpec] {
        [ParameterSpec("weight", [outFeatures, inFeatures], weightInit),
         ParameterSpec("bias", [outFeatures], biasInit, decays: false)]
    }

    /// Applies the layer to the channels of `x` [B, in, H, W], giving [B, out, H, W].
    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        ChannelLinear.apply(x, weight: p["weight"], bias: p["bias"])
    }

    /// `weight` [out, in] and `bias` [out] applied to the channels of an NCHW map.
    static func apply(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        require(x.rank == 4 && x.shape[1] == weight.shape[1],
                "ChannelLinear: input \(Shape.describe(x.shape)) does not have \(weight.shape[1]) channels")
        return Tensor.conv2d(x, weight.reshaped([weight.shape[0], weight.shape[1], 1, 1]), bias: bias)
    }
}

/// A 2-D convolution with the official MiT initialisation (fan-out normal weights, zero bias).
struct MiTConv2d: UnaryModule {
    let inChannels: Int
    let outChannels: Int
    let kernelSize: Int
    let stride: Int
    let padding: Int
    let groups: Int

    init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int, groups: Int = 1) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        self.groups = groups
    }

    var ownParameters: [ParameterSpec] {
        [ParameterSpec("weight", [outChannels, inChannels / groups, kernelSize, kernelSize],
                       fanOutNormal(kernel: kernelSize, outChannels: outChannels, groups: groups)),
         ParameterSpec("bias", [outChannels], .constant(0), decays: false)]
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        Tensor.conv2d(x, p["weight"], bias: p["bias"], stride: (stride, stride), padding: (padding, padding), groups: groups)
    }
}

/// The GELU used in the Mix-FFN.
public enum GELUForm: String, Sendable, CaseIterable {
    /// The exact erf form, `nn.GELU()` (NVlabs SegFormer).
    case exact
    /// The tanh approximation 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))), which the copy of the
    /// backbone in the official TDFusion code uses.
    case tanh

    /// Applies the function.
    public func apply(_ x: Tensor) -> Tensor {
        switch self {
        case .exact:
            return x.gelu()
        case .tanh:
            let inner = (x + x * x * x * 0.044715) * Float((2 / Double.pi).squareRoot())
            return x * (inner.tanh() + 1) * 0.5
        }
    }
}

/// SegFormer's overlapping patch embedding: a k x k convolution with stride s and padding k/2
/// (7x7/4 for the first stage, 3x3/2 after), then LayerNorm over the channels (eps 1e-5, as the
/// official `nn.LayerNorm(embed_dim)`). NCHW in and out. Names: `proj`, `norm`.
public struct OverlapPatchEmbedding: UnaryModule {
    public let inChannels: Int
    public let embedDim: Int
    public let patchSize: Int
    public let stride: Int
    let proj: MiTConv2d
    let norm: ChannelLayerNorm

    /// An embedding of `inChannels` into `embedDim` channels with a `patchSize` kernel and `stride`.
    public init(inChannels: Int, embedDim: Int, patchSize: Int, stride: Int) {
        self.inChannels = inChannels
        self.embedDim = embedDim
        self.patchSize = patchSize
        self.stride = stride
        proj = MiTConv2d(inChannels, embedDim, kernelSize: patchSize, stride: stride, padding: patchSize / 2)
        norm = ChannelLayerNorm(embedDim, eps: 1e-5)
    }

    public var children: [(name: String, module: any Module)] { [("proj", proj), ("norm", norm)] }

    /// Embeds `x` [B, in, H, W] into [B, embedDim, ⌈H/s⌉, ⌈W/s⌉] (for odd kernels).
    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        norm(proj(x, p.child("proj")), p.child("norm"))
    }
}

/// SegFormer's efficient self-attention on an NCHW map: multi-head attention whose keys and
/// values come from a copy reduced by a `reduction` x `reduction` stride convolution and a
/// LayerNorm (eps 1e-5) when `reduction > 1`. The official token-layout module is FuseKitNN's
/// `SpatialReductionAttention`; this one computes the same function on [B, C, H, W] without
/// transposes. Names: `q`, `kv`, `proj`, `sr`, `norm` (official; `kv` stacks keys then values).
public struct EfficientSelfAttention: UnaryModule {
    public let dim: Int
    public let heads: Int
    public let reduction: Int
    let q: ChannelLinear
    let kv: ChannelLinear
    let proj: ChannelLinear
    let sr: MiTConv2d?
    let norm: ChannelLayerNorm?

    /// Attention over `dim` channels with `heads` heads and spatial reduction ratio `reduction`.
    public init(dim: Int, heads: Int, reduction: Int) {
        require(heads > 0 && dim % heads == 0, "EfficientSelfAttention: dim \(dim) is not divisible by \(heads) heads")
        require(reduction >= 1, "EfficientSelfAttention: reduction ratio \(reduction) must be at least 1")
        self.dim = dim
        self.heads = heads
        self.reduction = reduction
        q = .mit(dim, dim)
        kv = .mit(dim, 2 * dim)
        proj = .mit(dim, dim)
        if reduction > 1 {
            sr = MiTConv2d(dim, dim, kernelSize: reduction, stride: reduction, padding: 0)
            norm = ChannelLayerNorm(dim, eps: 1e-5)
        } else {
            sr = nil
            norm = nil
        }
    }

    public var children: [(name: String, module: any Module)] {
        var list: [(name: String, module: any Module)] = [("q", q), ("kv", kv), ("proj", proj)]
        if let sr, let norm { list += [("sr", sr), ("norm", norm)] }
        return list
    }

    /// Self-attention of the pixels of `x` [B, dim, H, W]; the result has the same shape.
    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        require(x.rank == 4 && x.shape[1] == dim, "EfficientSelfAttention: input \(Shape.describe(x.shape)) does not have \(dim) channels")
        let (b, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let d = dim / heads, n = h * w
        // The 1/√d scale of the scores is applied to q's weight and bias (tiny) instead of the
        // N·M scores: the same product, without a pass over a large tensor.
        let scale = 1 / Float(d).squareRoot()
        let qScope = p.child("q")
        let queries = ChannelLinear.apply(x, weight: qScope["weight"] * scale, bias: qScope["bias"] * scale).reshaped([b, heads, d, n])
        var source = x
        if let sr, let norm {
            require(h >= reduction && w >= reduction,
                    "EfficientSelfAttention: a \(h)x\(w) map is smaller than the reduction ratio \(reduction)")
            source = norm(sr(x, p.child("sr")), p.child("norm"))
        }
        let m = source.shape[2] * source.shape[3]
        // Keys and values from the two halves of the kv weight: no copy of the activations.
        let kvScope = p.child("kv")
        let weight = kvScope["weight"], bias = kvScope["bias"]
        let keys = ChannelLinear.apply(source, weight: weight.sliced(axis: 0, 0..<dim), bias: bias.sliced(axis: 0, 0..<dim))
            .reshaped([b, heads, d, m])
        let values = ChannelLinear.apply(source, weight: weight.sliced(axis: 0, dim..<(2 * dim)), bias: bias.sliced(axis: 0, dim..<(2 * dim)))
            .reshaped([b, heads, d, m])
        // scores[n, m] = q[:, n] · k[:, m]; out[:, n] = Σ_m attention[n, m] v[:, m].
        let attention = Tensor.matmul(queries, keys, transposeA: true).softmax(axis: -1)
        let mixed = Tensor.matmul(values, attention, transposeB: true).reshaped([b, dim, h, w])
        return proj(mixed, p.child("proj"))
    }
}

/// The depthwise 3x3 convolution of the Mix-FFN, nested as in the official `DWConv` module
/// (`dwconv.dwconv.weight` [C, 1, 3, 3], `dwconv.dwconv.bias` [C]).
struct DepthwiseConvolution: UnaryModule {
    let dwconv: MiTConv2d
    init(_ channels: Int) { dwconv = MiTConv2d(channels, channels, kernelSize: 3, padding: 1, groups: channels) }
    var children: [(name: String, module: any Module)] { [("dwconv", dwconv)] }
    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor { dwconv(x, p.child("dwconv")) }
}

/// SegFormer's Mix-FFN: linear to `hidden` channels, depthwise 3x3 convolution, GELU, linear
/// back (the official dropout rate is 0, so there is none). Names: `fc1`, `dwconv.dwconv`, `fc2`.
public struct MixFeedForward: UnaryModule {
    public let dim: Int
    public let hidden: Int
    public let gelu: GELUForm
    let fc1: ChannelLinear
    let dwconv: DepthwiseConvolution
    let fc2: ChannelLinear

    /// A Mix-FFN on `dim` channels with `hidden` hidden channels.
    public init(dim: Int, hidden: Int, gelu: GELUForm = .exact) {
        self.dim = dim
        self.hidden = hidden
        self.gelu = gelu
        fc1 = .mit(dim, hidden)
        dwconv = DepthwiseConvolution(hidden)
        fc2 = .mit(hidden, dim)
    }

    public var children: [(name: String, module: any Module)] { [("fc1", fc1), ("dwconv", dwconv), ("fc2", fc2)] }

    /// Applies the FFN to `x` [B, dim, H, W].
    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let expanded = dwconv(fc1(x, p.child("fc1")), p.child("dwconv"))
        return fc2(gelu.apply(expanded), p.child("fc2"))
    }
}

/// A Mix Transformer block: x + DropPath(Attn(LN1(x))), then x + DropPath(MixFFN(LN2(x))), with
/// LayerNorms over the channels (eps 1e-6). Names: `norm1`, `attn`, `norm2`, `mlp`.
public struct MixTransformerBlock: UnaryModule {
    public let dim: Int
    public let dropPathRate: Float
    let norm1: ChannelLayerNorm
    let attn: EfficientSelfAttention
    let norm2: ChannelLayerNorm
    let mlp: MixFeedForward
    let dropPath: DropPath

    /// A block on `dim` channels; `mlpRatio` sets the FFN's hidden width (dim · mlpRatio).
    public init(dim: Int, heads: Int, reduction: Int, mlpRatio: Int = 4, dropPathRate: Float = 0, gelu: GELUForm = .exact) {
        self.dim = dim
        self.dropPathRate = dropPathRate
        norm1 = ChannelLayerNorm(dim, eps: 1e-6)
        attn = EfficientSelfAttention(dim: dim, heads: heads, reduction: reduction)
        norm2 = ChannelLayerNorm(dim, eps: 1e-6)
        mlp = MixFeedForward(dim: dim, hidden: dim * mlpRatio, gelu: gelu)
        dropPath = DropPath(dropPathRate)
    }

    public var children: [(name: String, module: any Module)] {
        [("norm1", norm1), ("attn", attn), ("norm2", norm2), ("mlp", mlp)]
    }

    /// Applies the block to `x` [B, dim, H, W].
    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let y = x + dropPath(attn(norm1(x, p.child("norm1")), p.child("attn")), p)
        return y + dropPath(mlp(norm2(y, p.child("norm2")), p.child("mlp")), p)
    }
}

/// Channel dropout, PyTorch's `nn.Dropout2d`: in training, zeroes whole channels of each sample
/// with probability `rate` and scales the rest by 1 / (1 - rate); the identity in evaluation.
public struct ChannelDropout: UnaryModule {
    public let rate: Float

    /// Dropout of whole channels with probability `rate` in [0, 1).
    public init(_ rate: Float) {
        require(rate >= 0 && rate < 1, "ChannelDropout: rate \(rate) must be in [0, 1)")
        self.rate = rate
    }

    /// Applies the dropout to `x` [B, C, H, W].
    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        guard p.isTraining && rate > 0 else { return x }
        let keep = Tensor.uniform([x.shape[0], x.shape[1], 1, 1], using: &p.context.rng).greaterEqual(rate)
        return x * (keep * (1 / (1 - rate)))
    }
}
