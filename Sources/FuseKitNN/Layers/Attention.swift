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
    public let temperature: ParameterSpec
    public let qkv: Child<Conv2d>
    public let qkvDepthwise: Child<Conv2d>
    public let projectOut: Child<Conv2d>

    public init(dim: Int, heads: Int, bias: Bool = false) {
        require(dim % heads == 0, "TransposedAttention: dim \(dim) is not divisible by \(heads) heads")
        self.dim = dim
        self.heads = heads
        temperature = Self.temperature(heads: heads)
        (qkv, qkvDepthwise) = Self.queryKeyValueConvs(dim: dim, bias: bias)
        projectOut = Child("project_out", Conv2d(dim, dim, kernelSize: 1, bias: bias))
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let parts = Self.queriesKeysValues(x, qkv, qkvDepthwise, p, dim: dim)
        let out = AttentionFunctions.channelAttention(q: parts[0], k: parts[1], v: parts[2], heads: heads, temperature: p[temperature])
        return projectOut(out, p)
    }

    /// A per-head attention temperature named `name` ([heads, 1, 1], ones, no decay).
    public static func temperature(heads: Int, name: String = "temperature") -> ParameterSpec {
        ParameterSpec(name, [heads, 1, 1], .constant(1), decays: false)
    }

    /// The 1x1 conv to 3·dim channels and its depthwise 3x3 conv, named `<prefix>` and
    /// `<prefix>_dwconv` as Restormer names them.
    public static func queryKeyValueConvs(dim: Int, bias: Bool, prefix: String = "qkv") -> (Child<Conv2d>, Child<Conv2d>) {
        (Child(prefix, Conv2d(dim, dim * 3, kernelSize: 1, bias: bias)),
         Child(prefix + "_dwconv", Conv2d(dim * 3, dim * 3, kernelSize: 3, groups: dim * 3, bias: bias)))
    }

    /// q, k, v = chunk(dwconv(conv1x1(x)), 3), each computed on its own channel range (the same
    /// values, without copying the 3·dim-channel activation).
    public static func queriesKeysValues(_ x: Tensor, _ pointwise: Child<Conv2d>, _ depthwise: Child<Conv2d>, _ p: Scope, dim: Int) -> [Tensor] {
        (0..<3).map { part in
            let range = (part * dim)..<((part + 1) * dim)
            return depthwise(pointwise(x, p, outputs: range), p, outputs: range)
        }
    }
}
