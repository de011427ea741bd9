import FuseKit

// MAFS's encoder (`MayNet_response_final.Encoder` with its blocks), official state-dict names.
// Specification: Tests/MAFSTests/Fixtures/README.md, sections 2 and 3.

/// FReLU(x) = max(x, BN(depthwise 3x3 conv(x))) (`conv_frelu`, `bn_frelu`).
struct FReLU: UnaryModule {
    let convFrelu: Child<Conv>
    let bnFrelu: Child<BatchNorm2d>

    init(_ channels: Int) {
        convFrelu = Child("conv_frelu", Conv(channels, channels, 3, groups: channels))
        bnFrelu = Child("bn_frelu", BatchNorm2d(channels))
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor { Tensor.maximum(x, bnFrelu(convFrelu(x, p), p)) }
}

/// SFM (`Feature_extract`): SFEB1 (conv 7x7, BN, FReLU, conv 3x3, BN, FReLU; full resolution,
/// C/2 channels) and SFEB2 (stride-2 conv 3x3, BN, FReLU, conv 3x3; C channels, no norm).
struct ShallowFeatures: Layer {
    let sfeb1: Child<Sequential>
    let sfeb2: Child<Sequential>

    init(_ inChannels: Int, _ channels: Int) {
        let half = channels / 2
        sfeb1 = Child("SFEB1", Sequential([Conv(inChannels, half, 7), BatchNorm2d(half), FReLU(half),
                                           Conv(half, half, 3), BatchNorm2d(half), FReLU(half)]))
        sfeb2 = Child("SFEB2", Sequential([Conv(half, channels, 3, stride: 2), BatchNorm2d(channels), FReLU(channels),
                                           Conv(channels, channels, 3)]))
    }

    /// (F1 at full resolution, SFEB2's output at half resolution).
    func callAsFunction(_ x: Tensor, _ p: Scope) -> (Tensor, Tensor) {
        let high = sfeb1(x, p)
        return (high, sfeb2(high, p))
    }
}

/// torchvision's BasicBlock or Bottleneck (v1.5: the stride on the 3x3), keys `conv1`, `bn1`,
/// `conv2`, `bn2` [, `conv3`, `bn3`], `downsample.0`/`.1`, with torchvision's initialisation.
struct ResNetBlock: UnaryModule {
    let conv1: Child<Conv>
    let bn1: Child<BatchNorm2d>
    let conv2: Child<Conv>
    let bn2: Child<BatchNorm2d>
    let conv3: Child<Conv>?
    let bn3: Child<BatchNorm2d>?
    let downsample: Child<Sequential>?

    init(_ kind: ResNetBlockKind, inPlanes: Int, planes: Int, stride: Int) {
        let out = planes * kind.expansion
        let initialization = ConvInit.kaimingNormalFanOut
        switch kind {
        case .basic:
            conv1 = Child("conv1", Conv(inPlanes, planes, 3, stride: stride, bias: false, initialization: initialization))
            conv2 = Child("conv2", Conv(planes, planes, 3, bias: false, initialization: initialization))
            conv3 = nil
            bn3 = nil
        case .bottleneck:
            conv1 = Child("conv1", Conv(inPlanes, planes, 1, bias: false, initialization: initialization))
            conv2 = Child("conv2", Conv(planes, planes, 3, stride: stride, bias: false, initialization: initialization))
            conv3 = Child("conv3", Conv(planes, out, 1, bias: false, initialization: initialization))
            bn3 = Child("bn3", BatchNorm2d(out))
        }
        bn1 = Child("bn1", BatchNorm2d(planes))
        bn2 = Child("bn2", BatchNorm2d(planes))
        downsample = stride != 1 || inPlanes != out
            ? Child("downsample", Sequential([Conv(inPlanes, out, 1, stride: stride, bias: false, initialization: initialization), BatchNorm2d(out)]))
            : nil
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let identity = downsample.map { $0(x, p) } ?? x
        var out = bn1(conv1(x, p), p).relu()
        out = bn2(conv2(out, p), p)
        if let conv3, let bn3 { out = bn3(conv3(out.relu(), p), p) }
        return (out + identity).relu()
    }

