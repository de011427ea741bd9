import Foundation
import FuseKit

/// Ultralytics' `Conv`: a bias-free convolution with "same" padding (`k // 2`), BatchNorm
/// (eps 1e-3, momentum 0.03, as Ultralytics sets them) and SiLU. Parameters `conv.weight`,
/// `bn.weight`, `bn.bias` and the BatchNorm buffers.
public struct ConvBNSiLU: UnaryModule {
    /// The convolution (no bias).
    public let conv: Child<Conv2d>
    /// The batch normalisation.
    public let norm: Child<BatchNorm2d>

    /// A `kernelSize` x `kernelSize` convolution from `inChannels` to `outChannels` at `stride`.
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int = 1, stride: Int = 1) {
        conv = Child("conv", Conv2d(inChannels, outChannels, kernelSize: kernelSize, stride: stride, padding: kernelSize / 2, bias: false))
        norm = Child("bn", BatchNorm2d(outChannels, eps: 1e-3, momentum: 0.03))
    }

    /// Output channels.
    public var outChannels: Int { conv.outChannels }

    /// In training mode the BatchNorm and the SiLU run as one fused operation (same values and
    /// running-statistics updates as `BatchNorm2d` followed by `silu()`), unless the statistics
    /// are synchronised over the ranks of a data-parallel run.
    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let z = conv(x, p)
        guard p.isTraining, p.context.synchronizedBatchNorm == nil else { return norm(z, p).silu() }
        return norm.run(in: p) { bn, scope in BatchNormSiLU.training(z, bn, scope) }
    }
}

/// Ultralytics' `Bottleneck` as C2f uses it: two 3x3 `Conv`s at the same width (expansion 1),
/// with a residual connection when `shortcut` is set and the widths agree.
public struct YOLOBottleneck: UnaryModule {
    /// First 3x3 Conv.
    public let cv1: Child<ConvBNSiLU>
    /// Second 3x3 Conv.
    public let cv2: Child<ConvBNSiLU>
    /// Whether the input is added to the output.
    public let addsInput: Bool

    /// A bottleneck of `channels` channels.
    public init(channels: Int, shortcut: Bool) {
        cv1 = Child("cv1", ConvBNSiLU(channels, channels, kernelSize: 3))
        cv2 = Child("cv2", ConvBNSiLU(channels, channels, kernelSize: 3))
        addsInput = shortcut
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let y = cv2(cv1(x, p), p)
        return addsInput ? x + y : y
    }
}

/// Ultralytics' `C2f` (CSP bottleneck with two convolutions): a 1x1 Conv to 2c channels split in
/// halves, `n` bottlenecks chained on the second half, every piece concatenated ((2 + n) c
/// channels) and a 1x1 Conv to the output width; c = out / 2.
public struct C2f: UnaryModule {
    /// Hidden width c.
    public let hidden: Int
    /// 1x1 Conv to 2c.
    public let cv1: Child<ConvBNSiLU>
    /// 1x1 Conv from (2 + n) c to the output width.
    public let cv2: Child<ConvBNSiLU>
    /// The chained bottlenecks (`m.0`, `m.1`, ...).
    public let m: Child<ModuleList<YOLOBottleneck>>

    /// A C2f from `inChannels` to `outChannels` with `repeats` bottlenecks.
    public init(_ inChannels: Int, _ outChannels: Int, repeats: Int, shortcut: Bool) {
        hidden = outChannels / 2
        cv1 = Child("cv1", ConvBNSiLU(inChannels, 2 * hidden))
        cv2 = Child("cv2", ConvBNSiLU((2 + repeats) * hidden, outChannels))
        m = Child("m", ModuleList((0..<repeats).map { _ in YOLOBottleneck(channels: outChannels / 2, shortcut: shortcut) }))
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        // cat(chunk(y, 2) + [m0, m1, ...]) is cat([y, m0, m1, ...]): only the second half is copied out.
        let y = cv1(x, p)
        var pieces = [y]
        var last = y.sliced(axis: 1, hidden..<(2 * hidden))
        for block in m.items() {
            last = block(last, p)
            pieces.append(last)
        }
        return cv2(Tensor.concat(pieces, axis: 1), p)
    }
}

/// Ultralytics' `SPPF` (spatial pyramid pooling, fast): a 1x1 Conv to half the width, three
/// chained 5x5 max-pools (stride 1, padding 2), the four maps concatenated and a 1x1 Conv.
public struct SPPF: UnaryModule {
    /// 1x1 Conv to half the input width.
    public let cv1: Child<ConvBNSiLU>
    /// 1x1 Conv from twice the input width to the output width.
    public let cv2: Child<ConvBNSiLU>
    /// Pooling kernel (5).
    public let kernelSize: Int

