import FuseKitTensor

/// A network component: a description of an architecture (hyperparameters and child modules)
/// that owns no tensors. Its parameters and buffers live in a ``ModelState`` keyed by dotted
/// names that follow PyTorch's `state_dict` convention (`encoder1.0.attn.qkv.weight`), and its
/// forward functions read them through a ``Scope``. Keeping weights outside the module makes
/// running the same module with a substituted parameter set (PyTorch's `functional_call`) an
/// ordinary call, which is what a differentiable virtual step θ' = θ − η∇ needs.
///
/// A module declares its parameters as stored ``ParameterSpec`` properties and its children as
/// stored ``Child`` properties; each name is stated once, where the child or parameter is made.
/// Both lists are found by walking the stored properties, and calling a child passes it its own
/// scope, so the declared name and the name used at run time cannot disagree:
///
/// ```swift
/// struct Block: UnaryModule {
///     let norm: Child<ChannelLayerNorm>
///     let conv: Child<Conv2d>
///     init(dim: Int) {
///         norm = Child("norm", ChannelLayerNorm(dim))
///         conv = Child("conv", Conv2d(dim, dim, kernelSize: 3))
///     }
///     func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor { x + conv(norm(x, p), p) }
/// }
/// ```
///
/// Modules without parameters (dropout, activations) may be stored without a `Child`; a module
/// with parameters stored that way is reported when the tree is walked.
public protocol Module: Sendable {
    /// Parameters and buffers this module owns directly (not its children's), in registration
    /// order. By default, the stored ``ParameterSpec`` properties in declaration order.
    var ownParameters: [ParameterSpec] { get }
    /// Child modules with their names, in registration order. By default, the stored ``Child``
    /// properties in declaration order.
    var children: [(name: String, module: any Module)] { get }
}

/// A module with one forward function of a typed input (a tensor, a tuple of tensors, ...).
/// ``Child`` forwards calls to it with the child's scope.
public protocol Layer<Input, Output>: Module {
    associatedtype Input
    associatedtype Output
    /// The forward pass; `p` is this module's own scope.
    func callAsFunction(_ input: Input, _ p: Scope) -> Output
}

/// A module with a single tensor input and output (usable in ``Sequential``).
public protocol UnaryModule: Layer where Input == Tensor, Output == Tensor {}

extension Module {
    public var ownParameters: [ParameterSpec] { ModuleReflection.parameters(of: self) }
    public var children: [(name: String, module: any Module)] { ModuleReflection.children(of: self) }

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

    /// Names of the parameters without weight decay (norms, biases, temperatures).
    public var parametersWithoutDecay: Set<String> {
        Set(namedSpecs().filter { !$0.spec.decays && !$0.spec.isBuffer }.map(\.name))
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

/// Finds a module's parameters and children among its stored properties.
enum ModuleReflection {
    static func parameters(of module: some Module) -> [ParameterSpec] {
        var specs: [ParameterSpec] = []
        for property in Mirror(reflecting: module).children {
            if let spec = property.value as? ParameterSpec {
                specs.append(spec)
            } else if let list = property.value as? [ParameterSpec] {
                specs.append(contentsOf: list)
            }
        }
        return specs
    }

    static func children(of module: some Module) -> [(name: String, module: any Module)] {
        var found: [(String, any Module)] = []
        for property in Mirror(reflecting: module).children {
            if let child = property.value as? any NamedChild {
                found.append((child.childName, child.childModule))
            } else if let list = property.value as? [any NamedChild] {
                found.append(contentsOf: list.map { ($0.childName, $0.childModule) })
            } else if let plain = property.value as? any Module {
                precondition(plain.namedSpecs().isEmpty,
                             "\(type(of: module)).\(property.label ?? "?"): a module with parameters must be stored as Child(\"name\", ...)")
            }
        }
        return found
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

    /// A buffer (not trained by gradients, never decayed).
    public static func buffer(_ name: String, _ shape: [Int], _ initializer: Initializer) -> ParameterSpec {
        ParameterSpec(name, shape, initializer, isBuffer: true)
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
    /// The identity matrix (a square rank-2 shape): e.g. the permutation of an LU-factored
    /// invertible 1x1 convolution that starts as the identity.
    case identity

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
        case .identity:
            precondition(shape.count == 2 && shape[0] == shape[1], "the identity initialiser needs a square matrix, got \(shape)")
            return Tensor.eye(shape[0])
        }
    }
}
