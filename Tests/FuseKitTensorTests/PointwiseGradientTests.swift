import FuseKitTensor
import Testing

/// VJP, JVP and dot-product identity of every pointwise and arithmetic op.
@Suite struct PointwiseGradientTests {
    let x = Random.normal([3, 4], seed: 1)
    let positive = Random.uniform([3, 4], seed: 2, 0.5, 2)
    let apart = Random.awayFromZero([3, 4], seed: 3)

    @Test func arithmetic() {
        let b = Random.normal([3, 4], seed: 4)
        let row = Random.normal([4], seed: 5)
        let col = Random.uniform([3, 1], seed: 6, 0.5, 2)
        expectPasses(GradientCheck.check("add", inputs: [x, b]) { $0[0] + $0[1] })
        expectPasses(GradientCheck.check("add broadcast", inputs: [x, row]) { $0[0] + $0[1] })
        expectPasses(GradientCheck.check("subtract broadcast", inputs: [row, x]) { $0[0] - $0[1] })
        expectPasses(GradientCheck.check("multiply broadcast", inputs: [x, col]) { $0[0] * $0[1] })
        expectPasses(GradientCheck.check("divide broadcast", inputs: [x, col]) { $0[0] / $0[1] })
        expectPasses(GradientCheck.check("negate", inputs: [x]) { -$0[0] })
        expectPasses(GradientCheck.check("scalar forms", inputs: [x]) { 2 * $0[0] - 1 + $0[0] / 4 })
    }

    @Test func elementary() {
        expectPasses(GradientCheck.check("exp", inputs: [x]) { $0[0].exp() })
        expectPasses(GradientCheck.check("log", inputs: [positive]) { $0[0].log() })
        expectPasses(GradientCheck.check("sqrt", inputs: [positive]) { $0[0].sqrt() })
        expectPasses(GradientCheck.check("rsqrt", inputs: [positive]) { $0[0].rsqrt() })
        expectPasses(GradientCheck.check("pow 3", inputs: [x]) { $0[0].pow(3) })
        expectPasses(GradientCheck.check("pow 2.5", inputs: [positive]) { $0[0].pow(2.5) })
        expectPasses(GradientCheck.check("pow tensor", inputs: [positive, x]) { $0[0].pow($0[1]) })
        expectPasses(GradientCheck.check("abs", inputs: [apart]) { $0[0].abs() })
        expectPasses(GradientCheck.check("erf", inputs: [x]) { $0[0].erf() })
    }

    @Test func activations() {
        expectPasses(GradientCheck.check("relu", inputs: [apart]) { $0[0].relu() })
        expectPasses(GradientCheck.check("leakyRelu", inputs: [apart]) { $0[0].leakyRelu(slope: 0.1) })
        let w = Tensor([0.25, -0.5, 1.5])
        let image = Random.awayFromZero([2, 3, 2, 2], seed: 7)
        expectPasses(GradientCheck.check("prelu per channel", inputs: [image, w]) { $0[0].prelu($0[1]) })
        expectPasses(GradientCheck.check("prelu shared", inputs: [apart, Tensor([0.25])]) { $0[0].prelu($0[1]) })
        expectPasses(GradientCheck.check("gelu", inputs: [x]) { $0[0].gelu() })
        expectPasses(GradientCheck.check("geluDerivative", inputs: [x]) { $0[0].geluDerivative() })
        expectPasses(GradientCheck.check("sigmoid", inputs: [x]) { $0[0].sigmoid() })
        expectPasses(GradientCheck.check("tanh", inputs: [x]) { $0[0].tanh() })
        expectPasses(GradientCheck.check("silu", inputs: [x]) { $0[0].silu() })
        expectPasses(GradientCheck.check("softplus", inputs: [x * 3]) { $0[0].softplus() })
    }

    @Test func selections() {
        let b = Random.normal([3, 4], seed: 8)
        // Inputs apart from each other so no tie falls inside the finite-difference step.
        let a = b + Random.awayFromZero([3, 4], seed: 9)
        expectPasses(GradientCheck.check("maximum", inputs: [a, b]) { Tensor.maximum($0[0], $0[1]) })
        expectPasses(GradientCheck.check("minimum", inputs: [a, b]) { Tensor.minimum($0[0], $0[1]) })
        let cond = x.greater(0)
        expectPasses(GradientCheck.check("select", inputs: [a, b]) { Tensor.select(cond, $0[0], $0[1]) })
        expectPasses(GradientCheck.check("masked", inputs: [a]) { Tensor.masked($0[0], cond) })
        let spread = Tensor(shape: [3, 4], scalars: (0..<12).map { Float($0) * 0.3 - 1.7 })
        expectPasses(GradientCheck.check("clamp", inputs: [spread]) { $0[0].clamped(min: -0.55, max: 1.05) })
    }

    @Test func maximumSplitsTiesLikePyTorch() {
        let a = Tensor([1, 2, 3]), b = Tensor([1, 5, 0])
        let (_, g) = valueWithGradient(at: [a, b]) { Tensor.maximum($0[0], $0[1]).sum() }
        #expect(g[0].scalars == [0.5, 0, 1])
        #expect(g[1].scalars == [0.5, 1, 0])
    }

    @Test func selectRoutesGradientToTheChosenSide() {
        let a = Tensor([1, 2, 3]), b = Tensor([4, 5, 6])
        let cond = Tensor([1, 0, 1])
        let (_, g) = valueWithGradient(at: [a, b]) { xs in (Tensor.select(cond, xs[0], xs[1]) * Tensor([1, 2, 3])).sum() }
        #expect(g[0].scalars == [1, 0, 3])
        #expect(g[1].scalars == [0, 2, 0])
    }
}
