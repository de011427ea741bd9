import FuseKitNN
import FuseKitTensor

/// A module tree with parameter counts and the output shapes of one forward pass, like
/// torchinfo's summary (`fusekit inspect`).
public struct ModuleSummary: Sendable {
    /// One module of the tree.
    public struct Node: Sendable {
        /// Its name under its parent ("attn"; the plugin name for the root).
        public var name: String
        /// Its dotted prefix (`encoder1.0.attn.`; empty for the root).
        public var prefix: String
        /// Its Swift type.
        public var type: String
        /// Trainable scalars of the module and everything below it.
        public var parameters: Int
        /// Trainable scalars the module owns itself.
        public var ownParameters: Int
        /// Output shapes of its first call in the pass (empty when it was not called).
        public var outputShapes: [[Int]]
        public var children: [Node]
    }

    public var root: Node
    /// The input shape of the pass.
    public var inputShape: [Int]

    /// The summary of `module`, with output shapes from `forward` run with a traced context.
    public static func make(_ module: any Module, name: String, inputShape: [Int],
                            forward: (any Module, Scope) -> Any) -> ModuleSummary {
        let state = module.initialState(seed: 0)
        let context = ForwardContext()
        let trace = ModuleTrace()
        context.trace = trace
        let output = withoutGradient { forward(module, Scope(state, context: context)) }
        var shapes = Dictionary(trace.outputs.map { ($0.prefix, $0.shapes) }, uniquingKeysWith: { a, _ in a })
        shapes[""] = ModuleTrace.shapes(of: output)
        return ModuleSummary(root: node(module, name: name, prefix: "", shapes: shapes), inputShape: inputShape)
    }

    static func node(_ module: any Module, name: String, prefix: String, shapes: [String: [[Int]]]) -> Node {
        let children = module.children.map { node($0.module, name: $0.name, prefix: prefix + $0.name + ".", shapes: shapes) }
        let own = module.ownParameters.filter { !$0.isBuffer }.reduce(0) { $0 + Shape.count($1.shape) }
        return Node(name: name, prefix: prefix, type: String(describing: type(of: module)),
                    parameters: own + children.reduce(0) { $0 + $1.parameters }, ownParameters: own,
                    outputShapes: shapes[prefix] ?? [], children: children)
    }

    /// Total trainable scalars.
    public var parameters: Int { root.parameters }

    /// The tree as text, one module per line, with totals.
    public func text(maxDepth: Int = .max) -> String {
        var rows: [(String, String, String)] = []
        func visit(_ n: Node, _ indent: String, _ depth: Int, last: Bool, isRoot: Bool) {
            let branch = isRoot ? "" : indent + (last ? "└─" : "├─")
            let shapes = n.outputShapes.map(Shape.describe).joined(separator: ", ")
            rows.append((branch + "\(n.name) (\(n.type))", shapes, Self.grouped(n.parameters)))
            guard depth < maxDepth else { return }
            let childIndent = isRoot ? "" : indent + (last ? "  " : "│ ")
            for (i, c) in n.children.enumerated() { visit(c, childIndent, depth + 1, last: i == n.children.count - 1, isRoot: false) }
        }
        visit(root, "", 0, last: true, isRoot: true)
        let w0 = Swift.max(12, rows.map { $0.0.count }.max() ?? 0), w1 = Swift.max(12, rows.map { $0.1.count }.max() ?? 0)
        func pad(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: Swift.max(0, w - s.count)) }
        var lines = [pad("Module (type)", w0) + "  " + pad("Output shape", w1) + "  Parameters"]
        lines.append(String(repeating: "=", count: w0 + w1 + 14))
        lines += rows.map { pad($0.0, w0) + "  " + pad($0.1, w1) + "  " + $0.2 }
        lines.append(String(repeating: "=", count: w0 + w1 + 14))
        lines.append("Input shape: \(Shape.describe(inputShape))")
        lines.append("Total parameters: \(Self.grouped(parameters))")
        return lines.joined(separator: "\n")
    }

    /// 1234567 as "1,234,567".
    static func grouped(_ n: Int) -> String {
        let digits = Array(String(n))
        var out = ""
        for (i, d) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(d)
        }
        return out
    }

    /// The summary as one JSON object: `{"plugin", "input", "parameters" (the total), "tree"}`.
    public func json(plugin: String) -> String {
        typealias J = ReportFormat.JSON
        func node(_ n: Node) -> String {
            J.object([("name", J.string(n.name)), ("type", J.string(n.type)), ("parameters", "\(n.parameters)"),
                      ("own_parameters", "\(n.ownParameters)"),
                      ("output_shapes", J.array(n.outputShapes.map { J.array($0.map(String.init)) })),
                      ("children", J.array(n.children.map(node)))])
        }
        return J.object([("plugin", J.string(plugin)), ("input", J.array(inputShape.map(String.init))), ("parameters", "\(parameters)"),
                         ("tree", node(root))])
    }
}

extension PluginDescriptor {
    /// The plugin's module built from `parameters`, summarised over one forward pass of a random
    /// input of `height` x `width` (the kind's usual input: the source pair, or a task image).
    public func summary(_ parameters: PluginParameters = PluginParameters(), height: Int = 64, width: Int = 64) throws -> ModuleSummary {
        let module = try makeModule(parameters)
        var rng = RandomGenerator(seed: 1)
        switch module {
        case let net as any FusionNet:
            let x = Tensor.uniform([1, 2, height, width], using: &rng)
            return ModuleSummary.make(net, name: name, inputShape: x.shape) { _, p in net.fuse(x, p) }
        case let net as any LossGenerator:
            let x = Tensor.uniform([1, 2, height, width], using: &rng)
            return ModuleSummary.make(net, name: name, inputShape: x.shape) { _, p in net.weights(x, p) }
        case let net as any TaskNet:
            let x = Tensor.uniform([1, net.inputChannels, height, width], using: &rng)
            return ModuleSummary.make(net, name: name, inputShape: x.shape) { _, p in net.predict(x, p) }
        case let net as any JointModel:
            let input = JointInput(infrared: Tensor.uniform([1, 1, height, width], using: &rng),
                                   visible: Tensor.uniform([1, net.visibleChannels, height, width], using: &rng))
            return ModuleSummary.make(net, name: name, inputShape: input.visible.shape) { _, p in net.forward(input, p) }
        default:
            preconditionFailure("\(name): \(type(of: module)) is not a \(kind.protocolName)")
        }
    }
}
