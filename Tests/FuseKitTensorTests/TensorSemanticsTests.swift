import FuseKitTensor
import Testing

/// Value semantics, views, broadcasting and kernel accuracy.
@Suite struct TensorSemanticsTests {
    @Test func copyOnWrite() {
        let a = Tensor(shape: [2, 2], scalars: [1, 2, 3, 4])
        var b = a
        #expect(b.sharesStorage(with: a))
        b[0, 1] = 9
        #expect(!b.sharesStorage(with: a))
        #expect(a.scalars == [1, 2, 3, 4])
        #expect(b.scalars == [1, 9, 3, 4])
        // A uniquely held tensor is mutated in place.
        var c = Tensor.zeros([3])
        let before = c
        _ = before
        c.withUnsafeMutableBufferPointer { $0[0] = 1 }
        #expect(c.scalars == [1, 0, 0])
        #expect(before.scalars == [0, 0, 0])
    }

    @Test func reshapeIsAViewAndMutationDoesNotLeak() {
        let a = Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        var r = a.reshaped([3, 2])
        #expect(r.sharesStorage(with: a))
        #expect(r[2, 1] == 6)
        r[0, 0] = -1
        #expect(a[0, 0] == 1)
        #expect(r.scalars == [-1, 2, 3, 4, 5, 6])
        #expect(a.reshaped([-1]).shape == [6])
        #expect(a.flattened().shape == [6])
        #expect(a.unsqueezed(at: 0).shape == [1, 2, 3])
        #expect(a.unsqueezed(at: -1).shape == [2, 3, 1])
    }

    @Test func mutationDetachesFromTheGraph() {
        var x = Tensor([1, 2]).requiringGradient()
        #expect(x.isTracked)
        x[0] = 5
        #expect(!x.isTracked)
    }

