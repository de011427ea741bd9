import FuseKitNN
import FuseKitTensor

/// The pieces of one TDFusion meta step (paper Algorithm 1, lines for learning G), with the
/// networks, their current parameters and the two batches fixed.
///
/// With the fusion loss L_f(F(x; θ_F), w(θ_G)) on the meta-train batch x, the virtual step
/// θ_F' = θ_F − η ∇_θF L_f, and the task loss L_t(T'(F(x'; θ_F'))) on the meta-test batch x'
/// (T' = T after one ordinary step, held fixed), the meta objective is J(θ_G) = L_t. Its
/// gradient reaches G only through θ_F'(θ_G):
///
///     ∇J = −η (∂²L_f / ∂θ_F ∂θ_G)ᵀ v = −η ∇_θG ⟨∂L_f/∂F (F(x), w(θ_G)), J_F v⟩,   v = ∇_θF' L_t.
///
/// ``exactHypergradient()`` evaluates the right-hand side exactly: one reverse pass for v, one
/// forward-mode pass of F for u = J_F v (no graph of F's backward pass is kept), and one reverse
/// pass through the loss and G. ``finiteDifferenceHypergradient(epsilon:)`` is the DARTS-style
/// approximation of the mixed second derivative, for comparison.
public struct MetaStepProblem {
    public let fusion: any FusionNet
    public let lossGenerator: any LossGenerator
    public let task: any TaskNet
    public let loss: FusionLoss
    /// θ_F and F's buffers.
    public let fusionState: ModelState
    /// θ_G and G's buffers.
    public let generatorState: ModelState
    /// T' (the task network after its inner step), held fixed.
    public let taskState: ModelState
    /// Meta-train sources [B, 2, H, W] and their gradient target.
    public let sources: Tensor
    /// Meta-test sources [B, 2, H, W] and labels.
    public let nextSources: Tensor
    public let nextTargets: TaskTargets
    /// Inner step size η.
    public let innerLearningRate: Float
    /// Maps fused images to the task network's input (resize, channel repeat).
    public let taskInput: @Sendable (Tensor) -> Tensor
    /// Seed of the forward contexts (dropout masks are the same in every evaluation).
    public let contextSeed: UInt64
    /// Training mode of the networks during the meta step.
    public let training: Bool
    /// The ranks sharing the step: the inner gradient g and v = ∇_θF' L_t are averaged over them
    /// (so that θ_F' and v are the global batch's); the hypergradient each rank returns is its
    /// shard's, to be averaged by the caller.
    public let parallel: DataParallelism

    public init(fusion: any FusionNet, lossGenerator: any LossGenerator, task: any TaskNet, loss: FusionLoss,
                fusionState: ModelState, generatorState: ModelState, taskState: ModelState,
                sources: Tensor, nextSources: Tensor, nextTargets: TaskTargets, innerLearningRate: Float,
                taskInput: @escaping @Sendable (Tensor) -> Tensor, contextSeed: UInt64, training: Bool = true,
                parallel: DataParallelism = .singleProcess) {
        self.fusion = fusion
        self.lossGenerator = lossGenerator
        self.task = task
        self.loss = loss
        self.fusionState = fusionState
        self.generatorState = generatorState
        self.taskState = taskState
        self.sources = sources
        self.nextSources = nextSources
        self.nextTargets = nextTargets
        self.innerLearningRate = innerLearningRate
        self.taskInput = taskInput
        self.contextSeed = contextSeed
        self.training = training
        self.parallel = parallel
        self.gradientTarget = FusionLoss.gradientTarget(sources)
    }

    let gradientTarget: Tensor

    func context(_ pass: RandomStream.MetaPass) -> ForwardContext {
        parallel.context(training: training, rng: RandomStream.metaPass(pass).generator(contextSeed))
    }

    func fusionScope(_ parameters: [String: Tensor], _ pass: RandomStream.MetaPass) -> Scope {
        Scope(parameters: parameters, buffers: fusionState.buffers, context: context(pass))
    }

    /// w = G(x; θ_G).
    public func weights(_ generatorParameters: [String: Tensor]) -> Tensor {
        lossGenerator.weights(sources, Scope(parameters: generatorParameters, buffers: generatorState.buffers, context: context(.lossGenerator)))
    }

    /// ∇_θF L_f at θ_F for the given weights, and the fused batch F(x; θ_F).
    public func innerGradient(weights: Tensor, createGraph: Bool = false) -> (gradient: [String: Tensor], fused: Tensor, loss: Float) {
        let (value, gradient, fused) = valueWithGradient(at: fusionState.parameters, createGraph: createGraph) { p in
            let f = fusion.fuse(sources, fusionScope(p, .innerFusion))
            return (loss(fused: f, sources: sources, weights: weights, gradientTarget: gradientTarget), auxiliary: f)
        }
        return (gradient, fused.detached(), value.item)
    }

    /// θ_F' = θ_F − η g.
    public func steppedParameters(_ gradient: [String: Tensor]) -> [String: Tensor] {
        fusionState.parameters.merging(gradient) { theta, g in theta - innerLearningRate * g }
    }

