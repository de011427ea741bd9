import FuseKitTensor
import Testing

/// ``KinkPattern``: every piecewise op, evaluated under a held pattern, follows the piece the
/// recorded point chose, counts the elements that crossed, and the gradient check built on it
/// still catches wrong derivatives.
@Suite struct KinkPatternTests {
    /// The recorded point and a nearby one on the other side of some kinks.
    let here = Tensor(shape: [1, 1, 2, 4], scalars: [-0.3, 0.2, 5.9, -1.0, 0.05, 7.0, -0.01, 0.4])
    let there = Tensor(shape: [1, 1, 2, 4], scalars: [0.1, -0.2, 6.1, -1.1, 0.3, 6.5, 0.02, 0.45])

    /// `op` at `there` with `here`'s pattern held, and the elements that crossed.
    func held(at point: Tensor? = nil, _ op: (Tensor) -> Tensor) -> (values: [Float], crossings: Int) {
        let (_, pattern) = KinkPattern.recording { op(here) }
        let result = pattern.holding { op(point ?? there) }
        #expect(result.divergence == nil)
        return (result.value.scalars, result.crossings)
    }

    @Test func pointwiseKinksFollowTheRecordedSide() {
        let (a, b) = (here.scalars, there.scalars)
        let relu = held { $0.relu() }
        #expect(relu.values == zip(a, b).map { $0 > 0 ? $1 : 0 })
        #expect(relu.crossings == 3)

        let leaky = held { $0.leakyRelu(slope: 0.1) }
        #expect(leaky.values == zip(a, b).map { $0 > 0 ? $1 : $1 * 0.1 })

        let abs = held { $0.abs() }
        #expect(abs.values == zip(a, b).map { $0 > 0 ? $1 : -$1 })
        #expect(abs.crossings == 3)

        let relu6 = held { $0.clamped(min: 0, max: 6) }
        #expect(relu6.values == zip(a, b).map { $0 < 0 ? 0 : $0 > 6 ? 6 : $1 })
        #expect(relu6.crossings == 4)

        let comparison = held { $0.greater(0.3) }
        #expect(comparison.values == a.map { $0 > 0.3 ? 1 : 0 })
    }

    @Test func choicesFollowTheRecordedOperand() {
        let other = Tensor(shape: [1, 1, 2, 4], scalars: [0, 0, 6, 6, 0, 6, 0, 0.42])
        let (a, b, c) = (here.scalars, there.scalars, other.scalars)
        let maximum = held { Tensor.maximum($0, other) }
        #expect(maximum.values == (0..<8).map { a[$0] > c[$0] ? b[$0] : c[$0] })
        #expect(maximum.crossings > 0)
        let minimum = held { Tensor.minimum($0, other) }
        #expect(minimum.values == (0..<8).map { a[$0] < c[$0] ? b[$0] : c[$0] })
    }

    @Test func extremaKeepTheRecordedPick() {
        // Here the second row's maximum is 7.0 (column 1); there it would be 6.9 (column 3).
        let there = Tensor(shape: [1, 1, 2, 4], scalars: [0.1, -0.2, 6.1, -1.1, 0.3, 6.5, 0.02, 6.9])
        let rows = held(at: there) { $0.max(axes: [3]) }
        #expect(rows.values == [6.1, 6.5])
        #expect(rows.crossings == 2)
        #expect(held(at: there) { $0.max(axes: [2]) }.values == [0.3, 6.5, 6.1, 6.9])
        // 2x2 max pooling: here picks 7.0 and 5.9; there would pick 6.9 in the second window.
        let pooled = held(at: there) { $0.maxPool2d(kernel: (2, 2)) }
        #expect(pooled.values == [6.5, 6.1])
        #expect(pooled.crossings == 1)
        #expect(held(at: there) { $0.argmax(axis: 3) }.values == [2, 1])
    }

    @Test func anEvaluationOffTheRecordedPathIsReported() {
        let (_, pattern) = KinkPattern.recording { here.relu() }
        #expect(pattern.holding { there.relu().relu() }.divergence != nil)
        #expect(pattern.holding { there.sum(axes: [3]).relu() }.divergence != nil)
        #expect(pattern.holding { Tensor.zeros([1]) }.divergence != nil)
        #expect(pattern.holding { there.relu() }.divergence == nil)
    }

    /// Tiny ReLU inputs among large ones, so that every step crosses kinks: finite differences of
    /// the function miss the derivative there, those of the held piece do not.
    @Test func heldFiniteDifferencesAreExactAcrossKinks() {
        let near = Tensor(shape: [4, 8], scalars: Random.normal([4, 8], seed: 11).scalars.enumerated().map { $0.offset % 4 == 0 ? $0.element * 1e-4 : $0.element })
        let weights = Random.normal([4, 8], seed: 12)
        var options = GradientCheck.Options()
        options.epsilon = 1e-2
        let f: ([Tensor]) -> Tensor = { ($0[0].relu() * weights).sum(axes: [1]) + $0[0].leakyRelu().max(axes: [1]) }
        let report = GradientCheck.check("relu near kinks", inputs: [near], options: options, f)
        #expect(report.passed, "\(report)")
        #expect(report.kinkCrossings > 0)
        options.holdsKinks = false
        let plain = GradientCheck.check("relu near kinks, not held", inputs: [near], options: options, f)
        #expect(!plain.passed, "\(plain)")
    }

    /// A held pattern makes the finite differences those of the right piece, not of whatever the
    /// analytic side claims: a wrong derivative still fails.
    @Test func aWrongDerivativeStillFails() {
        let near = Tensor(shape: [16], scalars: Random.normal([16], seed: 13).scalars.enumerated().map { $0.offset % 4 == 0 ? $0.element * 1e-4 : $0.element })
        let report = GradientCheck.check("relu with a slope of 1.1", inputs: [near]) { xs in
            xs[0].relu().detached().recordedElementwise("slopedRelu", of: xs[0]) { x, _ in x.greater(0) * 1.1 }
        }
        #expect(!report.passed, "\(report)")
    }
}
