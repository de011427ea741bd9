import FuseKitImage
import FuseKitTensor
import Testing

@Suite("Image processing")
struct ImageProcessingTests {
    @Test("gray levels: 0.299 R + 0.587 G + 0.114 B rounded; equal channels give that channel")
    func grayConversion() {
        let levels: [(Float, Float, Float)] = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (10, 200, 30), (77, 77, 77), (255, 255, 255)]
        let n = levels.count
        var pixels = [Float](repeating: 0, count: 3 * n)
        for (i, level) in levels.enumerated() {
            pixels[i] = level.0 / 255
            pixels[n + i] = level.1 / 255
            pixels[2 * n + i] = level.2 / 255
        }
        let image = Image(width: n, height: 1, channels: 3, pixels: pixels)
        let gray = image.grayLevelValues()
        #expect(gray == [76, 150, 29, 124, 77, 255])  // 76.245, 149.685, 29.07, 123.81, 77, 255
        #expect(image.grayscale().pixels == gray.map { $0 / 255 })
        #expect(image.grayLevels().values == gray)
    }

    @Test("YCrCb follows the TDFusion conventions and inverts back to RGB")
    func yCrCb() {
        let rgb = patternImage(width: 8, height: 5, channels: 3)
        let ycc = rgb.yCrCb()
        let (r, g, b) = (rgb[x: 3, y: 2, channel: 0], rgb[x: 3, y: 2, channel: 1], rgb[x: 3, y: 2, channel: 2])
        let y = 0.299 * r + 0.587 * g + 0.114 * b
        #expect(abs(ycc[x: 3, y: 2, channel: 0] - y) < 1e-6)
        #expect(abs(ycc[x: 3, y: 2, channel: 1] - (0.713 * (r - y) + 0.5)) < 1e-6)
        #expect(abs(ycc[x: 3, y: 2, channel: 2] - (0.564 * (b - y) + 0.5)) < 1e-6)
        let back = Image.rgb(fromYCrCb: ycc)
        let worst = zip(back.pixels, rgb.pixels).map { abs($0 - $1) }.max()!
        #expect(worst < 3e-3)
        let gray = patternImage(width: 4, height: 4, channels: 1).yCrCb()
        #expect(gray.plane(1).pixels.allSatisfy { $0 == 0.5 } && gray.plane(2).pixels.allSatisfy { $0 == 0.5 })
        let fused = Image.fusedChroma([0.5, 0.9, 0.2], [0.5, 0.5, 0.6])
        #expect(fused[0] == 0)  // the formula's value for two neutral inputs
        #expect(abs(fused[1] - 0.36 / 0.4001) < 1e-6)
        #expect(abs(fused[2] - (0.2 * 0.3 + 0.6 * 0.1) / 0.4001) < 1e-6)
    }

    @Test("crop, flips and quarter turns move pixels as numpy does")
    func geometry() {
        // 3 wide, 2 high: [[0, 1, 2], [3, 4, 5]]
        let image = Image(width: 3, height: 2, channels: 1, pixels: [0, 1, 2, 3, 4, 5])
        #expect(image.cropped(x: 1, y: 0, width: 2, height: 2).pixels == [1, 2, 4, 5])
        #expect(image.flippedHorizontally().pixels == [2, 1, 0, 5, 4, 3])
        #expect(image.flippedVertically().pixels == [3, 4, 5, 0, 1, 2])
        let once = image.rotated(quarterTurns: 1)  // numpy.rot90: [[2, 5], [1, 4], [0, 3]]
        #expect(once.width == 2 && once.height == 3 && once.pixels == [2, 5, 1, 4, 0, 3])
        #expect(image.rotated(quarterTurns: 2).pixels == [5, 4, 3, 2, 1, 0])
        #expect(image.rotated(quarterTurns: 3).pixels == [3, 0, 4, 1, 5, 2])
        #expect(image.rotated(quarterTurns: -1) == image.rotated(quarterTurns: 3))
        #expect(image.rotated(quarterTurns: 1).rotated(quarterTurns: 3) == image)
        let labels = LabelMap(width: 3, height: 2, values: [0, 1, 2, 3, 4, 5])
        #expect(labels.rotated(quarterTurns: 1).values == [2, 5, 1, 4, 0, 3])
        #expect(labels.flippedHorizontally().values == [2, 1, 0, 5, 4, 3])
        #expect(labels.cropped(x: 0, y: 1, width: 2, height: 1).values == [3, 4])
    }

    @Test("resize: bilinear and bicubic with half-pixel centres")
    func resize() {
        let ramp = Image(width: 4, height: 1, channels: 1, pixels: [0, 1, 2, 3])
        // Upsampling x2 (half-pixel): source x = (o + 0.5) / 2 - 0.5, clamped at 0.
        let up = ramp.resized(width: 8, height: 1, method: .bilinear)
        let expected: [Float] = [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3]
        #expect(zip(up.pixels, expected).allSatisfy { abs($0 - $1) < 1e-6 })
        // Downsampling x2 averages neighbours.
        let down = Image(width: 4, height: 2, channels: 1, pixels: [0, 2, 4, 6, 0, 2, 4, 6]).resized(width: 2, height: 1)
        #expect(down.pixels == [1, 5])
        // Bicubic (a = -0.75) on a ramp, worked by hand: at fraction t = 0.25 the weights are
        // -0.10546875, 0.87890625, 0.26171875, -0.03515625, giving x0 + 0.296875.
        let wide = Image(width: 16, height: 1, channels: 1, pixels: (0..<16).map(Float.init)).resized(width: 32, height: 1, method: .bicubic)
        #expect(abs(wide.pixels[5] - 2.296875) < 1e-5)  // source 2.25
        #expect(abs(wide.pixels[4] - 1.703125) < 1e-5)  // source 1.75
        #expect(abs(wide.pixels[0] + 0.10546875) < 1e-5)  // source -0.25: taps 0, 0, 0, 1 (replicated edge)
        let flat = Image(width: 5, height: 7, channels: 2, repeating: 0.3).resized(width: 9, height: 4, method: .bicubic)
        #expect(flat.pixels.allSatisfy { abs($0 - 0.3) < 1e-6 })
        let nearest = LabelMap(width: 4, height: 1, values: [1, 2, 3, 4]).resized(width: 2, height: 1)
        #expect(nearest.values == [1, 3])
    }

    @Test("Sobel responses with zero padding")
    func sobel() {
        // A vertical edge: columns 0, 0, 1, 1.
        let edge = Image(width: 4, height: 3, channels: 1, pixels: [0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1])
        let (gx, gy) = edge.sobel()
        #expect(gx[x: 1, y: 1] == 4 && gx[x: 2, y: 1] == 4 && gx[x: 0, y: 1] == 0)
        #expect(gx[x: 3, y: 1] == -4)  // zero padding beyond the right border
        #expect(gy[x: 1, y: 1] == 0)
        #expect(gy[x: 2, y: 0] == 3)  // zero padding above: (0 + 2 + 1) - 0
        #expect(edge.sobelMagnitude()[x: 1, y: 1] == 4)
    }

    @Test("tensor conversions keep the planar layout")
    func tensors() {
        let image = patternImage(width: 5, height: 3, channels: 3)
        let tensor = image.tensor()
        #expect(tensor.shape == [1, 3, 3, 5])
        #expect(tensor.scalars == image.pixels)
        #expect(Image(tensor: tensor) == image)
        let batch = Image.batchTensor([image, image.flippedVertically()])
        #expect(batch.shape == [2, 3, 3, 5])
        #expect(Image(batch: batch, index: 1) == image.flippedVertically())
        let gray = GrayImage(tensor: Tensor(shape: [1, 1, 2, 2], scalars: [0, 0.5, 1.2, -1]))
        #expect(gray.values == [0, 128, 255, 0])
        #expect(GrayImage(tensor: Tensor(shape: [2, 2], scalars: [0, 0.5, 1, 0.25]), quantized: false).values == [0, 127.5, 255, 63.75])
    }
}