    /// L_t(T'(F(x'; θ_F'))).
    public func outerLoss(_ steppedFusion: [String: Tensor]) -> Tensor {
        let fused = fusion.fuse(nextSources, fusionScope(steppedFusion, .outerFusion))
        return task.loss(taskInput(fused), targets: nextTargets, Scope(taskState, context: context(.outerTask)))
    }

    /// The meta objective J(θ_G) = L_t(T'(F(x'; θ_F − η ∇_θF L_f(θ_F, w(θ_G))))), evaluated
    /// without approximation (for checks; training uses the hypergradient directly).
    public func metaObjective(_ generatorParameters: [String: Tensor]) -> Float {
        withoutGradient {
            let (g, _, _) = innerGradient(weights: weights(generatorParameters))
            return outerLoss(steppedParameters(g)).item
        }
    }

    /// The same problem with another T' (after the trainer has taken T's inner step).
    public func with(taskState: ModelState) -> MetaStepProblem {
        MetaStepProblem(fusion: fusion, lossGenerator: lossGenerator, task: task, loss: loss, fusionState: fusionState,
                        generatorState: generatorState, taskState: taskState, sources: sources, nextSources: nextSources,
                        nextTargets: nextTargets, innerLearningRate: innerLearningRate, taskInput: taskInput,
                        contextSeed: contextSeed, training: training, parallel: parallel)
    }

    /// The inner pass at the current θ_G: weights w, ∇_θF L_f, F(x) and L_f.
    public struct InnerPass {
        public var weights: Tensor
        public var gradient: [String: Tensor]
        public var fused: Tensor
        public var fusionLoss: Float
    }

    /// Runs the inner pass (w = G(x), then ∇_θF L_f at θ_F).
    public func innerPass() -> InnerPass {
        let w = withoutGradient { weights(generatorState.parameters) }
        let (g, fused, lf) = innerGradient(weights: w)
        return InnerPass(weights: w, gradient: parallel.averaged(g, of: fusion), fused: fused, fusionLoss: lf)
    }

    /// The result of a hypergradient computation.
    public struct Result {
        /// ∇_θG J.
        public var hypergradient: [String: Tensor]
        /// L_f on the meta-train batch (at θ_F, with w(θ_G)).
        public var fusionLoss: Float
        /// L_t(T'(F')) on the meta-test batch.
        public var outerTaskLoss: Float
    }

    /// The exact hypergradient (forward over F's parameters, then reverse through the loss and G);
    /// pass the inner pass if it was already run.
    public func exactHypergradient(inner: InnerPass? = nil) -> Result {
        let pass = inner ?? innerPass()
        let (fused, lf) = (pass.fused, pass.fusionLoss)
        let stepped = steppedParameters(pass.gradient)
        // v = ∇_θF' L_t.
        let (outer, localV) = valueWithGradient(at: stepped) { outerLoss($0) }
        let v = parallel.averaged(localV, of: fusion)
        // u = J_F(θ_F) v, the change of F(x) along v (forward mode; no graph).
        let u = withoutGradient {
            jvp(at: fusionState.parameters, tangents: v) { p in fusion.fuse(sources, fusionScope(p, .innerFusion)) }.tangent
        }
        // −η ∇_θG ⟨∂L_f/∂F (F, w(θ_G)), u⟩.
        let hyper = gradient(at: generatorState.parameters) { g in
            let fusedLeaf = fused.requiringGradient()
            let lf = loss(fused: fusedLeaf, sources: sources, weights: weights(g), gradientTarget: gradientTarget)
            let dF = gradients(of: lf, wrt: [fusedLeaf], createGraph: true)[0]
            return (dF * u).sum() * (-innerLearningRate)
        }
        return Result(hypergradient: hyper, fusionLoss: lf, outerTaskLoss: outer.item)
    }

    /// DARTS-style approximation: −η [∇_θG L_f(θ_F + εv, θ_G) − ∇_θG L_f(θ_F − εv, θ_G)] / 2ε with
    /// ε = epsilon / ‖v‖.
    public func finiteDifferenceHypergradient(epsilon: Float = 0.01, inner: InnerPass? = nil) -> Result {
        let pass = inner ?? innerPass()
        let lf = pass.fusionLoss
        let (outer, localV) = valueWithGradient(at: steppedParameters(pass.gradient)) { outerLoss($0) }
        let v = parallel.averaged(localV, of: fusion)
        let norm = v.values.reduce(Float(0)) { $0 + ($1 * $1).sum().item }.squareRoot()
        let step = epsilon / Swift.max(norm, 1e-12)
        func generatorGradient(_ sign: Float) -> [String: Tensor] {
            let shifted = fusionState.parameters.merging(v) { theta, d in theta + (sign * step) * d }
            let fused = withoutGradient { fusion.fuse(sources, fusionScope(shifted, .innerFusion)) }
            return gradient(at: generatorState.parameters) { g in
                loss(fused: fused, sources: sources, weights: weights(g), gradientTarget: gradientTarget)
            }
        }
        let plus = generatorGradient(1), minus = generatorGradient(-1)
        let scale = -innerLearningRate / (2 * step)
        let hyper = plus.merging(minus) { a, b in (a - b) * scale }
        return Result(hypergradient: hyper, fusionLoss: lf, outerTaskLoss: outer.item)
    }
}
