/// The reverse-mode engine: pulls cotangents from outputs back to requested tensors.
enum BackwardEngine {
    /// Cotangents of `targets` given seeds for `roots`.
    ///
    /// Only nodes on a path from a root to a target are visited. With `createGraph`, the rules run
    /// while recording, so the returned gradients are themselves differentiable (reverse over
    /// reverse); otherwise they are plain values and no graph is built.
    static func run(roots: [(node: GradNode, seed: Tensor)], targets: [GradNode?], createGraph: Bool) -> [Tensor?] {
        require(!Autodiff.isForwardActive,
                "gradient: reverse mode inside a JVP evaluation (forward over reverse) is not supported; differentiate the JVP from outside instead (reverse over forward)")
        let targetIDs = Set(targets.compactMap { $0.map(ObjectIdentifier.init) })
        guard !targetIDs.isEmpty else { return targets.map { _ in nil } }

        // Which nodes lie on a path to a target (iterative post-order, graphs can be deep).
        var needed: [ObjectIdentifier: Bool] = [:]
        var order: [GradNode] = []
        var stack: [(GradNode, Bool)] = roots.map { ($0.node, false) }
        while let (node, expanded) = stack.popLast() {
            let key = ObjectIdentifier(node)
            if expanded {
                var isNeeded = targetIDs.contains(key)
                for parent in node.parents {
                    if let parent, needed[ObjectIdentifier(parent)] == true { isNeeded = true }
                }
                needed[key] = isNeeded
                if isNeeded { order.append(node) }
                continue
            }
            if needed[key] != nil { continue }
            needed[key] = false  // visiting; final value set on the expanded pass
            stack.append((node, true))
            for parent in node.parents {
                if let parent, needed[ObjectIdentifier(parent)] == nil { stack.append((parent, false)) }
            }
        }
        order.sort { $0.id > $1.id }

        var cotangents: [ObjectIdentifier: Tensor] = [:]
        for (node, seed) in roots where needed[ObjectIdentifier(node)] == true {
            require(seed.shape == node.shape,
                    "gradient: seed of shape \(Shape.describe(seed.shape)) for an output of shape \(Shape.describe(node.shape))")
            accumulate(&cotangents, ObjectIdentifier(node), seed)
        }
        var results: [ObjectIdentifier: Tensor] = [:]

        let body = {
            for node in order {
                let key = ObjectIdentifier(node)
                guard let g = targetIDs.contains(key) ? cotangents[key] : cotangents.removeValue(forKey: key) else { continue }
                if targetIDs.contains(key) { results[key] = g }
                guard let pullback = node.pullback else { continue }
                let flags = node.parents.map { parent in parent.map { needed[ObjectIdentifier($0)] == true } ?? false }
                guard flags.contains(true) else { continue }
                // Rules that did not save their output get an empty placeholder.
                let output = node.savedOutput.map { Tensor(shape: node.shape, storage: $0, node: createGraph ? node : nil) }
                    ?? Tensor.unsavedOutput
                let inputCotangents = pullback(g, output, NeededInputs(flags))
                require(inputCotangents.count == node.parents.count,
                        "\(node.op): pullback returned \(inputCotangents.count) cotangents for \(node.parents.count) inputs")
                for (i, parent) in node.parents.enumerated() where flags[i] {
                    guard let parent, let gi = inputCotangents[i] else { continue }
                    require(gi.shape == parent.shape,
                            "\(node.op): cotangent of input \(i) has shape \(Shape.describe(gi.shape)), input has \(Shape.describe(parent.shape))")
                    accumulate(&cotangents, ObjectIdentifier(parent), gi)
                }
            }
        }
        if createGraph { body() } else { withoutGradient(body) }
        return targets.map { $0.flatMap { results[ObjectIdentifier($0)] } }
    }

    private static func accumulate(_ table: inout [ObjectIdentifier: Tensor], _ key: ObjectIdentifier, _ value: Tensor) {
        if let existing = table[key] {
            table[key] = existing + value
        } else {
            table[key] = value
        }
    }
}

extension Tensor {
    static let unsavedOutput = Tensor(shape: [0], storage: TensorStorage(uninitializedCount: 0))
}
