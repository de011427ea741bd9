/// # Differentiation
///
/// Reverse mode (``gradients(of:wrt:seeds:createGraph:)``, ``valueWithGradient(at:createGraph:_:)-7f8y``,
/// ``vjp(at:_:)``), forward mode (``jvp(at:tangents:_:)``) and their compositions:
///
/// - **Reverse over reverse** (gradient of a gradient): compute the inner gradient with
///   `createGraph: true`, then differentiate any scalar built from it.
/// - **Reverse over forward** (gradient of a JVP): make the tensors you differentiate with respect
///   to tracked (``Tensor/requiringGradient()``) before calling ``jvp(at:tangents:_:)``; the tangent
///   it returns is tracked and can be differentiated.
///
/// ## The TDFusion hypergradient
/// With the fusion loss `L_f(F(x; θ_F), w(θ_G))` and the meta objective's gradient
/// `v = dL_t/dθ_F'`, the hypergradient is `-η · d/dθ_G ⟨∂L_f/∂F (F, w), J_F v⟩`. Expressed directly:
///
/// ```swift
/// // u = J_F v: a JVP of the fusion net in parameter space (no graph needed).
/// let (fused, u) = withoutGradient {
///     jvp(at: thetaF, tangents: v) { p in fusionNet(x, p) }
/// }
/// // ⟨∂L_f/∂F, u⟩ as a function of θ_G, differentiated by reverse mode.
/// let (_, hyper) = valueWithGradient(at: thetaG) { g in
///     let fLeaf = fused.requiringGradient()
///     let lf = fusionLoss(fLeaf, weights: lossGenerator(x, g))
///     let dF = gradients(of: lf, wrt: [fLeaf], createGraph: true)[0]
///     return (dF * u).sum()
/// }
/// // hypergradient = -η · hyper
/// ```
///
/// Only tensors carried by a graph node are differentiated: make inputs tracked with
/// ``Tensor/requiringGradient()`` (the `valueWithGradient` family does this for you).

/// Gradients of `outputs` (weighted by `seeds`, ones by default) with respect to `inputs`.
///
/// Inputs the outputs do not depend on get zeros. With `createGraph`, the gradients are recorded
/// and can be differentiated again (their graph reaches any tracked tensor the rules used).
public func gradients(of outputs: [Tensor], wrt inputs: [Tensor], seeds: [Tensor]? = nil, createGraph: Bool = false) -> [Tensor] {
    if let seeds {
        require(seeds.count == outputs.count, "gradients: \(seeds.count) seeds for \(outputs.count) outputs")
    }
    var roots: [(node: GradNode, seed: Tensor)] = []
    for (i, y) in outputs.enumerated() {
        guard let node = y.node else { continue }
        let seed = seeds?[i] ?? Tensor.ones(y.shape)
        roots.append((node, seed))
    }
    let found = BackwardEngine.run(roots: roots, targets: inputs.map(\.node), createGraph: createGraph)
    return zip(inputs, found).map { x, g in g ?? Tensor.zeros(x.shape) }
}

/// Gradients of one output with respect to `inputs`. See ``gradients(of:wrt:seeds:createGraph:)``.
public func gradients(of output: Tensor, wrt inputs: [Tensor], seed: Tensor? = nil, createGraph: Bool = false) -> [Tensor] {
    gradients(of: [output], wrt: inputs, seeds: seed.map { [$0] }, createGraph: createGraph)
}

/// The value of a scalar function and its gradient with respect to each input.
///
/// Without `createGraph`, the returned value and gradients are detached; with it, both stay
/// connected to any outer differentiation under way (for gradients of gradients).
public func valueWithGradient(at inputs: [Tensor], createGraph: Bool = false,
                              _ f: ([Tensor]) throws -> Tensor) rethrows -> (value: Tensor, gradients: [Tensor]) {
    // Recording is switched on for f even inside `withoutGradient` (like `torch.enable_grad`),
    // so a gradient taken inside a function evaluated without gradients is still a gradient.
    let leaves = inputs.map { $0.requiringGradient() }
    let value = try withGradient { try f(leaves) }
    require(value.count == 1, "valueWithGradient: the function must return one value, got shape \(Shape.describe(value.shape))")
    let grads = withGradient { gradients(of: value, wrt: leaves, createGraph: createGraph) }
    return (createGraph ? value : value.detached(), grads)
}

/// The value of a scalar function of named tensors (a parameter dictionary) and its gradient,
/// keyed like the input.
public func valueWithGradient(at parameters: [String: Tensor], createGraph: Bool = false,
                              _ f: ([String: Tensor]) throws -> Tensor) rethrows -> (value: Tensor, gradient: [String: Tensor]) {
    let keys = parameters.keys.sorted()
    let (value, grads) = try valueWithGradient(at: keys.map { parameters[$0]! }, createGraph: createGraph) { leaves in
        try f(Dictionary(uniqueKeysWithValues: zip(keys, leaves)))
    }
    return (value, Dictionary(uniqueKeysWithValues: zip(keys, grads)))
}

