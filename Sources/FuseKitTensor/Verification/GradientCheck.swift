/// Checks a function's reverse-mode (VJP) and forward-mode (JVP) derivatives against central
/// finite differences, like `torch.autograd.gradcheck`, and their mutual consistency through the
/// dot-product identity ⟨u, J v⟩ = ⟨Jᵀ u, v⟩. Plugins use it on their layers.
///
/// ```swift
/// let report = GradientCheck.check("gelu", inputs: [x]) { $0[0].gelu() }
/// #expect(report.passed, "\(report)")
/// ```
///
/// The function is evaluated in Float32, so finite differences are accurate to about 1e-4 of the
/// output's scale. They hold the check point's side of every kink (``KinkPattern``), so a step
/// that crosses a ReLU's or a maximum's kink does not spoil them; the report counts such
/// crossings. The check point itself should still lie off the kinks (no ReLU input exactly 0, no
/// ties in a max), where the derivative is one-sided.
public enum GradientCheck {
    /// Tolerances and sampling.
    public struct Options: Sendable {
        /// Finite-difference step along a random direction scaled to each input's RMS size
        /// (Richardson-extrapolated from steps epsilon and epsilon/2).
        public var epsilon: Float = 1e-2
        /// Largest accepted relative error between analytic and finite-difference derivatives.
        public var relativeTolerance: Double = 1e-2
        /// Errors below this absolute value always pass (for derivatives near zero).
        public var absoluteTolerance: Double = 1e-5
        /// Largest accepted relative error of the dot-product identity (both sides analytic).
        public var identityTolerance: Double = 1e-4
        /// Random (direction, cotangent) pairs tried.
        public var trials: Int = 2
        /// Seed of the random directions.
        public var seed: UInt64 = 0x5EED
        /// Which inputs to differentiate (all when nil); the others are held constant.
        public var differentiableInputs: Set<Int>? = nil
        /// Whether to check forward mode too. Turn it off for functions that take gradients
        /// inside (a virtual optimisation step): forward over reverse is not supported.
        public var checksForwardMode: Bool = true
        /// Whether finite differences hold the check point's side of every kink (see
        /// ``KinkPattern``); without it they are of the function itself.
        public var holdsKinks: Bool = true

        public init() {}
    }

    /// The worst errors found. The errors are the raw relative differences; a check passes when
    /// each difference is within the relative tolerance plus what Float32 finite differences can
    /// resolve (about one rounding error of the function's values per step).
    public struct Report: Sendable, CustomStringConvertible {
        /// What was checked.
        public var name: String
        /// Worst relative error of ⟨Jᵀu, v⟩ against finite differences.
        public var vjpError: Double = 0
        /// Worst relative error of J v against finite differences (elementwise, relative to max |J v|).
        public var jvpError: Double = 0
        /// Worst relative error of the dot-product identity.
        public var identityError: Double = 0
        /// Whether every error is within tolerance.
        public var passed: Bool = true
        /// The failed comparisons, for the message.
        public var failures: [String] = []
        /// The most elements that were on the other side of a kink than at the check point in one
        /// finite-difference evaluation (held on the check point's side when ``Options/holdsKinks``).
        public var kinkCrossings: Int = 0

        public var description: String {
            let status = passed ? "ok" : "FAILED"
            let crossings = kinkCrossings == 0 ? "" : ", \(kinkCrossings) kink crossings held"
            var s = "\(name): \(status) (vjp \(format(vjpError)), jvp \(format(jvpError)), identity \(format(identityError))\(crossings))"
            for f in failures { s += "\n  " + f }
            return s
        }

        /// The worst of the three errors.
        public var worstError: Double { Swift.max(vjpError, jvpError, identityError) }
    }

    static func format(_ x: Double) -> String {
        if x == 0 { return "0" }
        var e = 0
        var m = x
        while m < 1 { m *= 10; e -= 1 }
        while m >= 10 { m /= 10; e += 1 }
        return "\(Double(Int(m * 100)) / 100)e\(e)"
    }

