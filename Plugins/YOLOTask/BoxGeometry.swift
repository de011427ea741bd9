import Foundation
import FuseKit

/// The anchor points of a feature pyramid (Ultralytics' `make_anchors`): the centre of every cell
/// of every level, in that level's grid units, level after level, rows then columns.
public struct AnchorGrid: Sendable, Equatable {
    /// Cell counts (height, width) of each level.
    public let levelSizes: [[Int]]
    /// Stride of each level in pixels.
    public let levelStrides: [Int]
    /// Anchor x coordinates (grid units: column + offset).
    public let x: [Float]
    /// Anchor y coordinates (grid units: row + offset).
    public let y: [Float]
    /// Stride of each anchor's level.
    public let stride: [Float]

    /// Anchors of levels of the given (height, width) sizes and strides; `offset` 0.5 puts them
    /// at cell centres.
    public init(levelSizes: [[Int]], strides: [Int], offset: Float = 0.5) {
        require(levelSizes.count == strides.count && levelSizes.allSatisfy { $0.count == 2 },
                "AnchorGrid: \(levelSizes.count) level sizes (height, width) for \(strides.count) strides")
        self.levelSizes = levelSizes
        self.levelStrides = strides
        var x: [Float] = [], y: [Float] = [], stride: [Float] = []
        for (size, s) in zip(levelSizes, strides) {
            for row in 0..<size[0] {
                for column in 0..<size[1] {
                    x.append(Float(column) + offset)
                    y.append(Float(row) + offset)
                    stride.append(Float(s))
                }
            }
        }
        self.x = x
        self.y = y
        self.stride = stride
    }

    /// Number of anchors.
    public var count: Int { x.count }
}

/// Box conversions and overlap measures of YOLOv8 (Ultralytics `dist2bbox`, `bbox2dist`,
/// `bbox_iou(..., CIoU=True)`). Boxes are corners (x1, y1, x2, y2) unless stated.
public enum BoxGeometry {
    /// Boxes from distances (left, top, right, bottom) [N, 4] to anchor points [N, 2]:
    /// corners [N, 4], or centre and size when `centerSize` (Ultralytics `dist2bbox`).
    public static func distancesToBoxes(_ distances: Tensor, anchors: Tensor, centerSize: Bool = false) -> Tensor {
        require(distances.rank == 2 && distances.shape[1] == 4 && anchors.shape == [distances.shape[0], 2],
                "distancesToBoxes: distances \(Shape.describe(distances.shape)) must be [N, 4] and anchors \(Shape.describe(anchors.shape)) [N, 2]")
        let leftTop = distances.sliced(axis: 1, 0..<2), rightBottom = distances.sliced(axis: 1, 2..<4)
        let topLeftCorner = anchors - leftTop, bottomRightCorner = anchors + rightBottom
        if centerSize {
            return Tensor.concat([(topLeftCorner + bottomRightCorner) * 0.5, bottomRightCorner - topLeftCorner], axis: 1)
        }
        return Tensor.concat([topLeftCorner, bottomRightCorner], axis: 1)
    }

    /// Distances (left, top, right, bottom) [N, 4] from anchor points [N, 2] to box corners
    /// [N, 4], clamped to [0, maximumDistance - 0.01] (Ultralytics `bbox2dist`, which the loss
    /// calls with regMax - 1).
    public static func boxesToDistances(_ boxes: Tensor, anchors: Tensor, maximumDistance: Float) -> Tensor {
        require(boxes.rank == 2 && boxes.shape[1] == 4 && anchors.shape == [boxes.shape[0], 2],
                "boxesToDistances: boxes \(Shape.describe(boxes.shape)) must be [N, 4] and anchors \(Shape.describe(anchors.shape)) [N, 2]")
        let topLeftCorner = boxes.sliced(axis: 1, 0..<2), bottomRightCorner = boxes.sliced(axis: 1, 2..<4)
        return Tensor.concat([anchors - topLeftCorner, bottomRightCorner - anchors], axis: 1)
            .clamped(min: 0, max: maximumDistance - 0.01)
    }

    /// Elementwise arctangent, differentiable in both modes (d atan(x) = dx / (1 + x²)).
    public static func arctangent(_ x: Tensor) -> Tensor {
        let y = Tensor(uninitializedShape: x.shape)
        let out = y.mutablePointer
        x.withUnsafeBufferPointer { source in
            for i in 0..<source.count { out[i] = Foundation.atan(source[i]) }
        }
        return y.recorded(op: "atan", inputs: [x], pullback: { g, _, _ in [g / (1 + x * x)] },
                          tangent: { t, _ in t[0].map { $0 / (1 + x * x) } })
    }

