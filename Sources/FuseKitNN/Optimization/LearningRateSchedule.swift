import Foundation
import FuseKitTensor

/// A learning-rate schedule as a pure function of the step (or epoch: the caller chooses the
/// unit) with an optional linear warm-up, e.g. TDFusion's `StepLR(step_size: 10, gamma: 0.1)`
/// per epoch or SegFormer's poly decay with a linear warm-up per iteration.
///
/// The decays are the closed forms of PyTorch's schedulers (and mmseg's poly), evaluated in
/// double precision:
///
/// | decay | learning rate at step `t` |
/// |---|---|
/// | `constant` | `base` |
/// | `step(size, gamma)` | `base * gamma^floor(t / size)` (`StepLR`) |
/// | `multiStep(milestones, gamma)` | `base * gamma^(number of milestones <= t)` (`MultiStepLR`) |
/// | `cosine(tMax, etaMin)` | `etaMin + (base - etaMin) * (1 + cos(pi * t / tMax)) / 2` (`CosineAnnealingLR`) |
/// | `poly(power, total, minimum)` | `(base - minimum) * (1 - min(t, total) / total)^power + minimum` (mmseg `PolyLR`) |
///
/// A warm-up multiplies that rate by `startFactor + (1 - startFactor) * t / steps` while
/// `t < steps` (mmcv's linear warm-up; PyTorch's `LinearLR` chained with the decay).
///
/// In recipes a schedule is a flat object with a `kind`:
///
/// ```json
/// { "kind": "step", "step": 10, "gamma": 0.1 }
/// { "kind": "multistep", "milestones": [30, 80], "gamma": 0.1 }
/// { "kind": "cosine", "tMax": 100, "etaMin": 1e-6 }
/// { "kind": "poly", "power": 1.0, "total": 160000, "min": 0, "warmup": 1500, "warmupStartFactor": 1e-6 }
/// { "kind": "constant" }
/// ```
///
/// `gamma` defaults to 0.1, `etaMin` and `min` to 0, `power` to 1 and `warmupStartFactor` to
/// 1/3 (PyTorch's defaults); unknown keys are rejected.
public struct LearningRateSchedule: Sendable, Equatable {
    /// How the rate decays after (and during) the warm-up.
    public enum Decay: Sendable, Equatable {
        /// The base rate throughout.
        case constant
        /// Multiplied by `gamma` every `size` steps.
        case step(size: Int, gamma: Double)
        /// Multiplied by `gamma` at each milestone.
        case multiStep(milestones: [Int], gamma: Double)
        /// Half a cosine from the base rate down to `etaMin` over `tMax` steps (periodic beyond,
        /// as PyTorch's closed form).
        case cosine(tMax: Int, etaMin: Double)
        /// Polynomial decay to `minimum` at `total` steps, then constant.
        case poly(power: Double, total: Int, minimum: Double)
    }

    /// A linear warm-up of the first steps.
    public struct Warmup: Sendable, Equatable {
        /// Number of warm-up steps (0 disables the warm-up).
        public var steps: Int
        /// Factor of the rate at step 0, rising linearly to 1 at `steps`.
        public var startFactor: Double

        /// A warm-up over `steps` steps starting at `startFactor` times the rate.
        public init(steps: Int, startFactor: Double = 1.0 / 3.0) {
            if let problem = Warmup.problem(steps: steps, startFactor: startFactor) {
                fatalError("LearningRateSchedule.Warmup: \(problem)")
            }
            self.steps = steps
            self.startFactor = startFactor
        }

        /// Why a warm-up of these settings is invalid, or nil when it is valid.
        public static func problem(steps: Int, startFactor: Double) -> String? {
            if steps < 0 { return "steps must be non-negative, got \(steps)" }
            if !(startFactor >= 0 && startFactor <= 1) { return "the start factor must be in [0, 1], got \(startFactor)" }
            return nil
        }
    }

    /// The decay.
    public var decay: Decay
    /// The warm-up, if any.
    public var warmup: Warmup?

    /// A schedule of the given decay and optional warm-up. Invalid hyperparameters (a step size,
    /// `tMax` or `total` that is not positive, negative milestones) stop the program with a
    /// message; decoding reports them as errors instead.
    public init(_ decay: Decay, warmup: Warmup? = nil) {
        if let problem = LearningRateSchedule.problem(with: decay) {
            fatalError("LearningRateSchedule: \(problem)")
        }
        self.decay = decay
        self.warmup = warmup
    }

    /// The base rate throughout.
    public static let constant = LearningRateSchedule(.constant)

    /// The learning rate at `step` (0-based) for a base rate `base`.
    public func learningRate(base: Float, at step: Int) -> Float {
        Float(learningRate(base: Double(base), at: step))
    }

    /// The learning rate at `step` (0-based) for a base rate `base`, in double precision.
    public func learningRate(base: Double, at step: Int) -> Double {
        require(step >= 0, "LearningRateSchedule: step must be non-negative, got \(step)")
        return decayedRate(base: base, at: step) * warmupFactor(at: step)
    }

    /// The warm-up multiplier at `step` (1 after the warm-up or without one).
    public func warmupFactor(at step: Int) -> Double {
        guard let warmup, warmup.steps > 0, step < warmup.steps else { return 1 }
        return warmup.startFactor + (1 - warmup.startFactor) * Double(step) / Double(warmup.steps)
    }

