import Synchronization

/// Which inputs of an operation need a cotangent in the current backward pass; lets a rule skip
/// work nobody asked for (the input gradient of a first layer, say).
public struct NeededInputs: Sendable {
    @usableFromInline let flags: [Bool]
    @inlinable public init(_ flags: [Bool]) { self.flags = flags }
    /// Whether input `i` needs a cotangent.
    @inlinable public subscript(i: Int) -> Bool { flags[i] }
}

/// The pullback of one operation: given the cotangent of the output, the output itself (carrying
/// this node, so rules that use it stay differentiable) and which inputs need cotangents, returns
/// one cotangent per input (`nil` for none).
public typealias PullbackRule = @Sendable (_ cotangent: Tensor, _ output: Tensor, _ needed: NeededInputs) -> [Tensor?]

/// A node of the reverse-mode graph: the operation that produced a tensor and how to pull a
/// cotangent back to its inputs. Nodes are immutable once made.
public final class GradNode: @unchecked Sendable {
    private static let counter = Atomic<UInt64>(0)

    /// Creation order; a node's parents always have smaller ids, so descending ids are a
    /// topological order of any graph.
    let id: UInt64
    /// Name of the operation (for messages and profiles).
    let op: String
    /// One entry per differentiable input; `nil` for inputs that are not tracked.
    let parents: [GradNode?]
    /// The pullback; `nil` for leaves.
    let pullback: PullbackRule?
    /// The output's storage, kept only for rules that use the output.
    let savedOutput: TensorStorage?
    /// The output's shape.
    let shape: [Int]

    init(op: String, parents: [GradNode?], shape: [Int], savedOutput: TensorStorage?, pullback: PullbackRule?) {
        self.id = GradNode.counter.add(1, ordering: .relaxed).newValue
        self.op = op
        self.parents = parents
        self.shape = shape
        self.savedOutput = savedOutput
        self.pullback = pullback
    }
}

/// The forward-mode tangent attached to a tensor inside ``jvp(at:tangents:_:)``.
public final class TangentBox: Sendable {
    let value: Tensor
    init(_ value: Tensor) { self.value = value }
}

/// Task-local switches of the differentiation machinery.
public enum Autodiff {
    /// Whether operations on tracked tensors record graph nodes.
    @TaskLocal public static var isRecording = true
    /// Whether a forward-mode (JVP) evaluation is under way, so operations propagate tangents.
    @TaskLocal public static var isForwardActive = false
}

/// Runs `body` without recording gradient graphs (like `torch.no_grad()`).
@inlinable
public func withoutGradient<R>(_ body: () throws -> R) rethrows -> R {
    try Autodiff.$isRecording.withValue(false) { try body() }
}

/// Runs `body` with gradient recording switched on, even inside ``withoutGradient(_:)``
/// (like `torch.enable_grad()`).
@inlinable
public func withGradient<R>(_ body: () throws -> R) rethrows -> R {
    try Autodiff.$isRecording.withValue(true) { try body() }
}

extension Tensor {
    /// Whether this tensor is part of a reverse-mode graph (it requires or carries a gradient).
    public var isTracked: Bool { node != nil }

    /// The forward-mode tangent, inside a JVP evaluation.
    public var tangent: Tensor? { tangentBox?.value }

    /// The same values with no graph and no tangent.
    public func detached() -> Tensor {
        Tensor(shape: shape, storage: storage, node: nil)
    }

    /// The same values as a new leaf of the gradient graph. If this tensor is already tracked
    /// (an outer differentiation is under way), the leaf passes gradients through to it, which is
    /// what makes gradients of gradients work.
    public func requiringGradient() -> Tensor {
        var leaf = Tensor(shape: shape, storage: storage, node: nil)
        leaf.tangentBox = tangentBox
        if let outer = node, Autodiff.isRecording {
            leaf.node = GradNode(op: "leaf", parents: [outer], shape: shape, savedOutput: nil,
                                 pullback: { g, _, _ in [g] })
        } else {
            leaf.node = GradNode(op: "leaf", parents: [], shape: shape, savedOutput: nil, pullback: nil)
        }
        return leaf
    }

    /// Attaches the graph node and tangent of a differentiable primitive to its raw result.
    ///
    /// - Parameters:
    ///   - op: operation name.
    ///   - inputs: the differentiable inputs, in the order the rules use.
    ///   - savesOutput: whether the pullback uses the output (it then receives it, tracked).
    ///   - pullback: reverse-mode rule, written with tensor operations.
    ///   - tangent: forward-mode rule: input tangents (nil = zero) and the output to the output
    ///     tangent, written with tensor operations; return nil for a zero tangent.
    public func recorded(
        op: String, inputs: [Tensor], savesOutput: Bool = false,
        pullback: @escaping PullbackRule,
        tangent: (_ inputTangents: [Tensor?], _ output: Tensor) -> Tensor?
    ) -> Tensor {
        var result = self
        if Autodiff.isRecording && inputs.contains(where: { $0.node != nil }) {
            result.node = GradNode(op: op, parents: inputs.map(\.node), shape: shape,
                                   savedOutput: savesOutput ? storage : nil, pullback: pullback)
        }
        if Autodiff.isForwardActive && inputs.contains(where: { $0.tangentBox != nil }) {
            // Tangent rules run with forward mode off: their operands' own tangents must not
            // propagate (there is a single forward level), but reverse recording stays on.
            let inputTangents = inputs.map(\.tangent)
            let output = result
            if let t = Autodiff.$isForwardActive.withValue(false, operation: { tangent(inputTangents, output) }) {
                require(t.shape == shape, "\(op): tangent rule produced shape \(Shape.describe(t.shape)) for output \(Shape.describe(shape))")
                result.tangentBox = TangentBox(t)
            }
        }
        return result
    }
}
