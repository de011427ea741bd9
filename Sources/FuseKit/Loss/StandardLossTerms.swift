import Foundation
import FuseKitNN
import FuseKitTensor

extension LossTermRegistry {
    /// FuseKit's loss terms.
    public static let standard: LossTermRegistry = {
        var r = LossTermRegistry()
        r.register("intensity-max", kind: .fusion, summary: "mean |F - max(infrared, visible)| per pixel and channel, towards the (enhanced) targets",
                   configuration: NoParameters.self) { _ in IntensityMaxTerm() }
        r.register("sobel-max", kind: .fusion, summary: "Sobel responses of F towards the per-pixel maximum of the targets' (signed per direction, or absolute)",
                   configuration: SobelMaxTerm.Configuration.self) { SobelMaxTerm(configuration: $0) }
        r.register("color", kind: .fusion, summary: "mean |Cb(F) - Cb(R_v)| + mean |Cr(F) - Cr(R_v)| (RGB fusion towards the visible target's chroma)",
                   configuration: NoParameters.self) { _ in ColorTerm() }
        r.register("ssim", kind: .fusion, summary: "1 - (w_ir SSIM(F, infrared) + w_vis SSIM(F, visible)), Gaussian window",
                   configuration: SSIMTerm.Configuration.self) { SSIMTerm(configuration: $0) }
        r.register("learnable-fusion", kind: .fusion, summary: "TDFusion's loss with weights w = G(x) of a frozen loss generator, or fixed w = 1/2",
                   configuration: LearnableFusionTerm.Configuration.self) { LearnableFusionTerm(configuration: $0) }
        r.register("cross-entropy", kind: .task, summary: "pixel cross-entropy of the logits (resized to the labels), ignoring a label value",
                   configuration: CrossEntropyTerm.Configuration.self) { CrossEntropyTerm(configuration: $0) }
        r.register("ohem-cross-entropy", kind: .task, summary: "cross-entropy over the hard pixels (true-class probability below a threshold, at least a minimum kept)",
                   configuration: OHEMCrossEntropyTerm.Configuration.self) { OHEMCrossEntropyTerm(configuration: $0) }
        r.register("binary", kind: .task, summary: "class-weighted 2-class cross-entropy of an output against foreground labels (label > 0)",
                   configuration: DerivedLabelTerm.Configuration.self) { DerivedLabelTerm(configuration: $0, labels: .foreground) }
        r.register("boundary", kind: .task, summary: "class-weighted 2-class cross-entropy of an output against boundary labels (another class in the 3x3 neighbourhood)",
                   configuration: DerivedLabelTerm.Configuration.self) { DerivedLabelTerm(configuration: $0, labels: .boundary) }
        r.register("distillation", kind: .task, summary: "T² · mean over pixels of KL(softmax(teacher / T) || softmax(student / T)) from a frozen teacher",
                   configuration: DistillationTerm.Configuration.self) { DistillationTerm(configuration: $0) }
        r.register("task-loss", kind: .task, summary: "the task network's own loss on the fused images (any task net: cross-entropy, YOLO, ...)",
                   configuration: NoParameters.self) { _ in TaskNetLossTerm() }
        r.register("masked-l1", kind: .reconstruction, summary: "mean over all pixels of |M (reconstruction - source)|, M = the masked cells, both sources",
                   configuration: NoParameters.self) { _ in MaskedL1Term() }
        r.register("masked-gradient-l1", kind: .reconstruction, summary: "mean | |Sobel(M reconstruction)| - |Sobel(M source)| | per direction, both sources",
                   configuration: MaskedGradientTerm.Configuration.self) { MaskedGradientTerm(configuration: $0) }
        return r
    }()
}

