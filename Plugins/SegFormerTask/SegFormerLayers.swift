import FuseKit

// Building blocks of SegFormer's Mix Transformer (MiT) encoder, written channel-first: every
// feature map stays NCHW from the patch embedding to the decoder. The official code keeps tokens
// [B, N, C] and transposes them to NCHW around every convolution; here the token-wise linear
// layers are 1x1 convolutions with the official [out, in] weights (same storage, reshaped), the
// LayerNorms normalise over the channel axis, and attention is computed on [B, heads, d, N] slices,
// so a block needs no transpose at all. Parameter names and shapes are the official ones.
//
// These layers are public so that other plugins (MRFS's dual-stream MiT) build on them.

/// The initialisation of every convolution in the official MiT code: weights drawn from
/// N(0, 2 / fan_out) with fan_out = kH · kW · out / groups, biases zero.
func fanOutNormal(kernel: Int, outChannels: Int, groups: Int) -> Initializer {
    let fanOut = max(1, kernel * kernel * outChannels / groups)
    return .normal(mean: 0, std: (2 / Float(fanOut)).squareRoot())
}

/// A token-wise `nn.Linear(inFeatures, outFeatures)` applied to the channels of an NCHW map:
/// parameters `weight` [out, in] and `bias` [out], as the official state dict stores them; the
/// product is a 1x1 convolution (one GEMM per image, no transpose).
public struct ChannelLinear: UnaryModule {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: ParameterSpec
    public let bias: ParameterSpec?

    /// A linear layer with PyTorch's `nn.Linear` initialisation (kaiming-uniform weight, uniform bias).
    public init(_ inFeatures: Int, _ outFeatures: Int) {
        self.init(inFeatures, outFeatures, weightInit: .kaimingUniform(fanIn: inFeatures),
                  biasInit: .uniform(bound: 1 / Float(max(inFeatures, 1)).squareRoot()))
    }

    /// A linear layer initialised as the official MiT code does (truncated normal with std 0.02,
    /// zero bias); `bias: false` leaves the bias out (`qkv_bias=False`).
    public static func mit(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true) -> ChannelLinear {
        ChannelLinear(inFeatures, outFeatures, weightInit: .truncatedNormal(std: 0.02), biasInit: bias ? .constant(0) : nil)
    }

    init(_ inFeatures: Int, _ outFeatures: Int, weightInit: Initializer, biasInit: Initializer?) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = ParameterSpec("weight", [outFeatures, inFeatures], weightInit)
        bias = biasInit.map { ParameterSpec("bias", [outFeatures], $0, decays: false) }
    }

    /// Applies the layer to the channels of `x` [B, in, H, W], giving [B, out, H, W].
    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        ChannelLinear.apply(x, weight: p[weight], bias: bias.map { p[$0] })
    }

    /// Only the output features `outputs` (the same values as slicing the full output, without
    /// computing the rest).
    public func callAsFunction(_ x: Tensor, _ p: Scope, outputs: Range<Int>) -> Tensor {
        guard outputs.count != outFeatures else { return self(x, p) }
        return ChannelLinear.apply(x, weight: p[weight].sliced(axis: 0, outputs), bias: bias.map { p[$0].sliced(axis: 0, outputs) })
    }

    /// The output times `scale`, with the scale applied to the weight and bias (a pass over
    /// the small parameters instead of the output).
    public func callAsFunction(_ x: Tensor, _ p: Scope, scale: Float) -> Tensor {
        ChannelLinear.apply(x, weight: p[weight] * scale, bias: bias.map { p[$0] * scale })
    }

    /// `mix` · (W x + b) for a matrix `mix` [m, out]: a linear map applied after this layer (a
    /// slice of the decoder's fusion convolution), composed with it when that is cheaper.
    public func callAsFunction(_ x: Tensor, _ p: Scope, followedBy mix: Tensor) -> Tensor {
        let w = p[weight], b = bias.map { p[$0] }
        let pixels = x.shape[0] * x.shape[2] * x.shape[3]
        guard inFeatures < pixels else {
            return ChannelLinear.apply(ChannelLinear.apply(x, weight: w, bias: b), weight: mix, bias: nil)
        }
        // (mix · W) x + mix · b: one product at the input's resolution.
        let composedBias = b.map { Tensor.matmul(mix, $0.reshaped([outFeatures, 1])).reshaped([mix.shape[0]]) }
        return ChannelLinear.apply(x, weight: Tensor.matmul(mix, w), bias: composedBias)
    }

    /// `weight` [out, in] and `bias` [out] applied to the channels of an NCHW map.
    public static func apply(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        require(x.rank == 4 && x.shape[1] == weight.shape[1],
                "ChannelLinear: input \(Shape.describe(x.shape)) does not have \(weight.shape[1]) channels")
        return Tensor.conv2d(x, weight.reshaped([weight.shape[0], weight.shape[1], 1, 1]), bias: bias)
    }
}

