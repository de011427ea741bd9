import Foundation
import FuseKit

/// YOLOv8 detection (Ultralytics' `yolov8.yaml` with the v8 Detect head): a CSP-Darknet backbone
/// (Conv, C2f, SPPF), a PAN-FPN neck and a decoupled anchor-free head with DFL box
/// distributions at strides 8, 16 and 32. Parameter names are Ultralytics' `state_dict` keys
/// (`model.0.conv.weight`, `model.2.m.0.cv1.bn.running_mean`, `model.22.cv3.0.2.bias`, ...), so
/// official-style weights load by name (``YOLOv8/loadOfficialState(from:)`` also accepts the fixed
/// DFL projection they carry).
///
/// Input: `[B, inputChannels, H, W]` in [0, 1], H and W multiples of 32. `loss` is Ultralytics'
/// `v8DetectionLoss` (``YOLOv8Loss``); `predict` decodes, applies class-aware NMS
/// (``NonMaxSuppression``) and returns normalised boxes.
public struct YOLOv8: TaskNet {
    /// The parameters it was built from.
    public let configuration: YOLOv8Configuration
    /// The training loss.
    public let lossFunction: YOLOv8Loss
    /// Post-processing of `predict`.
    public let suppression: NonMaxSuppression
    let layers: Child<YOLOv8Layers>

    /// A YOLOv8 of the given configuration (YOLOv8n for 6 classes and gray images by default).
    public init(_ configuration: YOLOv8Configuration = YOLOv8Configuration()) {
        self.configuration = configuration
        lossFunction = configuration.loss
        suppression = configuration.suppression
        layers = Child("model", YOLOv8Layers(configuration))
    }

    /// Number of classes.
    public var classes: Int { configuration.classes }
    /// Input channels (1 for fused gray images, as TDFusion).
    public var inputChannels: Int { configuration.inputChannels }
    /// Bins of each box-side distribution.
    public var regMax: Int { configuration.regMax }

    public var kind: TaskKind { .detection(classes: classes) }

    /// Strides of the output levels.
    public var strides: [Int] { layers.head.strides }

    /// The Detect head's raw outputs for a batch, levels concatenated.
    public func headOutput(_ images: Tensor, _ p: Scope) -> YOLOv8HeadOutput {
        require(images.rank == 4 && images.shape[1] == inputChannels,
                "yolov8: input must be [B, \(inputChannels), H, W], got \(Shape.describe(images.shape))")
        require(images.shape[2] % 32 == 0 && images.shape[3] % 32 == 0 && images.shape[2] > 0 && images.shape[3] > 0,
                "yolov8: input height and width must be multiples of 32, got \(images.shape[2])x\(images.shape[3])")
        let levels = layers(images, p)
        let batch = images.shape[0]
        let sizes = levels.map { [$0.classLogits.shape[2], $0.classLogits.shape[3]] }
        let distributions = Tensor.concat(levels.map { $0.boxDistributions.reshaped([batch, 4 * regMax, -1]) }, axis: 2)
        let logits = Tensor.concat(levels.map { $0.classLogits.reshaped([batch, classes, -1]) }, axis: 2)
        return YOLOv8HeadOutput(boxDistributions: distributions, classLogits: logits,
                                anchors: AnchorGrid(levelSizes: sizes, strides: strides),
                                imageHeight: images.shape[2], imageWidth: images.shape[3])
    }

    /// The loss terms of a batch (see ``YOLOv8Loss``).
    public func lossTerms(_ images: Tensor, boxes: [[BoundingBox]], _ p: Scope) -> YOLOv8LossTerms {
        lossFunction(headOutput(images, p), targets: boxes)
    }

    public func loss(_ images: Tensor, targets: TaskTargets, _ p: Scope) -> Tensor {
        guard let boxes = targets.boxes else {
            fatalError("yolov8: the batch has no boxes (a detection task needs box labels)")
        }
        return lossTerms(images, boxes: boxes, p).total
    }

    public func predict(_ images: Tensor, _ p: Scope) -> TaskPredictions {
        .detection(detections(images, p, suppression: suppression))
    }

    /// Detections (normalised) of a batch with the given post-processing.
    public func detections(_ images: Tensor, _ p: Scope, suppression: NonMaxSuppression) -> [[Detection]] {
        let head = withoutGradient { headOutput(images, p) }
        return head.detections(suppression)
    }

