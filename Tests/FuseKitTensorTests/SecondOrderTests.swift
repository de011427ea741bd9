import FuseKitTensor
import Testing

/// Gradients of gradients and gradients of JVPs.
@Suite struct SecondOrderTests {
    /// Per-pixel LayerNorm over channels (as the Restormer blocks use), from primitives.
    static func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor) -> Tensor {
        let mu = x.mean(axis: 1, keepDims: true)
        let centered = x - mu
        let variance = (centered * centered).mean(axis: 1, keepDims: true)
        let c = x.shape[1]
        return centered * (variance + 1e-5).rsqrt() * weight.reshaped([1, c, 1, 1]) + bias.reshaped([1, c, 1, 1])
    }

    /// A small conv + GELU + LayerNorm + depthwise network with a scalar loss.
    static func network(_ p: [Tensor]) -> Tensor {
        let (x, w1, w2, lnW, lnB) = (p[0], p[1], p[2], p[3], p[4])
        var h = Tensor.conv2d(x, w1, padding: (1, 1)).gelu()
        h = layerNorm(h, weight: lnW, bias: lnB)
        h = Tensor.conv2d(h, w2, padding: (1, 1), groups: 4)
        return (h * h).mean() + h.sigmoid().sum() * 0.1
    }

    static let inputs: [Tensor] = [
        Random.normal([2, 2, 5, 4], seed: 1),
        Random.normal([4, 2, 3, 3], seed: 2, scale: 0.4),
        Random.normal([4, 1, 3, 3], seed: 3, scale: 0.4),
        Random.uniform([4], seed: 4, 0.5, 1.5),
        Random.normal([4], seed: 5, scale: 0.1),
    ]

    @Test func hessianVectorProductAndGradientOfJVP() {
        let report = GradientCheck.checkSecondOrder("conv+GELU+LayerNorm", inputs: Self.inputs, Self.network)
        expectPasses(report)
        print(report)
    }

    @Test func secondDerivativesOfPrimitives() {
        let x = Random.normal([3, 4], seed: 6)
        let positive = Random.uniform([3, 4], seed: 7, 0.5, 2)
        let checks: [(String, Tensor, ([Tensor]) -> Tensor)] = [
            ("exp·tanh", x, { ($0[0].exp() * $0[0].tanh()).sum() }),
            ("gelu", x, { $0[0].gelu().pow(2).sum() }),
            ("erf·sigmoid", x, { ($0[0].erf() * $0[0].sigmoid()).sum() }),
            ("silu", x, { $0[0].silu().pow(3).sum() }),
            ("softmax", x, { ($0[0].softmax(axis: 1) * Tensor([1, 2, 3, 4])).sum() * $0[0].sum() }),
            ("logSoftmax", x, { $0[0].logSoftmax(axis: 0).pow(2).sum() }),
            ("log·sqrt·rsqrt", positive, { ($0[0].log() * $0[0].sqrt() + $0[0].rsqrt()).sum() }),
            ("divide", positive, { (Tensor(1) / ($0[0] + 1) * $0[0]).sum() }),
            ("l2Normalized", x, { ($0[0].l2Normalized(axis: 1) * Tensor([1, -2, 3, 0.5])).sum() }),
            ("matmul", x, { Tensor.matmul($0[0], $0[0], transposeB: true).pow(2).sum() }),
            ("variance", x, { $0[0].variance(axes: [1]).pow(2).sum() }),
            ("bilinear", Random.normal([1, 1, 3, 4], seed: 8), { $0[0].resizedBilinear(to: (5, 7)).pow(3).sum() }),
            ("softplus", x, { $0[0].softplus().pow(2).sum() }),
        ]
        for (name, input, f) in checks {
            expectPasses(GradientCheck.checkSecondOrder(name, inputs: [input], f))
        }
    }

    @Test func gradientOfGradientMatchesClosedForm() {
        // f(x) = sum(x³): ∇f = 3x², and d/dx ⟨∇f, v⟩ = 6 x v.
        let x = Tensor([1, -2, 0.5]), v = Tensor([1, 1, 2])
        let (_, g) = valueWithGradient(at: [x]) { xs in
            let inner = gradients(of: xs[0].pow(3).sum(), wrt: xs, createGraph: true)[0]
            return (inner * v).sum()
        }
        #expect(g[0].scalars == [6, -12, 6])
    }

    @Test func gradientOfJVPMatchesClosedForm() {
        // f(x) = x ⊙ x: J v = 2 x ⊙ v, and ∇ₓ sum(J v) = 2 v.
        let x = Tensor([1, -2, 3]).requiringGradient(), v = Tensor([0.5, 1, -1])
        let (_, jv) = jvp(at: [x], tangents: [v]) { $0[0] * $0[0] }
        let g = gradients(of: jv.sum(), wrt: [x])[0]
        #expect(g.scalars == [1, 2, -2])
    }

    @Test func checkerCatchesAWrongRule() {
        // A primitive whose pullback and tangent are deliberately off by 10%.
        func wrongSquare(_ x: Tensor) -> Tensor {
            let y = withoutGradient { x.detached() * x.detached() }
            return y.recorded(op: "wrongSquare", inputs: [x], pullback: { g, _, _ in [g * x * 2.2] },
                              tangent: { t, _ in t[0].map { $0 * x * 2.2 } })
        }
        let report = GradientCheck.check("wrongSquare", inputs: [Random.normal([5], seed: 9)]) { wrongSquare($0[0]) }
        #expect(!report.passed)
        #expect(report.vjpError > 0.05 && report.jvpError > 0.05)

        // Consistent with itself (identity holds) but a wrong tangent alone is also caught.
        func wrongTangent(_ x: Tensor) -> Tensor {
            let y = withoutGradient { x.detached() * x.detached() }
            return y.recorded(op: "wrongTangent", inputs: [x], pullback: { g, _, _ in [g * x * 2] },
                              tangent: { t, _ in t[0].map { $0 * x } })
        }
        let second = GradientCheck.check("wrongTangent", inputs: [Random.normal([5], seed: 10)]) { wrongTangent($0[0]) }
        #expect(!second.passed)
        #expect(second.vjpError < 1e-2 && second.identityError > 0.1)
    }
}