extension Child where M == ChannelLinear {
    /// Only the output features `outputs`; see ``ChannelLinear/callAsFunction(_:_:outputs:)``.
    public func callAsFunction(_ x: Tensor, _ p: Scope, outputs: Range<Int>) -> Tensor {
        run(in: p) { linear, scope in linear(x, scope, outputs: outputs) }
    }

    /// The output times `scale`; see ``ChannelLinear/callAsFunction(_:_:scale:)``.
    public func callAsFunction(_ x: Tensor, _ p: Scope, scale: Float) -> Tensor {
        run(in: p) { linear, scope in linear(x, scope, scale: scale) }
    }

    /// The layer followed by a linear map; see ``ChannelLinear/callAsFunction(_:_:followedBy:)``.
    public func callAsFunction(_ x: Tensor, _ p: Scope, followedBy mix: Tensor) -> Tensor {
        run(in: p) { linear, scope in linear(x, scope, followedBy: mix) }
    }
}

/// A 2-D convolution with the official MiT initialisation (fan-out normal weights, zero bias).
public struct MiTConv2d: UnaryModule {
    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let padding: Int
    public let groups: Int
    public let weight: ParameterSpec
    public let bias: ParameterSpec

    /// A `kernelSize` x `kernelSize` convolution with a bias.
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int, padding: Int, groups: Int = 1) {
        require(groups >= 1 && inChannels % groups == 0 && outChannels % groups == 0,
                "MiTConv2d: \(groups) groups must divide \(inChannels) input and \(outChannels) output channels")
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        self.groups = groups
        weight = ParameterSpec("weight", [outChannels, inChannels / groups, kernelSize, kernelSize],
                               fanOutNormal(kernel: kernelSize, outChannels: outChannels, groups: groups))
        bias = ParameterSpec("bias", [outChannels], .constant(0), decays: false)
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        Tensor.conv2d(x, p[weight], bias: p[bias], stride: (stride, stride), padding: (padding, padding), groups: groups)
    }
}

/// The GELU used in the Mix-FFN.
public enum GELUForm: String, ParameterChoice {
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
    public let proj: Child<MiTConv2d>
    public let norm: Child<ChannelLayerNorm>

    /// An embedding of `inChannels` into `embedDim` channels with a `patchSize` kernel and `stride`.
    public init(inChannels: Int, embedDim: Int, patchSize: Int, stride: Int) {
        proj = Child("proj", MiTConv2d(inChannels, embedDim, kernelSize: patchSize, stride: stride, padding: patchSize / 2))
        norm = Child("norm", ChannelLayerNorm(embedDim, eps: 1e-5))
    }

    /// The embedding of MiT stage `stage` (0-based): 7x7 with stride 4 for the first, 3x3 with
    /// stride 2 after.
    public init(stage: Int, inChannels: Int, embedDim: Int) {
        self.init(inChannels: inChannels, embedDim: embedDim, patchSize: stage == 0 ? 7 : 3, stride: stage == 0 ? 4 : 2)
    }

    public var inChannels: Int { proj.inChannels }
    public var embedDim: Int { proj.outChannels }

    /// Embeds `x` [B, in, H, W] into [B, embedDim, ⌈H/s⌉, ⌈W/s⌉] (for odd kernels).
    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        norm(proj(x, p), p)
    }
}