    /// Complete IoU of corresponding boxes [N, 4] (corners) -> [N] (Ultralytics `bbox_iou` with
    /// `CIoU=True`, eps 1e-7): IoU - (ρ² / c² + v α), where ρ is the distance of the centres, c
    /// the diagonal of the enclosing box, v = 4 / π² (atan(w2 / h2) - atan(w1 / h1))² and
    /// α = v / (v - IoU + 1 + eps) held constant (computed without gradient, as Ultralytics).
    public static func completeIoU(_ box1: Tensor, _ box2: Tensor, eps: Float = 1e-7) -> Tensor {
        require(box1.rank == 2 && box1.shape[1] == 4 && box1.shape == box2.shape,
                "completeIoU: boxes \(Shape.describe(box1.shape)) and \(Shape.describe(box2.shape)) must both be [N, 4]")
        let a = box1.split(sizes: [1, 1, 1, 1], axis: 1), b = box2.split(sizes: [1, 1, 1, 1], axis: 1)
        let (ax1, ay1, ax2, ay2) = (a[0], a[1], a[2], a[3])
        let (bx1, by1, bx2, by2) = (b[0], b[1], b[2], b[3])
        let w1 = ax2 - ax1, h1 = ay2 - ay1 + eps
        let w2 = bx2 - bx1, h2 = by2 - by1 + eps
        let interWidth = (Tensor.minimum(ax2, bx2) - Tensor.maximum(ax1, bx1)).clamped(min: 0)
        let interHeight = (Tensor.minimum(ay2, by2) - Tensor.maximum(ay1, by1)).clamped(min: 0)
        let intersection = interWidth * interHeight
        let union = w1 * h1 + w2 * h2 - intersection + eps
        let iou = intersection / union
        let enclosingWidth = Tensor.maximum(ax2, bx2) - Tensor.minimum(ax1, bx1)
        let enclosingHeight = Tensor.maximum(ay2, by2) - Tensor.minimum(ay1, by1)
        let diagonal2 = enclosingWidth * enclosingWidth + enclosingHeight * enclosingHeight + eps
        let dx = bx1 + bx2 - ax1 - ax2, dy = by1 + by2 - ay1 - ay2
        let centerDistance2 = (dx * dx + dy * dy) * 0.25
        let angle = arctangent(w2 / h2) - arctangent(w1 / h1)
        let v = angle * angle * Float(4 / (Double.pi * Double.pi))
        let alpha = withoutGradient {
            let vd = v.detached()
            return vd / (vd - iou.detached() + (1 + eps))
        }
        return (iou - (centerDistance2 / diagonal2 + v * alpha)).reshaped([box1.shape[0]])
    }

    /// Complete IoU of two boxes given by corners, in Float as the assigner computes it.
    @inlinable
    public static func completeIoU(_ a: (Float, Float, Float, Float), _ b: (Float, Float, Float, Float), eps: Float = 1e-7) -> Float {
        let w1 = a.2 - a.0, h1 = a.3 - a.1 + eps
        let w2 = b.2 - b.0, h2 = b.3 - b.1 + eps
        let intersection = Swift.max(Swift.min(a.2, b.2) - Swift.max(a.0, b.0), 0) * Swift.max(Swift.min(a.3, b.3) - Swift.max(a.1, b.1), 0)
        let union = w1 * h1 + w2 * h2 - intersection + eps
        let iou = intersection / union
        let enclosingWidth = Swift.max(a.2, b.2) - Swift.min(a.0, b.0)
        let enclosingHeight = Swift.max(a.3, b.3) - Swift.min(a.1, b.1)
        let diagonal2 = enclosingWidth * enclosingWidth + enclosingHeight * enclosingHeight + eps
        let dx = b.0 + b.2 - a.0 - a.2, dy = b.1 + b.3 - a.1 - a.3
        let centerDistance2 = (dx * dx + dy * dy) / 4
        let angle = Foundation.atan(w2 / h2) - Foundation.atan(w1 / h1)
        let v = Float(4 / (Double.pi * Double.pi)) * angle * angle
        let alpha = v / (v - iou + (1 + eps))
        return iou - (centerDistance2 / diagonal2 + v * alpha)
    }

    /// Plain IoU of two boxes given by corners (torchvision's `box_iou`: no eps, 0 when disjoint).
    @inlinable
    public static func intersectionOverUnion(_ a: (Float, Float, Float, Float), _ b: (Float, Float, Float, Float)) -> Float {
        let intersection = Swift.max(Swift.min(a.2, b.2) - Swift.max(a.0, b.0), 0) * Swift.max(Swift.min(a.3, b.3) - Swift.max(a.1, b.1), 0)
        let union = (a.2 - a.0) * (a.3 - a.1) + (b.2 - b.0) * (b.3 - b.1) - intersection
        return union > 0 ? intersection / union : 0
    }
}
