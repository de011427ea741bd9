import FuseKit

// MAFS's segmentation decoder (MayNet_response_final.SegmentationDecoder): detectron2's
// BasePixelDecoder (FPN), one shared ASPP, the 3-stage inverted-pyramid transformer (InvPT with
// MDTA + LeFF), the preliminary decoder, ARM2 with the PHF skip, the ARM chain with its six
// auxiliary heads, and SegHead.

/// detectron2's `Conv2d` with a `norm` (GroupNorm) and an optional ReLU: its conv weight is the
/// module's own `weight`, the norm is the child `norm`.
struct NormConv: UnaryModule {
    let conv: Conv
    let norm: Child<GroupNorm>
    let relu: Bool

    init(_ inChannels: Int, _ outChannels: Int, _ kernel: Int, groups: Int, relu: Bool) {
        conv = Conv(inChannels, outChannels, kernel, bias: false, initialization: .c2Xavier)
        norm = Child("norm", GroupNorm(groups: groups, channels: outChannels))
        self.relu = relu
    }

    var ownParameters: [ParameterSpec] { conv.ownParameters }
    var children: [(name: String, module: any Module)] { [(norm.name, norm.module)] }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let y = norm(conv(x, p), p)
        return relu ? y.relu() : y
    }
}

/// The FPN over [f3, f4, f5, f6]: layer_4 on f6, then for f5, f4, f3 y = layer_k(adapter_k(f) +
/// nearest(y)); returns [P0 (f6 size), P1, P2, P3 (f3 size)]. `mask_features` is unused.
struct PixelDecoder: Module {
    let adapters: [Child<NormConv>]
    let layers: [Child<NormConv>]
    let maskFeatures: Child<Conv>

    init(inChannels: Int, channels: Int, groups: Int) {
        adapters = (1...3).map { Child("adapter_\($0)", NormConv(inChannels, channels, 1, groups: groups, relu: false)) }
        layers = (1...4).map { Child("layer_\($0)", NormConv($0 == 4 ? inChannels : channels, channels, 3, groups: groups, relu: true)) }
        maskFeatures = Child("mask_features", Conv(channels, channels, 3, initialization: .c2Xavier))
    }

    func callAsFunction(_ levels: [Tensor], _ p: Scope) -> [Tensor] {
        var y = layers[3](levels[3], p)
        var outs = [y]
        for k in [3, 2, 1] {
            let lateral = adapters[k - 1](levels[k - 1], p)
            y = layers[k - 1](lateral + y.resizedNearest(to: (lateral.shape[2], lateral.shape[3])), p)
            outs.append(y)
        }
        return outs
    }
}

/// ASPP (EGFNet's GIM): 1x1 and 3x3 dilation 1-4 branches, concatenated, 1x1 + x, conv-BN-ReLU.
struct ASPP: UnaryModule {
    let conv1, conv2, conv3, conv4, conv0, conv: Child<Conv>
    let rconv: Child<ConvNorm>

    init(_ c: Int) {
        conv1 = Child("conv1", Conv(c, c, 3, dilation: 1))
        conv2 = Child("conv2", Conv(c, c, 3, dilation: 2))
        conv3 = Child("conv3", Conv(c, c, 3, dilation: 3))
        conv4 = Child("conv4", Conv(c, c, 3, dilation: 4))
        conv0 = Child("conv0", Conv(c, c, 1))
        conv = Child("conv", Conv(5 * c, c, 1))
        rconv = Child("rconv", ConvNorm(c, c, 3, bias: true, names: ("0", "1"), activation: .relu))
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let branches = Tensor.concat([conv0(x, p), conv1(x, p), conv2(x, p), conv3(x, p), conv4(x, p)], axis: 1)
        return rconv(conv(branches, p) + x, p)
    }
}

/// LeFF: GELU(1x1) -> GELU(depthwise 3x3) -> GELU(1x1), plus the input.
///
/// INFERRED (util/AST.py is missing): as defined in the official Fusion_block.py.
public struct LeFF: UnaryModule {
    let linear1: Child<Conv>
    let dwconv: Child<Conv>
    let linear2: Child<Conv>

    public init(dim: Int, hidden: Int) {
        linear1 = Child("linear1.0", Conv(dim, hidden, 1))
        dwconv = Child("dwconv.0", Conv(hidden, hidden, 3, groups: hidden))
        linear2 = Child("linear2.0", Conv(hidden, dim, 1))
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        linear2(dwconv(linear1(x, p).gelu(), p).gelu(), p).gelu() + x
    }
}

