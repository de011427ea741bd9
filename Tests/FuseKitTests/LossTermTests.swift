import Foundation
import FuseKit
import Testing

/// The loss-term registry's terms and the task weightings: worked values and gradient checks.
@Suite struct LossTermTests {
    static func term(_ name: String, _ parameters: [String: ParameterValue] = [:]) throws -> any LossTerm {
        try #require(LossTermRegistry.standard.descriptor(name)).makeTerm(PluginParameters(parameters))
    }

    static func t(_ shape: [Int], _ values: [Float]) -> Tensor { Tensor(shape: shape, scalars: values) }

    static func close(_ a: Float, _ b: Double, _ tolerance: Double = 1e-6, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(Swift.abs(Double(a) - b) <= tolerance * Swift.max(1, Swift.abs(b)), "\(a) vs \(b)", sourceLocation: sourceLocation)
    }

    static func batch(infrared: Tensor, visible: Tensor, fused: Tensor, gamma: Float = 1, contrast: Float = 1) -> LossBatch {
        var b = LossBatch(infrared: infrared, visible: visible,
                          targets: FusionTargets(infrared: infrared, visible: visible, visibleGamma: gamma, infraredContrast: contrast))
        b.fused = fused
        return b
    }

    @Test func intensityTowardsTheMaximumAndTheEnhancedTargets() throws {
        let ir = Self.t([1, 1, 1, 2], [0.2, 0.8]), vis = Self.t([1, 1, 1, 2], [0.5, 0.4]), fused = Self.t([1, 1, 1, 2], [0.3, 0.6])
        // max = [0.5, 0.8]; |0.3 - 0.5| + |0.6 - 0.8| = 0.4, mean 0.2.
        Self.close(try Self.term("intensity-max")(Self.batch(infrared: ir, visible: vis, fused: fused)).item, 0.2)
        // gamma 0.5: R_v = [0.7071, 0.6325]; contrast 2: mean(I) = 0.5, R_i = clamp(2 I - 0.5) = [0, 1].
        // max = [0.7071, 1]; mean |[0.3, 0.6] - max| = (0.4071 + 0.4) / 2.
        let enhanced = Self.batch(infrared: ir, visible: vis, fused: fused, gamma: 0.5, contrast: 2)
        Self.close(try Self.term("intensity-max")(enhanced).item, (0.5.squareRoot() - 0.3 + 0.4) / 2, 1e-5)
        // A valid mask zeroes F on padding first: F' = [0.3, 0], so (0.2 + 0.8) / 2.
        var masked = Self.batch(infrared: ir, visible: vis, fused: fused)
        masked.validMask = Self.t([1, 1, 1, 2], [1, 0])
        Self.close(try Self.term("intensity-max")(masked).item, 0.5)
    }

    @Test func sobelMaxSignedAndAbsolute() throws {
        // One row of three pixels; the Sobel x response of the middle pixel of a ramp [0, 1, 2]
        // padded with zeros is 2·(2 - 0) = 4 in the middle row of a 3x3 image.
        let ramp = Self.t([1, 1, 3, 3], [0, 1, 2, 0, 1, 2, 0, 1, 2])
        let flat = Tensor.zeros([1, 1, 3, 3])
        let signed = try Self.term("sobel-max")(Self.batch(infrared: ramp, visible: flat, fused: flat)).item
        // Target = max(S ramp, S 0) per direction; F = 0, so the loss is mean(max(S ramp, 0)) per
        // direction, averaged over x and y.
        let s = Self.sobel(ramp)
        let expected = 0.5 * (s.x.map { Double(Swift.max($0, 0)) }.reduce(0, +) / 9 + s.y.map { Double(Swift.max($0, 0)) }.reduce(0, +) / 9)
        Self.close(signed, expected, 1e-5)
        let absolute = try Self.term("sobel-max", ["form": .string("absolute"), "combine": .string("sum")])(
            Self.batch(infrared: ramp, visible: flat, fused: flat)).item
        Self.close(absolute, s.x.map { Double(Swift.abs($0)) }.reduce(0, +) / 9 + s.y.map { Double(Swift.abs($0)) }.reduce(0, +) / 9, 1e-5)
    }

    /// Sobel responses with zero padding, by hand.
    static func sobel(_ image: Tensor) -> (x: [Float], y: [Float]) {
        let v = image.scalars, h = image.shape[2], w = image.shape[3]
        func at(_ y: Int, _ x: Int) -> Float { y >= 0 && y < h && x >= 0 && x < w ? v[y * w + x] : 0 }
        var gx: [Float] = [], gy: [Float] = []
        for y in 0..<h {
            for x in 0..<w {
                gx.append(-at(y - 1, x - 1) + at(y - 1, x + 1) - 2 * at(y, x - 1) + 2 * at(y, x + 1) - at(y + 1, x - 1) + at(y + 1, x + 1))
                gy.append(-at(y - 1, x - 1) - 2 * at(y - 1, x) - at(y - 1, x + 1) + at(y + 1, x - 1) + 2 * at(y + 1, x) + at(y + 1, x + 1))
            }
        }
        return (gx, gy)
    }

