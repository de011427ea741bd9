// YOLOv8 detection task plugin (`yolov8`).
import FuseKit

/// The parameters of `yolov8`. The defaults are YOLOv8n (Ultralytics' compound scaling: depth
/// multiple 0.33, width multiple 0.25) with Ultralytics' loss and prediction settings;
/// `variant: s` is YOLOv8s.
public struct YOLOv8Configuration: PluginConfiguration {
    @Parameter("number of classes (M3FD 6, LLVIP 1, synthetic scenes 2)", .positive)
    public var classes = 6
    @Parameter("channels of the input images (1 for fused gray images, as TDFusion)", .positive)
    public var inputChannels = 1
    @Parameter("depth multiple: the C2f blocks' repeats are scaled by it", .require("in (0, 1]") { $0 > 0 && $0 <= 1 })
    public var depthMultiple = 0.33
    @Parameter("width multiple: every width is scaled by it (rounded up to a multiple of 8)", .require("in (0, 2]") { $0 > 0 && $0 <= 2 })
    public var widthMultiple = 0.25
    @Parameter("largest width before scaling", .positive)
    public var maxChannels = 1024
    @Parameter("minimum class probability of a prediction (Ultralytics validates mAP with 0.001)", .within(0..<1))
    public var confidence = 0.25
    @Parameter("IoU above which class-aware NMS suppresses a lower-scored box", .require("in (0, 1]") { $0 > 0 && $0 <= 1 })
    public var nmsIou = 0.7
    @Parameter("detections kept per image", .positive)
    public var maxDetections = 300
    @Parameter("gain of the CIoU box loss", .nonNegative)
    public var boxGain: Float = 7.5
    @Parameter("gain of the BCE classification loss", .nonNegative)
    public var clsGain: Float = 0.5
    @Parameter("gain of the distribution focal loss", .nonNegative)
    public var dflGain: Float = 1.5
    @Parameter("bins of each box-side distribution (DFL)", .within(2...64))
    public var regMax = 16
    @Parameter("candidate anchors per box in the TaskAlignedAssigner", .positive)
    public var assignerTopk = 10
    @Parameter("exponent of the class score in the assigner's alignment", .nonNegative)
    public var assignerAlpha: Float = 0.5
    @Parameter("exponent of the CIoU in the assigner's alignment", .nonNegative)
    public var assignerBeta: Float = 6

    public init() {}

    /// n is the defaults; s doubles the widths.
    public static let variants = [
        PluginVariant<Self>("n", "YOLOv8n (the defaults)") { _ in },
        PluginVariant<Self>("s", "YOLOv8s: width multiple 0.5") { $0.widthMultiple = 0.5 },
    ]

    /// The scaled width of a nominal width (`make_divisible(min(c, max) * width, 8)`, as
    /// Ultralytics' `parse_model`).
    public func channels(_ nominal: Int) -> Int {
        Int((Double(Swift.min(nominal, maxChannels)) * widthMultiple / 8).rounded(.up)) * 8
    }

    /// The scaled repeat count of a nominal count (`max(round(n * depth), 1)` for n > 1).
    public func repeats(_ nominal: Int) -> Int {
        nominal > 1 ? Swift.max(Int((Double(nominal) * depthMultiple).rounded(.toNearestOrEven)), 1) : nominal
    }

    /// The training loss these parameters describe.
    public var loss: YOLOv8Loss {
        YOLOv8Loss(classes: classes, topK: assignerTopk, alpha: assignerAlpha, beta: assignerBeta,
                   boxGain: boxGain, classificationGain: clsGain, distributionGain: dflGain)
    }

    /// The post-processing of predictions these parameters describe.
    public var suppression: NonMaxSuppression {
        NonMaxSuppression(confidenceThreshold: confidence, iouThreshold: nmsIou, maxDetections: maxDetections)
    }
}

/// Registers the `yolov8` task network.
public enum YOLOTaskPlugin {
    /// Registers `yolov8`.
    public static func register(in registry: inout PluginRegistry) {
        registry.registerTask("yolov8", summary: "YOLOv8 detection (Ultralytics: C2f/SPPF backbone, PAN-FPN, DFL head, TAL + CIoU + DFL loss, NMS)",
                              configuration: YOLOv8Configuration.self,
                              gradcheck: GradcheckSettings(configure: { $0.classes = 2 }, inputSize: (64, 64), batch: 2, taskObjective: { net, x, p in
                                  // The loss's target assignment jumps with the predictions, so the check
                                  // differentiates the head outputs (the loss parts have unit checks). It runs
                                  // them with the running statistics: BatchNorm on the batch statistics of the
                                  // 2x2 maps of a 64x64 batch amplifies float32 rounding beyond what finite
                                  // differences resolve (reverse and forward mode still agree to 1e-5); the
                                  // training-mode layers have their own checks and PyTorch parity.
                                  guard let yolo = net as? YOLOv8 else { return net.loss(x, targets: TaskTargets(boxes: [[]]), p) }
                                  let head = yolo.headOutput(x, Scope(parameters: p.parameters, buffers: p.buffers))
                                  return Tensor.concat([head.boxDistributions, head.classLogits], axis: 1)
                              })) { YOLOv8($0) }
    }
}
