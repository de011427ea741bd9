import Foundation
import FuseKitTensor

/// An RGB colour with 8-bit components, for palettes.
public struct PaletteColor: Sendable, Hashable {
    /// Red, 0...255.
    public var red: UInt8
    /// Green, 0...255.
    public var green: UInt8
    /// Blue, 0...255.
    public var blue: UInt8

    /// A colour from its components.
    public init(red: UInt8, green: UInt8, blue: UInt8) {
        self.red = red
        self.green = green
        self.blue = blue
    }
}

/// A per-pixel map of integer class indices: a segmentation label or prediction.
///
/// Read from PNG (gray levels or palette indices), BMP or JPEG files whose pixel values are the
/// class indices; ``ignoreIndex`` (255) marks pixels that evaluation and training skip.
public struct LabelMap: Sendable, Equatable {
    /// The conventional "no label" value.
    public static let ignoreIndex: Int32 = 255

    /// Width in pixels.
    public let width: Int
    /// Height in pixels.
    public let height: Int
    /// Class indices, row-major (`values[y * width + x]`).
    public var values: [Int32] {
        didSet {
            precondition(values.count == width * height, "LabelMap: \(values.count) values assigned to a \(width)x\(height) map")
        }
    }

    /// A map from row-major class indices.
    public init(width: Int, height: Int, values: [Int32]) {
        precondition(width > 0 && height > 0, "LabelMap: dimensions must be positive, got \(width)x\(height)")
        precondition(values.count == width * height, "LabelMap: \(width)x\(height) needs \(width * height) values, got \(values.count)")
        self.width = width
        self.height = height
        self.values = values
    }

    /// A map filled with one class index.
    public init(width: Int, height: Int, repeating value: Int32 = 0) {
        self.init(width: width, height: height, values: [Int32](repeating: value, count: width * height))
    }

    /// The class index at (`x`, `y`).
    public subscript(x x: Int, y y: Int) -> Int32 {
        get { values[y * width + x] }
        set { values[y * width + x] = newValue }
    }

    /// Reads class indices from an image file: palette PNGs give their palette indices, gray
    /// images (8 or 16-bit) their levels, and RGB images whose three channels are equal that value.
    ///
    /// - Throws: ``ImageIOError``; `.invalidContent` for a colour image that does not hold indices.
    public init(contentsOf url: URL) throws(ImageIOError) {
        let data = try FileAccess.read(url)
        let raster: DecodedRaster
        do {
            raster = try Codecs.decode(data, keepPaletteIndices: true, pathExtension: url.pathExtension)
        } catch {
            throw error.imageIOError(path: url.path)
        }
        let plane = raster.width * raster.height
        var values = [Int32](repeating: 0, count: plane)
        let channels = raster.channels
        if channels <= 2 {
            for i in 0..<plane { values[i] = Int32(raster.samples[i * channels]) }
        } else {
            for i in 0..<plane {
                let r = raster.samples[i * channels], g = raster.samples[i * channels + 1], b = raster.samples[i * channels + 2]
                guard r == g && g == b else {
                    throw .invalidContent(path: url.path, reason: "colour image where class indices were expected "
                                          + "(R, G, B = \(r), \(g), \(b) at x \(i % raster.width), y \(i / raster.width))")
                }
                values[i] = Int32(r)
            }
        }
        self.init(width: raster.width, height: raster.height, values: values)
    }

    /// Writes the map as a PNG: 8-bit gray levels (16-bit when an index exceeds 255), or an
    /// indexed PNG when a `palette` is given (every index must then be below `palette.count`).
    public func write(to url: URL, palette: [PaletteColor]? = nil) throws(ImageIOError) {
        guard let low = values.min(), let high = values.max(), low >= 0 else {
            throw .writeFailed(path: url.path, reason: "negative class index")
        }
        let data: Data
        do throws(CodecFailure) {
            if let palette {
                guard !palette.isEmpty, palette.count <= 256, high < palette.count else {
                    throw CodecFailure(kind: .unsupported, reason: "palette of \(palette.count) colours cannot index class \(high) (1 to 256 colours)")
                }
                let paletteBytes = palette.flatMap { [$0.red, $0.green, $0.blue] }
                data = try Codecs.encodePNG(samples: values.map { UInt16($0) }, width: width, height: height, channels: 1,
                                            bitDepth: 8, palette: paletteBytes)
            } else {
                guard high <= 65535 else { throw CodecFailure(kind: .unsupported, reason: "class index \(high) exceeds 16 bits") }
                data = try Codecs.encodePNG(samples: values.map { UInt16($0) }, width: width, height: height, channels: 1,
                                            bitDepth: high > 255 ? 16 : 8)
            }
        } catch {
            throw .writeFailed(path: url.path, reason: error.reason)
        }
        try FileAccess.write(data, to: url)
    }

    /// The class indices as Float values, row-major (for a [H, W] label tensor).
    public var floatValues: [Float] { values.map { Float($0) } }

    /// The map as a [H, W] tensor of Float class indices.
    public func tensor() -> Tensor { Tensor(shape: [height, width], scalars: floatValues) }

    /// The map as a single-channel image with `value / 255` per pixel (for viewing or PNG export
    /// of small indices).
    public func image() -> Image {
        Image(width: width, height: height, channels: 1, pixels: values.map { Float($0) / 255 })
    }
}
