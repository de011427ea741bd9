import Synchronization

/// The side of every kink one evaluation of a piecewise-smooth function took: which elements a
/// ReLU or LeakyReLU passed, which operand a maximum or minimum chose, which region a clamp was
/// in, which element a max reduction or max pool picked, the sign `abs` saw, and every
/// comparison's and argmax's result, in evaluation order.
///
/// ``GradientCheck`` records the pattern at the check point and holds it while it evaluates the
/// finite differences. A network is smooth between its kinks: at a point x on no kink, f agrees
/// on a neighbourhood of x with the smooth piece g that x's pattern selects, so f'(x) = g'(x).
/// Finite differences of f measure f'(x) only if no unit crosses a kink within the step, and in
/// a whole network with thousands of ReLU-like units after plain convolutions some always do;
/// the output elements they feed then get a one-sided slope, off by several per cent at every
/// step size Float32 allows. Finite differences of g have no such error. The ops compute their
/// held value from the held decision (`relu` as x where the held mask is set, `maximum` as the
/// held operand, ...), which at the check point reproduces f exactly; the check verifies that.
///
/// ```swift
/// let (y0, pattern) = KinkPattern.recording { withoutGradient { f(x) } }
/// let nearby = pattern.holding { withoutGradient { f(x + step) } }
/// print(nearby.crossings) // elements whose own side differs from the held one
/// ```
public final class KinkPattern: Sendable {
    enum Decision: Sendable {
        case values(Tensor)
        case indices([Int])

        var summary: String {
            switch self {
            case .values(let t): "a decision of shape \(Shape.describe(t.shape))"
            case .indices(let i): "\(i.count) pooling indices"
            }
        }
    }

    struct State {
        var decisions: [Decision] = []
        var isHolding = false
        var cursor = 0
        var crossings = 0
        var divergence: String?
    }

    let state = Mutex(State())

    @TaskLocal static var active: KinkPattern?

    init() {}

    /// An evaluation under a held pattern.
    public struct Held<Value> {
        /// The held function's value.
        public var value: Value
        /// Elements whose own decision differed from the held one: the kinks the unheld function
        /// would have crossed.
        public var crossings: Int
        /// Why the held pattern could not be followed, when the evaluation asked for other
        /// decisions than the recorded one did (control flow that depends on the values).
        public var divergence: String?
    }

    /// Evaluates `body`, recording the side of every kink it passes.
    public static func recording<Value>(_ body: () throws -> Value) rethrows -> (value: Value, pattern: KinkPattern) {
        let pattern = KinkPattern()
        let value = try $active.withValue(pattern) { try body() }
        return (value, pattern)
    }

    /// Evaluates `body` with every kink held on the recorded side.
    public func holding<Value>(_ body: () throws -> Value) rethrows -> Held<Value> {
        state.withLock { $0.isHolding = true; $0.cursor = 0; $0.crossings = 0; $0.divergence = nil }
        let value = try Self.$active.withValue(self) { try body() }
        let (crossings, divergence) = state.withLock { s in
            if s.divergence == nil && s.cursor != s.decisions.count {
                s.divergence = "the held evaluation took \(s.cursor) decisions, the recorded one \(s.decisions.count)"
            }
            return (s.crossings, s.divergence)
        }
        return Held(value: value, crossings: crossings, divergence: divergence)
    }

    /// Whether a pattern is being recorded or held, so that ops compute their values from their
    /// decisions.
    static var isActive: Bool { active != nil }

    /// The decision `fresh` computes (a mask, a choice, a comparison), recorded or replaced by the
    /// held one; `fresh` itself when no pattern is active.
    static func decision(_ fresh: () -> Tensor) -> Tensor {
        guard let pattern = active else { return fresh() }
        let own = $active.withValue(nil) { fresh() }
        let chosen = pattern.decide(.values(own)) { held in
            guard case .values(let h) = held, h.shape == own.shape else { return nil }
            return differences(own, h)
        }
        guard case .values(let t) = chosen else { return own }
        return t
    }

    /// Flat indices (a max pool's picks), recorded or replaced by the held ones.
    static func decision(_ fresh: () -> [Int]) -> [Int] {
        guard let pattern = active else { return fresh() }
        let own = $active.withValue(nil) { fresh() }
        let chosen = pattern.decide(.indices(own)) { held in
            guard case .indices(let h) = held, h.count == own.count else { return nil }
            return zip(own, h).reduce(0) { $0 + ($1.0 == $1.1 ? 0 : 1) }
        }
        guard case .indices(let i) = chosen else { return own }
        return i
    }

    /// Records `own`, or returns the held decision, counting the elements where `differences`
    /// finds the two apart; `own` when the evaluation has left the recorded path (`differences`
    /// returns nil for a decision of another kind or shape).
    func decide(_ own: Decision, differences: (Decision) -> Int?) -> Decision {
        state.withLock { s in
            guard s.isHolding else {
                s.decisions.append(own)
                return own
            }
            guard s.divergence == nil else { return own }
            guard s.cursor < s.decisions.count else {
                s.divergence = "the held evaluation took more decisions than the \(s.decisions.count) recorded"
                return own
            }
            let held = s.decisions[s.cursor]
            guard let crossings = differences(held) else {
                s.divergence = "decision \(s.cursor + 1) is \(own.summary), but \(held.summary) was recorded"
                return own
            }
            s.cursor += 1
            s.crossings += crossings
            return held
        }
    }

    static func differences(_ a: Tensor, _ b: Tensor) -> Int {
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                var n = 0
                for i in 0..<pa.count where pa[i] != pb[i] && !(pa[i].isNaN && pb[i].isNaN) { n += 1 }
                return n
            }
        }
    }
}