/// Fused operations: equal to their composite definitions, and differentiable to second order.
@Suite struct FusedOpTests {
    @Test func channelLayerNormMatchesCompositeAndDifferentiates() {
        let x = Random.normal([2, 5, 3, 4], seed: 1) * 2 + 0.5
        let w = Random.uniform([5], seed: 2, 0.5, 1.5), b = Random.normal([5], seed: 3)
        let fused = Tensor.channelLayerNorm(x, weight: w, bias: b, eps: 1e-5)
        let mean = x.mean(axis: 1, keepDims: true)
        let variance = ((x - mean) * (x - mean)).mean(axis: 1, keepDims: true)
        let composite = (x - mean) / (variance + 1e-5).sqrt() * w.reshaped([1, 5, 1, 1]) + b.reshaped([1, 5, 1, 1])
        expectClose(fused, composite, tolerance: 2e-6)
        expectPasses(GradientCheck.check("channelLayerNorm", inputs: [x, w, b]) { Tensor.channelLayerNorm($0[0], weight: $0[1], bias: $0[2], eps: 1e-5) })
        expectPasses(GradientCheck.check("channelLayerNorm no bias", inputs: [x, w]) { Tensor.channelLayerNorm($0[0], weight: $0[1], bias: nil, eps: 1e-5) })
        let u = Random.normal([2, 5, 3, 4], seed: 4)
        expectPasses(GradientCheck.checkSecondOrder("channelLayerNorm", inputs: [x, w, b]) {
            (Tensor.channelLayerNorm($0[0], weight: $0[1], bias: $0[2], eps: 1e-5).tanh() * u).sum()
        })
    }

    @Test func geluGateMatchesCompositeAndDifferentiates() {
        let a = Random.normal([2, 3, 4, 5], seed: 5), b = Random.normal([2, 3, 4, 5], seed: 6)
        expectClose(Tensor.geluGate(a, b), a.gelu() * b, tolerance: 1e-6)
        expectPasses(GradientCheck.check("geluGate", inputs: [a, b]) { Tensor.geluGate($0[0], $0[1]) })
        expectPasses(GradientCheck.checkSecondOrder("geluGate", inputs: [a, b]) { Tensor.geluGate($0[0], $0[1]).pow(2).sum() })
    }
}