    /// One backbone stage (`_make_layer`): the first block strides and changes the width.
    static func stage(_ kind: ResNetBlockKind, inPlanes: Int, planes: Int, blocks: Int, stride: Int) -> ModuleList<ResNetBlock> {
        ModuleList((0..<blocks).map { i in
            ResNetBlock(kind, inPlanes: i == 0 ? inPlanes : planes * kind.expansion, planes: planes, stride: i == 0 ? stride : 1)
        })
    }
}

/// GAP -> Linear(d, r d) -> GELU -> Linear(r d, d) (`Feature_Pool`), or with a global max pool
/// (`Channel_Attention`): the two MLPs of EAEF, keys `down`, `up`.
struct PooledMLP: UnaryModule {
    let down: Child<Linear>
    let up: Child<Linear>
    let maxPool: Bool

    init(_ channels: Int, hidden: Int, maxPool: Bool) {
        down = Child("down", Linear(channels, hidden))
        up = Child("up", Linear(hidden, channels))
        self.maxPool = maxPool
    }

    /// [B, C, H, W] -> [B, C].
    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let pooled = maxPool ? x.max(axes: [2, 3]) : x.mean(axes: [2, 3])
        return up(down(pooled, p).gelu(), p)
    }
}

/// EAEF (DEM) on [R; T] (2d channels): pooled descriptors r, t (L2-normalised), the cross gate
/// c = sigmoid(T_c r t) (``EAEFGate``: per sample, or the released diagonal over batch and
/// channel), R_a = R c and T_a = T c, a per-channel gate g from a grouped 7x7 conv and a max-pooled
/// MLP, R' = R (1 - c) + R_a g_r, T' likewise, and a per-pixel softmax s over the two maps:
/// out = [R' s_r + T' s_t; T' s_t].
public struct EAEF: UnaryModule {
    let dim: Int
    let gate: EAEFGate
    let mlpPool: Child<PooledMLP>
    let dwconv: Child<Conv>
    let temperature: ParameterSpec
    let cse: Child<PooledMLP>
    let sseR: Child<Conv>
    let sseT: Child<Conv>

    public init(_ dim: Int, mlpRatio: Int, attentionReduction: Int, gate: EAEFGate) {
        self.dim = dim
        self.gate = gate
        mlpPool = Child("mlp_pool", PooledMLP(dim, hidden: dim * mlpRatio, maxPool: false))
        dwconv = Child("dwconv", Conv(2 * dim, 2 * dim, 7, groups: dim))
        temperature = ParameterSpec("T_c", [], .constant(Float(dim)))
        cse = Child("cse", PooledMLP(2 * dim, hidden: 2 * dim / attentionReduction, maxPool: true))
        sseR = Child("sse_r.conv1", Conv(dim, 1, 1))
        sseT = Child("sse_t.conv1", Conv(dim, 1, 1))
    }

    /// The cross gate c [B, d, 1, 1] of the normalised descriptors r, t [B, d].
    func crossGate(_ r: Tensor, _ t: Tensor, _ tc: Tensor) -> Tensor {
        let (b, d) = (r.shape[0], r.shape[1])
        switch gate {
        case .perSample:
            return (r * t * tc).sigmoid().reshaped([b, d, 1, 1])
        case .released:
            require(b <= d, "EAEF(\(d)) with the released gate needs batch <= channels, got batch \(b)")
            // M[m, i, j] = sigmoid(T_c r[m, i] t[m, j]); torch.diagonal over dims 0, 1 gives
            // D[k, m] = M[m, m, k], read row-major as (B, d): c[n] = D[n / B, n % B].
            let m = (r.unsqueezed(at: 2) * t.unsqueezed(at: 1) * tc).sigmoid().reshaped([b * d * d])
            let index = (0..<(b * d)).map { n -> Float in
                let (k, sample) = (n / b, n % b)
                return Float((sample * d + sample) * d + k)
            }
            return m.gather(axis: 0, index: Tensor(shape: [b * d], scalars: index)).reshaped([b, d, 1, 1])
        }
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let rgb = x.sliced(axis: 1, 0..<dim), thermal = x.sliced(axis: 1, dim..<(2 * dim))
        let r = mlpPool(rgb, p), t = mlpPool(thermal, p)
        let cross = crossGate(r / r.norm(axes: [1], keepDims: true), t / t.norm(axes: [1], keepDims: true), p[temperature])
        let add = 1 - cross
        let rgbA = rgb * cross, thermalA = thermal * cross
        let fuseGate = cse(dwconv(Tensor.concat([rgbA, thermalA], axis: 1), p), p).sigmoid().unsqueezed(at: 2).unsqueezed(at: 3)
        let newRGB = rgb * add + rgbA * fuseGate.sliced(axis: 1, 0..<dim)
        let newThermal = thermal * add + thermalA * fuseGate.sliced(axis: 1, dim..<(2 * dim))
        let attention = Tensor.concat([sseR(newRGB, p), sseT(newThermal, p)], axis: 1).softmax(axis: 1)
        let sr = attention.sliced(axis: 1, 0..<1), st = attention.sliced(axis: 1, 1..<2)
        return Tensor.concat([newRGB * sr + newThermal * st, newThermal * st], axis: 1)
    }
}

