import FuseKitTensor
import Testing

/// The AVX2 + FMA kernels agree with the portable Swift SIMD kernels (both are also checked
/// against libm and by the gradient checks, which run on whichever path the CPU selects).
@Suite struct NativeKernelTests {
    static func both<T>(_ body: () -> T) -> (native: T, portable: T) {
        (body(), NativeKernels.$portableOnly.withValue(true) { body() })
    }

    @Test func pathsAgree() {
        print("AVX2 + FMA kernels: \(NativeKernels.cpuSupportsAVX2 ? "used" : "not available on this CPU")")
        let x = Random.normal([3, 1001], seed: 1) * 3
        let b = Random.normal([3, 1001], seed: 2)
        let g = Random.normal([3, 1001], seed: 3)
        for (name, f) in [("exp", { (t: Tensor) in (t * 0.5).exp() }), ("erf", { $0.erf() }), ("gelu", { $0.gelu() }),
                          ("geluDerivative", { $0.geluDerivative() }), ("geluGate", { Tensor.geluGate($0, b) })] as [(String, (Tensor) -> Tensor)] {
            let (n, p) = Self.both { withoutGradient { f(x) } }
            expectClose(n, p, tolerance: 2e-6 * Swift.max(1, n.abs().max().item))
            _ = name
        }
        let (gradNative, gradPortable) = Self.both { valueWithGradient(at: [x, b]) { (Tensor.geluGate($0[0], $0[1]) * g).sum() }.gradients }
        expectClose(gradNative[0], gradPortable[0], tolerance: 1e-5)
        expectClose(gradNative[1], gradPortable[1], tolerance: 1e-5)
        let (tanNative, tanPortable) = Self.both { withoutGradient { jvp(at: [x, b], tangents: [g, g * 0.5]) { Tensor.geluGate($0[0], $0[1]) }.tangent } }
        expectClose(tanNative, tanPortable, tolerance: 1e-5)
        let (onlyA, onlyAPortable) = Self.both { withoutGradient { jvp(at: [x, b], tangents: [g, Tensor.zeros(b.shape)]) { Tensor.geluGate($0[0], $0[1]) }.tangent } }
        expectClose(onlyA, onlyAPortable, tolerance: 1e-5)
    }

    @Test func depthwiseConvolutionPathsAgree() {
        for (h, w) in [(9, 10), (17, 33), (4, 1), (1, 6)] {
            let x = Random.normal([2, 5, h, w], seed: 4), weight = Random.normal([5, 1, 3, 3], seed: 5), seed = Random.normal([2, 5, h, w], seed: 6)
            let (native, portable) = Self.both {
                valueWithGradient(at: [x, weight]) { (Tensor.conv2d($0[0], $0[1], padding: (1, 1), groups: 5) * seed).sum() }
            }
            #expect(Swift.abs(native.value.item - portable.value.item) < 1e-4 * Swift.max(1, Swift.abs(portable.value.item)))
            expectClose(native.gradients[0], portable.gradients[0], tolerance: 1e-4)
            expectClose(native.gradients[1], portable.gradients[1], tolerance: 1e-3)
        }
    }

    /// The AVX2 depthwise 3x3 kernel (two rows at a time, masked borders) equals the portable one
    /// element by element on every width up to three vectors, at heights with an odd last row.
    @Test func depthwiseForwardEqualsPortableElementwise() {
        let weight = Random.normal([3, 1, 3, 3], seed: 8)
        for h in [1, 2, 3, 5] {
            for w in Array(1...25) + [31, 33, 40] {
                let x = Random.normal([1, 3, h, w], seed: UInt64(100 * h + w))
                let (native, portable) = Self.both { withoutGradient { Tensor.conv2d(x, weight, padding: (1, 1), groups: 3) } }
                expectClose(native, portable, tolerance: 1e-5)
            }
        }
    }

    /// The AVX2 channel LayerNorm (eight pixels at a time, masked tails) agrees with the portable
    /// one, with and without a bias, and so do their gradients (the backward reads mean and rstd).
    @Test func channelLayerNormPathsAgree() {
        for (c, h, w) in [(5, 3, 7), (16, 9, 10), (1, 1, 3), (3, 1, 1)] {
            let x = Random.normal([2, c, h, w], seed: 9) * 2 + 0.5, weight = Random.normal([c], seed: 10), bias = Random.normal([c], seed: 11)
            let seed = Random.normal([2, c, h, w], seed: 12)
            for withBias in [true, false] {
                let (native, portable) = Self.both {
                    valueWithGradient(at: [x, weight, bias]) { xs -> Tensor in
                        (Tensor.channelLayerNorm(xs[0], weight: xs[1], bias: withBias ? xs[2] : nil, eps: 1e-5) * seed).sum()
                    }
                }
                let (forwardNative, forwardPortable) = Self.both { withoutGradient { Tensor.channelLayerNorm(x, weight: weight, bias: withBias ? bias : nil, eps: 1e-5) } }
                expectClose(forwardNative, forwardPortable, tolerance: 1e-5)
                expectClose(native.gradients[0], portable.gradients[0], tolerance: 1e-4)
                expectClose(native.gradients[1], portable.gradients[1], tolerance: 1e-4)
            }
        }
    }

    @Test func portableVectorMathAccuracy() {
        // The same sweep as vectorMathAccuracy, on the portable path.
        let xs = (0..<20001).map { Float($0 - 10000) * 0.0009 }
        let t = Tensor(xs)
        NativeKernels.$portableOnly.withValue(true) {
            let gelu = t.gelu().scalars, erf = t.erf().scalars, exp = t.exp().scalars
            for (i, x) in xs.enumerated() {
                let e = Foundation.erf(Double(x))
                #expect(Swift.abs(Double(erf[i]) - e) < 3e-7)
                #expect(Swift.abs(Double(gelu[i]) - Double(x) * 0.5 * (1 + Foundation.erf(Double(x) / 2.0.squareRoot()))) < 3e-7 * Swift.max(1, Swift.abs(Double(x))))
                #expect(Swift.abs(Double(exp[i]) - Foundation.exp(Double(x))) < 3e-7 * Swift.max(1, Foundation.exp(Double(x))))
            }
        }
    }
}
