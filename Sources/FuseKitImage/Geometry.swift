/// Interpolation used by ``Image/resized(width:height:method:)``.
public enum ResizeMethod: String, Sendable, CaseIterable {
    /// Nearest neighbour (source index `floor(x * inW / outW)`, as OpenCV and PyTorch "nearest").
    case nearest
    /// Bilinear with half-pixel centres and replicated edges (OpenCV `INTER_LINEAR`,
    /// PyTorch `align_corners=False`), without antialiasing.
    case bilinear
    /// Bicubic (Keys, a = -0.75) with half-pixel centres and replicated edges (OpenCV
    /// `INTER_CUBIC`, PyTorch `bicubic`), without antialiasing; results are not clamped.
    case bicubic
}

/// Rearrangements of row-major planes shared by ``Image`` and ``LabelMap``.
enum PlaneGeometry {
    static func crop<T>(_ source: [T], width: Int, height: Int, planes: Int, x: Int, y: Int, cropWidth: Int, cropHeight: Int) -> [T] {
        var out: [T] = []
        out.reserveCapacity(planes * cropWidth * cropHeight)
        for p in 0..<planes {
            for row in y..<(y + cropHeight) {
                let start = (p * height + row) * width + x
                out.append(contentsOf: source[start..<(start + cropWidth)])
            }
        }
        return out
    }

    static func flipHorizontally<T>(_ source: [T], width: Int, height: Int, planes: Int) -> [T] {
        var out = source
        for row in 0..<(planes * height) {
            let base = row * width
            for x in 0..<width { out[base + x] = source[base + width - 1 - x] }
        }
        return out
    }

    static func flipVertically<T>(_ source: [T], width: Int, height: Int, planes: Int) -> [T] {
        var out: [T] = []
        out.reserveCapacity(source.count)
        for p in 0..<planes {
            for row in stride(from: height - 1, through: 0, by: -1) {
                let start = (p * height + row) * width
                out.append(contentsOf: source[start..<(start + width)])
            }
        }
        return out
    }

    /// Counterclockwise quarter turns, as `numpy.rot90(plane, k)`; returns the new width and height.
    static func rotate<T>(_ source: [T], width: Int, height: Int, planes: Int, quarterTurns: Int) -> (values: [T], width: Int, height: Int) {
        let k = ((quarterTurns % 4) + 4) % 4
        if k == 0 { return (source, width, height) }
        if k == 2 {
            var out = source
            let plane = width * height
            for p in 0..<planes {
                let base = p * plane
                for i in 0..<plane { out[base + i] = source[base + plane - 1 - i] }
            }
            return (out, width, height)
        }
        let (newWidth, newHeight) = (height, width)
        var out = source
        let plane = width * height
        for p in 0..<planes {
            let base = p * plane
            for y in 0..<newHeight {
                for x in 0..<newWidth {
                    // k = 1: out(x, y) = in(W-1-y, x); k = 3: out(x, y) = in(y, H-1-x).
                    let (sx, sy) = k == 1 ? (width - 1 - y, x) : (y, height - 1 - x)
                    out[base + y * newWidth + x] = source[base + sy * width + sx]
                }
            }
        }
        return (out, newWidth, newHeight)
    }

    /// Source indices and weights of a 1-D resampling with half-pixel centres and clamped taps.
    static func taps(input: Int, output: Int, method: ResizeMethod) -> (indices: [Int], weights: [Float], count: Int) {
        let scale = Double(input) / Double(output)
        switch method {
        case .nearest:
            let indices = (0..<output).map { min(Int((Double($0) * scale).rounded(.down)), input - 1) }
            return (indices, [Float](repeating: 1, count: output), 1)
        case .bilinear:
            var indices = [Int](), weights = [Float]()
            for o in 0..<output {
                let source = max((Double(o) + 0.5) * scale - 0.5, 0)
                let x0 = Int(source.rounded(.down))
                let t = Float(source - Double(x0))
                indices += [min(x0, input - 1), min(x0 + 1, input - 1)]
                weights += [1 - t, t]
            }
            return (indices, weights, 2)
        case .bicubic:
            let a = -0.75
            var indices = [Int](), weights = [Float]()
            for o in 0..<output {
                let source = (Double(o) + 0.5) * scale - 0.5
                let x0 = Int(source.rounded(.down))
                let t = source - Double(x0)
                let w0 = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a
                let w1 = ((a + 2) * t - (a + 3)) * t * t + 1
                let w2 = ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1
                let w3 = 1 - w0 - w1 - w2
                for (offset, w) in [(-1, w0), (0, w1), (1, w2), (2, w3)] {
                    indices.append(min(max(x0 + offset, 0), input - 1))
                    weights.append(Float(w))
                }
            }
            return (indices, weights, 4)
        }
    }
}