/// SegFormer's efficient self-attention ("spatial-reduction attention") on an NCHW map:
/// multi-head attention whose keys and values come from a copy reduced by a `reduction` x
/// `reduction` stride convolution and a LayerNorm (eps 1e-5) when `reduction > 1`. The official
/// module works on tokens [B, N, C]; this one computes the same function on [B, C, H, W] without
/// transposes. Names: `q`, `kv`, `proj`, `sr`, `norm` (official; `kv` stacks keys then values).
///
/// MRFS's PC-Att builds its self- and cross-attention from the same module: without q/kv biases,
/// with the queries' input added before the projection (`proj(attention + x)`), and for the cross
/// attention named `q1`/`kv2`, with keys and values from a second map
/// (``callAsFunction(_:keysFrom:_:)``).
public struct SpatialReductionAttention: UnaryModule {
    public let dim: Int
    public let heads: Int
    public let reduction: Int
    /// Whether the queries' input is added to the attention output before the projection
    /// (MRFS's PC-Att: `proj(attention + x)`) instead of leaving the residual to the caller.
    public let addsInputBeforeProjection: Bool
    public let q: Child<ChannelLinear>
    public let kv: Child<ChannelLinear>
    public let proj: Child<ChannelLinear>
    public let sr: Child<MiTConv2d>?
    public let norm: Child<ChannelLayerNorm>?

    /// Attention over `dim` channels with `heads` heads and spatial-reduction ratio `reduction`;
    /// `qkvBias` as the official `qkv_bias` (true in SegFormer). `queryName` and `keyValueName`
    /// name the query and key-value layers (`q`, `kv`; MRFS's cross attention: `q1`, `kv2`).
    public init(dim: Int, heads: Int, reduction: Int, qkvBias: Bool = true, addsInputBeforeProjection: Bool = false,
                queryName: String = "q", keyValueName: String = "kv") {
        require(heads > 0 && dim % heads == 0, "SpatialReductionAttention: dim \(dim) is not divisible by \(heads) heads")
        require(reduction >= 1, "SpatialReductionAttention: reduction ratio \(reduction) must be at least 1")
        self.dim = dim
        self.heads = heads
        self.reduction = reduction
        self.addsInputBeforeProjection = addsInputBeforeProjection
        q = Child(queryName, .mit(dim, dim, bias: qkvBias))
        kv = Child(keyValueName, .mit(dim, 2 * dim, bias: qkvBias))
        proj = Child("proj", .mit(dim, dim))
        sr = reduction > 1 ? Child("sr", MiTConv2d(dim, dim, kernelSize: reduction, stride: reduction, padding: 0)) : nil
        norm = reduction > 1 ? Child("norm", ChannelLayerNorm(dim, eps: 1e-5)) : nil
    }

    /// Self-attention of the pixels of `x` [B, dim, H, W]; the result has the same shape.
    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        self(x, keysFrom: x, p)
    }

    /// Attention of the pixels of `x` [B, dim, H, W] (the queries) over the pixels of `source`
    /// [B, dim, H', W'] (the keys and values, after the spatial reduction); the result has the
    /// shape of `x`.
    public func callAsFunction(_ x: Tensor, keysFrom source: Tensor, _ p: Scope) -> Tensor {
        require(x.rank == 4 && x.shape[1] == dim, "SpatialReductionAttention: input \(Shape.describe(x.shape)) does not have \(dim) channels")
        require(source.rank == 4 && source.shape[0] == x.shape[0] && source.shape[1] == dim,
                "SpatialReductionAttention: keys from \(Shape.describe(source.shape)) do not match queries \(Shape.describe(x.shape))")
        let d = dim / heads
        // The 1/√d scale of the scores is applied to q's weight and bias (tiny) instead of the
        // N·M scores: the same product, without a pass over a large tensor.
        let queries = q(x, p, scale: 1 / Float(d).squareRoot())
        let reducedSource = reduced(source, p)
        // Keys and values from the two halves of the kv weight: no copy of the activations.
        let keys = kv(reducedSource, p, outputs: 0..<dim), values = kv(reducedSource, p, outputs: dim..<(2 * dim))
        let mixed = Self.attention(queries: queries, keys: keys, values: values, heads: heads)
        return proj(addsInputBeforeProjection ? mixed + x : mixed, p)
    }

    /// The source of the keys and values: `x` reduced by the `sr` convolution and `norm` when
    /// the reduction ratio is above 1, else `x` itself. The convolution has no padding: rows and
    /// columns beyond the last whole `reduction` x `reduction` window are dropped, as officially.
    public func reduced(_ x: Tensor, _ p: Scope) -> Tensor {
        guard let sr, let norm else { return x }
        require(x.shape[2] >= reduction && x.shape[3] >= reduction,
                "SpatialReductionAttention: a \(x.shape[2])x\(x.shape[3]) map is smaller than the reduction ratio \(reduction)")
        return norm(sr(x, p), p)
    }

    /// Multi-head attention of channel-first maps: `queries` [B, C, H, W] (already scaled by
    /// 1/√d), `keys` and `values` [B, C, h, w]; heads split the channels into groups of d = C /
    /// heads. Returns Σ_m softmax_m(q_n · k_m) v_m as [B, C, H, W].
    public static func attention(queries: Tensor, keys: Tensor, values: Tensor, heads: Int) -> Tensor {
        let (b, c) = (queries.shape[0], queries.shape[1])
        let n = queries.shape[2] * queries.shape[3], m = keys.shape[2] * keys.shape[3]
        let d = c / heads
        let q = queries.reshaped([b, heads, d, n])
        let k = keys.reshaped([b, heads, d, m]), v = values.reshaped([b, heads, d, m])
        // scores[n, m] = q[:, n] · k[:, m]; out[:, n] = Σ_m attention[n, m] v[:, m].
        let attention = Tensor.matmul(q, k, transposeA: true).softmax(axis: -1)
        return Tensor.matmul(v, attention, transposeB: true).reshaped(queries.shape)
    }
}