/// The InvPT transformer block: x + MDTA(LN x), then x + LeFF(LN x) (LeFF's own residual makes
/// the normalised input enter twice, as released). MDTA is Restormer's transposed attention.
///
/// INFERRED (util/AST.py is missing): Attention (MDTA), LayerNorm and LeFF as in Fusion_block.py.
struct InvPTBlock: UnaryModule {
    let norm1: Child<BodyLayerNorm>
    let attention: Child<TransposedAttention>
    let norm2: Child<BodyLayerNorm>
    let feedForward: Child<LeFF>

    init(dim: Int, heads: Int, hidden: Int) {
        norm1 = Child("norm1", BodyLayerNorm(dim))
        attention = Child("attn", TransposedAttention(dim: dim, heads: heads, bias: false))
        norm2 = Child("norm2", BodyLayerNorm(dim))
        feedForward = Child("ffn", LeFF(dim: dim, hidden: hidden))
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let y = x + attention(norm1(x, p), p)
        return y + feedForward(norm2(y, p), p)
    }
}

/// UpEmbed (`patch_embed.0.proj`): bilinear x2, then twice conv3x3 dilation 2 (no bias), BN, ReLU.
struct UpEmbed: UnaryModule {
    let conv1: Child<Conv>
    let bn1: Child<BatchNorm2d>
    let conv2: Child<Conv>
    let bn2: Child<BatchNorm2d>

    init(_ dim: Int) {
        conv1 = Child("proj.1", Conv(dim, dim, 3, dilation: 2, bias: false))
        bn1 = Child("proj.2", BatchNorm2d(dim))
        conv2 = Child("proj.4", Conv(dim, dim, 3, dilation: 2, bias: false))
        bn2 = Child("proj.5", BatchNorm2d(dim))
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let up = x.resizedBilinear(to: (x.shape[2] * 2, x.shape[3] * 2))
        return bn2(conv2(bn1(conv1(up, p), p).relu(), p), p).relu()
    }
}

/// One InvPT stage: (stage >= 1) UpEmbed of the previous output plus the ASPP feature, then a block.
struct InvPTStage: Module {
    let patchEmbed: Child<UpEmbed>?
    let block: Child<InvPTBlock>

    init(index: Int, dim: Int, heads: Int, hidden: Int) {
        patchEmbed = index == 0 ? nil : Child("patch_embed.0", UpEmbed(dim))
        block = Child("blocks.0", InvPTBlock(dim: dim, heads: heads, hidden: hidden))
    }
}

/// InvPT: stage 0 on f5; stage i >= 1 on UpEmbed(x) + A[i + 1]; after each stage x becomes its
/// LayerNorm over channels (`norm_mts.i`), which is also resized bilinearly resizing to 2^stages x f5's size, summed; then
/// conv3x3-BN-ReLU (`mt_proj`). `redu_chan` and `norm_mt` are unused (as released).
struct InvPT: Module {
    let normMts: [Child<ChannelLayerNorm>]
    let reduChan: Child<Conv>
    let stages: [Child<InvPTStage>]
    let normMt: Child<ChannelLayerNorm>
    let mtProj: Child<Conv>
    let mtProjNorm: Child<BatchNorm2d>

    init(dim: Int, heads: [Int], hidden: Int) {
        normMts = heads.indices.map { Child("norm_mts.\($0)", ChannelLayerNorm(dim)) }
        reduChan = Child("redu_chan", Conv(dim, dim, 1))
        stages = heads.enumerated().map { i, h in Child("invpt_stages.\(i)", InvPTStage(index: i, dim: dim, heads: h, hidden: hidden)) }
        normMt = Child("norm_mt", ChannelLayerNorm(dim))
        mtProj = Child("mt_proj.0", Conv(dim, dim, 3, initialization: .truncatedNormal))
        mtProjNorm = Child("mt_proj.1", BatchNorm2d(dim))
    }

