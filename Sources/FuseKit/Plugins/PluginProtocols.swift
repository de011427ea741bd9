import FuseKitImage
import FuseKitNN
import FuseKitTensor

/// A fusion network F. Input: the source pair `[B, 2, H, W]` (channel 0 the infrared image a,
/// channel 1 the visible image b, both gray in [0, 1]); output: the fused image `[B, 1, H, W]`.
///
/// Adding one is adding a SwiftPM target under `Plugins/` that depends on `FuseKit`:
///
/// ```swift
/// import FuseKit
///
/// public struct AverageFusion: FusionNet {
///     let mix: Conv2d = Conv2d(2, 1, kernelSize: 1, bias: false)
///     public var children: [(name: String, module: any Module)] { [("mix", mix)] }
///     public func fuse(_ sources: Tensor, _ p: Scope) -> Tensor { mix(sources, p.child("mix")).sigmoid() }
/// }
///
/// public enum AverageFusionPlugin {
///     public static func register(in registry: inout PluginRegistry) {
///         registry.registerFusion("average-fusion", summary: "a 1x1 mix of the sources", parameters: []) { _ in
///             AverageFusion()
///         }
///     }
/// }
/// ```
/// and calling `AverageFusionPlugin.register(in: &registry)` where the registry is built (the CLI
/// does this in `Sources/FuseKitCLI/Plugins.swift`). Recipes then name it as `fusion: average-fusion`.
public protocol FusionNet: Module {
    /// The smallest image height and width the net takes (1 when any size will do).
    var minimumSide: Int { get }
    /// Fuses a batch of source pairs.
    func fuse(_ sources: Tensor, _ p: Scope) -> Tensor
}

extension FusionNet {
    public var minimumSide: Int { 1 }
}

/// A loss generator G. Input: the source pair `[B, 2, H, W]`; output: per-pixel weights
/// `[B, 2, H, W]` (channel 0 w_a, channel 1 w_b) with w_a + w_b = 1.
///
/// It is registered like a ``FusionNet`` with `registry.registerLossGenerator(...)`.
public protocol LossGenerator: Module {
    /// The fusion-loss weights of a batch.
    func weights(_ sources: Tensor, _ p: Scope) -> Tensor
}

/// What a task network does and for how many classes.
public enum TaskKind: Sendable, Equatable, CustomStringConvertible {
    case segmentation(classes: Int)
    case detection(classes: Int)

    /// Number of classes.
    public var classes: Int {
        switch self {
        case .segmentation(let c), .detection(let c): return c
        }
    }

    public var description: String {
        switch self {
        case .segmentation(let c): return "segmentation (\(c) classes)"
        case .detection(let c): return "detection (\(c) classes)"
        }
    }
}

/// The labels of a batch, as the task needs them.
public struct TaskTargets: Sendable {
    /// Segmentation labels [B, H, W] as Float class indices (255 = ignore).
    public var segmentation: Tensor?
    /// Boxes per image, normalised to the image size.
    public var boxes: [[BoundingBox]]?

    public init(segmentation: Tensor? = nil, boxes: [[BoundingBox]]? = nil) {
        self.segmentation = segmentation
        self.boxes = boxes
    }
}

/// A task network's outputs for evaluation.
public enum TaskPredictions: Sendable {
    /// Class maps [B, H, W] (Float class indices) at the input resolution.
    case segmentation(Tensor)
    /// Detections per image, normalised to the image size.
    case detection([[Detection]])
}

/// A downstream task network T (segmentation, detection). Input: an image batch
/// `[B, inputChannels, H, W]` (the fused images, in [0, 1]); it returns a scalar task loss for
/// training and predictions for evaluation. Registered with `registry.registerTask(...)`.
public protocol TaskNet: Module {
    /// The task and its number of classes.
    var kind: TaskKind { get }
    /// Channels of the input images (1 for fused gray images, as TDFusion).
    var inputChannels: Int { get }
    /// The scalar training loss of a batch.
    func loss(_ images: Tensor, targets: TaskTargets, _ p: Scope) -> Tensor
    /// Predictions for a batch (in evaluation mode).
    func predict(_ images: Tensor, _ p: Scope) -> TaskPredictions
}

/// The sources a joint model takes: infrared [B, 1, H, W] and visible [B, C, H, W] (C = 3 for RGB,
/// 1 for gray), both in [0, 1].
public struct JointInput: Sendable {
    public var infrared: Tensor
    public var visible: Tensor

    public init(infrared: Tensor, visible: Tensor) {
        self.infrared = infrared
        self.visible = visible
    }
}

/// What a joint model computes in one forward pass.
public struct JointOutput: Sendable {
    /// The fused image [B, fusedChannels, H, W] in [0, 1] (RGB, or the luma).
    public var fused: Tensor
    /// Segmentation logits [B, K, H, W].
    public var logits: Tensor
    /// Further outputs by name (auxiliary heads), for loss terms that name them.
    public var auxiliary: [String: Tensor]

    public init(fused: Tensor, logits: Tensor, auxiliary: [String: Tensor] = [:]) {
        self.fused = fused
        self.logits = logits
        self.auxiliary = auxiliary
    }
}

/// One network that fuses and segments from one forward pass over a shared encoder (MRFS, MAFS).
/// Its losses are the recipe's loss terms, which may use the fused image, the logits and the
/// auxiliary outputs together. Registered with `registry.registerJoint(...)`.
public protocol JointModel: Module {
    /// The task and its number of classes.
    var kind: TaskKind { get }
    /// Channels of the visible input (3: RGB).
    var visibleChannels: Int { get }
    /// Channels of the fused output (3: RGB; 1: the luma, coloured with the visible chroma).
    var fusedChannels: Int { get }
    /// The names of ``JointOutput/auxiliary`` (what loss terms may name as `output`).
    var auxiliaryOutputNames: [String] { get }
    /// The smallest image height and width the model takes (1 when any size will do).
    var minimumSide: Int { get }
    /// The forward pass.
    func forward(_ input: JointInput, _ p: Scope) -> JointOutput
}

extension JointModel {
    public var auxiliaryOutputNames: [String] { [] }
    public var minimumSide: Int { 1 }

    /// Class maps [B, H, W] (argmax of the logits).
    public func predict(_ input: JointInput, _ p: Scope) -> TaskPredictions {
        .segmentation(forward(input, p).logits.argmax(axis: 1))
    }
}

/// A model that reconstructs both sources from masked ones (masked-autoencoder pretraining).
public protocol MaskedReconstruction: Module {
    /// Reconstructions of the infrared and visible sources, each shaped like its input.
    func reconstruct(_ input: JointInput, _ p: Scope) -> (infrared: Tensor, visible: Tensor)
}

/// A task network that exposes its segmentation logits (for loss terms on logits, e.g.
/// distillation from or into it).
public protocol SegmentationLogits: TaskNet {
    /// Logits [B, K, h, w] at the network's output resolution.
    func logits(_ images: Tensor, _ p: Scope) -> Tensor
}