    private func decayedRate(base: Double, at step: Int) -> Double {
        switch decay {
        case .constant:
            return base
        case .step(let size, let gamma):
            return base * pow(gamma, Double(step / size))
        case .multiStep(let milestones, let gamma):
            let passed = milestones.reduce(0) { $0 + ($1 <= step ? 1 : 0) }
            return base * pow(gamma, Double(passed))
        case .cosine(let tMax, let etaMin):
            return etaMin + (base - etaMin) * (1 + cos(Double.pi * Double(step) / Double(tMax))) / 2
        case .poly(let power, let total, let minimum):
            let progress = Double(min(step, total)) / Double(total)
            return (base - minimum) * pow(1 - progress, power) + minimum
        }
    }

    /// Why a decay's hyperparameters are invalid, or nil when they are valid.
    public static func problem(with decay: Decay) -> String? {
        switch decay {
        case .constant:
            return nil
        case .step(let size, _):
            return size > 0 ? nil : "step size must be positive, got \(size)"
        case .multiStep(let milestones, _):
            return milestones.allSatisfy({ $0 >= 0 }) ? nil : "milestones must be non-negative, got \(milestones)"
        case .cosine(let tMax, _):
            return tMax > 0 ? nil : "tMax must be positive, got \(tMax)"
        case .poly(_, let total, _):
            return total > 0 ? nil : "total must be positive, got \(total)"
        }
    }
}

extension LearningRateSchedule: Codable {
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    private static let warmupKeys: Set<String> = ["warmup", "warmupStartFactor"]

    private static func allowedKeys(for kind: String) -> Set<String>? {
        switch kind {
        case "constant": return ["kind"]
        case "step": return ["kind", "step", "gamma"]
        case "multistep", "multiStep": return ["kind", "milestones", "gamma"]
        case "cosine": return ["kind", "tMax", "etaMin"]
        case "poly": return ["kind", "power", "total", "min"]
        default: return nil
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        let kind = try container.decode(String.self, forKey: Key("kind"))
        guard let allowed = LearningRateSchedule.allowedKeys(for: kind) else {
            throw DecodingError.dataCorruptedError(
                forKey: Key("kind"), in: container,
                debugDescription: "unknown learning-rate schedule kind '\(kind)' (expected constant, step, multistep, cosine or poly)")
        }
        let keys = allowed.union(LearningRateSchedule.warmupKeys)
        if let unknown = container.allKeys.first(where: { !keys.contains($0.stringValue) }) {
            throw DecodingError.dataCorruptedError(
                forKey: unknown, in: container,
                debugDescription: "unknown key '\(unknown.stringValue)' for a '\(kind)' schedule (allowed: \(keys.sorted().joined(separator: ", ")))")
        }
        func decode<T: Decodable>(_ key: String, default value: T? = nil) throws -> T {
            if let value, !container.contains(Key(key)) { return value }
            return try container.decode(T.self, forKey: Key(key))
        }
        let decay: Decay
        switch kind {
        case "step":
            decay = .step(size: try decode("step"), gamma: try decode("gamma", default: 0.1))
        case "multistep", "multiStep":
            decay = .multiStep(milestones: try decode("milestones"), gamma: try decode("gamma", default: 0.1))
        case "cosine":
            decay = .cosine(tMax: try decode("tMax"), etaMin: try decode("etaMin", default: 0.0))
        case "poly":
            decay = .poly(power: try decode("power", default: 1.0), total: try decode("total"),
                          minimum: try decode("min", default: 0.0))
        default:
            decay = .constant
        }
        if let problem = LearningRateSchedule.problem(with: decay) {
            throw DecodingError.dataCorruptedError(forKey: Key("kind"), in: container,
                                                   debugDescription: "invalid '\(kind)' schedule: \(problem)")
        }
        var warmup: Warmup?
        if container.contains(Key("warmup")) {
            let steps: Int = try decode("warmup")
            let startFactor: Double = try decode("warmupStartFactor", default: 1.0 / 3.0)
            if let problem = Warmup.problem(steps: steps, startFactor: startFactor) {
                throw DecodingError.dataCorruptedError(forKey: Key("warmup"), in: container, debugDescription: "invalid warm-up: \(problem)")
            }
            warmup = Warmup(steps: steps, startFactor: startFactor)
        } else if container.contains(Key("warmupStartFactor")) {
            throw DecodingError.dataCorruptedError(forKey: Key("warmupStartFactor"), in: container,
                                                   debugDescription: "warmupStartFactor needs warmup (the number of warm-up steps)")
        }
        self.init(decay, warmup: warmup)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        switch decay {
        case .constant:
            try container.encode("constant", forKey: Key("kind"))
        case .step(let size, let gamma):
            try container.encode("step", forKey: Key("kind"))
            try container.encode(size, forKey: Key("step"))
            try container.encode(gamma, forKey: Key("gamma"))
        case .multiStep(let milestones, let gamma):
            try container.encode("multistep", forKey: Key("kind"))
            try container.encode(milestones, forKey: Key("milestones"))
            try container.encode(gamma, forKey: Key("gamma"))
        case .cosine(let tMax, let etaMin):
            try container.encode("cosine", forKey: Key("kind"))
            try container.encode(tMax, forKey: Key("tMax"))
            try container.encode(etaMin, forKey: Key("etaMin"))
        case .poly(let power, let total, let minimum):
            try container.encode("poly", forKey: Key("kind"))
            try container.encode(power, forKey: Key("power"))
            try container.encode(total, forKey: Key("total"))
            try container.encode(minimum, forKey: Key("min"))
        }
        if let warmup {
            try container.encode(warmup.steps, forKey: Key("warmup"))
            try container.encode(warmup.startFactor, forKey: Key("warmupStartFactor"))
        }
    }
}
