import FuseKitImage
import FuseKitNN
import FuseKitTensor

/// What the loss terms of one training step see: the batch's sources and labels, and what the
/// trained models made of them. Every tensor is [B, C, H, W] unless said otherwise.
public struct LossBatch {
    /// Infrared sources [B, 1, H, W] in [0, 1].
    public var infrared: Tensor
    /// Visible sources [B, 1 or 3, H, W] in [0, 1].
    public var visible: Tensor
    /// Enhanced fusion targets (weak-information recovery: gamma on the visible image, contrast
    /// on the infrared one; the sources themselves when both are 1).
    public var targets: FusionTargets
    /// 1 on real pixels, 0 on padding added by scale augmentation, [B, 1, H, W]; nil when all real.
    public var validMask: Tensor?
    /// Segmentation labels [B, H, W] (Float class indices, 255 ignored), when the data has them.
    public var labels: Tensor?
    /// Boxes per item, when the data has them.
    public var boxes: [[BoundingBox]]?
    /// The fused images [B, 1 or 3, H, W].
    public var fused: Tensor?
    /// Segmentation logits [B, K, h, w].
    public var logits: Tensor?
    /// Further model outputs by name (auxiliary heads).
    public var auxiliary: [String: Tensor] = [:]
    /// A cascade's task network loss on the fused images (its own loss: CE, YOLO, ...).
    public var taskLoss: (() -> Tensor)?
    /// Logits of a frozen teacher role on the fused or the visible images.
    public var teacherLogits: ((ModelRole, TeacherInput) -> Tensor)?
    /// The fusion-loss weights [B, 2, H, W] of a loss generator (for the learnable term).
    public var fusionWeights: ((Tensor) -> Tensor)?
    /// Reconstructions of both sources from masked inputs, and the masks that kept each pixel
    /// visible to the network (1 kept, 0 masked), for reconstruction terms.
    public var reconstruction: (infrared: Tensor, visible: Tensor)?
    public var keepMasks: (infrared: Tensor, visible: Tensor)?

    public init(infrared: Tensor, visible: Tensor, targets: FusionTargets, validMask: Tensor? = nil, labels: Tensor? = nil,
                boxes: [[BoundingBox]]? = nil) {
        self.infrared = infrared
        self.visible = visible
        self.targets = targets
        self.validMask = validMask
        self.labels = labels
        self.boxes = boxes
    }

    /// The fused images with padding zeroed (MRFS's F · M).
    public func maskedFused() -> Tensor {
        guard let fused else { preconditionFailure("a fusion loss term needs the fused images") }
        return validMask.map { fused * $0 } ?? fused
    }
}

/// The images a teacher may be run on.
public enum TeacherInput: String, Sendable, Codable, ParameterChoice {
    /// The fused image (coloured with the visible chroma when the teacher takes RGB).
    case fused
    /// The visible source.
    case visible
}

/// The fusion targets: the sources, optionally enhanced (MRFS's weak-information recovery):
/// R_v = clamp(V^gamma, 0, 1), R_i = clamp(c I + (1 - c) mean(gray(I)), 0, 1) per sample, gray
/// with torchvision's weights (0.2989, 0.587, 0.114; their sum 0.9999 for a one-channel I).
public struct FusionTargets: Sendable {
    /// The enhanced infrared [B, 1, H, W] and visible [B, C, H, W] targets.
    public var infrared: Tensor
    public var visible: Tensor

    /// Targets from the sources with `visibleGamma` and `infraredContrast` (1 and 1: the sources).
    public init(infrared: Tensor, visible: Tensor, visibleGamma: Float = 1, infraredContrast: Float = 1) {
        self.visible = visibleGamma == 1 ? visible : withoutGradient { visible.detached().pow(visibleGamma).clamped(min: 0, max: 1) }
        if infraredContrast == 1 {
            self.infrared = infrared
        } else {
            self.infrared = withoutGradient {
                // torchvision's adjust_contrast: the mean of 0.2989 R + 0.587 G + 0.114 B of the
                // infrared image in three channels (each the same one for a gray image).
                let source = infrared.detached()
                let gray = source.shape[1] == 3
                    ? (source.sliced(axis: 1, 0..<1) * 0.2989 + source.sliced(axis: 1, 1..<2) * 0.587 + source.sliced(axis: 1, 2..<3) * 0.114)
                    : source.mean(axes: [1], keepDims: true) * (0.2989 + 0.587 + 0.114)
                let mean = gray.mean(axes: [1, 2, 3], keepDims: true)
                return (infrared.detached() * infraredContrast + mean * (1 - infraredContrast)).clamped(min: 0, max: 1)
            }
        }
    }

    /// Both targets with `channels` channels (the infrared one replicated; the visible one as its
    /// luma when one channel is asked of an RGB image).
    public func matching(channels: Int) -> (infrared: Tensor, visible: Tensor) {
        (Self.withChannels(infrared, channels), Self.withChannels(visible, channels))
    }

    /// `x` [B, C, H, W] with `channels` channels: replicated from one, or the luma of three.
    public static func withChannels(_ x: Tensor, _ channels: Int) -> Tensor {
        let c = x.shape[1]
        if c == channels { return x }
        if c == 1 { return Tensor.concat([Tensor](repeating: x, count: channels), axis: 1) }
        if c == 3 && channels == 1 { return Color.luma(x) }
        preconditionFailure("cannot match \(c) channels to \(channels)")
    }
}

