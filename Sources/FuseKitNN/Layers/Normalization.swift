import FuseKitTensor

/// Normalisation functions shared by the layers below.
public enum Normalize {
    /// (x - mean) / sqrt(var + eps) over `axes` (biased variance, as every PyTorch norm layer).
    public static func standardize(_ x: Tensor, axes: [Int], eps: Float) -> Tensor {
        let mean = x.mean(axes: axes, keepDims: true)
        let centered = x - mean
        let variance = (centered * centered).mean(axes: axes, keepDims: true)
        return centered / (variance + eps).sqrt()
    }

    /// Per-pixel LayerNorm over the channels of NCHW (Restormer's `LayerNorm(dim, 'WithBias')`).
    public static func channelLayerNorm(_ x: Tensor, weight: Tensor, bias: Tensor?, eps: Float) -> Tensor {
        Tensor.channelLayerNorm(x, weight: weight, bias: bias, eps: eps)
    }
}

extension ParameterSpec {
    /// The affine parameters of a norm layer: `weight` (ones) and optionally `bias` (zeros) of
    /// `shape`, without weight decay.
    public static func affine(_ shape: [Int], bias: Bool = true) -> [ParameterSpec] {
        [ParameterSpec("weight", shape, .constant(1), decays: false)]
            + (bias ? [ParameterSpec("bias", shape, .constant(0), decays: false)] : [])
    }
}

/// LayerNorm over the channels of each pixel of an NCHW tensor (weight and bias [C]).
public struct ChannelLayerNorm: UnaryModule {
    public let channels: Int
    public let eps: Float
    public let hasBias: Bool

    public init(_ channels: Int, eps: Float = 1e-5, bias: Bool = true) {
        self.channels = channels
        self.eps = eps
        self.hasBias = bias
    }

    public var ownParameters: [ParameterSpec] { ParameterSpec.affine([channels], bias: hasBias) }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        Normalize.channelLayerNorm(x, weight: p["weight"], bias: hasBias ? p["bias"] : nil, eps: eps)
    }
}

/// LayerNorm over the trailing axes, PyTorch's `nn.LayerNorm(normalized_shape)`.
public struct LayerNorm: UnaryModule {
    public let normalizedShape: [Int]
    public let eps: Float

    public init(_ normalizedShape: [Int], eps: Float = 1e-5) {
        self.normalizedShape = normalizedShape
        self.eps = eps
    }

    public init(_ features: Int, eps: Float = 1e-5) { self.init([features], eps: eps) }

    public var ownParameters: [ParameterSpec] { ParameterSpec.affine(normalizedShape) }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let k = normalizedShape.count
        require(Array(x.shape.suffix(k)) == normalizedShape,
                "LayerNorm: input \(Shape.describe(x.shape)) does not end in \(Shape.describe(normalizedShape))")
        let axes = Array((x.rank - k)..<x.rank)
        return Normalize.standardize(x, axes: axes, eps: eps) * p["weight"] + p["bias"]
    }
}

/// Batch normalisation over NCHW, PyTorch's `nn.BatchNorm2d` (buffers `running_mean`,
/// `running_var`, `num_batches_tracked`; running variance uses the unbiased batch variance).
public struct BatchNorm2d: UnaryModule {
    public let channels: Int
    public let eps: Float
    public let momentum: Float

    public init(_ channels: Int, eps: Float = 1e-5, momentum: Float = 0.1) {
        self.channels = channels
        self.eps = eps
        self.momentum = momentum
    }

    public var ownParameters: [ParameterSpec] {
        ParameterSpec.affine([channels]) + [
         ParameterSpec("running_mean", [channels], .constant(0), isBuffer: true),
         ParameterSpec("running_var", [channels], .constant(1), isBuffer: true),
         ParameterSpec("num_batches_tracked", [], .constant(0), isBuffer: true)]
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        require(x.rank == 4 && x.shape[1] == channels, "BatchNorm2d(\(channels)): input must be [N, \(channels), H, W], got \(Shape.describe(x.shape))")
        let shape = [1, channels, 1, 1]
        let weight = p["weight"].reshaped(shape), bias = p["bias"].reshaped(shape)
        if p.isTraining {
            let mean = x.mean(axes: [0, 2, 3], keepDims: true)
            let centered = x - mean
            let variance = (centered * centered).mean(axes: [0, 2, 3], keepDims: true)
            let n = Float(x.shape[0] * x.shape[2] * x.shape[3])
            withoutGradient {
                let unbiased = variance.detached() * (n / Swift.max(n - 1, 1))
                p.updateBuffer("running_mean", p.buffer("running_mean") * (1 - momentum) + mean.detached().reshaped([channels]) * momentum)
                p.updateBuffer("running_var", p.buffer("running_var") * (1 - momentum) + unbiased.reshaped([channels]) * momentum)
                p.updateBuffer("num_batches_tracked", p.buffer("num_batches_tracked") + 1)
            }
            return centered / (variance + eps).sqrt() * weight + bias
        }
        let mean = p.buffer("running_mean").reshaped(shape), variance = p.buffer("running_var").reshaped(shape)
        return (x - mean) / (variance + eps).sqrt() * weight + bias
    }
}

/// Group normalisation, PyTorch's `nn.GroupNorm`.
public struct GroupNorm: UnaryModule {
    public let groups: Int
    public let channels: Int
    public let eps: Float
    public let affine: Bool

    public init(groups: Int, channels: Int, eps: Float = 1e-5, affine: Bool = true) {
        require(channels % groups == 0, "GroupNorm: \(groups) groups do not divide \(channels) channels")
        self.groups = groups
        self.channels = channels
        self.eps = eps
        self.affine = affine
    }

    public var ownParameters: [ParameterSpec] {
        affine ? ParameterSpec.affine([channels]) : []
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        require(x.rank >= 2 && x.shape[1] == channels, "GroupNorm: input \(Shape.describe(x.shape)) does not have \(channels) channels")
        let n = x.shape[0]
        let grouped = x.reshaped([n, groups, -1])
        var y = Normalize.standardize(grouped, axes: [2], eps: eps).reshaped(x.shape)
        if affine {
            let shape = [1, channels] + [Int](repeating: 1, count: x.rank - 2)
            y = y * p["weight"].reshaped(shape) + p["bias"].reshaped(shape)
        }
        return y
    }
}

/// Instance normalisation over NCHW, PyTorch's `nn.InstanceNorm2d` (no running statistics).
public struct InstanceNorm2d: UnaryModule {
    public let channels: Int
    public let eps: Float
    public let affine: Bool

    public init(_ channels: Int, eps: Float = 1e-5, affine: Bool = false) {
        self.channels = channels
        self.eps = eps
        self.affine = affine
    }

    public var ownParameters: [ParameterSpec] {
        affine ? ParameterSpec.affine([channels]) : []
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        require(x.rank == 4 && x.shape[1] == channels, "InstanceNorm2d(\(channels)): input must be [N, \(channels), H, W], got \(Shape.describe(x.shape))")
        var y = Normalize.standardize(x, axes: [2, 3], eps: eps)
        if affine {
            y = y * p["weight"].reshaped([1, channels, 1, 1]) + p["bias"].reshaped([1, channels, 1, 1])
        }
        return y
    }
}
