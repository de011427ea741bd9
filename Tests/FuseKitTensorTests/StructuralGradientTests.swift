import FuseKitTensor
import Testing

/// VJP, JVP and dot-product identity of shape, reduction, matrix and indexing ops.
@Suite struct StructuralGradientTests {
    let x = Random.normal([2, 3, 4], seed: 11)

    @Test func shapes() {
        expectPasses(GradientCheck.check("reshape", inputs: [x]) { $0[0].reshaped([6, -1]) * Random.normal([6, 4], seed: 1) })
        expectPasses(GradientCheck.check("permute", inputs: [x]) { $0[0].permuted([2, 0, 1]) })
        expectPasses(GradientCheck.check("transpose", inputs: [x]) { $0[0].transposed(0, 2) })
        expectPasses(GradientCheck.check("slice", inputs: [x]) { $0[0].sliced(axis: 2, 1..<3) })
        expectPasses(GradientCheck.check("pad", inputs: [x]) { $0[0].padded(axis: 1, before: 2, after: 1, value: 0.5) })
        expectPasses(GradientCheck.check("concat", inputs: [x, Random.normal([2, 1, 4], seed: 2)]) { Tensor.concat([$0[0], $0[1]], axis: 1) })
        expectPasses(GradientCheck.check("chunk", inputs: [x]) { xs in
            let parts = xs[0].chunked(2, axis: 2)
            return parts[0] * parts[1]
        })
        expectPasses(GradientCheck.check("stack", inputs: [x, x * 2]) { Tensor.stack([$0[0], $0[1]], axis: 1) })
        expectPasses(GradientCheck.check("expand", inputs: [Random.normal([3, 1], seed: 3)]) { $0[0].expanded(to: [2, 3, 5]) })
        expectPasses(GradientCheck.check("summed(toShape:)", inputs: [x]) { $0[0].summed(toShape: [3, 1]) })
        let image = Random.normal([1, 8, 2, 3], seed: 4)
        expectPasses(GradientCheck.check("pixelShuffle", inputs: [image]) { $0[0].pixelShuffle(2) })
        expectPasses(GradientCheck.check("pixelUnshuffle", inputs: [Random.normal([1, 2, 4, 6], seed: 5)]) { $0[0].pixelUnshuffle(2) })
    }

    @Test func reductions() {
        expectPasses(GradientCheck.check("sum all", inputs: [x]) { $0[0].sum() })
        expectPasses(GradientCheck.check("sum axes", inputs: [x]) { $0[0].sum(axes: [0, 2]) })
        expectPasses(GradientCheck.check("sum keepDims", inputs: [x]) { $0[0].sum(axes: [1], keepDims: true) })
        expectPasses(GradientCheck.check("mean", inputs: [x]) { $0[0].mean(axes: [-1]) })
        expectPasses(GradientCheck.check("max", inputs: [x]) { $0[0].max(axes: [1]) })
        expectPasses(GradientCheck.check("min", inputs: [x]) { $0[0].min(axes: [0, 2], keepDims: true) })
        expectPasses(GradientCheck.check("variance", inputs: [x]) { $0[0].variance(axes: [2]) })
        expectPasses(GradientCheck.check("variance unbiased", inputs: [x]) { $0[0].variance(axes: [0, 1], correction: 1, keepDims: true) })
        expectPasses(GradientCheck.check("norm", inputs: [x]) { $0[0].norm(axes: [2]) })
        expectPasses(GradientCheck.check("l2Normalized", inputs: [x]) { $0[0].l2Normalized(axis: -1) })
    }

    @Test func matrixProducts() {
        let a = Random.normal([3, 4], seed: 21), b = Random.normal([4, 5], seed: 22)
        expectPasses(GradientCheck.check("matmul", inputs: [a, b]) { Tensor.matmul($0[0], $0[1]) })
        let at = Random.normal([4, 3], seed: 23), bt = Random.normal([5, 4], seed: 24)
        expectPasses(GradientCheck.check("matmul Aᵀ", inputs: [at, b]) { Tensor.matmul($0[0], $0[1], transposeA: true) })
        expectPasses(GradientCheck.check("matmul Bᵀ", inputs: [a, bt]) { Tensor.matmul($0[0], $0[1], transposeB: true) })
        expectPasses(GradientCheck.check("matmul AᵀBᵀ", inputs: [at, bt]) { Tensor.matmul($0[0], $0[1], transposeA: true, transposeB: true) })
        let ba = Random.normal([2, 3, 3, 4], seed: 25), bb = Random.normal([2, 3, 4, 2], seed: 26)
        expectPasses(GradientCheck.check("batched matmul", inputs: [ba, bb]) { Tensor.matmul($0[0], $0[1]) })
        expectPasses(GradientCheck.check("batched x shared", inputs: [ba, b]) { Tensor.matmul($0[0], $0[1]) })
        expectPasses(GradientCheck.check("batched Aᵀ x shared", inputs: [Random.normal([2, 4, 3], seed: 27), b]) {
            Tensor.matmul($0[0], $0[1], transposeA: true)
        })
        expectPasses(GradientCheck.check("shared x batched", inputs: [a, Random.normal([2, 4, 5], seed: 28)]) { Tensor.matmul($0[0], $0[1]) })
    }

    @Test func softmaxes() {
        expectPasses(GradientCheck.check("softmax last", inputs: [x]) { $0[0].softmax(axis: -1) })
        expectPasses(GradientCheck.check("softmax middle", inputs: [x]) { $0[0].softmax(axis: 1) })
        expectPasses(GradientCheck.check("logSoftmax last", inputs: [x]) { $0[0].logSoftmax(axis: -1) })
        expectPasses(GradientCheck.check("logSoftmax middle", inputs: [x]) { $0[0].logSoftmax(axis: 1) })
    }