extension Image {
    /// The rectangle of `width` x `height` pixels whose top-left corner is (`x`, `y`).
    public func cropped(x: Int, y: Int, width cropWidth: Int, height cropHeight: Int) -> Image {
        precondition(x >= 0 && y >= 0 && cropWidth > 0 && cropHeight > 0 && x + cropWidth <= width && y + cropHeight <= height,
                     "Image.cropped: rectangle (\(x), \(y), \(cropWidth)x\(cropHeight)) outside a \(width)x\(height) image")
        return Image(width: cropWidth, height: cropHeight, channels: channels, bitDepth: bitDepth,
                     pixels: PlaneGeometry.crop(pixels, width: width, height: height, planes: channels,
                                                x: x, y: y, cropWidth: cropWidth, cropHeight: cropHeight))
    }

    /// The image mirrored left-right.
    public func flippedHorizontally() -> Image {
        Image(width: width, height: height, channels: channels, bitDepth: bitDepth,
              pixels: PlaneGeometry.flipHorizontally(pixels, width: width, height: height, planes: channels))
    }

    /// The image mirrored top-bottom.
    public func flippedVertically() -> Image {
        Image(width: width, height: height, channels: channels, bitDepth: bitDepth,
              pixels: PlaneGeometry.flipVertically(pixels, width: width, height: height, planes: channels))
    }

    /// The image turned counterclockwise by `quarterTurns` times 90 degrees (as `numpy.rot90`);
    /// negative values turn clockwise. Odd turns swap width and height.
    public func rotated(quarterTurns: Int) -> Image {
        let r = PlaneGeometry.rotate(pixels, width: width, height: height, planes: channels, quarterTurns: quarterTurns)
        return Image(width: r.width, height: r.height, channels: channels, bitDepth: bitDepth, pixels: r.values)
    }

    /// The image resampled to `width` x `height` (see ``ResizeMethod`` for the conventions).
    public func resized(width newWidth: Int, height newHeight: Int, method: ResizeMethod = .bilinear) -> Image {
        precondition(newWidth > 0 && newHeight > 0, "Image.resized: target size must be positive")
        if newWidth == width && newHeight == height { return self }
        let horizontal = PlaneGeometry.taps(input: width, output: newWidth, method: method)
        let vertical = PlaneGeometry.taps(input: height, output: newHeight, method: method)
        var out = [Float](repeating: 0, count: channels * newWidth * newHeight)
        var rowBuffer = [Float](repeating: 0, count: newWidth * height)
        for c in 0..<channels {
            let base = c * width * height
            // Horizontal pass: every source row to the new width.
            for y in 0..<height {
                let row = base + y * width
                for x in 0..<newWidth {
                    var sum: Float = 0
                    for t in 0..<horizontal.count {
                        let k = x * horizontal.count + t
                        sum += horizontal.weights[k] * pixels[row + horizontal.indices[k]]
                    }
                    rowBuffer[y * newWidth + x] = sum
                }
            }
            // Vertical pass.
            let outBase = c * newWidth * newHeight
            for y in 0..<newHeight {
                for x in 0..<newWidth {
                    var sum: Float = 0
                    for t in 0..<vertical.count {
                        let k = y * vertical.count + t
                        sum += vertical.weights[k] * rowBuffer[vertical.indices[k] * newWidth + x]
                    }
                    out[outBase + y * newWidth + x] = sum
                }
            }
        }
        return Image(width: newWidth, height: newHeight, channels: channels, bitDepth: bitDepth, pixels: out)
    }
}