    @Test func colorTermComparesChroma() throws {
        let gray = Self.t([1, 3, 1, 1], [0.5, 0.5, 0.5]), red = Self.t([1, 3, 1, 1], [1, 0, 0])
        // Y(red) = 0.299; Cb = 0.564 (0 - 0.299) + 0.5, Cr = 0.713 (1 - 0.299) + 0.5; gray has 0.5, 0.5.
        let value = try Self.term("color")(Self.batch(infrared: Self.t([1, 1, 1, 1], [0.5]), visible: red, fused: gray)).item
        Self.close(value, 0.564 * 0.299 + 0.713 * 0.701, 1e-5)
    }

    @Test func ohemKeepsTheHardPixels() throws {
        // Four pixels, two classes; true-class probabilities 0.9, 0.6, 0.3, 0.8 (logit gaps).
        let p: [Double] = [0.9, 0.6, 0.3, 0.8]
        let gaps = p.map { Float(Foundation.log($0 / (1 - $0))) }
        let logits = Self.t([1, 2, 1, 4], gaps + [0, 0, 0, 0])
        var batch = Self.batch(infrared: Tensor.zeros([1, 1, 1, 4]), visible: Tensor.zeros([1, 1, 1, 4]), fused: Tensor.zeros([1, 1, 1, 4]))
        batch.labels = Tensor.zeros([1, 1, 4])
        batch.logits = logits
        // Threshold 0.7: hard pixels are those with p < 0.7 (two of them), more than min-kept 1.
        let ohem = try Self.term("ohem-cross-entropy", ["threshold": .double(0.7), "min-kept": .int(1)])(batch).item
        Self.close(ohem, (-Foundation.log(0.6) - Foundation.log(0.3)) / 2, 1e-5)
        // With min-kept 3 the three hardest are kept.
        let three = try Self.term("ohem-cross-entropy", ["threshold": .double(0.7), "min-kept": .int(3)])(batch).item
        Self.close(three, (-Foundation.log(0.6) - Foundation.log(0.3) - Foundation.log(0.8)) / 3, 1e-5)
        Self.close(try Self.term("cross-entropy")(batch).item, p.map { -Foundation.log($0) }.reduce(0, +) / 4, 1e-5)
    }

    @Test func distillationIsTemperatureScaledKL() throws {
        let student = Self.t([1, 2, 1, 1], [1, 0]), teacher = Self.t([1, 2, 1, 1], [0, 2])
        let value = Losses.distillation(student: student, teacher: teacher, temperature: 2).item
        // softmax([0, 1]) and softmax([0.5, 0]) at T = 2.
        func softmax(_ a: Double, _ b: Double) -> (Double, Double) { let m = Foundation.exp(a) + Foundation.exp(b); return (Foundation.exp(a) / m, Foundation.exp(b) / m) }
        let pt = softmax(0, 1), ps = softmax(0.5, 0)
        let kl = pt.0 * Foundation.log(pt.0 / ps.0) + pt.1 * Foundation.log(pt.1 / ps.1)
        Self.close(value, 4 * kl, 1e-5)
    }

    @Test func derivedLabels() {
        let labels = Self.t([1, 3, 3], [0, 0, 2, 0, 0, 2, 255, 0, 0])
        #expect(DerivedLabels.foreground(labels).scalars == [0, 0, 1, 0, 0, 1, 255, 0, 0])
        // A pixel is a boundary when a neighbour (3x3) has another value, an ignored one included.
        #expect(DerivedLabels.boundary(labels).scalars == [0, 1, 1, 1, 1, 1, 255, 1, 1])
    }

    @Test func dynamicWeightAverageOverTwoSteps() {
        let dwa = TaskWeighting(method: .dynamicWeightAverage(temperature: 2))
        // The first two steps weigh every group 1.
        #expect(dwa.dynamicWeights(groups: ["fusion", "task"], history: []) == ["fusion": 1, "task": 1])
        #expect(dwa.dynamicWeights(groups: ["fusion", "task"], history: [["fusion": 1, "task": 2]]) == ["fusion": 1, "task": 1])
        // Then w = L(t-1) / L(t-2): fusion 0.5 / 1 = 0.5, task 3 / 2 = 1.5; λ = 2 exp(w/2) / Σ.
        let w = dwa.dynamicWeights(groups: ["fusion", "task"], history: [["fusion": 1, "task": 2], ["fusion": 0.5, "task": 3]])
        let e1 = Foundation.exp(0.25), e2 = Foundation.exp(0.75)
        #expect(Swift.abs(w["fusion"]! - 2 * e1 / (e1 + e2)) < 1e-12 && Swift.abs(w["task"]! - 2 * e2 / (e1 + e2)) < 1e-12)
        // α-fair with α = 0.8: L -> L^0.2 / 0.2 = 5 L^0.2, weighted.
        let fair = TaskWeighting(method: .fixed, alphaFair: 0.8)
        let (total, _) = fair.combine(["fusion": Tensor(32), "task": Tensor(1)], history: [])
        Self.close(total.item, 5 * 2 + 5 * 1, 1e-5)
        // Uncertainty: exp(-s) L + s.
        let uncertainty = TaskWeighting(method: .uncertainty)
        let (u, weights) = uncertainty.combine(["a": Tensor(3)], history: [], logVariances: ["a": Tensor(Float(Foundation.log(2.0)))])
        Self.close(u.item, 1.5 + Foundation.log(2.0), 1e-6)
        #expect(Swift.abs(weights["a"]! - 0.5) < 1e-6)
    }

