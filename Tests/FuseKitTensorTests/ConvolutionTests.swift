import FuseKitTensor
import Testing

/// Convolution kernels against a direct reference loop, and their derivatives.
@Suite struct ConvolutionTests {
    /// Direct (slow) cross-correlation, the definition.
    static func reference(_ x: Tensor, _ w: Tensor, stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int), groups: Int) -> Tensor {
        let (n, cin, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (cout, cpg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
        let oh = (h + 2 * padding.0 - dilation.0 * (kh - 1) - 1) / stride.0 + 1
        let ow = (wd + 2 * padding.1 - dilation.1 * (kw - 1) - 1) / stride.1 + 1
        let xs = x.scalars, ws = w.scalars
        var out = [Float](repeating: 0, count: n * cout * oh * ow)
        let outPerGroup = cout / groups
        for b in 0..<n {
            for o in 0..<cout {
                let g = o / outPerGroup
                for i in 0..<oh {
                    for j in 0..<ow {
                        var s: Float = 0
                        for c in 0..<cpg {
                            let ci = g * cpg + c
                            for ky in 0..<kh {
                                for kx in 0..<kw {
                                    let iy = i * stride.0 - padding.0 + ky * dilation.0
                                    let ix = j * stride.1 - padding.1 + kx * dilation.1
                                    if iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
                                    s += xs[((b * cin + ci) * h + iy) * wd + ix] * ws[((o * cpg + c) * kh + ky) * kw + kx]
                                }
                            }
                        }
                        out[((b * cout + o) * oh + i) * ow + j] = s
                    }
                }
            }
        }
        _ = cin
        return Tensor(shape: [n, cout, oh, ow], scalars: out)
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var input: [Int], weight: [Int], stride = (1, 1), padding = (0, 0), dilation = (1, 1), groups = 1
        var testDescription: String { "x\(input) w\(weight) s\(stride) p\(padding) d\(dilation) g\(groups)" }
    }

    static let cases: [Case] = [
        Case(input: [2, 3, 7, 6], weight: [4, 3, 3, 3], padding: (1, 1)),
        Case(input: [1, 4, 9, 8], weight: [6, 2, 3, 3], stride: (2, 2), padding: (1, 1), groups: 2),
        Case(input: [2, 3, 8, 8], weight: [5, 3, 1, 1]),
        Case(input: [1, 4, 6, 7], weight: [6, 2, 1, 1], groups: 2),
        Case(input: [2, 5, 9, 10], weight: [5, 1, 3, 3], padding: (1, 1), groups: 5),  // depthwise 3x3 kernel
        Case(input: [1, 3, 9, 9], weight: [3, 1, 3, 3], stride: (2, 2), padding: (1, 1), groups: 3),
        Case(input: [1, 2, 11, 10], weight: [3, 2, 3, 2], stride: (1, 2), padding: (2, 1), dilation: (2, 1)),
        Case(input: [1, 1, 12, 13], weight: [2, 1, 7, 7], stride: (4, 4), padding: (3, 3)),
        Case(input: [2, 16, 5, 12], weight: [16, 1, 3, 3], padding: (1, 1), groups: 16),  // wide rows: SIMD path
    ]

    @Test(arguments: cases)
    func forwardMatchesDefinition(_ c: Case) {
        let x = Random.normal(c.input, seed: 1), w = Random.normal(c.weight, seed: 2)
        let y = Tensor.conv2d(x, w, stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups)
        expectClose(y, Self.reference(x, w, stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups), tolerance: 1e-4)
    }

    @Test(arguments: cases)
    func derivatives(_ c: Case) {
        let x = Random.normal(c.input, seed: 3), w = Random.normal(c.weight, seed: 4, scale: 0.5)
        expectPasses(GradientCheck.check("conv2d \(c.testDescription)", inputs: [x, w]) {
            Tensor.conv2d($0[0], $0[1], stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups)
        })
    }

    @Test func biasAndTransposedConvolution() {
        let x = Random.normal([2, 3, 5, 5], seed: 5), w = Random.normal([4, 3, 3, 3], seed: 6), b = Random.normal([4], seed: 7)
        expectPasses(GradientCheck.check("conv2d bias", inputs: [x, w, b]) { Tensor.conv2d($0[0], $0[1], bias: $0[2], padding: (1, 1)) })
        // Transposed convolution: PyTorch weight layout [Cin, Cout/groups, kH, kW].
        let xt = Random.normal([1, 4, 3, 4], seed: 8), wt = Random.normal([4, 2, 3, 3], seed: 9), bt = Random.normal([2], seed: 10)
        expectPasses(GradientCheck.check("convTranspose2d", inputs: [xt, wt, bt]) {
            Tensor.convTranspose2d($0[0], $0[1], bias: $0[2], stride: (2, 2), padding: (1, 1), outputPadding: (1, 1))
        })
        let yt = Tensor.convTranspose2d(xt, wt, stride: (2, 2), padding: (1, 1), outputPadding: (1, 1))
        #expect(yt.shape == [1, 2, 6, 8])
    }

    @Test func transposedConvolutionIsTheAdjoint() {
        // <conv(x, w), y> == <x, convT(y, w)>.
        let x = Random.normal([2, 3, 6, 5], seed: 11), w = Random.normal([4, 3, 3, 3], seed: 12)
        let y = Random.normal([2, 4, 3, 3], seed: 13)
        let lhs = (Tensor.conv2d(x, w, stride: (2, 2), padding: (1, 1)) * y).sum().item
        let back = Tensor.convTranspose2d(y, w, stride: (2, 2), padding: (1, 1), outputPadding: (1, 0))
        #expect(back.shape == x.shape)
        let rhs = (x * back).sum().item
        #expect(Swift.abs(lhs - rhs) < 1e-3 * Swift.max(1, Swift.abs(lhs)))
    }

    @Test func largeImageUsesChunkedColumns() {
        // Larger than one im2col chunk: exercises the row-chunked path against the reference.
        let x = Random.normal([1, 24, 70, 90], seed: 14), w = Random.normal([8, 24, 3, 3], seed: 15, scale: 0.2)
        let y = Tensor.conv2d(x, w, padding: (1, 1))
        expectClose(y, Self.reference(x, w, stride: (1, 1), padding: (1, 1), dilation: (1, 1), groups: 1), tolerance: 1e-3)
        let (_, grads) = valueWithGradient(at: [x, w]) { (Tensor.conv2d($0[0], $0[1], padding: (1, 1)) * y).sum() }
        let (_, chunkless) = valueWithGradient(at: [x, w]) { xs in
            // The same contraction through im2col-free pieces: a 3x3 conv as nine shifted 1x1 convs.
            var total = Tensor(0)
            for ky in 0..<3 {
                for kx in 0..<3 {
                    let shifted = xs[0].padded([(1, 1), (1, 1)]).sliced(axis: 2, ky..<(ky + 70)).sliced(axis: 3, kx..<(kx + 90))
                    let tap = xs[1].sliced(axis: 2, ky..<(ky + 1)).sliced(axis: 3, kx..<(kx + 1))
                    total = total + (Tensor.conv2d(shifted, tap) * y).sum()
                }
            }
            return total
        }
        expectClose(grads[0], chunkless[0], tolerance: 2e-3)
        expectClose(grads[1], chunkless[1], tolerance: 5e-2)
    }
}