    func callAsFunction(_ f5: Tensor, aspp: [Tensor], _ p: Scope) -> Tensor {
        let factor = 1 << stages.count
        let target = (f5.shape[2] * factor, f5.shape[3] * factor)
        var x = f5
        var total: Tensor?
        for (i, stage) in stages.enumerated() {
            x = stage.run(in: p) { stage, scope in
                var y = x
                if let embed = stage.patchEmbed { y = embed(y, scope) + aspp[i + 1] }
                return stage.block(y, scope)
            }
            x = normMts[i](x, p)  // the next stage starts from the normalised map, as released
            let resized = x.resizedBilinear(to: target)
            total = total.map { $0 + resized } ?? resized
        }
        return mtProjNorm(mtProj(total!, p), p).relu()
    }
}

/// ARM_I (arm3) / ARM_II (arm2, arm1) of CAI_ARM: inputs (a, b, c), b and c upsampled x2
/// (bilinear, aligned corners) when b's height differs from a's; low = conv1(cat of three
/// dilated convs of cat(a, b, c)); high = high_out(c); returns (low high, low high + high).
struct ARMBlock: Layer {
    let branches: [Child<ConvNorm>]
    let conv1: Child<ConvNorm>
    let highOut: Child<ConvNorm>

    init(low: Int, high: Int, middle: Int) {
        let cat = low + high + middle
        branches = [1, 2, 4].enumerated().map { i, d in
            Child("dilation_conv\(i + 1)", ConvNorm(cat, low, 3, dilation: d, activation: .relu6))
        }
        conv1 = Child("conv1", ConvNorm(3 * low, low, 1, activation: .relu6))
        highOut = Child("high_out", ConvNorm(middle, low, 1, activation: .relu6))
    }

    func callAsFunction(_ x: (Tensor, Tensor, Tensor), _ p: Scope) -> (Tensor, Tensor) {
        let a = x.0
        var b = x.1, c = x.2
        if b.shape[2] != a.shape[2] {
            b = b.upsampledTwiceAligned()
            c = c.upsampledTwiceAligned()
        }
        let v = Tensor.concat([a, b, c], axis: 1)
        let low = conv1(Tensor.concat(branches.map { $0(v, p) }, axis: 1), p)
        let high = highOut(c, p)
        let out = low * high
        return (out, out + high)
    }
}

/// An auxiliary head classifier_Z*: conv-BN-ReLU6 3x3 (`0.conv`, `0.bnop`), bilinear up (aligned
/// corners), conv1x1 (`2`), bilinear up.
struct AuxiliaryHead: UnaryModule {
    let block: Child<ConvNorm>
    let classifier: Child<Conv>
    let firstUp: Int
    let secondUp: Int

    init(_ channels: Int, _ outputs: Int, firstUp: Int, secondUp: Int) {
        block = Child("0", ConvNorm(channels, channels, 3, names: ("conv", "bnop"), activation: .relu6))
        classifier = Child("2", Conv(channels, outputs, 1))
        self.firstUp = firstUp
        self.secondUp = secondUp
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        func up(_ t: Tensor, _ f: Int) -> Tensor { t.resizedBilinear(to: (t.shape[2] * f, t.shape[3] * f), alignCorners: true) }
        return up(classifier(up(block(x, p), firstUp), p), secondUp)
    }
}

/// SegHead: a soft foreground gate w = softmax(binary_conv2(binary_conv1 x))[1], then logits =
/// up2x(semantic_conv2(semantic_conv1(x w))). The release writes the softmax as exp / sum of exp
/// (no max shift); here it is sigmoid(b1 - b0), equal up to rounding and without overflow. The
/// boundary convolutions are instantiated but unused, as released.
struct SegHead: UnaryModule {
    let binaryConv1: Child<ConvNorm>
    let binaryConv2: Child<Conv>
    let semanticConv1: Child<ConvNorm>
    let semanticConv2: Child<Conv>
    let boundaryConv1: Child<ConvNorm>
    let boundaryConv2: Child<Conv>
    let boundaryConv: Child<Sequential>