/// Colour conversions used by the fusion terms, written with tensor operations (differentiable).
public enum Color {
    /// Y = 0.299 R + 0.587 G + 0.114 B of [B, 3, H, W] -> [B, 1, H, W].
    public static func luma(_ rgb: Tensor) -> Tensor {
        let c = rgb.chunked(3, axis: 1)
        return c[0] * 0.299 + c[1] * 0.587 + c[2] * 0.114
    }

    /// (Cb, Cr) = (0.564 (B - Y) + 0.5, 0.713 (R - Y) + 0.5) of [B, 3, H, W], each [B, 1, H, W].
    public static func chroma(_ rgb: Tensor) -> (cb: Tensor, cr: Tensor) {
        let c = rgb.chunked(3, axis: 1)
        let y = c[0] * 0.299 + c[1] * 0.587 + c[2] * 0.114
        return ((c[2] - y) * 0.564 + 0.5, (c[0] - y) * 0.713 + 0.5)
    }

    /// RGB [B, 3, H, W] from a luma [B, 1, H, W] and the chroma of `colour` [B, 3, H, W]
    /// (TDFusion's and MAFS's way of colouring a fused Y).
    public static func rgb(luma y: Tensor, chromaOf colour: Tensor) -> Tensor {
        let (cb, cr) = chroma(colour)
        let r = y + (cr - 0.5) * (1 / 0.713)
        let b = y + (cb - 0.5) * (1 / 0.564)
        let g = (y - r * 0.299 - b * 0.114) * (1 / 0.587)
        return Tensor.concat([r, g, b], axis: 1)
    }
}

/// What a term measures; it is the term's group for task weighting unless the recipe says otherwise.
public enum LossTermKind: String, Sendable, CaseIterable {
    case fusion, task, reconstruction
}

/// One loss term of a stage: a scalar of a ``LossBatch``.
public protocol LossTerm: Sendable {
    /// What the term reads from the batch; a stage checks them before training starts.
    var requirements: Set<LossRequirement> { get }
    func callAsFunction(_ batch: LossBatch) -> Tensor
}

/// Something a loss term reads, which the stage's strategy and data must provide.
public enum LossRequirement: Hashable, Sendable, CustomStringConvertible {
    /// Fused images.
    case fused
    /// Fused images in RGB (and an RGB visible source).
    case rgbFused
    /// Segmentation labels.
    case labels
    /// The logits (`logits`) or an auxiliary output by name.
    case output(String)
    /// A frozen teacher role.
    case teacher(ModelRole)
    /// A loss generator role (learned fusion-loss weights).
    case lossGenerator
    /// A task network (its own loss).
    case taskNet
    /// Masked reconstructions (a masked-pretraining stage).
    case reconstruction

    public var description: String {
        switch self {
        case .fused: return "fused images"
        case .rgbFused: return "RGB fused images (data.visible: rgb and a model that fuses in colour)"
        case .labels: return "segmentation labels"
        case .output(let name): return name == "logits" ? "segmentation logits" : "the model output '\(name)'"
        case .teacher(let role): return "a frozen teacher '\(role)'"
        case .lossGenerator: return "a loss generator ('loss-generator' role)"
        case .taskNet: return "a task network"
        case .reconstruction: return "masked reconstructions (strategy: masked-pretraining)"
        }
    }
}

/// A registered loss term: its name in recipes, what it measures, its parameters and factory.
public struct LossTermDescriptor: Sendable {
    public let name: String
    public let kind: LossTermKind
    public let summary: String
    public let parameters: [ParameterDocumentation]
    let make: @Sendable (PluginParameters) throws -> any LossTerm

    /// The term built from recipe parameters (checked against its declaration).
    public func makeTerm(_ parameters: PluginParameters = PluginParameters()) throws -> any LossTerm {
        var given = parameters
        given.plugin = "loss term '\(name)'"
        return try make(given)
    }
}

/// Maps recipe names to loss terms. ``standard`` holds FuseKit's terms; plugins may add their own.
public struct LossTermRegistry: Sendable {
    private var descriptors: [String: LossTermDescriptor] = [:]

    public init() {}

    /// Registers a term built from its parameter configuration.
    public mutating func register<C: PluginConfiguration>(_ name: String, kind: LossTermKind, summary: String, configuration: C.Type,
                                                         make: @escaping @Sendable (C) -> any LossTerm) {
        precondition(descriptors[name] == nil, "loss term '\(name)' is registered twice")
        descriptors[name] = LossTermDescriptor(name: name, kind: kind, summary: summary,
                                               parameters: ConfigurationReader.documentation(C.self),
                                               make: { make(try ConfigurationReader.read(C.self, $0)) })
    }

    /// Every term, sorted by kind then name.
    public var all: [LossTermDescriptor] {
        descriptors.values.sorted { ($0.kind.rawValue, $0.name) < ($1.kind.rawValue, $1.name) }
    }

    /// The term `name`, or nil.
    public func descriptor(_ name: String) -> LossTermDescriptor? { descriptors[name] }

    /// The names of every term.
    public var names: [String] { descriptors.keys.sorted() }
}