    /// An SPPF from `inChannels` to `outChannels`.
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int = 5) {
        cv1 = Child("cv1", ConvBNSiLU(inChannels, inChannels / 2))
        cv2 = Child("cv2", ConvBNSiLU(inChannels / 2 * 4, outChannels))
        self.kernelSize = kernelSize
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let k = (kernelSize, kernelSize), pad = (kernelSize / 2, kernelSize / 2)
        let x0 = cv1(x, p)
        let y1 = x0.maxPool2d(kernel: k, stride: (1, 1), padding: pad)
        let y2 = y1.maxPool2d(kernel: k, stride: (1, 1), padding: pad)
        let y3 = y2.maxPool2d(kernel: k, stride: (1, 1), padding: pad)
        return cv2(Tensor.concat([x0, y1, y2, y3], axis: 1), p)
    }
}

/// The last 1x1 convolution of a Detect branch: weight and bias, the bias starting at a given
/// constant (Ultralytics' `Detect.bias_init`: 1 for box distributions, log(5 / nc / (640 / s)²)
/// for class logits).
public struct PredictionConv: UnaryModule {
    public let weight: ParameterSpec
    public let bias: ParameterSpec

    /// A 1x1 convolution whose bias starts at `initialBias`.
    public init(_ inChannels: Int, _ outChannels: Int, initialBias: Float) {
        weight = ParameterSpec("weight", [outChannels, inChannels, 1, 1], .kaimingUniform(fanIn: inChannels))
        bias = ParameterSpec("bias", [outChannels], .constant(initialBias), decays: false)
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        Tensor.conv2d(x, p[weight], bias: p[bias])
    }
}

/// Raw outputs of the Detect head for one pyramid level.
public struct DetectLevelOutput: Sendable {
    /// Box-side distribution logits [B, 4 regMax, h, w] (sides left, top, right, bottom).
    public var boxDistributions: Tensor
    /// Class logits [B, classes, h, w].
    public var classLogits: Tensor
}

/// Ultralytics' v8 `Detect` head: per level, a box branch `cv2.i` (Conv 3x3, Conv 3x3, 1x1 to
/// 4 regMax) and a class branch `cv3.i` (Conv 3x3, Conv 3x3, 1x1 to the classes), with
/// c2 = max(16, ch0 / 4, 4 regMax) and c3 = max(ch0, min(classes, 100)). The DFL projection
/// (`dfl.conv.weight` = 0, 1, ..., regMax - 1 in official files) is fixed and not stored.
public struct DetectHead: Layer {
    /// Number of classes.
    public let classes: Int
    /// Bins of each box-side distribution.
    public let regMax: Int
    /// Strides of the levels (8, 16, 32).
    public let strides: [Int]
    /// Box branches (`cv2.i`).
    public let boxBranches: Child<ModuleList<Sequential>>
    /// Class branches (`cv3.i`).
    public let classBranches: Child<ModuleList<Sequential>>

    /// A head over levels of the given widths and strides.
    public init(classes: Int, inputChannels: [Int], strides: [Int], regMax: Int) {
        require(inputChannels.count == strides.count, "DetectHead: \(inputChannels.count) levels but \(strides.count) strides")
        self.classes = classes
        self.regMax = regMax
        self.strides = strides
        let boxWidth = Swift.max(16, inputChannels[0] / 4, 4 * regMax)
        let classWidth = Swift.max(inputChannels[0], Swift.min(classes, 100))
        boxBranches = Child("cv2", ModuleList(inputChannels.map { c in
            Sequential([ConvBNSiLU(c, boxWidth, kernelSize: 3), ConvBNSiLU(boxWidth, boxWidth, kernelSize: 3),
                        PredictionConv(boxWidth, 4 * regMax, initialBias: 1)])
        }))
        classBranches = Child("cv3", ModuleList(zip(inputChannels, strides).map { c, s in
            let prior = Float(Foundation.log(5 / Double(classes) / ((640 / Double(s)) * (640 / Double(s)))))
            return Sequential([ConvBNSiLU(c, classWidth, kernelSize: 3), ConvBNSiLU(classWidth, classWidth, kernelSize: 3),
                               PredictionConv(classWidth, classes, initialBias: prior)])
        }))
    }

    /// The raw outputs of every level.
    public func callAsFunction(_ features: [Tensor], _ p: Scope) -> [DetectLevelOutput] {
        require(features.count == strides.count, "DetectHead: \(features.count) feature maps for \(strides.count) levels")
        return features.indices.map { i in
            DetectLevelOutput(boxDistributions: boxBranches[i](features[i], p), classLogits: classBranches[i](features[i], p))
        }
    }
}