/// CAM (LASNet's): summation = LReLU0.1(BN(conv3x3(x + ir))), a spatial gate sigmoid(conv3x3 of
/// the channel max of x · ir), then channel self-attention out = gamma (A y) + y with
/// A = softmax(max_j E - E), E = y yᵀ.
///
/// INFERRED: the channel attention (`util/dual_self_att.py`, missing from the release) is
/// DANet's CAM_Module as LASNet uses it.
public struct CAM: Layer {
    let conv2: Child<ConvNorm>
    let sa: Child<Conv>
    let gamma: ParameterSpec

    public init(_ inChannels: Int, _ outChannels: Int) {
        conv2 = Child("conv2", ConvNorm(inChannels, outChannels, 3, activation: .leakyRelu(0.1)))
        sa = Child("sa.conv1", Conv(1, 1, 3, bias: false))
        gamma = ParameterSpec("cam.gamma", [1], .constant(0))
    }

    public func callAsFunction(_ x: (Tensor, Tensor), _ p: Scope) -> Tensor {
        let (rgb, ir) = x
        let summation = conv2(rgb + ir, p)
        let y = summation * sa((rgb * ir).max(axes: [1], keepDims: true), p).sigmoid()
        let (b, c, h, w) = (y.shape[0], y.shape[1], y.shape[2], y.shape[3])
        let flat = y.reshaped([b, c, h * w])
        let energy = Tensor.matmul(flat, flat, transposeB: true)
        let attention = (energy.max(axes: [2], keepDims: true) - energy).softmax(axis: -1)
        return Tensor.matmul(attention, flat).reshaped([b, c, h, w]) * p[gamma] + y
    }
}

/// `Fusion_module(C, r)` of SDFM: recalibration of [x1; x2] by a pooled gate, channel
/// aggregation, and a local x global attention u mixing the halves: u x1 + (1 - u) x2.
struct FusionModule: Layer {
    let recalibrate1, recalibrate4: Child<Conv>
    let recalibrate2, recalibrate5: Child<BatchNorm2d>
    let channelAgg: Child<ConvNorm>
    let local0, local3, global1, global4: Child<Conv>
    let local1, local4, global2, global5: Child<BatchNorm2d>

    init(_ channels: Int, reduction: Int) {
        let inter = channels / reduction
        recalibrate1 = Child("Recalibrate.1", Conv(2 * channels, 2 * inter, 1))
        recalibrate2 = Child("Recalibrate.2", BatchNorm2d(2 * inter))
        recalibrate4 = Child("Recalibrate.4", Conv(2 * inter, 2 * channels, 1))
        recalibrate5 = Child("Recalibrate.5", BatchNorm2d(2 * channels))
        channelAgg = Child("channel_agg", ConvNorm(2 * channels, channels, 1, bias: true, names: ("0", "1"), activation: .relu))
        local0 = Child("local_att.0", Conv(channels, inter, 1))
        local1 = Child("local_att.1", BatchNorm2d(inter))
        local3 = Child("local_att.3", Conv(inter, channels, 1))
        local4 = Child("local_att.4", BatchNorm2d(channels))
        global1 = Child("global_att.1", Conv(channels, inter, 1))
        global2 = Child("global_att.2", BatchNorm2d(inter))
        global4 = Child("global_att.4", Conv(inter, channels, 1))
        global5 = Child("global_att.5", BatchNorm2d(channels))
    }

