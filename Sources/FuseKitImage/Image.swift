import FuseKitTensor

/// How the channels of an ``Image`` are to be read.
public enum ColorModel: Int, Sendable, CaseIterable {
    /// One channel: gray levels (or anything single-channel, such as a fused image or a Y plane).
    case gray = 1
    /// Gray and alpha.
    case grayAlpha = 2
    /// Red, green, blue.
    case rgb = 3
    /// Red, green, blue, alpha.
    case rgba = 4

    /// Number of channels of the model.
    public var channelCount: Int { rawValue }
}

/// A raster image with planar (channel-major) Float32 samples normalised to [0, 1].
///
/// Sample `c` of pixel (`x`, `y`) is at `pixels[c * height * width + y * width + x]`, the layout
/// of one item of an NCHW tensor. 8-bit files are read as `level / 255`, 16-bit files as
/// `level / 65535`; ``bitDepth`` remembers the depth of the source (8 for computed images).
public struct Image: Sendable, Equatable {
    /// The most pixels (width × height) the readers decode: 2^26, e.g. 8192 × 8192, far above
    /// the infrared-visible datasets (1280 × 1024 at most). Larger files are refused as
    /// unsupported before their raster is allocated, so a damaged header cannot ask for
    /// gigabytes (a decoded pixel takes up to 16 bytes as Float32 RGBA).
    public static let maximumPixelCount = 1 << 26

    /// Width in pixels.
    public let width: Int
    /// Height in pixels.
    public let height: Int
    /// Number of channels (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA).
    public let channels: Int
    /// Bit depth of the file the image came from (8 or 16); writing uses 8 bits unless told otherwise.
    public var bitDepth: Int
    /// Planar samples, `channels * height * width` of them, nominally in [0, 1].
    public var pixels: [Float] {
        didSet {
            precondition(pixels.count == channels * height * width,
                         "Image: \(pixels.count) samples assigned to a \(width)x\(height)x\(channels) image")
        }
    }

    /// An image from planar samples (`channels * height * width` of them).
    public init(width: Int, height: Int, channels: Int, bitDepth: Int = 8, pixels: [Float]) {
        precondition(width > 0 && height > 0, "Image: dimensions must be positive, got \(width)x\(height)")
        precondition((1...4).contains(channels), "Image: 1 to 4 channels, got \(channels)")
        precondition(pixels.count == channels * height * width,
                     "Image: \(width)x\(height)x\(channels) needs \(channels * height * width) samples, got \(pixels.count)")
        self.width = width
        self.height = height
        self.channels = channels
        self.bitDepth = bitDepth
        self.pixels = pixels
    }

    /// An image filled with one value.
    public init(width: Int, height: Int, channels: Int, repeating value: Float = 0) {
        self.init(width: width, height: height, channels: channels, pixels: [Float](repeating: value, count: channels * width * height))
    }

    /// An image made of single-channel planes of equal size, stacked as its channels.
    public init(planes: [Image]) {
        precondition(!planes.isEmpty && planes.count <= 4, "Image(planes:): 1 to 4 planes, got \(planes.count)")
        let first = planes[0]
        precondition(planes.allSatisfy { $0.channels == 1 && $0.width == first.width && $0.height == first.height },
                     "Image(planes:): every plane must be single-channel and \(first.width)x\(first.height)")
        self.init(width: first.width, height: first.height, channels: planes.count,
                  bitDepth: planes.map(\.bitDepth).max() ?? 8, pixels: planes.flatMap(\.pixels))
    }

    /// The colour model implied by the channel count.
    public var colorModel: ColorModel { ColorModel(rawValue: channels)! }

    /// Whether the last channel is alpha.
    public var hasAlpha: Bool { channels == 2 || channels == 4 }

    /// Number of pixels per channel.
    public var planeSize: Int { width * height }

    /// The sample of channel `channel` at (`x`, `y`).
    public subscript(x x: Int, y y: Int, channel channel: Int = 0) -> Float {
        get { pixels[(channel * height + y) * width + x] }
        set { pixels[(channel * height + y) * width + x] = newValue }
    }

    /// Channel `index` as a single-channel image.
    public func plane(_ index: Int) -> Image {
        precondition(index >= 0 && index < channels, "Image.plane: channel \(index) of \(channels)")
        let start = index * planeSize
        return Image(width: width, height: height, channels: 1, bitDepth: bitDepth,
                     pixels: Array(pixels[start..<(start + planeSize)]))
    }

    /// The image without its alpha channel (itself when it has none).
    public func removingAlpha() -> Image {
        guard hasAlpha else { return self }
        return Image(width: width, height: height, channels: channels - 1, bitDepth: bitDepth,
                     pixels: Array(pixels[0..<((channels - 1) * planeSize)]))
    }

    /// Samples clamped to [0, 1].
    public func clamped() -> Image {
        var copy = self
        copy.pixels = pixels.map { min(max($0, 0), 1) }
        return copy
    }
}

// MARK: - Tensors

extension Image {
    /// The image as a tensor of shape [1, C, H, W].
    public func tensor() -> Tensor {
        Tensor(shape: [1, channels, height, width], scalars: pixels)
    }

    /// Stacks equally sized images with the same channel count into a [B, C, H, W] tensor.
    public static func batchTensor(_ images: [Image]) -> Tensor {
        precondition(!images.isEmpty, "Image.batchTensor: no images")
        let first = images[0]
        precondition(images.allSatisfy { $0.width == first.width && $0.height == first.height && $0.channels == first.channels },
                     "Image.batchTensor: images differ in size or channel count")
        let itemCount = first.pixels.count
        let result = Tensor(uninitializedShape: [images.count, first.channels, first.height, first.width])
        let destination = result.mutablePointer
        for (index, image) in images.enumerated() {
            image.pixels.withUnsafeBufferPointer { source in
                (destination + index * itemCount).update(from: source.baseAddress!, count: itemCount)
            }
        }
        return result
    }

    /// An image from a tensor of shape [1, C, H, W], [C, H, W] or [H, W] (C of 1 to 4).
    public init(tensor: Tensor, bitDepth: Int = 8) {
        let shape = tensor.shape
        let channels: Int, height: Int, width: Int
        switch shape.count {
        case 4:
            precondition(shape[0] == 1, "Image(tensor:): a rank-4 tensor must hold one image, got shape \(shape)")
            (channels, height, width) = (shape[1], shape[2], shape[3])
        case 3: (channels, height, width) = (shape[0], shape[1], shape[2])
        case 2: (channels, height, width) = (1, shape[0], shape[1])
        default: preconditionFailure("Image(tensor:): expected [1,C,H,W], [C,H,W] or [H,W], got \(shape)")
        }
        self.init(width: width, height: height, channels: channels, bitDepth: bitDepth, pixels: tensor.scalars)
    }

    /// Item `index` of a [B, C, H, W] tensor as an image.
    public init(batch tensor: Tensor, index: Int, bitDepth: Int = 8) {
        let shape = tensor.shape
        precondition(shape.count == 4 && index >= 0 && index < shape[0],
                     "Image(batch:index:): index \(index) of a tensor of shape \(shape)")
        let count = shape[1] * shape[2] * shape[3]
        let pixels = tensor.withUnsafeBufferPointer { Array($0[(index * count)..<((index + 1) * count)]) }
        self.init(width: shape[3], height: shape[2], channels: shape[1], bitDepth: bitDepth, pixels: pixels)
    }
}
