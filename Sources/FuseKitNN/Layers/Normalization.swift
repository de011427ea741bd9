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
    /// A norm layer's affine scale `weight` (ones), without weight decay.
    public static func normWeight(_ shape: [Int]) -> ParameterSpec { ParameterSpec("weight", shape, .constant(1), decays: false) }
    /// A norm layer's affine shift `bias` (zeros), without weight decay.
    public static func normBias(_ shape: [Int]) -> ParameterSpec { ParameterSpec("bias", shape, .constant(0), decays: false) }
}

/// LayerNorm over the channels of each pixel of an NCHW tensor (weight and bias [C]).
public struct ChannelLayerNorm: UnaryModule {
    public let channels: Int
    public let eps: Float
    public let weight: ParameterSpec
    public let bias: ParameterSpec?

    public init(_ channels: Int, eps: Float = 1e-5, bias: Bool = true) {
        self.channels = channels
        self.eps = eps
        weight = .normWeight([channels])
        self.bias = bias ? .normBias([channels]) : nil
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        Normalize.channelLayerNorm(x, weight: p[weight], bias: bias.map { p[$0] }, eps: eps)
    }
}

/// LayerNorm over the trailing axes, PyTorch's `nn.LayerNorm(normalized_shape)`.
public struct LayerNorm: UnaryModule {
    public let normalizedShape: [Int]
    public let eps: Float
    public let weight: ParameterSpec
    public let bias: ParameterSpec

    public init(_ normalizedShape: [Int], eps: Float = 1e-5) {
        self.normalizedShape = normalizedShape
        self.eps = eps
        weight = .normWeight(normalizedShape)
        bias = .normBias(normalizedShape)
    }

    public init(_ features: Int, eps: Float = 1e-5) { self.init([features], eps: eps) }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let k = normalizedShape.count
        require(Array(x.shape.suffix(k)) == normalizedShape,
                "LayerNorm: input \(Shape.describe(x.shape)) does not end in \(Shape.describe(normalizedShape))")
        let axes = Array((x.rank - k)..<x.rank)
        return Normalize.standardize(x, axes: axes, eps: eps) * p[weight] + p[bias]
    }
}

/// Batch normalisation over NCHW, PyTorch's `nn.BatchNorm2d` (buffers `running_mean`,
/// `running_var`, `num_batches_tracked`; running variance uses the unbiased batch variance).
public struct BatchNorm2d: UnaryModule {
    public let channels: Int
    public let eps: Float
    public let momentum: Float
    public let weight: ParameterSpec
    public let bias: ParameterSpec
    public let runningMean: ParameterSpec
    public let runningVariance: ParameterSpec
    public let batchesTracked: ParameterSpec

    public init(_ channels: Int, eps: Float = 1e-5, momentum: Float = 0.1) {
        self.channels = channels
        self.eps = eps
        self.momentum = momentum
        weight = .normWeight([channels])
        bias = .normBias([channels])
        runningMean = .buffer("running_mean", [channels], .constant(0))
        runningVariance = .buffer("running_var", [channels], .constant(1))
        batchesTracked = .buffer("num_batches_tracked", [], .constant(0))
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        require(x.rank == 4 && x.shape[1] == channels, "BatchNorm2d(\(channels)): input must be [N, \(channels), H, W], got \(Shape.describe(x.shape))")
        let shape = [1, channels, 1, 1]
        let weight = p[self.weight].reshaped(shape), bias = p[self.bias].reshaped(shape)
        if p.isTraining {
            var n = Float(x.shape[0] * x.shape[2] * x.shape[3])
            let mean: Tensor, centered: Tensor, variance: Tensor
            if let ranks = p.context.synchronizedBatchNorm, ranks.size > 1 {
                // SyncBN: the statistics of the batch over all ranks.
                var count = [Double(n)]
                ranks.sum(&count)
                n = Float(count[0])
                mean = x.sum(axes: [0, 2, 3], keepDims: true).summedOverRanks(ranks) / n
                centered = x - mean
                variance = (centered * centered).sum(axes: [0, 2, 3], keepDims: true).summedOverRanks(ranks) / n
            } else {
                mean = x.mean(axes: [0, 2, 3], keepDims: true)
                centered = x - mean
                variance = (centered * centered).mean(axes: [0, 2, 3], keepDims: true)
            }
            withoutGradient {
                let unbiased = variance.detached() * (n / Swift.max(n - 1, 1))
                p.updateBuffer(runningMean, p.buffer(runningMean) * (1 - momentum) + mean.detached().reshaped([channels]) * momentum)
                p.updateBuffer(runningVariance, p.buffer(runningVariance) * (1 - momentum) + unbiased.reshaped([channels]) * momentum)
                p.updateBuffer(batchesTracked, p.buffer(batchesTracked) + 1)
            }
            return centered / (variance + eps).sqrt() * weight + bias
        }
        let mean = p.buffer(runningMean).reshaped(shape), variance = p.buffer(runningVariance).reshaped(shape)
        return (x - mean) / (variance + eps).sqrt() * weight + bias
    }
}

/// Group normalisation, PyTorch's `nn.GroupNorm`.
public struct GroupNorm: UnaryModule {
    public let groups: Int
    public let channels: Int
    public let eps: Float
    /// The per-channel scale and shift, when affine.
    public let affine: (weight: ParameterSpec, bias: ParameterSpec)?

    public init(groups: Int, channels: Int, eps: Float = 1e-5, affine: Bool = true) {
        require(channels % groups == 0, "GroupNorm: \(groups) groups do not divide \(channels) channels")
        self.groups = groups
        self.channels = channels
        self.eps = eps
        self.affine = affine ? (.normWeight([channels]), .normBias([channels])) : nil
    }

    public var ownParameters: [ParameterSpec] { affine.map { [$0.weight, $0.bias] } ?? [] }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        require(x.rank >= 2 && x.shape[1] == channels, "GroupNorm: input \(Shape.describe(x.shape)) does not have \(channels) channels")
        let n = x.shape[0]
        let grouped = x.reshaped([n, groups, -1])
        var y = Normalize.standardize(grouped, axes: [2], eps: eps).reshaped(x.shape)
        if let affine {
            let shape = [1, channels] + [Int](repeating: 1, count: x.rank - 2)
            y = y * p[affine.weight].reshaped(shape) + p[affine.bias].reshaped(shape)
        }
        return y
    }
}

/// Instance normalisation over NCHW, PyTorch's `nn.InstanceNorm2d` (no running statistics).
public struct InstanceNorm2d: UnaryModule {
    public let channels: Int
    public let eps: Float
    /// The per-channel scale and shift, when affine.
    public let affine: (weight: ParameterSpec, bias: ParameterSpec)?

    public init(_ channels: Int, eps: Float = 1e-5, affine: Bool = false) {
        self.channels = channels
        self.eps = eps
        self.affine = affine ? (.normWeight([channels]), .normBias([channels])) : nil
    }

    public var ownParameters: [ParameterSpec] { affine.map { [$0.weight, $0.bias] } ?? [] }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        require(x.rank == 4 && x.shape[1] == channels, "InstanceNorm2d(\(channels)): input must be [N, \(channels), H, W], got \(Shape.describe(x.shape))")
        var y = Normalize.standardize(x, axes: [2, 3], eps: eps)
        if let affine {
            y = y * p[affine.weight].reshaped([1, channels, 1, 1]) + p[affine.bias].reshaped([1, channels, 1, 1])
        }
        return y
    }
}