    func callAsFunction(_ x: (Tensor, Tensor), _ p: Scope) -> Tensor {
        let c = x.0.shape[1]
        var v = Tensor.concat([x.0, x.1], axis: 1)
        let pooled = v.mean(axes: [2, 3], keepDims: true)
        v = recalibrate5(recalibrate4(recalibrate2(recalibrate1(pooled, p), p).relu(), p), p).sigmoid() * v + v
        let x1 = v.sliced(axis: 1, 0..<c), x2 = v.sliced(axis: 1, c..<(2 * c))
        let z = channelAgg(v, p)
        let local = local4(local3(local1(local0(z, p), p).relu(), p), p)
        let global = global5(global4(global2(global1(z.mean(axes: [2, 3], keepDims: true), p), p).relu(), p), p)
        let u = (local * global).sigmoid()
        return u * x1 + (1 - u) * x2
    }
}

/// SDFM (AFM): three conv-BN-ReLU per stream, then ``FusionModule``.
public struct SDFM: Layer {
    let rgb1, rgb2, rgbSpr, ir1, ir2, irSpr: Child<ConvNorm>
    let objFuse: Child<FusionModule>

    public init(_ inChannels: Int, _ channels: Int, reduction: Int) {
        func block(_ name: String, _ i: Int) -> Child<ConvNorm> {
            Child(name, ConvNorm(i, channels, 3, names: ("basicconv.0", "basicconv.1"), activation: .relu))
        }
        rgb1 = block("RGBobj1_1", inChannels)
        rgb2 = block("RGBobj1_2", channels)
        rgbSpr = block("RGBspr", channels)
        ir1 = block("Infobj1_1", inChannels)
        ir2 = block("Infobj1_2", channels)
        irSpr = block("Infspr", channels)
        objFuse = Child("obj_fuse", FusionModule(channels, reduction: reduction))
    }

    public func callAsFunction(_ x: (Tensor, Tensor), _ p: Scope) -> Tensor {
        objFuse((rgbSpr(rgb2(rgb1(x.0, p), p), p), irSpr(ir2(ir1(x.1, p), p), p)), p)
    }
}

/// SIM (SPADE-like): BN(IN(x) (1 + sigmoid(conv h))) + conv h, h = ReLU(conv3x3(bilinear(s))).
public struct SIM: Layer {
    let mlpShared: Child<Conv>
    let mlpGamma: Child<Conv>
    let mlpBeta: Child<Conv>
    let bn: Child<BatchNorm2d>

    public init(_ channels: Int, label: Int, hidden: Int) {
        mlpShared = Child("mlp_shared.0", Conv(label, hidden, 3))
        mlpGamma = Child("mlp_gamma.0", Conv(hidden, channels, 3))
        mlpBeta = Child("mlp_beta", Conv(hidden, channels, 3))
        bn = Child("bn", BatchNorm2d(channels))
    }

    /// (x, the guiding map s, resized to x's size).
    public func callAsFunction(_ x: (Tensor, Tensor), _ p: Scope) -> Tensor {
        let (features, guide) = x
        let normalized = Normalize.standardize(features, axes: [2, 3], eps: 1e-5)
        let resized = guide.resizedBilinear(to: (features.shape[2], features.shape[3]))
        let h = mlpShared(resized, p).relu()
        return bn(normalized * (1 + mlpGamma(h, p).sigmoid()), p) + mlpBeta(h, p)
    }
}

/// conv3x3 (no bias), BN, BN, ReLU (`.0.conv`, `.0.bn`, `.1`): the blocks of DSRM and S2PM, with
/// the released double BatchNorm.
struct DoubleNormBlock: UnaryModule {
    let conv: Child<Conv>
    let bn: Child<BatchNorm2d>
    let bn2: Child<BatchNorm2d>

