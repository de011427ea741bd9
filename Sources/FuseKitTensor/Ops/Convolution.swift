// 2-D convolution and its two adjoints. The three are partial derivatives of one trilinear form
// T(x, w, dy) = <conv(x, w), dy>, so each one's rules are written with the other two, which makes
// convolutions differentiable to any order.

extension Tensor {
    /// Validated geometry of conv2d(x, w).
    static func convGeometry(input: [Int], weight: [Int], stride: (Int, Int), padding: (Int, Int),
                             dilation: (Int, Int), groups: Int, op: String) -> ConvGeometry {
        require(input.count == 4, "\(op): input must be [N, C, H, W], got \(Shape.describe(input))")
        require(weight.count == 4, "\(op): weight must be [Cout, Cin/groups, kH, kW], got \(Shape.describe(weight))")
        require(groups >= 1 && input[1] % groups == 0 && weight[0] % groups == 0,
                "\(op): \(groups) groups do not divide input channels \(input[1]) and output channels \(weight[0]) (input \(Shape.describe(input)), weight \(Shape.describe(weight)))")
        require(weight[1] * groups == input[1],
                "\(op): weight \(Shape.describe(weight)) expects \(weight[1] * groups) input channels with \(groups) groups, input \(Shape.describe(input)) has \(input[1])")
        require(stride.0 >= 1 && stride.1 >= 1 && dilation.0 >= 1 && dilation.1 >= 1 && padding.0 >= 0 && padding.1 >= 0,
                "\(op): invalid stride \(stride), padding \(padding) or dilation \(dilation)")
        let g = ConvGeometry(batch: input[0], inChannels: input[1], outChannels: weight[0], inHeight: input[2], inWidth: input[3],
                             kernelHeight: weight[2], kernelWidth: weight[3], strideY: stride.0, strideX: stride.1,
                             padY: padding.0, padX: padding.1, dilationY: dilation.0, dilationX: dilation.1, groups: groups)
        require(g.outHeight >= 1 && g.outWidth >= 1,
                "\(op): input \(Shape.describe(input)) is too small for kernel \(weight[2])x\(weight[3]) with padding \(padding) and dilation \(dilation)")
        return g
    }

    /// 2-D convolution (cross-correlation) of x [N, Cin, H, W] with weight [Cout, Cin/groups, kH, kW],
    /// plus an optional bias [Cout].
    public static func conv2d(_ x: Tensor, _ weight: Tensor, bias: Tensor? = nil, stride: (Int, Int) = (1, 1),
                              padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1), groups: Int = 1) -> Tensor {
        let g = convGeometry(input: x.shape, weight: weight.shape, stride: stride, padding: padding,
                             dilation: dilation, groups: groups, op: "conv2d")
        var y = convForward(x, weight, g)
        if let bias {
            require(bias.shape == [g.outChannels], "conv2d: bias \(Shape.describe(bias.shape)) for \(g.outChannels) output channels")
            y = y + bias.reshaped([1, g.outChannels, 1, 1])
        }
        return y
    }

    /// Transposed 2-D convolution (the adjoint of conv2d in its input), weight
    /// [Cin, Cout/groups, kH, kW] as in PyTorch's `conv_transpose2d`.
    public static func convTranspose2d(_ x: Tensor, _ weight: Tensor, bias: Tensor? = nil, stride: (Int, Int) = (1, 1),
                                       padding: (Int, Int) = (0, 0), outputPadding: (Int, Int) = (0, 0),
                                       dilation: (Int, Int) = (1, 1), groups: Int = 1) -> Tensor {
        require(x.rank == 4 && weight.rank == 4, "convTranspose2d: input \(Shape.describe(x.shape)) and weight \(Shape.describe(weight.shape)) must be rank 4")
        require(weight.shape[0] == x.shape[1], "convTranspose2d: weight \(Shape.describe(weight.shape)) expects \(weight.shape[0]) input channels, input \(Shape.describe(x.shape)) has \(x.shape[1])")
        let outH = (x.shape[2] - 1) * stride.0 - 2 * padding.0 + dilation.0 * (weight.shape[2] - 1) + outputPadding.0 + 1
        let outW = (x.shape[3] - 1) * stride.1 - 2 * padding.1 + dilation.1 * (weight.shape[3] - 1) + outputPadding.1 + 1
        let outC = weight.shape[1] * groups
        let g = convGeometry(input: [x.shape[0], outC, outH, outW], weight: weight.shape, stride: stride, padding: padding,
                             dilation: dilation, groups: groups, op: "convTranspose2d")
        require(g.outHeight == x.shape[2] && g.outWidth == x.shape[3],
                "convTranspose2d: output padding \(outputPadding) is inconsistent with input \(Shape.describe(x.shape))")
        var y = convBackwardInput(x, weight, g)
        if let bias {
            require(bias.shape == [outC], "convTranspose2d: bias \(Shape.describe(bias.shape)) for \(outC) output channels")
            y = y + bias.reshaped([1, outC, 1, 1])
        }
        return y
    }

    static func convForward(_ x: Tensor, _ w: Tensor, _ g: ConvGeometry) -> Tensor {
        let y = Tensor(uninitializedShape: g.outputShape)
        Profiler.measure("conv2d" + g.kind, flops: g.flops) { ConvKernels.forward(x.pointer, w.pointer, g, y.mutablePointer) }
        return y.recorded(op: "conv2d", inputs: [x, w], pullback: { dy, _, need in
            [need[0] ? convBackwardInput(dy, w, g) : nil, need[1] ? convBackwardWeight(x, dy, g) : nil]
        }, tangent: { t, y in
            addTangents(t[0].map { convForward($0, w, g) }, t[1].map { convForward(x, $0, g) }, shape: y.shape)
        })
    }

    static func convBackwardInput(_ dy: Tensor, _ w: Tensor, _ g: ConvGeometry) -> Tensor {
        let dx = Tensor(uninitializedShape: g.inputShape)
        Profiler.measure("conv2d.backwardInput" + g.kind, flops: g.flops) { ConvKernels.backwardInput(dy.pointer, w.pointer, g, dx.mutablePointer) }
        return dx.recorded(op: "conv2d.backwardInput", inputs: [dy, w], pullback: { c, _, need in
            [need[0] ? convForward(c, w, g) : nil, need[1] ? convBackwardWeight(c, dy, g) : nil]
        }, tangent: { t, y in
            addTangents(t[0].map { convBackwardInput($0, w, g) }, t[1].map { convBackwardInput(dy, $0, g) }, shape: y.shape)
        })
    }

    static func convBackwardWeight(_ x: Tensor, _ dy: Tensor, _ g: ConvGeometry) -> Tensor {
        let dw = Tensor(uninitializedShape: g.weightShape)
        Profiler.measure("conv2d.backwardWeight" + g.kind, flops: g.flops) { ConvKernels.backwardWeight(x.pointer, dy.pointer, g, dw.mutablePointer) }
        return dw.recorded(op: "conv2d.backwardWeight", inputs: [x, dy], pullback: { c, _, need in
            [need[0] ? convBackwardInput(dy, c, g) : nil, need[1] ? convForward(x, c, g) : nil]
        }, tangent: { t, y in
            addTangents(t[0].map { convBackwardWeight($0, dy, g) }, t[1].map { convBackwardWeight(x, $0, g) }, shape: y.shape)
        })
    }
}
