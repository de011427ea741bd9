import Foundation
import FuseKit

/// YOLOv8 compound scaling: repeats of the C2f blocks scaled by `depth`, widths by `width`
/// (capped at `maxChannels`, rounded up to a multiple of 8), as Ultralytics' `parse_model`.
public struct YOLOv8Scale: Sendable, Equatable, CustomStringConvertible {
    /// Name (`n`, `s`, or `custom`).
    public var name: String
    /// Depth multiplier.
    public var depth: Double
    /// Width multiplier.
    public var width: Double
    /// Largest width before scaling.
    public var maxChannels: Int

    /// A scale from its multipliers.
    public init(name: String = "custom", depth: Double, width: Double, maxChannels: Int = 1024) {
        self.name = name
        self.depth = depth
        self.width = width
        self.maxChannels = maxChannels
    }

    /// YOLOv8n: depth 0.33, width 0.25 (3.16 M parameters with 80 classes and RGB input).
    public static let n = YOLOv8Scale(name: "n", depth: 0.33, width: 0.25)
    /// YOLOv8s: depth 0.33, width 0.50 (11.17 M parameters with 80 classes and RGB input).
    public static let s = YOLOv8Scale(name: "s", depth: 0.33, width: 0.50)

    /// The scaled width of a nominal width (`make_divisible(min(c, max) * width, 8)`).
    public func channels(_ nominal: Int) -> Int {
        Int((Double(Swift.min(nominal, maxChannels)) * width / 8).rounded(.up)) * 8
    }

    /// The scaled repeat count of a nominal count (`max(round(n * depth), 1)` for n > 1).
    public func repeats(_ nominal: Int) -> Int {
        nominal > 1 ? Swift.max(Int((Double(nominal) * depth).rounded(.toNearestOrEven)), 1) : nominal
    }