    @Test func indexing() {
        let index = Tensor(shape: [2, 2, 4], scalars: [0, 2, 1, 1, 2, 0, 0, 1, 1, 1, 2, 0, 0, 0, 2, 2])
        expectPasses(GradientCheck.check("gather", inputs: [x]) { $0[0].gather(axis: 1, index: index) })
        let flat = IndexBuffer([0, 5, 5, 23, 7])
        expectPasses(GradientCheck.check("gatherFlat", inputs: [x]) { $0[0].gatherFlat(flat, shape: [5]) })
        expectPasses(GradientCheck.check("scatterAddFlat", inputs: [Random.normal([5], seed: 31)]) { $0[0].scatterAddFlat(flat, shape: [2, 3, 4]) })
        #expect(Tensor.oneHot(Tensor([2, 0]), classes: 3).scalars == [0, 0, 1, 1, 0, 0])
    }

    @Test func pooling() {
        // Distinct, well separated values so the max location is stable under small steps.
        let values = (0..<50).map { Float(($0 * 37) % 50) * 0.1 }
        let image = Tensor(shape: [1, 2, 5, 5], scalars: values)
        expectPasses(GradientCheck.check("maxPool2d", inputs: [image]) { $0[0].maxPool2d(kernel: (3, 3), stride: (2, 2), padding: (1, 1)) })
        expectPasses(GradientCheck.check("maxPool2d SPPF", inputs: [image]) { $0[0].maxPool2d(kernel: (5, 5), stride: (1, 1), padding: (2, 2)) })
        let smooth = Random.normal([1, 2, 5, 6], seed: 32)
        expectPasses(GradientCheck.check("avgPool2d", inputs: [smooth]) { $0[0].avgPool2d(kernel: (2, 2)) })
        expectPasses(GradientCheck.check("avgPool2d padded", inputs: [smooth]) {
            $0[0].avgPool2d(kernel: (3, 3), stride: (2, 2), padding: (1, 1), ceilMode: true, countIncludePad: false)
        })
    }

    @Test func resizing() {
        let image = Random.normal([1, 2, 4, 5], seed: 33)
        expectPasses(GradientCheck.check("bilinear up", inputs: [image]) { $0[0].resizedBilinear(to: (7, 9)) })
        expectPasses(GradientCheck.check("bilinear down", inputs: [image]) { $0[0].resizedBilinear(to: (3, 2)) })
        expectPasses(GradientCheck.check("bilinear align corners", inputs: [image]) { $0[0].resizedBilinear(to: (6, 8), alignCorners: true) })
        expectPasses(GradientCheck.check("nearest", inputs: [image]) { $0[0].resizedNearest(to: (8, 7)) })
    }

    @Test func losses() {
        let logits = Random.normal([2, 4, 3, 3], seed: 41)
        var labels = (0..<18).map { Float($0 % 4) }
        labels[3] = 255
        labels[10] = 255
        let targets = Tensor(shape: [2, 3, 3], scalars: labels)
        expectPasses(GradientCheck.check("crossEntropy ignore", inputs: [logits]) {
            Losses.crossEntropy(logits: $0[0], targets: targets, ignoreIndex: 255)
        })
        expectPasses(GradientCheck.check("crossEntropy weighted", inputs: [logits]) {
            Losses.crossEntropy(logits: $0[0], targets: targets, ignoreIndex: 255, classWeights: Tensor([1, 2, 0.5, 1]))
        })
        let probabilities = Random.uniform([2, 4, 3, 3], seed: 42, 0, 1)
        expectPasses(GradientCheck.check("bceWithLogits", inputs: [logits]) {
            Losses.binaryCrossEntropyWithLogits(logits: $0[0], targets: probabilities)
        })
        expectPasses(GradientCheck.check("bceWithLogits posWeight", inputs: [logits]) {
            Losses.binaryCrossEntropyWithLogits(logits: $0[0], targets: probabilities, positiveWeight: Tensor([2, 1, 1]))
        })
        let target = Random.normal([2, 5], seed: 43).softmax(axis: 1)
        expectPasses(GradientCheck.check("klDivergence", inputs: [Random.normal([2, 5], seed: 44)]) {
            Losses.klDivergence(logInput: $0[0].logSoftmax(axis: 1), target: target)
        })
        let b = Random.normal([2, 5], seed: 45)
        expectPasses(GradientCheck.check("mse", inputs: [Random.normal([2, 5], seed: 46), b]) { Losses.mse($0[0], $0[1]) })
        expectPasses(GradientCheck.check("l1", inputs: [b + Random.awayFromZero([2, 5], seed: 47), b]) { Losses.l1($0[0], $0[1]) })
    }

    @Test func crossEntropyMatchesHandComputation() {
        // Two samples, three classes; the second is ignored.
        let logits = Tensor(shape: [2, 3], scalars: [1, 2, 3, 0, 0, 0])
        let loss = Losses.crossEntropy(logits: logits, targets: Tensor([2, 255]), ignoreIndex: 255)
        let expected = -(3 - Float.log(Float.exp(1) + Float.exp(2) + Float.exp(3)))
        #expect(Swift.abs(loss.item - expected) < 1e-6)
    }
}

extension Float {
    static func log(_ x: Float) -> Float { Float(Foundation_log(Double(x))) }
    static func exp(_ x: Float) -> Float { Float(Foundation_exp(Double(x))) }
}

#if canImport(Glibc)
import Glibc
private func Foundation_log(_ x: Double) -> Double { Glibc.log(x) }
private func Foundation_exp(_ x: Double) -> Double { Glibc.exp(x) }
#endif