extension Child where M == SpatialReductionAttention {
    /// Attention of `x` over the keys and values of `source`; see
    /// ``SpatialReductionAttention/callAsFunction(_:keysFrom:_:)``.
    public func callAsFunction(_ x: Tensor, keysFrom source: Tensor, _ p: Scope) -> Tensor {
        run(in: p) { attention, scope in attention(x, keysFrom: source, scope) }
    }
}

/// The depthwise 3x3 convolution of the Mix-FFN, nested as in the official `DWConv` module
/// (`dwconv.dwconv.weight` [C, 1, 3, 3], `dwconv.dwconv.bias` [C]).
public struct DepthwiseConvolution: UnaryModule {
    public let dwconv: Child<MiTConv2d>
    public init(_ channels: Int) { dwconv = Child("dwconv", MiTConv2d(channels, channels, kernelSize: 3, stride: 1, padding: 1, groups: channels)) }
    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor { dwconv(x, p) }
}

/// SegFormer's Mix-FFN: linear to `hidden` channels, depthwise 3x3 convolution, GELU, linear
/// back (the official dropout rate is 0, so there is none). Names: `fc1`, `dwconv.dwconv`, `fc2`.
public struct MixFeedForward: UnaryModule {
    public let gelu: GELUForm
    public let fc1: Child<ChannelLinear>
    public let dwconv: Child<DepthwiseConvolution>
    public let fc2: Child<ChannelLinear>

    /// A Mix-FFN on `dim` channels with `hidden` hidden channels.
    public init(dim: Int, hidden: Int, gelu: GELUForm) {
        self.gelu = gelu
        fc1 = Child("fc1", .mit(dim, hidden))
        dwconv = Child("dwconv", DepthwiseConvolution(hidden))
        fc2 = Child("fc2", .mit(hidden, dim))
    }

    /// Applies the FFN to `x` [B, dim, H, W].
    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        fc2(gelu.apply(dwconv(fc1(x, p), p)), p)
    }
}

/// A Mix Transformer block: x + DropPath(Attn(LN1(x))), then x + DropPath(MixFFN(LN2(x))), with
/// LayerNorms over the channels (eps 1e-6). Names: `norm1`, `attn`, `norm2`, `mlp`.
public struct MixTransformerBlock: UnaryModule {
    public let norm1: Child<ChannelLayerNorm>
    public let attn: Child<SpatialReductionAttention>
    public let norm2: Child<ChannelLayerNorm>
    public let mlp: Child<MixFeedForward>
    public let dropPath: DropPath

    /// A block on `dim` channels; `mlpRatio` sets the FFN's hidden width (dim · mlpRatio).
    public init(dim: Int, heads: Int, reduction: Int, mlpRatio: Int, dropPathRate: Float, gelu: GELUForm) {
        norm1 = Child("norm1", ChannelLayerNorm(dim, eps: 1e-6))
        attn = Child("attn", SpatialReductionAttention(dim: dim, heads: heads, reduction: reduction))
        norm2 = Child("norm2", ChannelLayerNorm(dim, eps: 1e-6))
        mlp = Child("mlp", MixFeedForward(dim: dim, hidden: dim * mlpRatio, gelu: gelu))
        dropPath = DropPath(dropPathRate)
    }

    /// Applies the block to `x` [B, dim, H, W].
    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let y = x + dropPath(attn(norm1(x, p), p), p)
        return y + dropPath(mlp(norm2(y, p), p), p)
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
