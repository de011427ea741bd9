import FuseKit
import SegFormerTask

/// A linear layer on [B, features] vectors as the official backbone initialises it
/// (`_init_weights`: truncated normal with std 0.02, zero bias).
func backboneLinear(_ inFeatures: Int, _ outFeatures: Int) -> Linear {
    Linear(inFeatures, outFeatures, weightInit: .truncatedNormal(std: 0.02), biasInit: .constant(0))
}

/// MRFS's channel attention of two maps (`ChannelAttention`): a = sigmoid(M(avgpool [x1; x2]) +
/// M(maxpool [x1; x2])) with one MLP M = Linear(2C, 2C/4), ReLU, Linear(2C/4, 2C) for both pools;
/// the first C weights are x1's, the rest x2's, each [B, C, 1, 1]. Names: `mlp.0`, `mlp.2`.
public struct IGMChannelAttention: Layer {
    public let dim: Int
    let mlp: Child<Sequential>

    public init(dim: Int) {
        self.dim = dim
        // The official MixAttention ignores its `reduction` argument: always 4 here.
        let hidden = 2 * dim / 4
        mlp = Child("mlp", Sequential([backboneLinear(2 * dim, hidden), Activation(.relu), backboneLinear(hidden, 2 * dim)]))
    }

    public func callAsFunction(_ maps: (Tensor, Tensor), _ p: Scope) -> (Tensor, Tensor) {
        let b = maps.0.shape[0]
        let both = Tensor.concat([maps.0, maps.1], axis: 1)
        // Both pools through the shared MLP in one pass: rows 0..<B average, B..<2B maximum. The
        // maximum's gradient goes to the one largest pixel (no ties in practice).
        let pooled = Tensor.concat([both.mean(axes: [2, 3]), both.max(axes: [2, 3])], axis: 0)
        let out = mlp(pooled, p)
        let weights = (out.sliced(axis: 0, 0..<b) + out.sliced(axis: 0, b..<(2 * b))).sigmoid().reshaped([b, 2 * dim, 1, 1])
        return (weights.sliced(axis: 1, 0..<dim), weights.sliced(axis: 1, dim..<(2 * dim)))
    }
}

/// MRFS's spatial attention of two maps (`SpatialAttention`): the channel mean and maximum of
/// each map, [mean x1, max x1, mean x2, max x2], through 1x1 convolutions 4 -> 16, ReLU, 16 -> 2
/// and a sigmoid: one weight map per input, each [B, 1, H, W]. Names: `mlp.0`, `mlp.2`.
public struct IGMSpatialAttention: Layer {
    let mlp: Child<Sequential>

    public init() {
        mlp = Child("mlp", Sequential([MiTConv2d(4, 16, kernelSize: 1, stride: 1, padding: 0), Activation(.relu),
                                       MiTConv2d(16, 2, kernelSize: 1, stride: 1, padding: 0), Activation(.sigmoid)]))
    }

    public func callAsFunction(_ maps: (Tensor, Tensor), _ p: Scope) -> (Tensor, Tensor) {
        let statistics = Tensor.concat([maps.0.mean(axes: [1], keepDims: true), maps.0.max(axes: [1], keepDims: true),
                                        maps.1.mean(axes: [1], keepDims: true), maps.1.max(axes: [1], keepDims: true)], axis: 1)
        let weights = mlp(statistics, p)
        return (weights.sliced(axis: 1, 0..<1), weights.sliced(axis: 1, 1..<2))
    }
}

/// MRFS's `MixAttention`: m_i = ca_i · sa_i for both maps. Names: `ca_gate`, `sa_gate`.
public struct IGMMixAttention: Layer {
    let channel: Child<IGMChannelAttention>
    let spatial: Child<IGMSpatialAttention>

    public init(dim: Int) {
        channel = Child("ca_gate", IGMChannelAttention(dim: dim))
        spatial = Child("sa_gate", IGMSpatialAttention())
    }

    public func callAsFunction(_ maps: (Tensor, Tensor), _ p: Scope) -> (Tensor, Tensor) {
        let (ca1, ca2) = channel(maps, p)
        let (sa1, sa2) = spatial(maps, p)
        return (ca1 * sa1, ca2 * sa2)
    }
}

/// IGM-Att (the official `IGMAVC`): the interaction of the RGB map x1 and the infrared map x2
/// of one stage, both [B, C, H, W]. A per-pixel gate g = sigmoid(Linear(C/2 -> C)(ReLU(Linear(2C
/// -> 2C / reduction)([x1; x2])))) and the mix attention (m1, m2) give
/// out1 = x1 + (1 - g) · m2 · x2 (the RGB stream takes infrared information) and
/// out2 = x2 + g · m1 · x1. Names: `MA.ca_gate.mlp.{0,2}`, `MA.sa_gate.mlp.{0,2}`, `gate.{0,2}`;
/// 3.5 C² + 4 C + 114 parameters at reduction 4.
public struct IGMAttention: Layer {
    public let dim: Int
    let mix: Child<IGMMixAttention>
    let gate: Child<Sequential>

    public init(dim: Int, reduction: Int = 4) {
        require(2 * dim / reduction >= 1 && 2 * dim / 4 >= 1, "IGMAttention: \(dim) channels leave no hidden width at reduction \(reduction)")
        self.dim = dim
        mix = Child("MA", IGMMixAttention(dim: dim))
        let hidden = 2 * dim / reduction
        gate = Child("gate", Sequential([ChannelLinear.mit(2 * dim, hidden), Activation(.relu), ChannelLinear.mit(hidden, dim),
                                         Activation(.sigmoid)]))
    }

    /// The two outputs (RGB, infrared) for the stage maps (RGB, infrared).
    public func callAsFunction(_ maps: (Tensor, Tensor), _ p: Scope) -> (Tensor, Tensor) {
        let (x1, x2) = maps
        require(x1.rank == 4 && x1.shape == x2.shape && x1.shape[1] == dim,
                "IGMAttention: maps \(Shape.describe(x1.shape)) and \(Shape.describe(x2.shape)) must both be [B, \(dim), H, W]")
        let g = gate(Tensor.concat([x1, x2], axis: 1), p)
        let (m1, m2) = mix(maps, p)
        return (x1 + (1 - g) * m2 * x2, x2 + g * m1 * x1)
    }
}
