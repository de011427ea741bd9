import FuseKitTensor

/// A child module under its name in the parent (`attn`, so its parameters are `attn.*`). The name
/// is stated once, where the parent makes the child; calling the child gives it its own scope:
/// `attention(x, p)` runs the attention with `p`'s `attn.` sub-scope.
///
/// Properties of the wrapped module read through: `projectOut.inChannels`.
@dynamicMemberLookup
public struct Child<M: Module>: Sendable {
    /// The name under the parent (may be dotted, e.g. `block1.0` for an item of a list).
    public let name: String
    /// The wrapped module.
    public let module: M

    public init(_ name: String, _ module: M) {
        precondition(!name.isEmpty, "a child module needs a name")
        self.name = name
        self.module = module
    }

    public subscript<T>(dynamicMember keyPath: KeyPath<M, T>) -> T { module[keyPath: keyPath] }

    /// Runs `body` with the module and its own scope inside `parent`, recording the output for
    /// a ``ModuleTrace`` when one is attached (for calls other than `callAsFunction`).
    public func run<R>(in parent: Scope, _ body: (M, Scope) -> R) -> R {
        let scope = parent.child(name)
        let output = body(module, scope)
        scope.context.trace?.record(scope.prefix, output)
        return output
    }
}

extension Child where M: Layer {
    /// The child's forward pass with its own scope.
    public func callAsFunction(_ input: M.Input, _ p: Scope) -> M.Output {
        run(in: p) { module, scope in module(input, scope) }
    }
}

/// Type-erased view of a ``Child`` for walking a module tree.
protocol NamedChild {
    var childName: String { get }
    var childModule: any Module { get }
}

extension Child: NamedChild {
    var childName: String { name }
    var childModule: any Module { module }
}

/// Modules of one kind named by position ("0", "1", ...), PyTorch's `nn.ModuleList`.
public struct ModuleList<Element: Module>: Module {
    public let items: [Element]

    public init(_ items: [Element]) { self.items = items }

    public var count: Int { items.count }

    public var children: [(name: String, module: any Module)] {
        items.enumerated().map { (String($0.offset), $0.element as any Module) }
    }
}

extension ModuleList: Layer, UnaryModule where Element: UnaryModule {
    /// The items applied in order (as `nn.Sequential` of them).
    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        var y = x
        for (i, item) in items.enumerated() { y = Child(String(i), item)(y, p) }
        return y
    }
}

extension Child {
    /// The i-th item of a child list, named `<list>.<i>`.
    public subscript<E>(index: Int) -> Child<E> where M == ModuleList<E> {
        Child<E>(name + "." + String(index), module.items[index])
    }

    /// Every item of a child list, in order.
    public func items<E>() -> [Child<E>] where M == ModuleList<E> {
        module.items.indices.map { self[$0] }
    }
}

/// Modules applied in order; children are named "0", "1", ... as in `nn.Sequential`. Items
/// without parameters (activations, dropout) take a position as in PyTorch.
public struct Sequential: UnaryModule {
    public let layers: [any UnaryModule]

    public init(_ layers: [any UnaryModule]) { self.layers = layers }

    public var children: [(name: String, module: any Module)] {
        layers.enumerated().map { (String($0.offset), $0.element as any Module) }
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        var y = x
        for (i, layer) in layers.enumerated() { y = Self.apply(layer, y, p, String(i)) }
        return y
    }

    static func apply<L: UnaryModule>(_ layer: L, _ x: Tensor, _ p: Scope, _ name: String) -> Tensor {
        Child(name, layer)(x, p)
    }
}

/// Records the output shapes of every child call of a forward pass (`fusekit inspect`).
public final class ModuleTrace {
    /// Output shapes by module prefix (`encoder1.0.attn.`), in call order; a module called
    /// several times keeps its first output.
    public private(set) var outputs: [(prefix: String, shapes: [[Int]])] = []
    private var seen: Set<String> = []

    public init() {}

    func record(_ prefix: String, _ output: Any) {
        guard !seen.contains(prefix) else { return }
        seen.insert(prefix)
        outputs.append((prefix, Self.shapes(of: output)))
    }

    /// The shapes of the tensors in a value (a tensor, a list, a tuple, an enum payload).
    public static func shapes(of value: Any) -> [[Int]] {
        if let tensor = value as? Tensor { return [tensor.shape] }
        if let list = value as? [Tensor] { return list.map(\.shape) }
        return Mirror(reflecting: value).children.flatMap { shapes(of: $0.value) }
    }
}