    @Test func permuteAndTranspose() {
        let a = Tensor(shape: [2, 3, 4], scalars: (0..<24).map(Float.init))
        let p = a.permuted([2, 0, 1])
        #expect(p.shape == [4, 2, 3])
        for i in 0..<4 { for j in 0..<2 { for k in 0..<3 { #expect(p[i, j, k] == a[j, k, i]) } } }
        let t = a.transposed(1, 2)
        #expect(t.shape == [2, 4, 3])
        #expect(t[1, 3, 2] == a[1, 2, 3])
        // A large batched transpose takes the tiled path.
        let big = Random.normal([3, 70, 45], seed: 1)
        let bt = big.transposed()
        #expect(bt[2, 44, 69] == big[2, 69, 44])
        #expect(bt[1, 13, 5] == big[1, 5, 13])
        #expect(bt.transposed().scalars == big.scalars)
    }

    @Test func broadcasting() {
        let a = Tensor(shape: [2, 1, 3], scalars: [1, 2, 3, 4, 5, 6])
        let b = Tensor(shape: [4, 1], scalars: [10, 20, 30, 40])
        let c = a + b
        #expect(c.shape == [2, 4, 3])
        #expect(c[1, 2, 0] == 34)
        #expect(c[0, 3, 2] == 43)
        let row = Tensor([1, 2, 3])
        #expect((a * row).scalars == [1, 4, 9, 4, 10, 18])
        #expect((Tensor(2) * row).scalars == [2, 4, 6])
        // Large broadcasts split over cores and row chunks.
        let big = Random.normal([2, 8, 130, 170], seed: 2)
        let scale = Random.normal([1, 8, 1, 1], seed: 3)
        let y = big * scale
        #expect(y[1, 5, 129, 169] == big[1, 5, 129, 169] * scale[0, 5, 0, 0])
        #expect(y[0, 7, 64, 3] == big[0, 7, 64, 3] * scale[0, 7, 0, 0])
        // Gradients of broadcasts sum back to the operand's shape.
        let (_, g) = valueWithGradient(at: [a, b]) { ($0[0] + $0[1]).sum() }
        #expect(g[0].scalars == [4, 4, 4, 4, 4, 4])
        #expect(g[1].scalars == [6, 6, 6, 6])
    }

    @Test func sliceConcatPad() {
        let a = Tensor(shape: [2, 4], scalars: [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(a.sliced(axis: 1, 1..<3).scalars == [2, 3, 6, 7])
        #expect(a.sliced(axis: 0, 1..<2).scalars == [5, 6, 7, 8])
        #expect(Tensor.concat([a, a.sliced(axis: 1, 0..<1)], axis: 1).scalars == [1, 2, 3, 4, 1, 5, 6, 7, 8, 5])
        #expect(a.padded(axis: 1, before: 1, after: 0, value: -1).scalars == [-1, 1, 2, 3, 4, -1, 5, 6, 7, 8])
        let parts = a.split(sizes: [1, 3], axis: 1)
        #expect(parts[1].scalars == [2, 3, 4, 6, 7, 8])
    }

    @Test func reductionsMatchDirectSums() {
        let x = Random.normal([3, 50, 70], seed: 4)
        let v = x.scalars
        let s = x.sum(axes: [0, 2])
        for j in [0, 17, 49] {
            var d = 0.0
            for i in 0..<3 { for k in 0..<70 { d += Double(v[(i * 50 + j) * 70 + k]) } }
            #expect(Swift.abs(Double(s[j]) - d) < 1e-4)
        }
        let big = Random.normal([300_001], seed: 5)
        let exact = big.scalars.reduce(0.0) { $0 + Double($1) }
        #expect(Swift.abs(Double(big.sum().item) - exact) < 1e-3)
        #expect(x.max(axes: [1]).shape == [3, 70])
        #expect(Tensor([3, 1, 4, 1, 5]).max().item == 5)
        #expect(Tensor([3, 1, 4, 1, 5]).min().item == 1)
        #expect(Tensor(shape: [2, 3], scalars: [1, 7, 3, 9, 2, 8]).argmax(axis: 1).scalars == [1, 0])
        let variance = Tensor([1, 2, 3, 4]).variance()
        #expect(Swift.abs(variance.item - 1.25) < 1e-6)
    }

    @Test func vectorMathAccuracy() {
        // Dense sweep against libm in Double.
        let xs = (0..<20001).map { Float($0 - 10000) * 0.0009 }
        let t = Tensor(xs)
        let checks: [(String, Tensor, (Double) -> Double, Double)] = [
            ("exp", t.exp(), { Foundation.exp($0) }, 3e-7),
            ("tanh", t.tanh(), { Foundation.tanh($0) }, 3e-7),
            ("sigmoid", t.sigmoid(), { 1 / (1 + Foundation.exp(-$0)) }, 3e-7),
            ("erf", t.erf(), { Foundation.erf($0) }, 3e-7),
            ("gelu", t.gelu(), { $0 * 0.5 * (1 + Foundation.erf($0 / 2.0.squareRoot())) }, 3e-7),
            ("softplus", t.softplus(), { Foundation.log1p(Foundation.exp($0)) }, 3e-7),
        ]
        for (name, y, f, tolerance) in checks {
            var worst = 0.0
            let ys = y.scalars
            for (i, x) in xs.enumerated() {
                let exact = f(Double(x))
                worst = Swift.max(worst, Swift.abs(Double(ys[i]) - exact) / Swift.max(1, Swift.abs(exact)))
            }
            #expect(worst < tolerance, "\(name): worst error \(worst)")
        }
        let positive = Tensor((1..<20000).map { Float($0) * 0.013 })
        let logs = positive.log().scalars
        for (i, x) in positive.scalars.enumerated() {
            #expect(Swift.abs(Double(logs[i]) - Foundation.log(Double(x))) < 3e-7 * Swift.max(1, Swift.abs(Foundation.log(Double(x)))))
        }
        #expect(Tensor([0]).log().item == -.infinity)
        #expect(Tensor([-1]).log().item.isNaN)
        #expect(Tensor([100]).exp().item == .infinity)
        #expect(Tensor([-100]).exp().item == 0)
        #expect(Tensor([.nan]).exp().item.isNaN)
    }

    @Test func creation() {
        #expect(Tensor.arange(0, 5).scalars == [0, 1, 2, 3, 4])
        #expect(Tensor.arange(1, 2, step: 0.25).scalars == [1, 1.25, 1.5, 1.75])
        #expect(Tensor.eye(2).scalars == [1, 0, 0, 1])
        #expect(Tensor.full([2], 3).scalars == [3, 3])
        var r1 = RandomGenerator(seed: 7), r2 = RandomGenerator(seed: 7)
        #expect(Tensor.normal([10], using: &r1).scalars == Tensor.normal([10], using: &r2).scalars)
        let u = Tensor.uniform([1000], low: 2, high: 3, using: &r1).scalars
        #expect(u.allSatisfy { $0 >= 2 && $0 < 3 })
        let n = Tensor.normal([20000], using: &r1)
        #expect(Swift.abs(n.mean().item) < 0.03)
        #expect(Swift.abs(n.variance().item - 1) < 0.05)
        let saved = r1.state
        let a = r1.next()
        var restored = RandomGenerator(state: saved)
        #expect(restored.next() == a)
    }
}

#if canImport(Glibc)
import Glibc
enum Foundation {
    static func exp(_ x: Double) -> Double { Glibc.exp(x) }
    static func tanh(_ x: Double) -> Double { Glibc.tanh(x) }
    static func erf(_ x: Double) -> Double { Glibc.erf(x) }
    static func log(_ x: Double) -> Double { Glibc.log(x) }
    static func log1p(_ x: Double) -> Double { Glibc.log1p(x) }
}
#endif
