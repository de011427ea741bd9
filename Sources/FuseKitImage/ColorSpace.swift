import Foundation
import FuseKitTensor

extension Image {
    /// The 8-bit gray level (0...255, an integer) of every pixel, the convention of TDFusion's
    /// training and of the fusion metrics: `0.299 R + 0.587 G + 0.114 B` computed in Float32 on the
    /// 0...255 scale (in OpenCV's order, B first), then rounded to the nearest integer (ties to
    /// even, as numpy). Samples of 8-bit images are first snapped to their exact integer levels.
    /// Single-channel images are rounded to the nearest level; alpha is ignored.
    public func grayLevelValues() -> [Float] {
        let plane = planeSize
        var out = [Float](repeating: 0, count: plane)
        pixels.withUnsafeBufferPointer { p in
            out.withUnsafeMutableBufferPointer { o in
                if channels <= 2 {
                    for i in 0..<plane { o[i] = min(max((p[i] * 255).rounded(.toNearestOrEven), 0), 255) }
                } else {
                    let (r, g, b) = (p.baseAddress!, p.baseAddress! + plane, p.baseAddress! + 2 * plane)
                    // 8-bit data: recover the exact integer levels before weighting them.
                    let level: (Float) -> Float = bitDepth == 8 ? { ($0 * 255).rounded(.toNearestOrEven) } : { $0 * 255 }
                    for i in 0..<plane {
                        let (red, green, blue) = (level(r[i]), level(g[i]), level(b[i]))
                        let y: Float = blue * 0.114 + green * 0.587 + red * 0.299
                        o[i] = min(max(y.rounded(.toNearestOrEven), 0), 255)
                    }
                }
            }
        }
        return out
    }

    /// A one-channel image of the rounded gray levels divided by 255 (see ``grayLevelValues()``):
    /// how TDFusion's training reads its sources.
    public func grayscale() -> Image {
        Image(width: width, height: height, channels: 1, bitDepth: 8, pixels: grayLevelValues().map { $0 / 255 })
    }

    /// The gray levels on the 0...255 scale that the fusion metrics take.
    public func grayLevels() -> GrayImage {
        GrayImage(width: width, height: height, values: grayLevelValues())
    }

    /// The image as three planes Y, Cr, Cb (on the 0...1 scale, not rounded), with
    /// `Y = 0.299 R + 0.587 G + 0.114 B`, `Cr = 0.713 (R - Y) + 0.5`, `Cb = 0.564 (B - Y) + 0.5`.
    /// A gray image gives `Y` = its value and neutral chroma (0.5). Alpha is dropped.
    public func yCrCb() -> Image {
        let plane = planeSize
        var out = [Float](repeating: 0.5, count: 3 * plane)
        if channels <= 2 {
            for i in 0..<plane { out[i] = pixels[i] }
        } else {
            for i in 0..<plane {
                let (r, g, b) = (pixels[i], pixels[plane + i], pixels[2 * plane + i])
                let y = 0.299 * r + 0.587 * g + 0.114 * b
                out[i] = y
                out[plane + i] = 0.713 * (r - y) + 0.5
                out[2 * plane + i] = 0.564 * (b - y) + 0.5
            }
        }
        return Image(width: width, height: height, channels: 3, bitDepth: bitDepth, pixels: out)
    }

    /// RGB from three planes Y, Cr, Cb (see ``yCrCb()``), with OpenCV's inverse
    /// (`R = Y + 1.403 (Cr - 0.5)`, `G = Y - 0.714 (Cr - 0.5) - 0.344 (Cb - 0.5)`,
    /// `B = Y + 1.773 (Cb - 0.5)`), clamped to [0, 1].
    public static func rgb(fromYCrCb image: Image) -> Image {
        precondition(image.channels == 3, "Image.rgb(fromYCrCb:): needs 3 planes Y, Cr, Cb, got \(image.channels)")
        let plane = image.planeSize
        var out = [Float](repeating: 0, count: 3 * plane)
        let p = image.pixels
        for i in 0..<plane {
            let (y, cr, cb) = (p[i], p[plane + i] - 0.5, p[2 * plane + i] - 0.5)
            out[i] = min(max(y + 1.403 * cr, 0), 1)
            out[plane + i] = min(max(y - 0.714 * cr - 0.344 * cb, 0), 1)
            out[2 * plane + i] = min(max(y + 1.773 * cb, 0), 1)
        }
        return Image(width: image.width, height: image.height, channels: 3, bitDepth: image.bitDepth, pixels: out)
    }

    /// Fuses two chroma planes (Cr or Cb, 0...1 scale) as TDFusion does when both sources are in
    /// colour: `C = (C1 |C1 - 0.5| + C2 |C2 - 0.5|) / (|C1 - 0.5| + |C2 - 0.5| + 1e-4)`.
    /// (As in the official code, two exactly neutral inputs give 0, not 0.5.)
    public static func fusedChroma(_ first: [Float], _ second: [Float]) -> [Float] {
        precondition(first.count == second.count, "Image.fusedChroma: planes differ in size")
        return zip(first, second).map { c1, c2 in
            let (w1, w2) = (abs(c1 - 0.5), abs(c2 - 0.5))
            return (c1 * w1 + c2 * w2) / (w1 + w2 + 1e-4)
        }
    }