    init(_ inChannels: Int, _ outChannels: Int) {
        conv = Child("0.conv", Conv(inChannels, outChannels, 3, bias: false))
        bn = Child("0.bn", BatchNorm2d(outChannels))
        bn2 = Child("1", BatchNorm2d(outChannels))
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor { bn2(bn(conv(x, p), p), p).relu() }
}

/// DSRM: four dense blocks, block k on cat(x, x1, ..., x_{k-1}); the output is x4.
struct DSRM: UnaryModule {
    let blocks: [Child<DoubleNormBlock>]

    init(_ inChannels: Int, _ outChannels: Int) {
        blocks = (1...4).map { k in Child("block\(k)", DoubleNormBlock(k == 1 ? inChannels : inChannels + (k - 1) * outChannels, outChannels)) }
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        var collected = [x]
        for block in blocks { collected.append(block(Tensor.concat(collected, axis: 1), p)) }
        return collected.last!
    }
}

/// S2PM (`encoder.seg_decoder`): instantiated (its parameters counted), never called.
struct S2PM: Module {
    let blocks: [Child<DoubleNormBlock>]
    init(_ inChannels: Int, _ outChannels: Int) {
        blocks = (1...3).map { Child("block\($0)", DoubleNormBlock($0 == 1 ? inChannels : outChannels, outChannels)) }
    }
}

/// S2M: a depthwise local gate x a pooled global gate, then a BatchNorm (`conv_block`).
struct S2M: UnaryModule {
    let localConvs: [Child<Conv>]
    let localNorms: [Child<BatchNorm2d>]
    let global1, global4: Child<Conv>
    let global2, global5: Child<BatchNorm2d>
    let convBlock: Child<BatchNorm2d>

    init(_ channels: Int) {
        localConvs = [0, 3, 6].map { Child("local_att.\($0)", Conv(channels, channels, 3, groups: channels)) }
        localNorms = [1, 4, 7].map { Child("local_att.\($0)", BatchNorm2d(channels)) }
        global1 = Child("global_att.1", Conv(channels, channels, 1))
        global2 = Child("global_att.2", BatchNorm2d(channels))
        global4 = Child("global_att.4", Conv(channels, channels, 1))
        global5 = Child("global_att.5", BatchNorm2d(channels))
        convBlock = Child("conv_block", BatchNorm2d(channels))
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        var local = x
        for i in 0..<3 {
            local = localNorms[i](localConvs[i](local, p), p)
            if i < 2 { local = local.relu() }
        }
        let global = global5(global4(global2(global1(x.mean(axes: [2, 3], keepDims: true), p), p).relu(), p), p)
        return convBlock((local * global).sigmoid() * x, p)
    }
}

/// The release's unused RecDecoder: SIM3(rec_f, seg_f) -> DSRM -> S2M -> conv3x3 -> (tanh + 1) / 2;
/// stage I's optional infrared head (`ir-head: rec-decoder`).
struct RecDecoder: Layer {
    let sim3: Child<SIM>
    let segRecDecoder: Child<DSRM>
    let mask: Child<S2M>
    let conv: Child<Conv>

    init(rec: Int, seg: Int, hidden: Int) {
        sim3 = Child("SIM3", SIM(rec, label: seg, hidden: hidden))
        segRecDecoder = Child("seg_rec_decoder", DSRM(rec, rec))
        mask = Child("mask", S2M(rec))
        conv = Child("conv_block.0", Conv(rec, 1, 3))
    }

    func callAsFunction(_ x: (Tensor, Tensor), _ p: Scope) -> Tensor {
        (conv(mask(segRecDecoder(sim3(x, p), p), p), p).tanh() + 1) * 0.5
    }
}

/// conv-BN-ReLU6 3x3 at dilations 1, 2, 4, 8 (`dilation_conv1..4`), concatenated, conv-BN-ReLU6
/// 1x1 (`conv1`): Fusion_block's ARM / ARM2.
struct DilatedFuse: UnaryModule {
    let branches: [Child<ConvNorm>]
    let conv1: Child<ConvNorm>

