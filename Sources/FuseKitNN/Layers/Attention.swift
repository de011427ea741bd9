import FuseKitTensor

/// Attention functions shared by the attention layers.
public enum AttentionFunctions {
    /// Restormer's channel ("transposed") attention: q, k, v [B, C, H, W] are split into `heads`
    /// groups of channels; q and k are L2-normalised over the pixels; the C/heads x C/heads
    /// attention map softmax(q kᵀ · temperature[head]) mixes v's channels.
    public static func channelAttention(q: Tensor, k: Tensor, v: Tensor, heads: Int, temperature: Tensor) -> Tensor {
        let (b, c, h, w) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        require(c % heads == 0, "channelAttention: \(c) channels are not divisible by \(heads) heads")
        require(temperature.count == heads, "channelAttention: temperature \(Shape.describe(temperature.shape)) for \(heads) heads")
        let grouped = [b, heads, c / heads, h * w]
        let qn = q.reshaped(grouped).l2Normalized(axis: -1)
        let kn = k.reshaped(grouped).l2Normalized(axis: -1)
        let logits = Tensor.matmul(qn, kn, transposeB: true) * temperature.reshaped([1, heads, 1, 1])
        return Tensor.matmul(logits.softmax(axis: -1), v.reshaped(grouped)).reshaped([b, c, h, w])
    }
}

/// Restormer's multi-Dconv head transposed attention (MDTA): 1x1 conv to q, k, v, a depthwise
/// 3x3 conv, channel attention with a learned temperature per head, and a 1x1 output projection.
/// Parameter names follow the official code: `qkv`, `qkv_dwconv`, `project_out`, `temperature`.
public struct TransposedAttention: UnaryModule {
    public let dim: Int
    public let heads: Int
    public let qkv: Conv2d
    public let qkvDepthwise: Conv2d
    public let projectOut: Conv2d

    public init(dim: Int, heads: Int, bias: Bool = false) {
        require(dim % heads == 0, "TransposedAttention: dim \(dim) is not divisible by \(heads) heads")
        self.dim = dim
        self.heads = heads
        qkv = Conv2d(dim, dim * 3, kernelSize: 1, bias: bias)
        qkvDepthwise = Conv2d(dim * 3, dim * 3, kernelSize: 3, groups: dim * 3, bias: bias)
        projectOut = Conv2d(dim, dim, kernelSize: 1, bias: bias)
    }

    public var ownParameters: [ParameterSpec] { [ParameterSpec("temperature", [heads, 1, 1], .constant(1), decays: false)] }

    public var children: [(name: String, module: any Module)] {
        [("qkv", qkv), ("qkv_dwconv", qkvDepthwise), ("project_out", projectOut)]
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let parts = Self.queriesKeysValues(x, qkv, qkvDepthwise, p.child("qkv"), p.child("qkv_dwconv"), dim: dim)
        let out = AttentionFunctions.channelAttention(q: parts[0], k: parts[1], v: parts[2], heads: heads, temperature: p["temperature"])
        return projectOut(out, p.child("project_out"))
    }

    /// q, k, v = chunk(dwconv(conv1x1(x)), 3), each computed on its own channel range (the same
    /// values, without copying the 3·dim-channel activation).
    public static func queriesKeysValues(_ x: Tensor, _ pointwise: Conv2d, _ depthwise: Conv2d, _ pp: Scope, _ dp: Scope, dim: Int) -> [Tensor] {
        (0..<3).map { part in
            let range = (part * dim)..<((part + 1) * dim)
            return depthwise(pointwise(x, pp, outputs: range), dp, outputs: range)
        }
    }
}

/// SegFormer's efficient self-attention: multi-head attention over tokens [B, N, C] whose keys
/// and values come from a spatially reduced copy (a stride-`reduction` conv then LayerNorm).
/// Parameter names follow the official code: `q`, `kv`, `proj`, `sr`, `norm`.
public struct SpatialReductionAttention: Module {
    public let dim: Int
    public let heads: Int
    public let reduction: Int
    public let q: Linear
    public let kv: Linear
    public let proj: Linear
    public let sr: Conv2d?
    public let norm: LayerNorm?
    public let attentionDropout: Dropout
    public let projectionDropout: Dropout

    public init(dim: Int, heads: Int, reduction: Int, qkvBias: Bool = true, attentionDropout: Float = 0, projectionDropout: Float = 0) {
        require(dim % heads == 0, "SpatialReductionAttention: dim \(dim) is not divisible by \(heads) heads")
        self.dim = dim
        self.heads = heads
        self.reduction = reduction
        let linearInit = Initializer.truncatedNormal(std: 0.02)
        q = Linear(dim, dim, bias: qkvBias, weightInit: linearInit, biasInit: .constant(0))
        kv = Linear(dim, dim * 2, bias: qkvBias, weightInit: linearInit, biasInit: .constant(0))
        proj = Linear(dim, dim, weightInit: linearInit, biasInit: .constant(0))
        if reduction > 1 {
            sr = Conv2d(dim, dim, kernelSize: reduction, stride: reduction, padding: 0)
            norm = LayerNorm(dim)
        } else {
            sr = nil
            norm = nil
        }
        self.attentionDropout = Dropout(attentionDropout)
        self.projectionDropout = Dropout(projectionDropout)
    }

    public var children: [(name: String, module: any Module)] {
        var c: [(String, any Module)] = [("q", q), ("kv", kv), ("proj", proj)]
        if let sr, let norm { c += [("sr", sr), ("norm", norm)] }
        return c
    }

    /// Attention over tokens `x` [B, H·W, C] laid out on an H x W grid.
    public func callAsFunction(_ x: Tensor, height: Int, width: Int, _ p: Scope) -> Tensor {
        let (b, n, c) = (x.shape[0], x.shape[1], x.shape[2])
        require(n == height * width && c == dim, "SpatialReductionAttention: tokens \(Shape.describe(x.shape)) do not match \(height)x\(width)x\(dim)")
        let d = c / heads
        let queries = q(x, p.child("q")).reshaped([b, n, heads, d]).permuted([0, 2, 1, 3])
        var source = x
        if let sr, let norm {
            let grid = x.transposed(1, 2).reshaped([b, c, height, width])
            let reduced = sr(grid, p.child("sr"))
            source = norm(reduced.reshaped([b, c, -1]).transposed(1, 2), p.child("norm"))
        }
        let m = source.shape[1]
        let keysValues = kv(source, p.child("kv")).reshaped([b, m, 2, heads, d]).permuted([2, 0, 3, 1, 4])
        let parts = keysValues.chunked(2, axis: 0)
        let keys = parts[0].squeezed(at: 0), values = parts[1].squeezed(at: 0)
        let scale = 1 / Float(d).squareRoot()
        var attention = (Tensor.matmul(queries, keys, transposeB: true) * scale).softmax(axis: -1)
        attention = attentionDropout(attention, p)
        let mixed = Tensor.matmul(attention, values).permuted([0, 2, 1, 3]).reshaped([b, n, c])
        return projectionDropout(proj(mixed, p.child("proj")), p)
    }
}