    static func dot(_ a: Tensor, _ b: Tensor) -> Double {
        var s = 0.0
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                for i in 0..<pa.count { s += Double(pa[i]) * Double(pb[i]) }
            }
        }
        return s
    }

    static func relative(_ a: Double, _ b: Double, _ absTol: Double) -> Double {
        let diff = Swift.abs(a - b)
        if diff <= absTol { return 0 }
        return diff / Swift.max(Swift.abs(a), Swift.abs(b), 1e-30)
    }

    static func randomLike(_ t: Tensor, _ rng: inout RandomGenerator) -> Tensor {
        Tensor.normal(t.shape, using: &rng)
    }

    /// A random direction scaled to the input's root-mean-square size (1 for an all-zero input),
    /// so that a step of epsilon is a small relative change of every input.
    static func direction(for t: Tensor, _ rng: inout RandomGenerator) -> Tensor {
        let rms = t.count == 0 ? 1 : (dot(t, t) / Double(t.count)).squareRoot()
        return Tensor.normal(t.shape, std: rms > 1e-6 ? Float(rms) : 1, using: &rng)
    }

    /// Central difference of `g` at step `eps`, Richardson-extrapolated from steps eps and eps/2,
    /// which cancels the second-order truncation error.
    static func richardson(_ eps: Double, _ g: (Double) -> Double) -> Double {
        let coarse = (g(eps) - g(-eps)) / (2 * eps)
        let fine = (g(eps / 2) - g(-eps / 2)) / eps
        return (4 * fine - coarse) / 3
    }

    /// Checks the first derivatives of `f` at `inputs`.
    public static func check(_ name: String, inputs: [Tensor], options: Options = Options(),
                             _ f: ([Tensor]) -> Tensor) -> Report {
        var report = Report(name: name)
        var rng = RandomGenerator(seed: options.seed)
        let active = (0..<inputs.count).filter { options.differentiableInputs?.contains($0) ?? true }
        let base = inputs.map { $0.detached() }
        let (y0, pattern): (Tensor, KinkPattern?) = options.holdsKinks
            ? KinkPattern.recording { withoutGradient { f(base) } }
            : (withoutGradient { f(base) }, nil)
        let valueScale = y0.withUnsafeBufferPointer { $0.reduce(0.0) { Swift.max($0, Double(Swift.abs($1))) } }
        // f near the check point, with its kinks held on the check point's side.
        func evaluate(_ xs: [Tensor]) -> Tensor {
            guard let pattern else { return withoutGradient { f(xs) } }
            let held = pattern.holding { withoutGradient { f(xs) } }
            report.kinkCrossings = Swift.max(report.kinkCrossings, held.crossings)
            if let divergence = held.divergence {
                report.failures.append("the kinks cannot be held: \(divergence)")
            }
            return held.value
        }
        if pattern != nil {
            let reproduced = evaluate(base)
            let gap = zip(reproduced.scalars, y0.scalars).reduce(0.0) { Swift.max($0, Double(Swift.abs($1.0 - $1.1))) }
            if !(gap <= 1e-6 * Swift.max(valueScale, 1)) {
                report.failures.append("holding the kinks changes f at the check point by \(gap)")
            }
        }

        for trial in 0..<options.trials {
            let u = randomLike(y0, &rng)
            var directions = base.map { Tensor.zeros($0.shape) }
            for i in active { directions[i] = direction(for: base[i], &rng) }

            // Reverse mode: Jᵀu, projected on v.
            let leaves = base.enumerated().map { active.contains($0.offset) ? $0.element.requiringGradient() : $0.element }
            let y = f(leaves)
            let grads = gradients(of: y, wrt: active.map { leaves[$0] }, seed: u)
            var vjpDirectional = 0.0
            for (k, i) in active.enumerated() { vjpDirectional += dot(grads[k], directions[i]) }

            // Forward mode: J v.
            let jv: Tensor? = options.checksForwardMode ? withoutGradient {
                jvp(at: base, tangents: directions) { xs in f(xs) }.tangent
            } : nil

            // Central differences.
            let eps = options.epsilon
            func at(_ t: Float) -> Tensor { evaluate(zip(base, directions).map { $0 + $1 * t }) }
            let (plus, minus, plusHalf, minusHalf) = (at(eps), at(-eps), at(eps / 2), at(-eps / 2))
            // Richardson-extrapolated central differences, elementwise and projected on u.
            let fdVector = withoutGradient {
                ((plusHalf - minusHalf) * (4 / (3 * eps)) - (plus - minus) * (1 / (6 * eps)))
            }
            let fdDirectional = ((dot(u, plusHalf) - dot(u, minusHalf)) * 4 / (3 * Double(eps))
                - (dot(u, plus) - dot(u, minus)) / (6 * Double(eps)))

            // Float32 evaluation limits what finite differences can resolve: about one rounding
            // error of the function's values per step, amplified by the difference quotient.
            // Rounding errors of the outputs are independent, so they add in quadrature.
            let projectedScale = zip(u.scalars, y0.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.0) * Double($1.1) * Double($1.1) }.squareRoot()
            let noise = 4 * Double(Float.ulpOfOne) / Double(eps)
            let vjpDiff = Swift.abs(vjpDirectional - fdDirectional)
            let vjpErr = vjpDiff / Swift.max(Swift.abs(vjpDirectional), Swift.abs(fdDirectional), 1e-30)
            report.vjpError = Swift.max(report.vjpError, vjpErr)
            if vjpDiff > options.relativeTolerance * Swift.max(Swift.abs(vjpDirectional), Swift.abs(fdDirectional))
                + options.absoluteTolerance + noise * projectedScale {
                report.failures.append("trial \(trial): ⟨Jᵀu, v⟩ = \(vjpDirectional), finite differences \(fdDirectional)")
            }

            guard let jv else { continue }
            let jvpDirectional = dot(u, jv)
            // Elementwise JVP against the finite-difference vector.
            var maxDiff = 0.0, scale = 0.0
            jv.withUnsafeBufferPointer { a in
                fdVector.withUnsafeBufferPointer { b in
                    for i in 0..<a.count {
                        maxDiff = Swift.max(maxDiff, Swift.abs(Double(a[i]) - Double(b[i])))
                        scale = Swift.max(scale, Swift.abs(Double(a[i])), Swift.abs(Double(b[i])))
                    }
                }
            }
            let jvpErr = maxDiff / Swift.max(scale, 1e-30)
            report.jvpError = Swift.max(report.jvpError, jvpErr)
            if maxDiff > options.relativeTolerance * scale + options.absoluteTolerance + noise * valueScale {
                report.failures.append("trial \(trial): J v differs from finite differences by \(maxDiff) (scale \(scale))")
            }

            let idErr = relative(vjpDirectional, jvpDirectional, options.absoluteTolerance * 1e-2)
            report.identityError = Swift.max(report.identityError, idErr)
            if idErr > options.identityTolerance {
                report.failures.append("trial \(trial): ⟨u, J v⟩ = \(jvpDirectional) but ⟨Jᵀu, v⟩ = \(vjpDirectional)")
            }
        }
        report.passed = report.failures.isEmpty
        return report
    }

    /// Checks a function of named tensors (e.g. a layer's parameters plus its input).
    public static func check(_ name: String, parameters: [String: Tensor], options: Options = Options(),
                             _ f: ([String: Tensor]) -> Tensor) -> Report {
        let keys = parameters.keys.sorted()
        return check(name, inputs: keys.map { parameters[$0]! }, options: options) { xs in
            f(Dictionary(uniqueKeysWithValues: zip(keys, xs)))
        }
    }

    /// Checks second derivatives of a scalar function: the Hessian-vector product by reverse over
    /// reverse, and the gradient of a JVP (reverse over forward), against finite differences of
    /// the first derivatives.
    public static func checkSecondOrder(_ name: String, inputs: [Tensor], options: Options = Options(),
                                        _ f: ([Tensor]) -> Tensor) -> Report {
        var report = Report(name: name)
        var rng = RandomGenerator(seed: options.seed)
        let base = inputs.map { $0.detached() }
        let eps = options.epsilon

        func gradientAt(_ xs: [Tensor]) -> [Tensor] {
            valueWithGradient(at: xs) { f($0) }.gradients
        }
        func jvpValue(_ xs: [Tensor], _ v: [Tensor]) -> Double {
            withoutGradient { jvp(at: xs, tangents: v) { f($0) }.tangent.item }.double
        }

        for trial in 0..<options.trials {
            let v = base.map { randomLike($0, &rng) }
            let w = base.map { direction(for: $0, &rng) }

            // Reverse over reverse: ∇ₓ ⟨∇f(x), v⟩, projected on w, against differences of ∇f along w.
            let (_, hv) = valueWithGradient(at: base) { xs in
                let g = gradients(of: f(xs), wrt: xs, createGraph: true)
                return zip(g, v).map { ($0 * $1).sum() }.reduce(Tensor(0), +)
            }
            let hvw = zip(hv, w).reduce(0.0) { $0 + dot($1.0, $1.1) }
            let fd = richardson(Double(eps)) { t in
                let g = gradientAt(zip(base, w).map { $0 + $1 * Float(t) })
                return zip(g, v).reduce(0.0) { $0 + dot($1.0, $1.1) }
            }
            let hvpErr = relative(hvw, fd, options.absoluteTolerance)
            report.vjpError = Swift.max(report.vjpError, hvpErr)
            if hvpErr > options.relativeTolerance {
                report.failures.append("trial \(trial): Hessian-vector product \(hvw), finite differences of the gradient \(fd)")
            }

            // Reverse over forward: ∇ₓ ⟨J(x) v⟩ projected on w, against differences of the JVP.
            let (_, gj) = valueWithGradient(at: base) { xs in
                jvp(at: xs, tangents: v) { f($0) }.tangent
            }
            let gjw = zip(gj, w).reduce(0.0) { $0 + dot($1.0, $1.1) }
            let fd2 = richardson(Double(eps)) { t in jvpValue(zip(base, w).map { $0 + $1 * Float(t) }, v) }
            let rofErr = relative(gjw, fd2, options.absoluteTolerance)
            report.jvpError = Swift.max(report.jvpError, rofErr)
            if rofErr > options.relativeTolerance {
                report.failures.append("trial \(trial): gradient of the JVP \(gjw), finite differences \(fd2)")
            }

            // Symmetry of the Hessian through both routes: ⟨w, H v⟩ from reverse-over-reverse equals
            // the derivative of ⟨∇f, v⟩ along w, which reverse over forward gives as ⟨∇(J w), v⟩.
            let (_, gjv) = valueWithGradient(at: base) { xs in jvp(at: xs, tangents: w) { f($0) }.tangent }
            let sym = zip(gjv, v).reduce(0.0) { $0 + dot($1.0, $1.1) }
            let symErr = relative(hvw, sym, options.absoluteTolerance * 1e-2)
            report.identityError = Swift.max(report.identityError, symErr)
            if symErr > options.identityTolerance * 10 {
                report.failures.append("trial \(trial): ⟨w, H v⟩ = \(hvw) by reverse over reverse, \(sym) by reverse over forward")
            }
        }
        report.passed = report.failures.isEmpty
        return report
    }
}

extension Float {
    var double: Double { Double(self) }
}