    init(_ inChannels: Int, _ outChannels: Int, dilations: [Int] = [1, 2, 4, 8]) {
        branches = dilations.enumerated().map { i, d in
            Child("dilation_conv\(i + 1)", ConvNorm(inChannels, outChannels, 3, dilation: d, activation: .relu6))
        }
        conv1 = Child("conv1", ConvNorm(dilations.count * outChannels, outChannels, 1, activation: .relu6))
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        conv1(Tensor.concat(branches.map { $0(x, p) }, axis: 1), p)
    }
}

/// What the encoder hands the decoders.
struct EncoderFeatures {
    /// The PHF feature after DSRM (the fusion decoder's input), [B, rec, H, W].
    var recF: Tensor
    /// SIM1's output [B, phf, H/2, W/2] (the segmentation decoder's skip).
    var recF1: Tensor
    /// The encoder ARM's output, computed only on request (the rec-decoder stage-I head).
    var segF: Tensor?
    /// [f3, f4, f5, f6] (CAM outputs at 1/4 .. 1/32).
    var levels: [Tensor]
}

/// MAFS's encoder: per modality SFM and four ResNet stages, EAEF gates after SFM and the first
/// three stages, CAM on the four deep levels, SDFM on the two shallow ones, SIM x2 + DSRM (PHF).
/// SFEB2, to_fused_seg, SIM3, seg_decoder (S2PM) and ARM are instantiated as released; only the
/// rec-decoder stage-I head computes the SFEB2 -> to_fused_seg -> ARM branch.
struct MAFSEncoder: Module {
    let thermalConv1, rgbConv1: Child<ShallowFeatures>
    let thermalBn1, rgbBn1: Child<BatchNorm2d>
    let thermalLayers, rgbLayers: [Child<ModuleList<ResNetBlock>>]
    let sfeb2: Child<Sequential>
    let highFuse6, highFuse5, highFuse4, lowFuse3: Child<CAM>
    let eaef5, eaef4, eaef3, eaef2: Child<EAEF>
    let lowFuse2, lowFuse1: Child<SDFM>
    let sim1, sim2: Child<SIM>
    let toFusedSeg: Child<ModuleList<Sequential>>
    let sim3: Child<SIM>
    let segDecoder: Child<S2PM>
    let recDecoder: Child<DSRM>
    let arm: Child<DilatedFuse>

    init(_ c: MAFSConfiguration) {
        let stage = c.stageChannels, seg = c.segChannels
        func layers(_ stream: String) -> [Child<ModuleList<ResNetBlock>>] {
            var inPlanes = c.sfmChannels
            return (0..<4).map { k in
                defer { inPlanes = stage[k] }
                return Child("encoder_\(stream)_layer\(k + 3)", ResNetBlock.stage(c.resnetBlock, inPlanes: inPlanes, planes: c.resnetPlanes[k],
                                                                                  blocks: c.resnetLayers[k], stride: k == 0 ? 1 : 2))
            }
        }
        thermalConv1 = Child("encoder_thermal_conv1", ShallowFeatures(1, c.sfmChannels))
        thermalBn1 = Child("encoder_thermal_bn1", BatchNorm2d(c.sfmChannels))
        thermalLayers = layers("thermal")
        rgbConv1 = Child("encoder_rgb_conv1", ShallowFeatures(3, c.sfmChannels))
        rgbBn1 = Child("encoder_rgb_bn1", BatchNorm2d(c.sfmChannels))
        rgbLayers = layers("rgb")
        sfeb2 = Child("SFEB2", Sequential([Conv(c.phfChannels, seg, 3, stride: 2), BatchNorm2d(seg), FReLU(seg), Conv(seg, seg, 3)]))
        highFuse6 = Child("high_fuse6", CAM(stage[3], c.camChannels))
        highFuse5 = Child("high_fuse5", CAM(stage[2], c.camChannels))
        highFuse4 = Child("high_fuse4", CAM(stage[1], c.camChannels))
        lowFuse3 = Child("low_fuse3", CAM(stage[0], c.camChannels))
        func eaef(_ name: String, _ d: Int) -> Child<EAEF> {
            Child(name, EAEF(d, mlpRatio: c.eaefMlpRatio, attentionReduction: c.eaefAttentionReduction, gate: c.eaefGate))
        }
        eaef5 = eaef("EAEF5", stage[2])
        eaef4 = eaef("EAEF4", stage[1])
        eaef3 = eaef("EAEF3", stage[0])
        eaef2 = eaef("EAEF2", c.sfmChannels)
        lowFuse2 = Child("low_fuse2", SDFM(c.sfmChannels, c.phfChannels, reduction: c.fusionModuleReduction))
        lowFuse1 = Child("low_fuse1", SDFM(c.sfmChannels / 2, c.recChannels, reduction: c.fusionModuleReduction))
        sim1 = Child("SIM1", SIM(c.phfChannels, label: c.camChannels, hidden: c.simHidden))
        sim2 = Child("SIM2", SIM(c.recChannels, label: c.phfChannels, hidden: c.simHidden))
        toFusedSeg = Child("to_fused_seg", ModuleList((0..<4).map { _ in Sequential([Conv(c.camChannels, seg, 3)]) }))
        sim3 = Child("SIM3", SIM(c.phfChannels, label: seg, hidden: c.simHidden))
        segDecoder = Child("seg_decoder", S2PM(4 * seg, seg))
        recDecoder = Child("rec_decoder", DSRM(c.recChannels, c.recChannels))
        arm = Child("ARM", DilatedFuse(5 * seg, seg))
    }