    init(_ c: Int, classes: Int) {
        binaryConv1 = Child("binary_conv1", ConvNorm(c, c / 4, 1, names: ("conv", "bnop"), activation: .relu6))
        binaryConv2 = Child("binary_conv2", Conv(c / 4, 2, 3))
        semanticConv1 = Child("semantic_conv1", ConvNorm(c, c, 1, names: ("conv", "bnop"), activation: .relu6))
        semanticConv2 = Child("semantic_conv2", Conv(c, classes, 3))
        boundaryConv1 = Child("boundary_conv1", ConvNorm(2 * c, c, 1, names: ("conv", "bnop"), activation: .relu6))
        boundaryConv2 = Child("boundary_conv2", Conv(c, 2, 3))
        boundaryConv = Child("boundary_conv", Sequential([Conv(2 * c, c, 1), BatchNorm2d(c), ReLU6(), Conv(c, 2, 3)]))
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let b = binaryConv2(binaryConv1(x, p), p)
        let weight = (b.sliced(axis: 1, 1..<2) - b.sliced(axis: 1, 0..<1)).sigmoid()
        return semanticConv2(semanticConv1(x * weight, p), p).upsampledTwiceAligned()
    }
}

/// The segmentation decoder's outputs.
struct SegmentationOutputs {
    var logits: Tensor
    /// out1 ... out6 (out1, out3, out5 two-channel; out2, out4, out6 K-channel).
    var auxiliary: [Tensor]
}

/// The segmentation decoder on the PHF skip rec_f1 and the levels [f3, f4, f5, f6].
struct SegmentationDecoder: Module {
    let pixelDecoder: Child<PixelDecoder>
    let invpt: Child<InvPT>
    let preliminaryDecoder: [Child<ConvNorm>]
    let intermediateHead: Child<Conv>
    let segHead: Child<SegHead>
    let arm: Child<DilatedFuse>
    let arm3, arm2, arm1: Child<ARMBlock>
    /// classifier_Z1 ... Z6.
    let classifiers: [Child<AuxiliaryHead>]
    let aspp: Child<ASPP>

    init(_ c: MAFSConfiguration) {
        let seg = c.segChannels, k = c.numClasses
        pixelDecoder = Child("pixel_decoder", PixelDecoder(inChannels: c.camChannels, channels: seg, groups: c.fpnGroups))
        invpt = Child("invpt", InvPT(dim: seg, heads: c.invptHeads, hidden: c.leffHidden))
        preliminaryDecoder = (0..<2).map { Child("preliminary_decoder.\($0)", ConvNorm(seg, seg, 3, names: ("conv", "bn1"), activation: .relu)) }
        intermediateHead = Child("intermediate_head", Conv(seg, c.intermediateHeadOutputs, 1))
        segHead = Child("seg_head", SegHead(seg, classes: k))
        arm = Child("ARM", DilatedFuse(c.phfChannels + seg, seg))
        arm3 = Child("arm3", ARMBlock(low: seg, high: seg, middle: seg))
        arm2 = Child("arm2", ARMBlock(low: seg, high: seg, middle: seg))
        arm1 = Child("arm1", ARMBlock(low: seg, high: seg, middle: seg))
        let heads: [(outputs: Int, first: Int, second: Int)] = [(k, 2, 2), (k, 4, 2), (k, 4, 4), (2, 2, 2), (2, 4, 2), (2, 4, 4)]
        classifiers = heads.enumerated().map { i, h in
            Child("classifier_Z\(i + 1)", AuxiliaryHead(seg, h.outputs, firstUp: h.first, secondUp: h.second))
        }
        aspp = Child("aspp", ASPP(seg))
    }

    func callAsFunction(recF1: Tensor, levels x: [Tensor], _ p: Scope) -> SegmentationOutputs {
        let pyramid = pixelDecoder.run(in: p) { decoder, scope in decoder(x, scope) }
        let (out1, out2) = arm3((x[2], x[3], pyramid[0]), p)
        let (out3, out4) = arm2((x[1], out1, out2), p)
        let (out5, out6) = arm1((x[0], out3, out4), p)
        // out_i = classifier_Z(7 - i)(o_i): Z6 on o1, Z3 on o2, Z5 on o3, Z2 on o4, Z4 on o5, Z1 on o6.
        let auxiliary = [(5, out1), (2, out2), (4, out3), (1, out4), (3, out5), (0, out6)].map { classifiers[$0.0]($0.1, p) }
        // One ASPP on all four levels in order (in training its BatchNorm statistics update 4 times).
        let a = pyramid.map { aspp($0, p) }
        var feature = invpt.run(in: p) { invpt, scope in invpt(x[2], aspp: a, scope) }
        for block in preliminaryDecoder { feature = block(feature, p) }
        let logits = segHead(arm(Tensor.concat([recF1, feature], axis: 1), p), p)
        return SegmentationOutputs(logits: logits, auxiliary: auxiliary)
    }
}
