import FuseKitTensor

/// 2-D convolution, PyTorch's `nn.Conv2d` (parameters `weight` [out, in/groups, kH, kW] and
/// optional `bias` [out], kaiming-uniform initialised).
public struct Conv2d: UnaryModule {
    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: (Int, Int)
    public let stride: (Int, Int)
    public let padding: (Int, Int)
    public let dilation: (Int, Int)
    public let groups: Int
    public let weight: ParameterSpec
    public let bias: ParameterSpec?

    /// A convolution with a square kernel; `padding` defaults to "same" for odd kernels at stride 1
    /// (`kernelSize / 2`, PyTorch's usual `padding=k//2`). `weightInit` replaces PyTorch's
    /// default weight initialisation (the bias keeps its default).
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int? = nil,
                dilation: Int = 1, groups: Int = 1, bias: Bool = true, weightInit: Initializer? = nil) {
        self.init(inChannels, outChannels, kernelSize: (kernelSize, kernelSize), stride: (stride, stride),
                  padding: padding.map { ($0, $0) } ?? (dilation * (kernelSize - 1) / 2, dilation * (kernelSize - 1) / 2),
                  dilation: (dilation, dilation), groups: groups, bias: bias, weightInit: weightInit)
    }

    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: (Int, Int), stride: (Int, Int), padding: (Int, Int),
                dilation: (Int, Int) = (1, 1), groups: Int = 1, bias: Bool = true, weightInit: Initializer? = nil) {
        require(groups >= 1 && inChannels % groups == 0 && outChannels % groups == 0,
                "Conv2d: \(groups) groups must divide \(inChannels) input and \(outChannels) output channels")
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
        let fanIn = inChannels / groups * kernelSize.0 * kernelSize.1
        weight = ParameterSpec("weight", [outChannels, inChannels / groups, kernelSize.0, kernelSize.1],
                               weightInit ?? .kaimingUniform(fanIn: fanIn))
        self.bias = bias ? ParameterSpec.bias([outChannels], fanIn: fanIn) : nil
    }

    public var hasBias: Bool { bias != nil }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        Tensor.conv2d(x, p[weight], bias: bias.map { p[$0] }, stride: stride, padding: padding,
                      dilation: dilation, groups: groups)
    }

    /// Only the output channels `outputs` (the same values as slicing the full output, without
    /// computing or copying the rest). For a grouped convolution the input must be the matching
    /// input channels: of a depthwise one, the same range.
    public func callAsFunction(_ x: Tensor, _ p: Scope, outputs: Range<Int>) -> Tensor {
        if outputs.count == outChannels { return self(x, p) }
        let weight = p[self.weight].sliced(axis: 0, outputs)
        let bias = self.bias.map { p[$0].sliced(axis: 0, outputs) }
        let outPerGroup = outChannels / groups
        let sliceGroups: Int
        if groups == 1 {
            sliceGroups = 1
        } else {
            require(outputs.lowerBound % outPerGroup == 0 && outputs.count % outPerGroup == 0,
                    "Conv2d: output channels \(outputs) do not cover whole groups of \(outPerGroup)")
            sliceGroups = outputs.count / outPerGroup
        }
        return Tensor.conv2d(x, weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: sliceGroups)
    }

    /// The output split into `parts` equal channel ranges, each computed on its own (a 1x1 conv
    /// then chunk, without copying activations).
    public func chunks(_ x: Tensor, _ p: Scope, _ parts: Int) -> [Tensor] {
        let size = outChannels / parts
        return (0..<parts).map { self(x, p, outputs: ($0 * size)..<(($0 + 1) * size)) }
    }
}

/// Transposed 2-D convolution, PyTorch's `nn.ConvTranspose2d` (weight [in, out/groups, kH, kW]).
public struct ConvTranspose2d: UnaryModule {
    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let padding: Int
    public let outputPadding: Int
    public let groups: Int
    public let weight: ParameterSpec
    public let bias: ParameterSpec?

    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                outputPadding: Int = 0, groups: Int = 1, bias: Bool = true) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        self.outputPadding = outputPadding
        self.groups = groups
        // PyTorch computes fan-in of a transposed conv from weight.size(1) * k * k.
        let fanIn = outChannels / groups * kernelSize * kernelSize
        weight = ParameterSpec("weight", [inChannels, outChannels / groups, kernelSize, kernelSize], .kaimingUniform(fanIn: fanIn))
        self.bias = bias ? ParameterSpec.bias([outChannels], fanIn: fanIn) : nil
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        Tensor.convTranspose2d(x, p[weight], bias: bias.map { p[$0] }, stride: (stride, stride),
                               padding: (padding, padding), outputPadding: (outputPadding, outputPadding), groups: groups)
    }
}

/// Fully connected layer over the last axis, PyTorch's `nn.Linear` (weight [out, in]).
public struct Linear: UnaryModule {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: ParameterSpec
    public let bias: ParameterSpec?

    /// A linear layer; the initialisers default to PyTorch's (kaiming-uniform weight, uniform bias).
    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, weightInit: Initializer? = nil, biasInit: Initializer? = nil) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = ParameterSpec("weight", [outFeatures, inFeatures], weightInit ?? .kaimingUniform(fanIn: inFeatures))
        self.bias = bias ? ParameterSpec.bias([outFeatures], fanIn: inFeatures, initializer: biasInit) : nil
    }

    public var hasBias: Bool { bias != nil }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let y = Tensor.matmul(x.rank == 1 ? x.unsqueezed(at: 0) : x, p[weight], transposeB: true)
        let out = bias.map { y + p[$0] } ?? y
        return x.rank == 1 ? out.squeezed(at: 0) : out
    }
}

extension ParameterSpec {
    /// A layer's `bias`: PyTorch's default U(-1/√fanIn, 1/√fanIn) unless `initializer` says
    /// otherwise, without weight decay.
    public static func bias(_ shape: [Int], fanIn: Int, initializer: Initializer? = nil) -> ParameterSpec {
        ParameterSpec("bias", shape, initializer ?? .uniform(bound: 1 / Float(Swift.max(fanIn, 1)).squareRoot()), decays: false)
    }
}

extension Child where M == Conv2d {
    /// Only the output channels `outputs`; see ``Conv2d/callAsFunction(_:_:outputs:)``.
    public func callAsFunction(_ x: Tensor, _ p: Scope, outputs: Range<Int>) -> Tensor {
        run(in: p) { conv, scope in conv(x, scope, outputs: outputs) }
    }

    /// The output split into equal channel ranges; see ``Conv2d/chunks(_:_:_:)``.
    public func chunks(_ x: Tensor, _ p: Scope, _ parts: Int) -> [Tensor] {
        run(in: p) { conv, scope in conv.chunks(x, scope, parts) }
    }
}