    /// The encoder on visible RGB [B, 3, H, W] and infrared [B, 1, H, W].
    func callAsFunction(rgb: Tensor, thermal: Tensor, computeSegF: Bool = false, _ p: Scope) -> EncoderFeatures {
        let (rgb1, rgbLow) = rgbConv1(rgb, p)
        let (th1, thLow) = thermalConv1(thermal, p)
        func gate(_ eaef: Child<EAEF>, _ r: Tensor, _ t: Tensor) -> (Tensor, Tensor) {
            let d = r.shape[1]
            let out = eaef(Tensor.concat([r, t], axis: 1), p)
            return (out.sliced(axis: 1, 0..<d), out.sliced(axis: 1, d..<(2 * d)))
        }
        func pool(_ x: Tensor) -> Tensor { x.maxPool2d(kernel: (3, 3), stride: (2, 2), padding: (1, 1)) }
        let (rgb2, th2) = gate(eaef2, rgbBn1(rgbLow, p).relu(), thermalBn1(thLow, p).relu())
        let (rgb3, th3) = gate(eaef3, rgbLayers[0](pool(rgb2), p), thermalLayers[0](pool(th2), p))
        let (rgb4, th4) = gate(eaef4, rgbLayers[1](rgb3, p), thermalLayers[1](th3, p))
        let (rgb5, th5) = gate(eaef5, rgbLayers[2](rgb4, p), thermalLayers[2](th4, p))
        let rgb6 = rgbLayers[3](rgb5, p), th6 = thermalLayers[3](th5, p)
        let f6 = highFuse6((rgb6, th6), p), f5 = highFuse5((rgb5, th5), p)
        let f4 = highFuse4((rgb4, th4), p), f3 = lowFuse3((rgb3, th3), p)
        let f2 = lowFuse2((rgb2, th2), p), f1 = lowFuse1((rgb1, th1), p)
        let recF1 = sim1((f2, f3), p)
        let recF = recDecoder(sim2((f1, recF1), p), p)
        var segF: Tensor?
        if computeSegF {
            let maps = [f3, f4, f5, f6].enumerated().map { i, f -> Tensor in
                let m = toFusedSeg[i](f, p)
                return i == 0 ? m : m.resizedBilinear(to: (m.shape[2] << i, m.shape[3] << i), alignCorners: true)
            }
            segF = arm(Tensor.concat([sfeb2(recF1, p)] + maps, axis: 1), p)
        }
        return EncoderFeatures(recF: recF, recF1: recF1, segF: segF, levels: [f3, f4, f5, f6])
    }
}