/// Sobel responses (x, y) of every channel: [B, C, H, W] -> [B, 2C, H, W] (x then y per channel),
/// cross-correlation with zero padding 1 (FusionLoss's kernels).
func sobelPerChannel(_ x: Tensor) -> Tensor {
    let (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    return FusionLoss.sobel(x.reshaped([b * c, 1, h, w])).reshaped([b, 2 * c, h, w])
}

/// MRFS's salient-information intensity term: mean |F' - max(R_v, R_i)|.
struct IntensityMaxTerm: LossTerm {
    var requirements: Set<LossRequirement> { [.fused] }
    func callAsFunction(_ batch: LossBatch) -> Tensor {
        let fused = batch.maskedFused()
        let (ir, vis) = batch.targets.matching(channels: fused.shape[1])
        return (fused - Tensor.maximum(ir, vis)).abs().mean()
    }
}

/// Gradient term towards the per-pixel maximum of the targets' Sobel responses.
struct SobelMaxTerm: LossTerm {
    enum Form: String, ParameterChoice {
        /// MRFS: signed responses, the larger of the two targets' per direction.
        case signed
        /// MAFS: |S F| towards max(|S R_v|, |S R_i|).
        case absolute
    }

    enum Combine: String, ParameterChoice {
        /// The mean of the two directions' terms (MRFS: 0.5 x + 0.5 y).
        case mean
        /// Their sum (MAFS).
        case sum
    }

    struct Configuration: PluginConfiguration {
        @Parameter("signed responses (MRFS) or absolute values (MAFS)") var form = Form.signed
        @Parameter("how the x and y terms combine") var combine = Combine.mean
        init() {}
    }

    let configuration: Configuration
    var requirements: Set<LossRequirement> { [.fused] }

    func callAsFunction(_ batch: LossBatch) -> Tensor {
        let fused = batch.maskedFused()
        let (ir, vis) = batch.targets.matching(channels: fused.shape[1])
        var f = sobelPerChannel(fused), a = sobelPerChannel(ir), b = sobelPerChannel(vis)
        switch configuration.form {
        case .absolute: (f, a, b) = (f.abs(), a.abs(), b.abs())
        // MRFS's y kernel is [[1, 2, 1], [0, 0, 0], [-1, -2, -1]], the negative of FusionLoss's, and
        // with signed responses the sign decides which target is the larger.
        case .signed: (f, a, b) = (Self.officialYSign(f), Self.officialYSign(a), Self.officialYSign(b))
        }
        let target = withoutGradient { Tensor.maximum(a.detached(), b.detached()) }
        let c = fused.shape[1]
        let difference = (f - target).abs().reshaped([fused.shape[0], c, 2, fused.shape[2] * fused.shape[3]])
        let perDirection = difference.mean(axes: [0, 1, 3])  // [2]: x, y
        return configuration.combine == .mean ? perDirection.mean() : perDirection.sum()
    }

    /// Responses [B, 2C, H, W] (x then y per channel) with the y ones negated.
    static func officialYSign(_ s: Tensor) -> Tensor {
        let (b, c2, h, w) = (s.shape[0], s.shape[1], s.shape[2], s.shape[3])
        let pairs = s.reshaped([b, c2 / 2, 2, h * w])
        return Tensor.concat([pairs.sliced(axis: 2, 0..<1), -pairs.sliced(axis: 2, 1..<2)], axis: 2).reshaped([b, c2, h, w])
    }
}

/// MRFS's colour term: mean |Cb(F') - Cb(R_v)| + mean |Cr(F') - Cr(R_v)|.
struct ColorTerm: LossTerm {
    var requirements: Set<LossRequirement> { [.rgbFused] }
    func callAsFunction(_ batch: LossBatch) -> Tensor {
        let fused = batch.maskedFused()
        precondition(fused.shape[1] == 3 && batch.targets.visible.shape[1] == 3, "the color term needs RGB fused and visible images")
        let f = Color.chroma(fused), v = Color.chroma(batch.targets.visible)
        return (f.cb - v.cb).abs().mean() + (f.cr - v.cr).abs().mean()
    }
}

/// Structural similarity of the fused image with both sources.
struct SSIMTerm: LossTerm {
    struct Configuration: PluginConfiguration {
        @Parameter("weight of SSIM(F, infrared)", .nonNegative) var infraredWeight = 0.5
        @Parameter("weight of SSIM(F, visible)", .nonNegative) var visibleWeight = 0.5
        @Parameter("Gaussian window size (odd)", .positive) var window = 11
        @Parameter("Gaussian window sigma", .positive) var sigma = 1.5
        init() {}
        func validate() throws(ParameterProblem) {
            guard window % 2 == 1 else { throw ParameterProblem("window", "must be odd, got \(window)") }
        }
    }

    let configuration: Configuration
    var requirements: Set<LossRequirement> { [.fused] }

    func callAsFunction(_ batch: LossBatch) -> Tensor {
        let fused = batch.maskedFused()
        let (ir, vis) = batch.targets.matching(channels: fused.shape[1])
        let c = configuration
        return 1 - (Float(c.infraredWeight) * SSIMTerm.ssim(fused, ir, window: c.window, sigma: Float(c.sigma))
                    + Float(c.visibleWeight) * SSIMTerm.ssim(fused, vis, window: c.window, sigma: Float(c.sigma)))
    }

    /// Mean SSIM over pixels and channels (data range 1, K1 0.01, K2 0.03), 'same' zero padding.
    static func ssim(_ x: Tensor, _ y: Tensor, window: Int, sigma: Float) -> Tensor {
        let channels = x.shape[1]
        let half = window / 2
        var g = (0..<window).map { i -> Float in
            let d = Float(i - half)
            return Float(Foundation.exp(Double(-d * d / (2 * sigma * sigma))))
        }
        let total = g.reduce(0, +)
        g = g.map { $0 / total }
        var kernel = [Float]()
        for i in 0..<window { for j in 0..<window { kernel.append(g[i] * g[j]) } }
        let weights = Tensor(shape: [1, 1, window, window], scalars: kernel).expanded(to: [channels, 1, window, window])
        func blur(_ t: Tensor) -> Tensor { Tensor.conv2d(t, weights, padding: (half, half), groups: channels) }
        let (c1, c2): (Float, Float) = (0.01 * 0.01, 0.03 * 0.03)
        let mx = blur(x), my = blur(y)
        let sxx = blur(x * x) - mx * mx, syy = blur(y * y) - my * my, sxy = blur(x * y) - mx * my
        let map = ((mx * my * 2 + c1) * (sxy * 2 + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        return map.mean()
    }
}

/// TDFusion's learnable fusion loss inside a joint stage: weights from a frozen loss generator
/// (the `loss-generator` role), or fixed w = 1/2; on the gray fused image and gray sources.
struct LearnableFusionTerm: LossTerm {
    enum Weights: String, ParameterChoice { case learned, fixed }

    struct Configuration: PluginConfiguration {
        @Parameter("weight of the gradient term", .nonNegative) var alpha = 1.0
        @Parameter("intensity form: paper, or squared-weights (the official code)") var form = FusionLoss.IntensityForm.paper
        @Parameter("w = G(x) of the frozen loss generator, or fixed 1/2") var weights = Weights.learned
        init() {}
    }

    let configuration: Configuration
    var requirements: Set<LossRequirement> { configuration.weights == .learned ? [.fused, .lossGenerator] : [.fused] }

    func callAsFunction(_ batch: LossBatch) -> Tensor {
        guard let fused = batch.fused else { preconditionFailure("the learnable fusion term needs the fused images") }
        let gray = fused.shape[1] == 1 ? fused : Color.luma(fused)
        let sources = Tensor.concat([batch.infrared, FusionTargets.withChannels(batch.visible, 1)], axis: 1)
        let w: Tensor
        if configuration.weights == .learned {
            guard let weigh = batch.fusionWeights else { preconditionFailure("learned weights need a loss-generator role in the stage") }
            w = withoutGradient { weigh(sources).detached() }
        } else {
            w = Tensor.full(sources.shape, 0.5)
        }
        return FusionLoss(alpha: Float(configuration.alpha), form: configuration.form)(fused: gray, sources: sources, weights: w)
    }
}


/// Pixel cross-entropy of the batch's logits.
struct CrossEntropyTerm: LossTerm {
    struct Configuration: PluginConfiguration {
        @Parameter("label value excluded from the loss") var ignoreIndex = 255
        @Parameter("the output to score: logits, or an auxiliary output's name") var output = "logits"
        init() {}
    }

    let configuration: Configuration
    var requirements: Set<LossRequirement> { [.labels, .output(configuration.output)] }

    func callAsFunction(_ batch: LossBatch) -> Tensor {
        SegmentationLoss(ignoreIndex: configuration.ignoreIndex)(logits: batch.output(configuration.output), labels: batch.requiredLabels())
    }
}

/// Cross-entropy over hard pixels (BiSeNet's OHEM, as MAFS trains with).
struct OHEMCrossEntropyTerm: LossTerm {
    struct Configuration: PluginConfiguration {
        @Parameter("true-class probability below which a pixel is hard", .within(0.0...1.0)) var threshold = 0.7
        @Parameter("pixels kept at least per batch (0: one sixteenth of the labelled pixels)", .nonNegative) var minKept = 0
        @Parameter("label value excluded from the loss") var ignoreIndex = 255
        @Parameter("the output to score: logits, or an auxiliary output's name") var output = "logits"
        init() {}
        func validate() throws(ParameterProblem) {
            guard threshold > 0 else { throw ParameterProblem("threshold", "must be above 0, got \(threshold)") }
        }
    }

    let configuration: Configuration
    var requirements: Set<LossRequirement> { [.labels, .output(configuration.output)] }

    func callAsFunction(_ batch: LossBatch) -> Tensor {
        let c = configuration
        let loss = SegmentationLoss(ignoreIndex: c.ignoreIndex,
                                    hardExampleMining: HardExampleMining(threshold: Float(c.threshold), minKept: c.minKept))
        return loss(logits: batch.output(c.output), labels: batch.requiredLabels())
    }
}

/// A 2-class cross-entropy against labels derived from the class map (MAFS's binary and
/// boundary auxiliary losses).
struct DerivedLabelTerm: LossTerm {
    enum Labels { case foreground, boundary }

    struct Configuration: PluginConfiguration {
        @Parameter("the 2-channel output to score (an auxiliary output's name)") var output = "binary"
        @Parameter("weights of the two classes [negative, positive]", .each(.nonNegative, count: 2)) var classWeights = [1.0, 1.0]
        @Parameter("label value excluded from the loss") var ignoreIndex = 255
        init() {}
    }

    let configuration: Configuration
    let labels: Labels
    var requirements: Set<LossRequirement> { [.labels, .output(configuration.output)] }

    func callAsFunction(_ batch: LossBatch) -> Tensor {
        let classMap = batch.requiredLabels()
        let derived = labels == .foreground
            ? DerivedLabels.foreground(classMap, ignoreIndex: Float(configuration.ignoreIndex))
            : DerivedLabels.boundary(classMap, ignoreIndex: Float(configuration.ignoreIndex))
        let logits = batch.output(configuration.output)
        precondition(logits.shape[1] == 2, "\(configuration.output) has \(logits.shape[1]) channels; a binary term needs 2")
        let resized = logits.resizedBilinear(to: (classMap.shape[1], classMap.shape[2]), alignCorners: true)
        let weights = Tensor(shape: [2], scalars: configuration.classWeights.map(Float.init))
        return Losses.crossEntropy(logits: resized, targets: derived, ignoreIndex: configuration.ignoreIndex, classWeights: weights)
    }
}

/// Labels derived from a class map [B, H, W] (Float indices): foreground (label > 0) and
/// boundaries; ignored pixels stay ignored.
public enum DerivedLabels {
    public static func foreground(_ labels: Tensor, ignoreIndex: Float = 255) -> Tensor {
        withoutGradient {
            Tensor(shape: labels.shape, scalars: labels.scalars.map { $0 == ignoreIndex ? ignoreIndex : ($0 > 0 ? 1 : 0) })
        }
    }

    /// Boundary pixels: some pixel of the 3x3 neighbourhood (clipped at the border) has another
    /// label value, an ignored neighbour included (MAFS's inferred `bd` labels).
    public static func boundary(_ labels: Tensor, ignoreIndex: Float = 255) -> Tensor {
        let (b, h, w) = (labels.shape[0], labels.shape[1], labels.shape[2])
        let values = labels.scalars
        var out = [Float](repeating: 0, count: values.count)
        for n in 0..<b {
            for y in 0..<h {
                for x in 0..<w {
                    let i = (n * h + y) * w + x
                    let v = values[i]
                    if v == ignoreIndex { out[i] = ignoreIndex; continue }
                    var edge = false
                    for dy in -1...1 where !edge {
                        for dx in -1...1 {
                            let yy = y + dy, xx = x + dx
                            guard yy >= 0, yy < h, xx >= 0, xx < w else { continue }
                            let u = values[(n * h + yy) * w + xx]
                            if u != v { edge = true; break }
                        }
                    }
                    out[i] = edge ? 1 : 0
                }
            }
        }
        return Tensor(shape: labels.shape, scalars: out)
    }
}

/// Knowledge distillation from a frozen teacher role.
struct DistillationTerm: LossTerm {
    struct Configuration: PluginConfiguration {
        @Parameter("the frozen teacher role") var teacher = "teacher"
        @Parameter("what the teacher sees: fused (coloured with the visible chroma for an RGB teacher) or visible") var input = TeacherInput.fused
        @Parameter("softmax temperature T (the loss is scaled by T²)", .positive) var temperature = 4.0
        @Parameter("the student output: logits, or an auxiliary output's name") var output = "logits"
        init() {}
    }

    let configuration: Configuration
    var requirements: Set<LossRequirement> {
        Set([.output(configuration.output), .teacher(ModelRole(configuration.teacher))] + (configuration.input == .fused ? [LossRequirement.fused] : []))
    }

    func callAsFunction(_ batch: LossBatch) -> Tensor {
        guard let teacherLogits = batch.teacherLogits else { preconditionFailure("distillation needs a frozen teacher in the stage") }
        let student = batch.output(configuration.output)
        var teacher = teacherLogits(ModelRole(configuration.teacher), configuration.input)
        if teacher.shape[2] != student.shape[2] || teacher.shape[3] != student.shape[3] {
            teacher = teacher.resizedBilinear(to: (student.shape[2], student.shape[3]))
        }
        return Losses.distillation(student: student, teacher: teacher, temperature: Float(configuration.temperature))
    }
}

extension Losses {
    /// T² · mean over batch and pixels of KL(softmax(teacher/T) || softmax(student/T)), summed over
    /// the classes (axis 1); the teacher's logits are not differentiated through its softmax
    /// targets' weights only when the caller detaches them.
    public static func distillation(student: Tensor, teacher: Tensor, temperature: Float) -> Tensor {
        require(student.shape == teacher.shape, "distillation: student \(Shape.describe(student.shape)) and teacher \(Shape.describe(teacher.shape)) differ")
        let logP = (teacher / temperature).logSoftmax(axis: 1)
        let logQ = (student / temperature).logSoftmax(axis: 1)
        let kl = (logP.exp() * (logP - logQ)).sum(axis: 1)
        return kl.mean() * (temperature * temperature)
    }
}

/// A cascade task network's own loss.
struct TaskNetLossTerm: LossTerm {
    var requirements: Set<LossRequirement> { [.taskNet] }
    func callAsFunction(_ batch: LossBatch) -> Tensor {
        guard let loss = batch.taskLoss else { preconditionFailure("task-loss needs a fusion net and a task net in the stage") }
        return loss()
    }
}

/// L1 of the reconstructions on the masked cells, both sources, mean over all pixels.
struct MaskedL1Term: LossTerm {
    var requirements: Set<LossRequirement> { [.reconstruction] }
    func callAsFunction(_ batch: LossBatch) -> Tensor {
        let (r, sources, masked) = batch.reconstructionParts()
        return zip(zip(r, sources), masked).map { pair, m in ((pair.0 - pair.1) * m).abs().mean() }.reduce(Tensor(0), +)
    }
}

/// Sobel-gradient L1 of the masked reconstructions against the masked sources, both sources
/// (MAFS Eq. 13: the mask applied before the gradient; absolute responses, directions summed by
/// default).
struct MaskedGradientTerm: LossTerm {
    struct Configuration: PluginConfiguration {
        @Parameter("absolute responses (MAFS) or signed") var form = SobelMaxTerm.Form.absolute
        @Parameter("how the x and y terms combine") var combine = SobelMaxTerm.Combine.sum
        init() {}
    }

    let configuration: Configuration
    var requirements: Set<LossRequirement> { [.reconstruction] }

    func callAsFunction(_ batch: LossBatch) -> Tensor {
        let (r, sources, masked) = batch.reconstructionParts()
        return zip(zip(r, sources), masked).map { pair, m in
            var a = sobelPerChannel(pair.0 * m), b = sobelPerChannel(pair.1 * m)
            if configuration.form == .absolute { (a, b) = (a.abs(), b.abs()) }
            let c = pair.0.shape[1]
            let perDirection = (a - b).abs().reshaped([m.shape[0], c, 2, m.shape[2] * m.shape[3]]).mean(axes: [0, 1, 3])
            return configuration.combine == .mean ? perDirection.mean() : perDirection.sum()
        }.reduce(Tensor(0), +)
    }
}

extension LossBatch {
    /// Segmentation labels, which a task term needs.
    func requiredLabels() -> Tensor {
        guard let labels else { preconditionFailure("a segmentation loss term needs labelled data") }
        return labels
    }

    /// The logits, or an auxiliary output by name.
    func output(_ name: String) -> Tensor {
        if name == "logits" {
            guard let logits else { preconditionFailure("a task loss term needs segmentation logits") }
            return logits
        }
        guard let out = auxiliary[name] else {
            preconditionFailure("no output '\(name)' (outputs: \(auxiliary.keys.sorted().joined(separator: ", ")))")
        }
        return out
    }

    /// Reconstructions, sources and masked-cell masks (1 - keep), in the order infrared, visible.
    func reconstructionParts() -> ([Tensor], [Tensor], [Tensor]) {
        guard let reconstruction, let keepMasks else { preconditionFailure("a reconstruction term needs a masked-pretraining stage") }
        let visibleSource = FusionTargets.withChannels(visible, reconstruction.visible.shape[1])
        return ([reconstruction.infrared, reconstruction.visible], [infrared, visibleSource], [1 - keepMasks.infrared, 1 - keepMasks.visible])
    }
}
