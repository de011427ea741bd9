import FuseKitTensor

/// The explicit state of an ``Optimizer``: a step counter and per-parameter slot tensors, e.g.
/// `slots["exp_avg"]["encoder.0.weight"]`.
///
/// Slot names follow PyTorch's optimizer state (`momentum_buffer`, `exp_avg`, `exp_avg_sq`,
/// and `step`, a rank-0 tensor counting the updates a parameter has received). The state
/// flattens to `[String: Tensor]` with keys `<slot>.<parameter>` for checkpoints.
///
/// Equality is bitwise: same step, same slot and parameter names, same shapes and the same bit
/// patterns of every element (so a NaN equals itself), which is what a resumed run needs.
public struct OptimizerState: Sendable, Equatable {
    /// Number of `update` calls made with this state.
    public var step: Int
    /// Slot tensors: slot name, then parameter name.
    public var slots: [String: [String: Tensor]]

    /// Name of the slot holding each parameter's own update count.
    public static let stepSlot = "step"

    /// A state at `step` with the given slots (empty by default: a fresh optimizer).
    public init(step: Int = 0, slots: [String: [String: Tensor]] = [:]) {
        self.step = step
        self.slots = slots
    }

    /// Rebuilds a state from ``flattened`` keys `<slot>.<parameter>`. The slot name is the part
    /// before the first dot, so slot names never contain dots; a key without a dot stops the
    /// program with a message naming it.
    public init(step: Int, flattened: [String: Tensor]) {
        var slots: [String: [String: Tensor]] = [:]
        for (key, tensor) in flattened {
            guard let split = OptimizerState.splitFlattenedKey(key) else {
                fatalError("OptimizerState(flattened:): key '\(key)' is not of the form <slot>.<parameter>")
            }
            slots[split.slot, default: [:]][split.parameter] = tensor
        }
        self.init(step: step, slots: slots)
    }

    /// The slot tensors as one dictionary keyed `<slot>.<parameter>` (e.g. `exp_avg.conv.weight`).
    public var flattened: [String: Tensor] {
        var result: [String: Tensor] = [:]
        for (slot, tensors) in slots {
            require(!slot.isEmpty && !slot.contains("."),
                    "OptimizerState.flattened: slot name '\(slot)' must be non-empty and contain no dot")
            for (parameter, tensor) in tensors { result[slot + "." + parameter] = tensor }
        }
        return result
    }

    /// The slot tensor of one parameter, if present.
    public func slot(_ name: String, for parameter: String) -> Tensor? {
        slots[name]?[parameter]
    }

    /// Splits `<slot>.<parameter>` at the first dot; nil when either part would be empty.
    public static func splitFlattenedKey(_ key: String) -> (slot: String, parameter: String)? {
        guard let dot = key.firstIndex(of: "."), dot != key.startIndex else { return nil }
        let parameter = key[key.index(after: dot)...]
        guard !parameter.isEmpty else { return nil }
        return (String(key[..<dot]), String(parameter))
    }

    public static func == (lhs: OptimizerState, rhs: OptimizerState) -> Bool {
        guard lhs.step == rhs.step else { return false }
        let left = lhs.slots.filter { !$0.value.isEmpty }
        let right = rhs.slots.filter { !$0.value.isEmpty }
        guard left.count == right.count else { return false }
        for (slot, tensors) in left {
            guard let other = right[slot], TensorBits.equal(tensors, other) else { return false }
        }
        return true
    }
}

/// Bitwise comparison of tensors (shape and element bit patterns).
enum TensorBits {
    /// Whether two tensors have the same shape and the same bytes.
    static func equal(_ a: Tensor, _ b: Tensor) -> Bool {
        guard a.shape == b.shape else { return false }
        if a.sharesStorage(with: b) { return true }
        return a.withUnsafeBufferPointer { x in
            b.withUnsafeBufferPointer { y in
                guard let xBase = x.baseAddress, let yBase = y.baseAddress, x.count > 0 else { return true }
                return memcmp(xBase, yBase, x.count * MemoryLayout<Float>.stride) == 0
            }
        }
    }

    /// Whether two dictionaries have the same names and bitwise-equal tensors.
    static func equal(_ a: [String: Tensor], _ b: [String: Tensor]) -> Bool {
        guard a.count == b.count else { return false }
        for (name, tensor) in a {
            guard let other = b[name], equal(tensor, other) else { return false }
        }
        return true
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
