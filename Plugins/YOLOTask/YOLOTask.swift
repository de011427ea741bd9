// YOLOv8 detection task plugin (`yolov8`).
import FuseKit

/// Registers the `yolov8` task network.
public enum YOLOTaskPlugin {
    /// The documented parameters of `yolov8`.
    public static let parameters = [
        ParameterDoc("scale", .string, default: "n", "model scale: n (depth 0.33, width 0.25) or s (depth 0.33, width 0.50)"),
        ParameterDoc("classes", .int, default: "6", "number of classes (M3FD 6, LLVIP 1, synthetic scenes 2)"),
        ParameterDoc("input-channels", .int, default: "1", "channels of the input images (1 for fused gray images, as TDFusion)"),
        ParameterDoc("confidence", .double, default: "0.25", "minimum class probability of a prediction (Ultralytics validates mAP with 0.001)"),
        ParameterDoc("nms-iou", .double, default: "0.7", "IoU above which class-aware NMS suppresses a lower-scored box"),
        ParameterDoc("max-detections", .int, default: "300", "detections kept per image"),
        ParameterDoc("box-gain", .double, default: "7.5", "gain of the CIoU box loss"),
        ParameterDoc("cls-gain", .double, default: "0.5", "gain of the BCE classification loss"),
        ParameterDoc("dfl-gain", .double, default: "1.5", "gain of the distribution focal loss"),
        ParameterDoc("reg-max", .int, default: "16", "bins of each box-side distribution (DFL)"),
        ParameterDoc("assigner-topk", .int, default: "10", "candidate anchors per box in the TaskAlignedAssigner"),
        ParameterDoc("assigner-alpha", .double, default: "0.5", "exponent of the class score in the assigner's alignment"),
        ParameterDoc("assigner-beta", .double, default: "6", "exponent of the CIoU in the assigner's alignment"),
    ]

    /// Builds a YOLOv8 from recipe parameters, rejecting invalid values with a ``PluginError``.
    public static func make(_ p: PluginParameters) throws -> YOLOv8 {
        let scaleName = try p.string("scale", default: "n")
        let scales: [String: YOLOv8Scale] = ["n": .n, "s": .s]
        try p.require(scales[scaleName] != nil, "scale", "must be n or s, got '\(scaleName)'")
        let classes = try p.int("classes", default: 6)
        try p.require(classes >= 1, "classes", "must be at least 1, got \(classes)")
        let inputChannels = try p.int("input-channels", default: 1)
        try p.require(inputChannels >= 1, "input-channels", "must be at least 1, got \(inputChannels)")
        let confidence = try p.double("confidence", default: 0.25)
        try p.require(confidence >= 0 && confidence < 1, "confidence", "must be in [0, 1), got \(confidence)")
        let iou = try p.double("nms-iou", default: 0.7)
        try p.require(iou > 0 && iou <= 1, "nms-iou", "must be in (0, 1], got \(iou)")
        let maxDetections = try p.int("max-detections", default: 300)
        try p.require(maxDetections >= 1, "max-detections", "must be at least 1, got \(maxDetections)")
        var gains: [Float] = []
        for (key, value) in [("box-gain", 7.5), ("cls-gain", 0.5), ("dfl-gain", 1.5)] {
            let gain = try p.double(key, default: value)
            try p.require(gain >= 0 && gain.isFinite, key, "must be a non-negative number, got \(gain)")
            gains.append(Float(gain))
        }
        let regMax = try p.int("reg-max", default: 16)
        try p.require(regMax >= 2 && regMax <= 64, "reg-max", "must be between 2 and 64, got \(regMax)")
        let topK = try p.int("assigner-topk", default: 10)
        try p.require(topK >= 1, "assigner-topk", "must be at least 1, got \(topK)")
        let alpha = try p.double("assigner-alpha", default: 0.5)
        try p.require(alpha >= 0 && alpha.isFinite, "assigner-alpha", "must be a non-negative number, got \(alpha)")
        let beta = try p.double("assigner-beta", default: 6)
        try p.require(beta >= 0 && beta.isFinite, "assigner-beta", "must be a non-negative number, got \(beta)")
        let loss = YOLOv8Loss(classes: classes, topK: topK, alpha: Float(alpha), beta: Float(beta),
                              boxGain: gains[0], classificationGain: gains[1], distributionGain: gains[2])
        return YOLOv8(scale: scales[scaleName]!, classes: classes, inputChannels: inputChannels, regMax: regMax, loss: loss,
                      suppression: NonMaxSuppression(confidenceThreshold: confidence, iouThreshold: iou, maxDetections: maxDetections))
    }

    /// Registers `yolov8`.
    public static func register(in registry: inout PluginRegistry) {
        registry.registerTask("yolov8", summary: "YOLOv8 detection (Ultralytics: C2f/SPPF backbone, PAN-FPN, DFL head, TAL + CIoU + DFL loss, NMS)",
                              parameters: parameters,
                              gradcheck: GradcheckSettings(parameters: ["classes": .int(2)], inputSize: (64, 64), batch: 2, taskObjective: { net, x, p in
                                  // The loss's target assignment jumps with the predictions, so the check
                                  // differentiates the head outputs (the loss parts have unit checks).
                                  guard let yolo = net as? YOLOv8 else { return net.loss(x, targets: TaskTargets(boxes: [[]]), p) }
                                  let head = yolo.headOutput(x, p)
                                  return Tensor.concat([head.boxDistributions, head.classLogits], axis: 1)
                              })) { p in try make(p) }
    }
}