    public var description: String { name == "custom" ? "custom (depth \(depth), width \(width))" : name }
}

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
    /// The scale.
    public let scale: YOLOv8Scale
    /// Number of classes.
    public let classes: Int
    /// Input channels (1 for fused gray images, as TDFusion).
    public let inputChannels: Int
    /// Bins of each box-side distribution (16).
    public let regMax: Int
    /// The training loss.
    public let lossFunction: YOLOv8Loss
    /// Post-processing of `predict`.
    public let suppression: NonMaxSuppression

    let layers: YOLOv8Layers

    /// A YOLOv8 of the given scale and classes.
    public init(scale: YOLOv8Scale = .n, classes: Int, inputChannels: Int = 1, regMax: Int = 16,
                loss: YOLOv8Loss? = nil, suppression: NonMaxSuppression = NonMaxSuppression()) {
        require(classes >= 1 && inputChannels >= 1 && regMax >= 2,
                "YOLOv8: needs at least one class and input channel and regMax >= 2, got \(classes), \(inputChannels), \(regMax)")
        self.scale = scale
        self.classes = classes
        self.inputChannels = inputChannels
        self.regMax = regMax
        self.lossFunction = loss ?? YOLOv8Loss(classes: classes)
        require(lossFunction.assigner.classes == classes, "YOLOv8: the loss is for \(lossFunction.assigner.classes) classes, the model \(classes)")
        self.suppression = suppression
        layers = YOLOv8Layers(scale: scale, classes: classes, inputChannels: inputChannels, regMax: regMax)
    }

    public var kind: TaskKind { .detection(classes: classes) }

    public var children: [(name: String, module: any Module)] { [("model", layers)] }

    /// Strides of the output levels.
    public var strides: [Int] { layers.head.strides }

    /// The Detect head's raw outputs for a batch, levels concatenated.
    public func headOutput(_ images: Tensor, _ p: Scope) -> YOLOv8HeadOutput {
        require(images.rank == 4 && images.shape[1] == inputChannels,
                "yolov8: input must be [B, \(inputChannels), H, W], got \(Shape.describe(images.shape))")
        require(images.shape[2] % 32 == 0 && images.shape[3] % 32 == 0 && images.shape[2] > 0 && images.shape[3] > 0,
                "yolov8: input height and width must be multiples of 32, got \(images.shape[2])x\(images.shape[3])")
        let levels = layers(images, p.child("model"))
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
struct YOLOv8Layers: Module {
    let stem, down1: ConvBNSiLU              // 0, 1
    let stage1: C2f                          // 2
    let down2: ConvBNSiLU                    // 3
    let stage2: C2f                          // 4 (P3)
    let down3: ConvBNSiLU                    // 5
    let stage3: C2f                          // 6 (P4)
    let down4: ConvBNSiLU                    // 7
    let stage4: C2f                          // 8
    let pooling: SPPF                        // 9 (P5)
    let topDown4, topDown3: C2f              // 12, 15
    let bottomUpDown3: ConvBNSiLU            // 16
    let bottomUp4: C2f                       // 18
    let bottomUpDown4: ConvBNSiLU            // 19
    let bottomUp5: C2f                       // 21
    let head: DetectHead                     // 22

    init(scale: YOLOv8Scale, classes: Int, inputChannels: Int, regMax: Int) {
        let c1 = scale.channels(64), c2 = scale.channels(128), c3 = scale.channels(256)
        let c4 = scale.channels(512), c5 = scale.channels(1024)
        stem = ConvBNSiLU(inputChannels, c1, kernelSize: 3, stride: 2)
        down1 = ConvBNSiLU(c1, c2, kernelSize: 3, stride: 2)
        stage1 = C2f(c2, c2, repeats: scale.repeats(3), shortcut: true)
        down2 = ConvBNSiLU(c2, c3, kernelSize: 3, stride: 2)
        stage2 = C2f(c3, c3, repeats: scale.repeats(6), shortcut: true)
        down3 = ConvBNSiLU(c3, c4, kernelSize: 3, stride: 2)
        stage3 = C2f(c4, c4, repeats: scale.repeats(6), shortcut: true)
        down4 = ConvBNSiLU(c4, c5, kernelSize: 3, stride: 2)
        stage4 = C2f(c5, c5, repeats: scale.repeats(3), shortcut: true)
        pooling = SPPF(c5, c5, kernelSize: 5)
        topDown4 = C2f(c5 + c4, c4, repeats: scale.repeats(3), shortcut: false)
        topDown3 = C2f(c4 + c3, c3, repeats: scale.repeats(3), shortcut: false)
        bottomUpDown3 = ConvBNSiLU(c3, c3, kernelSize: 3, stride: 2)
        bottomUp4 = C2f(c3 + c4, c4, repeats: scale.repeats(3), shortcut: false)
        bottomUpDown4 = ConvBNSiLU(c4, c4, kernelSize: 3, stride: 2)
        bottomUp5 = C2f(c4 + c5, c5, repeats: scale.repeats(3), shortcut: false)
        head = DetectHead(classes: classes, inputChannels: [c3, c4, c5], strides: [8, 16, 32], regMax: regMax)
    }

    var children: [(name: String, module: any Module)] {
        [("0", stem), ("1", down1), ("2", stage1), ("3", down2), ("4", stage2), ("5", down3), ("6", stage3),
         ("7", down4), ("8", stage4), ("9", pooling), ("12", topDown4), ("15", topDown3), ("16", bottomUpDown3),
         ("18", bottomUp4), ("19", bottomUpDown4), ("21", bottomUp5), ("22", head)]
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> [DetectLevelOutput] {
        let x2 = stage1(down1(stem(x, p.child(0)), p.child(1)), p.child(2))
        let p3 = stage2(down2(x2, p.child(3)), p.child(4))
        let p4 = stage3(down3(p3, p.child(5)), p.child(6))
        let p5 = pooling(stage4(down4(p4, p.child(7)), p.child(8)), p.child(9))
        let n4 = topDown4(Tensor.concat([Self.upsampled(p5), p4], axis: 1), p.child(12))
        let n3 = topDown3(Tensor.concat([Self.upsampled(n4), p3], axis: 1), p.child(15))
        let m4 = bottomUp4(Tensor.concat([bottomUpDown3(n3, p.child(16)), n4], axis: 1), p.child(18))
        let m5 = bottomUp5(Tensor.concat([bottomUpDown4(m4, p.child(19)), p5], axis: 1), p.child(21))
        return head([n3, m4, m5], p.child(22))
    }

    /// Nearest-neighbour upsampling by 2 (`nn.Upsample(None, 2, "nearest")`).
    static func upsampled(_ x: Tensor) -> Tensor { x.resizedNearest(to: (2 * x.shape[2], 2 * x.shape[3])) }
}