    /// Sobel responses of every channel, zero padded, same size (cross-correlation with
    /// `Kx = [[-1,0,1],[-2,0,2],[-1,0,1]]` and `Ky = [[-1,-2,-1],[0,0,0],[1,2,1]]`, the kernels of
    /// TDFusion's gradient loss). Values are not clamped.
    public func sobel() -> (x: Image, y: Image) {
        var gx = [Float](repeating: 0, count: pixels.count)
        var gy = [Float](repeating: 0, count: pixels.count)
        for c in 0..<channels {
            let base = c * planeSize
            pixels.withUnsafeBufferPointer { p in
                gx.withUnsafeMutableBufferPointer { ox in
                    gy.withUnsafeMutableBufferPointer { oy in
                        Self.sobelPlane(p.baseAddress! + base, width: width, height: height,
                                        gx: ox.baseAddress! + base, gy: oy.baseAddress! + base)
                    }
                }
            }
        }
        return (Image(width: width, height: height, channels: channels, bitDepth: bitDepth, pixels: gx),
                Image(width: width, height: height, channels: channels, bitDepth: bitDepth, pixels: gy))
    }

    /// Gradient magnitude `sqrt(gx^2 + gy^2)` of the Sobel responses, per channel.
    public func sobelMagnitude() -> Image {
        let (gx, gy) = sobel()
        var out = gx
        out.pixels = zip(gx.pixels, gy.pixels).map { ($0 * $0 + $1 * $1).squareRoot() }
        return out
    }

    static func sobelPlane(_ p: UnsafePointer<Float>, width: Int, height: Int,
                           gx: UnsafeMutablePointer<Float>, gy: UnsafeMutablePointer<Float>) {
        @inline(__always) func at(_ x: Int, _ y: Int) -> Float {
            (x < 0 || y < 0 || x >= width || y >= height) ? 0 : p[y * width + x]
        }
        for y in 0..<height {
            for x in 0..<width {
                let (tl, t, tr) = (at(x - 1, y - 1), at(x, y - 1), at(x + 1, y - 1))
                let (l, r) = (at(x - 1, y), at(x + 1, y))
                let (bl, b, br) = (at(x - 1, y + 1), at(x, y + 1), at(x + 1, y + 1))
                gx[y * width + x] = (tr + 2 * r + br) - (tl + 2 * l + bl)
                gy[y * width + x] = (bl + 2 * b + br) - (tl + 2 * t + tr)
            }
        }
    }
}

/// A single-channel image of gray levels on the 0...255 scale: what the fusion metrics take.
///
/// Images read from 8-bit files hold integer levels; a fused result still in memory may hold
/// fractional values (metrics that need integer levels round them).
public struct GrayImage: Sendable, Equatable {
    /// Width in pixels.
    public let width: Int
    /// Height in pixels.
    public let height: Int
    /// Row-major levels, nominally 0...255.
    public var values: [Float] {
        didSet {
            precondition(values.count == width * height, "GrayImage: \(values.count) values assigned to a \(width)x\(height) image")
        }
    }

    /// A gray image from row-major levels on the 0...255 scale.
    public init(width: Int, height: Int, values: [Float]) {
        precondition(width > 0 && height > 0, "GrayImage: dimensions must be positive, got \(width)x\(height)")
        precondition(values.count == width * height, "GrayImage: \(width)x\(height) needs \(width * height) values, got \(values.count)")
        self.width = width
        self.height = height
        self.values = values
    }

    /// The gray levels of an image (see ``Image/grayLevelValues()``).
    public init(_ image: Image) {
        self = image.grayLevels()
    }

    /// Reads an image file and converts it to gray levels, as the metrics' reference evaluator does.
    public init(contentsOf url: URL) throws(ImageIOError) {
        self = try Image(contentsOf: url).grayLevels()
    }

    /// Gray levels from a single-channel tensor on the 0...1 scale ([1, 1, H, W], [1, H, W] or
    /// [H, W]), times 255 and clamped; with `quantized` (the default) rounded to integer levels,
    /// exactly what saving it as an 8-bit PNG and reading it back gives.
    public init(tensor: Tensor, quantized: Bool = true) {
        let shape = tensor.shape
        precondition(shape.count >= 2 && shape.dropLast(2).allSatisfy { $0 == 1 },
                     "GrayImage(tensor:): expected a single-channel [.., H, W] tensor, got \(shape)")
        let values = tensor.scalars.map { v -> Float in
            let scaled = v.isNaN ? 0 : min(max(v, 0), 1) * 255
            return quantized ? scaled.rounded(.toNearestOrEven) : scaled
        }
        self.init(width: shape[shape.count - 1], height: shape[shape.count - 2], values: values)
    }

    /// The levels as a one-channel ``Image`` (divided by 255).
    public func image() -> Image {
        Image(width: width, height: height, channels: 1, pixels: values.map { $0 / 255 })
    }
}
