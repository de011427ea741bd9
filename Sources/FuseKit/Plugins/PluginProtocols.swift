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
    /// Fuses a batch of source pairs.
    func fuse(_ sources: Tensor, _ p: Scope) -> Tensor
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