extension LabelMap {
    /// The rectangle of `width` x `height` pixels whose top-left corner is (`x`, `y`).
    public func cropped(x: Int, y: Int, width cropWidth: Int, height cropHeight: Int) -> LabelMap {
        precondition(x >= 0 && y >= 0 && cropWidth > 0 && cropHeight > 0 && x + cropWidth <= width && y + cropHeight <= height,
                     "LabelMap.cropped: rectangle (\(x), \(y), \(cropWidth)x\(cropHeight)) outside a \(width)x\(height) map")
        return LabelMap(width: cropWidth, height: cropHeight,
                        values: PlaneGeometry.crop(values, width: width, height: height, planes: 1,
                                                   x: x, y: y, cropWidth: cropWidth, cropHeight: cropHeight))
    }

    /// The map mirrored left-right.
    public func flippedHorizontally() -> LabelMap {
        LabelMap(width: width, height: height, values: PlaneGeometry.flipHorizontally(values, width: width, height: height, planes: 1))
    }

    /// The map mirrored top-bottom.
    public func flippedVertically() -> LabelMap {
        LabelMap(width: width, height: height, values: PlaneGeometry.flipVertically(values, width: width, height: height, planes: 1))
    }

    /// The map turned counterclockwise by `quarterTurns` times 90 degrees (as `numpy.rot90`).
    public func rotated(quarterTurns: Int) -> LabelMap {
        let r = PlaneGeometry.rotate(values, width: width, height: height, planes: 1, quarterTurns: quarterTurns)
        return LabelMap(width: r.width, height: r.height, values: r.values)
    }

    /// The map resampled to `width` x `height` by nearest neighbour (labels are never interpolated).
    public func resized(width newWidth: Int, height newHeight: Int) -> LabelMap {
        let columns = PlaneGeometry.taps(input: width, output: newWidth, method: .nearest).indices
        let rows = PlaneGeometry.taps(input: height, output: newHeight, method: .nearest).indices
        var out = [Int32](repeating: 0, count: newWidth * newHeight)
        for y in 0..<newHeight {
            for x in 0..<newWidth { out[y * newWidth + x] = values[rows[y] * width + columns[x]] }
        }
        return LabelMap(width: newWidth, height: newHeight, values: out)
    }
}

extension PlaneGeometry {
    /// The `cropWidth` x `cropHeight` window at (`x`, `y`) of each plane, with `fill` wherever
    /// the window lies outside the image.
    static func paddedCrop<T>(_ values: [T], width: Int, height: Int, planes: Int, x: Int, y: Int,
                              cropWidth: Int, cropHeight: Int, fill: T) -> [T] {
        var out = [T](repeating: fill, count: planes * cropWidth * cropHeight)
        for p in 0..<planes {
            for row in 0..<cropHeight {
                let sy = y + row
                guard sy >= 0 && sy < height else { continue }
                for col in 0..<cropWidth {
                    let sx = x + col
                    guard sx >= 0 && sx < width else { continue }
                    out[(p * cropHeight + row) * cropWidth + col] = values[(p * height + sy) * width + sx]
                }
            }
        }
        return out
    }
}

extension Image {
    /// The window of `width` x `height` pixels at (`x`, `y`), which may extend past the image;
    /// pixels outside are `fill` (MRFS's zero padding of crops larger than a down-scaled image).
    public func cropped(x: Int, y: Int, width cropWidth: Int, height cropHeight: Int, padding fill: Float) -> Image {
        precondition(cropWidth > 0 && cropHeight > 0, "Image.cropped: an empty window \(cropWidth)x\(cropHeight)")
        return Image(width: cropWidth, height: cropHeight, channels: channels, bitDepth: bitDepth,
                     pixels: PlaneGeometry.paddedCrop(pixels, width: width, height: height, planes: channels, x: x, y: y,
                                                      cropWidth: cropWidth, cropHeight: cropHeight, fill: fill))
    }
}

extension LabelMap {
    /// The window at (`x`, `y`), which may extend past the map; labels outside are `fill`.
    public func cropped(x: Int, y: Int, width cropWidth: Int, height cropHeight: Int, padding fill: Int32) -> LabelMap {
        precondition(cropWidth > 0 && cropHeight > 0, "LabelMap.cropped: an empty window \(cropWidth)x\(cropHeight)")
        return LabelMap(width: cropWidth, height: cropHeight,
                        values: PlaneGeometry.paddedCrop(values, width: width, height: height, planes: 1, x: x, y: y,
                                                         cropWidth: cropWidth, cropHeight: cropHeight, fill: fill))
    }
}
