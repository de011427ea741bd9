import FuseKitTensor

/// A network component: a description of an architecture (hyperparameters and child modules)
/// that owns no tensors. Its parameters and buffers live in a ``ModelState`` keyed by dotted
/// names that follow PyTorch's `state_dict` convention (`encoder1.0.attn.qkv.weight`), and its
/// forward functions read them through a ``Scope``. Keeping weights outside the module makes
/// running the same module with a substituted parameter set (PyTorch's `functional_call`) an
/// ordinary call, which is what a differentiable virtual step θ' = θ − η∇ needs.
///
/// A module lists the parameters it owns directly and its named children:
///
/// ```swift
/// struct Block: Module, UnaryModule {
///     let norm: ChannelLayerNorm
///     let conv: Conv2d
///     var children: [(name: String, module: any Module)] { [("norm", norm), ("conv", conv)] }
///     func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
///         x + conv(norm(x, p.child("norm")), p.child("conv"))
///     }
/// }
/// ```
public protocol Module: Sendable {
    /// Parameters and buffers this module owns directly (not its children's).
    var ownParameters: [ParameterSpec] { get }
    /// Child modules with their names, in registration order.
    var children: [(name: String, module: any Module)] { get }
}

/// A module with a single tensor input and output (usable in ``Sequential``).
public protocol UnaryModule: Module {
    /// The forward pass.
    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor
}

extension Module {
    public var ownParameters: [ParameterSpec] { [] }
    public var children: [(name: String, module: any Module)] { [] }

    /// Every parameter and buffer of the tree with its full dotted name, in registration order.
    public func namedSpecs(prefix: String = "") -> [(name: String, spec: ParameterSpec)] {
        var result: [(String, ParameterSpec)] = []
        for spec in ownParameters { result.append((prefix + spec.name, spec)) }
        for (name, child) in children { result.append(contentsOf: child.namedSpecs(prefix: prefix + name + ".")) }
        return result
    }

    /// Number of trainable scalars.
    public var parameterCount: Int {
        namedSpecs().filter { !$0.spec.isBuffer }.reduce(0) { $0 + Shape.count($1.spec.shape) }
    }

    /// Fresh parameters and buffers drawn with each spec's initialiser (PyTorch's defaults unless
    /// a module says otherwise), in registration order.
    public func initialState(using rng: inout RandomGenerator) -> ModelState {
        var state = ModelState()
        for (name, spec) in namedSpecs() {
            let value = spec.initializer.make(spec.shape, using: &rng)
            if spec.isBuffer { state.buffers[name] = value } else { state.parameters[name] = value }
        }
        return state
    }

    /// Fresh parameters and buffers from a seed.
    public func initialState(seed: UInt64) -> ModelState {
        var rng = RandomGenerator(seed: seed)
        return initialState(using: &rng)
    }
}

/// One parameter or buffer a module owns.
public struct ParameterSpec: Sendable {
    /// Name relative to the owning module (`weight`, `bias`, `temperature`, `running_mean`).
    public var name: String
    /// Shape.
    public var shape: [Int]
    /// How to draw the initial value.
    public var initializer: Initializer
    /// A buffer is state that is not trained by gradients (BatchNorm running statistics).
    public var isBuffer: Bool
    /// Whether weight decay applies (false for biases, norms, temperatures by convention).
    public var decays: Bool

    public init(_ name: String, _ shape: [Int], _ initializer: Initializer, isBuffer: Bool = false, decays: Bool = true) {
        self.name = name
        self.shape = shape
        self.initializer = initializer
        self.isBuffer = isBuffer
        self.decays = decays && !isBuffer
    }
}

/// Initial-value distributions (PyTorch's `nn.init`).
public enum Initializer: Sendable {
    /// Every element equal to the value.
    case constant(Float)
    /// U(-bound, bound).
    case uniform(bound: Float)
    /// PyTorch's default for conv and linear weights: kaiming-uniform with a = √5, i.e.
    /// U(-1/√fanIn, 1/√fanIn).
    case kaimingUniform(fanIn: Int)
    /// N(mean, std²).
    case normal(mean: Float, std: Float)
    /// N(0, std²) truncated to [-2, 2] (absolute bounds, as `trunc_normal_`'s defaults).
    case truncatedNormal(std: Float)

    /// Draws a tensor.
    public func make(_ shape: [Int], using rng: inout RandomGenerator) -> Tensor {
        switch self {
        case .constant(let v):
            return Tensor.full(shape, v)
        case .uniform(let bound):
            return Tensor.uniform(shape, low: -bound, high: bound, using: &rng)
        case .kaimingUniform(let fanIn):
            let bound = 1 / Float(Swift.max(fanIn, 1)).squareRoot()
            return Tensor.uniform(shape, low: -bound, high: bound, using: &rng)
        case .normal(let mean, let std):
            return Tensor.normal(shape, mean: mean, std: std, using: &rng)
        case .truncatedNormal(let std):
            let n = Shape.count(shape)
            var values = [Float](repeating: 0, count: n)
            for i in 0..<n {
                var v = rng.nextNormal() * std
                while v < -2 || v > 2 { v = rng.nextNormal() * std }
                values[i] = v
            }
            return Tensor(shape: shape, scalars: values)
        }
    }
}