    /// The model state from an official-style Ultralytics `state_dict` (names and shapes
    /// checked). Official files also carry the fixed DFL projection `model.22.dfl.conv.weight`
    /// (0, 1, ..., regMax - 1), which this model does not store: it is accepted and dropped when
    /// it holds exactly those values, and reported as unexpected otherwise.
    public func loadOfficialState(from tensors: [String: Tensor]) throws -> ModelState {
        var rest = tensors
        let key = "model.22.dfl.conv.weight"
        if let projection = rest.removeValue(forKey: key) {
            guard projection.shape == [1, regMax, 1, 1], projection.scalars == (0..<regMax).map(Float.init) else {
                throw StateDictError.unexpected(keys: [key])
            }
        }
        return try loadState(from: rest)
    }
}

/// The 23 layers of `yolov8.yaml` (`model.0` ... `model.22`; the upsampling and concatenation
/// layers 10, 11, 13, 14, 17 and 20 have no parameters).
struct YOLOv8Layers: Layer {
    let stem, down1: Child<ConvBNSiLU>
    let stage1: Child<C2f>
    let down2: Child<ConvBNSiLU>
    let stage2: Child<C2f>                   // P3
    let down3: Child<ConvBNSiLU>
    let stage3: Child<C2f>                   // P4
    let down4: Child<ConvBNSiLU>
    let stage4: Child<C2f>
    let pooling: Child<SPPF>                 // P5
    let topDown4, topDown3: Child<C2f>
    let bottomUpDown3: Child<ConvBNSiLU>
    let bottomUp4: Child<C2f>
    let bottomUpDown4: Child<ConvBNSiLU>
    let bottomUp5: Child<C2f>
    let head: Child<DetectHead>

    init(_ c: YOLOv8Configuration) {
        let c1 = c.channels(64), c2 = c.channels(128), c3 = c.channels(256), c4 = c.channels(512), c5 = c.channels(1024)
        stem = Child("0", ConvBNSiLU(c.inputChannels, c1, kernelSize: 3, stride: 2))
        down1 = Child("1", ConvBNSiLU(c1, c2, kernelSize: 3, stride: 2))
        stage1 = Child("2", C2f(c2, c2, repeats: c.repeats(3), shortcut: true))
        down2 = Child("3", ConvBNSiLU(c2, c3, kernelSize: 3, stride: 2))
        stage2 = Child("4", C2f(c3, c3, repeats: c.repeats(6), shortcut: true))
        down3 = Child("5", ConvBNSiLU(c3, c4, kernelSize: 3, stride: 2))
        stage3 = Child("6", C2f(c4, c4, repeats: c.repeats(6), shortcut: true))
        down4 = Child("7", ConvBNSiLU(c4, c5, kernelSize: 3, stride: 2))
        stage4 = Child("8", C2f(c5, c5, repeats: c.repeats(3), shortcut: true))
        pooling = Child("9", SPPF(c5, c5, kernelSize: 5))
        topDown4 = Child("12", C2f(c5 + c4, c4, repeats: c.repeats(3), shortcut: false))
        topDown3 = Child("15", C2f(c4 + c3, c3, repeats: c.repeats(3), shortcut: false))
        bottomUpDown3 = Child("16", ConvBNSiLU(c3, c3, kernelSize: 3, stride: 2))
        bottomUp4 = Child("18", C2f(c3 + c4, c4, repeats: c.repeats(3), shortcut: false))
        bottomUpDown4 = Child("19", ConvBNSiLU(c4, c4, kernelSize: 3, stride: 2))
        bottomUp5 = Child("21", C2f(c4 + c5, c5, repeats: c.repeats(3), shortcut: false))
        head = Child("22", DetectHead(classes: c.classes, inputChannels: [c3, c4, c5], strides: [8, 16, 32], regMax: c.regMax))
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> [DetectLevelOutput] {
        let x2 = stage1(down1(stem(x, p), p), p)
        let p3 = stage2(down2(x2, p), p)
        let p4 = stage3(down3(p3, p), p)
        let p5 = pooling(stage4(down4(p4, p), p), p)
        let n4 = topDown4(Tensor.concat([Self.upsampled(p5), p4], axis: 1), p)
        let n3 = topDown3(Tensor.concat([Self.upsampled(n4), p3], axis: 1), p)
        let m4 = bottomUp4(Tensor.concat([bottomUpDown3(n3, p), n4], axis: 1), p)
        let m5 = bottomUp5(Tensor.concat([bottomUpDown4(m4, p), p5], axis: 1), p)
        return head([n3, m4, m5], p)
    }

    /// Nearest-neighbour upsampling by 2 (`nn.Upsample(None, 2, "nearest")`).
    static func upsampled(_ x: Tensor) -> Tensor { x.resizedNearest(to: (2 * x.shape[2], 2 * x.shape[3])) }
}