/// The value of a scalar function of named tensors, its gradient, and an auxiliary result the
/// function returns beside the value (torch.func's `has_aux`): for example the network output
/// the loss was computed from, without capturing it in a variable.
///
/// ```swift
/// let (loss, gradient, fused) = valueWithGradient(at: theta) { p in
///     let f = net.fuse(x, Scope(parameters: p))
///     return (fusionLoss(f), auxiliary: f)
/// }
/// ```
public func valueWithGradient<Auxiliary>(at parameters: [String: Tensor], createGraph: Bool = false,
                                         _ f: ([String: Tensor]) throws -> (value: Tensor, auxiliary: Auxiliary)) rethrows
    -> (value: Tensor, gradient: [String: Tensor], auxiliary: Auxiliary) {
    var auxiliary: Auxiliary?
    let (value, gradient) = try valueWithGradient(at: parameters, createGraph: createGraph) { p in
        let (v, a) = try f(p)
        auxiliary = a
        return v
    }
    return (value, gradient, auxiliary!)
}

/// The gradient of a scalar function of named tensors.
public func gradient(at parameters: [String: Tensor], createGraph: Bool = false,
                     _ f: ([String: Tensor]) throws -> Tensor) rethrows -> [String: Tensor] {
    try valueWithGradient(at: parameters, createGraph: createGraph, f).gradient
}

/// The outputs of `f` and its pullback (vector-Jacobian product): given one cotangent per output,
/// the cotangent of each input. The pullback can be called several times.
public func vjp(at inputs: [Tensor], createGraph: Bool = false,
                _ f: ([Tensor]) throws -> [Tensor]) rethrows -> (values: [Tensor], pullback: ([Tensor]) -> [Tensor]) {
    let leaves = inputs.map { $0.requiringGradient() }
    let outputs = try withGradient { try f(leaves) }
    let pullback: ([Tensor]) -> [Tensor] = { cotangents in
        require(cotangents.count == outputs.count, "vjp: \(cotangents.count) cotangents for \(outputs.count) outputs")
        for (c, y) in zip(cotangents, outputs) {
            require(c.shape == y.shape, "vjp: cotangent of shape \(Shape.describe(c.shape)) for an output of shape \(Shape.describe(y.shape))")
        }
        return withGradient { gradients(of: outputs, wrt: leaves, seeds: cotangents, createGraph: createGraph) }
    }
    return (createGraph ? outputs : outputs.map { $0.detached() }, pullback)
}

/// The outputs of `f` and their directional derivatives (Jacobian-vector products) along
/// `tangents`, one per input, computed in forward mode.
///
/// Every rule is written with tensor operations, so if the inputs or tangents are tracked the
/// returned tangents are differentiable (reverse over forward). Nested JVPs and reverse mode
/// inside `f` are not supported and stop with a message.
public func jvp(at inputs: [Tensor], tangents: [Tensor],
                _ f: ([Tensor]) throws -> [Tensor]) rethrows -> (values: [Tensor], tangents: [Tensor]) {
    require(!Autodiff.isForwardActive, "jvp: nested forward-mode evaluations are not supported")
    require(inputs.count == tangents.count, "jvp: \(tangents.count) tangents for \(inputs.count) inputs")
    for (x, t) in zip(inputs, tangents) {
        require(x.shape == t.shape, "jvp: tangent of shape \(Shape.describe(t.shape)) for an input of shape \(Shape.describe(x.shape))")
    }
    return try Autodiff.$isForwardActive.withValue(true) {
        let primed = zip(inputs, tangents).map { x, t -> Tensor in
            var dual = x
            dual.tangentBox = TangentBox(t)
            return dual
        }
        let outputs = try f(primed)
        let outTangents = outputs.map { $0.tangent ?? Tensor.zeros($0.shape) }
        let values = outputs.map { y -> Tensor in
            var plain = y
            plain.tangentBox = nil
            return plain
        }
        return (values, outTangents)
    }
}

/// Single-output JVP. See ``jvp(at:tangents:_:)-(_,_,([Tensor])->[Tensor])``.
public func jvp(at inputs: [Tensor], tangents: [Tensor],
                _ f: ([Tensor]) throws -> Tensor) rethrows -> (value: Tensor, tangent: Tensor) {
    let (values, outTangents) = try jvp(at: inputs, tangents: tangents) { [try f($0)] }
    return (values[0], outTangents[0])
}

/// JVP of a function of named tensors along named tangents (missing tangents are zero).
public func jvp(at parameters: [String: Tensor], tangents: [String: Tensor],
                _ f: ([String: Tensor]) throws -> Tensor) rethrows -> (value: Tensor, tangent: Tensor) {
    for key in tangents.keys {
        require(parameters[key] != nil, "jvp: tangent for unknown parameter '\(key)'")
    }
    let keys = parameters.keys.sorted()
    let inputs = keys.map { parameters[$0]! }
    let ts = keys.map { tangents[$0] ?? Tensor.zeros(parameters[$0]!.shape) }
    return try jvp(at: inputs, tangents: ts) { xs in try f(Dictionary(uniqueKeysWithValues: zip(keys, xs))) }
}