    @Test func masksKeepEveryCellInOneModality() {
        let generator = MaskGenerator(grid: 8)
        var rng = RandomGenerator(seed: 3)
        for _ in 0..<20 {
            let draws = (0..<6).map { _ in (0..<64).map { _ in rng.nextUniform() } }
            let cells = generator.cellMasks(p: rng.nextUniform(), swap: rng.nextUniform(), draws: draws)
            #expect(zip(cells.infrared, cells.visible).allSatisfy { $0 == 1 || $1 == 1 })
            #expect((cells.infrared + cells.visible).allSatisfy { $0 == 0 || $0 == 1 })
        }
        // p = 0.1 + 0/1.12 = 0.1: draws below 0.1 keep. All draws 0.05 keep both (A = B = 1).
        let all = generator.cellMasks(p: 0, swap: 0.9, draws: [[Float]](repeating: [Float](repeating: 0.05, count: 64), count: 6))
        #expect(all.infrared.allSatisfy { $0 == 1 } && all.visible.allSatisfy { $0 == 1 })
        // Draws of 0.5 keep nothing in A and B, and C = 0 gives the cell to B; swap >= 0.5 makes
        // (m_vi, m_ir) = (B, A), so the visible modality keeps every cell.
        let none = generator.cellMasks(p: 0, swap: 0.9, draws: [[Float]](repeating: [Float](repeating: 0.5, count: 64), count: 6))
        #expect(none.visible.allSatisfy { $0 == 1 } && none.infrared.allSatisfy { $0 == 0 })
        let unswapped = generator.cellMasks(p: 0, swap: 0.1, draws: [[Float]](repeating: [Float](repeating: 0.5, count: 64), count: 6))
        #expect(unswapped.infrared.allSatisfy { $0 == 1 } && unswapped.visible.allSatisfy { $0 == 0 })
        var r = RandomGenerator(seed: 1)
        let masks = generator.masks(batch: 2, height: 16, width: 24, using: &r)
        #expect(masks.infrared.shape == [2, 1, 16, 24])
        #expect(zip(masks.infrared.scalars, masks.visible.scalars).allSatisfy { $0 == 1 || $1 == 1 })
    }

    /// Every differentiable term has VJP and JVP checks with respect to its inputs.
    @Test(arguments: ["intensity-max", "sobel-max", "color", "ssim", "cross-entropy", "distillation", "masked-l1", "masked-gradient-l1",
                      "learnable-fusion"])
    func gradientChecks(_ name: String) throws {
        var rng = RandomGenerator(seed: 9)
        let ir = Tensor.uniform([1, 1, 6, 5], using: &rng), rgb = Tensor.uniform([1, 3, 6, 5], using: &rng)
        let labels = Tensor(shape: [1, 6, 5], scalars: (0..<30).map { Float($0 % 3) })
        let teacher = Tensor.normal([1, 3, 6, 5], using: &rng)
        let keep = Tensor(shape: [1, 1, 6, 5], scalars: (0..<30).map { $0 % 4 == 0 ? 1 : 0 })
        let term = try Self.term(name, name == "learnable-fusion" ? ["weights": .string("fixed")] : [:])
        let color = name == "color"
        let inputs: [String: Tensor] = ["fused": color ? Tensor.uniform([1, 3, 6, 5], using: &rng) : Tensor.uniform([1, 1, 6, 5], using: &rng),
                                        "logits": Tensor.normal([1, 3, 6, 5], using: &rng), "recIR": Tensor.uniform([1, 1, 6, 5], using: &rng),
                                        "recVIS": Tensor.uniform([1, 1, 6, 5], using: &rng)]
        var options = GradientCheck.Options()
        options.epsilon = 1e-3
        let report = GradientCheck.check(name, parameters: inputs, options: options) { p in
            var b = LossBatch(infrared: ir, visible: color ? rgb : FusionTargets.withChannels(rgb, 1),
                              targets: FusionTargets(infrared: ir, visible: color ? rgb : FusionTargets.withChannels(rgb, 1)))
            b.fused = p["fused"]
            b.logits = p["logits"]
            b.labels = labels
            b.teacherLogits = { _, _ in teacher }
            b.reconstruction = (p["recIR"]!, p["recVIS"]!)
            b.keepMasks = (keep, 1 - keep)
            return term(b)
        }
        #expect(report.passed, "\(report)")
    }
}
