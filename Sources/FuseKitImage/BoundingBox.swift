/// An axis-aligned object box in normalised image coordinates (0...1 across the width and the
/// height), as YOLO label files write them: class, centre, size.
public struct BoundingBox: Sendable, Hashable, Codable {
    /// Class index (0-based).
    public var classIndex: Int
    /// Centre, as a fraction of the image width.
    public var centerX: Double
    /// Centre, as a fraction of the image height.
    public var centerY: Double
    /// Width, as a fraction of the image width.
    public var width: Double
    /// Height, as a fraction of the image height.
    public var height: Double

    /// A box from its centre and size (normalised).
    public init(classIndex: Int, centerX: Double, centerY: Double, width: Double, height: Double) {
        self.classIndex = classIndex
        self.centerX = centerX
        self.centerY = centerY
        self.width = width
        self.height = height
    }

    /// A box from its corners (normalised).
    public init(classIndex: Int, minX: Double, minY: Double, maxX: Double, maxY: Double) {
        self.init(classIndex: classIndex, centerX: (minX + maxX) / 2, centerY: (minY + maxY) / 2,
                  width: maxX - minX, height: maxY - minY)
    }

    /// Left edge.
    public var minX: Double { centerX - width / 2 }
    /// Right edge.
    public var maxX: Double { centerX + width / 2 }
    /// Top edge.
    public var minY: Double { centerY - height / 2 }
    /// Bottom edge.
    public var maxY: Double { centerY + height / 2 }
    /// Area (normalised).
    public var area: Double { max(width, 0) * max(height, 0) }

    /// Intersection over union with another box (0 when they do not overlap). IoU is the same in
    /// normalised and in pixel coordinates.
    public func intersectionOverUnion(with other: BoundingBox) -> Double {
        let iw = min(maxX, other.maxX) - max(minX, other.minX)
        let ih = min(maxY, other.maxY) - max(minY, other.minY)
        guard iw > 0, ih > 0 else { return 0 }
        let intersection = iw * ih
        let union = area + other.area - intersection
        return union > 0 ? intersection / union : 0
    }

    /// The box in pixels of an image of the given size: (minX, minY, maxX, maxY).
    public func pixelCorners(imageWidth: Int, imageHeight: Int) -> (minX: Double, minY: Double, maxX: Double, maxY: Double) {
        (minX * Double(imageWidth), minY * Double(imageHeight), maxX * Double(imageWidth), maxY * Double(imageHeight))
    }
}

/// A predicted box with its confidence.
public struct Detection: Sendable, Hashable, Codable {
    /// The box and its class.
    public var box: BoundingBox
    /// Confidence score; higher is more confident.
    public var score: Double

    /// A detection from a box and a score.
    public init(box: BoundingBox, score: Double) {
        self.box = box
        self.score = score
    }
}
