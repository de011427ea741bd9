import CFuseKitKernels

// Fused operations for hot paths. Each has a fast kernel for first-order use and falls back to
// the composite definition (ordinary differentiable ops) whenever a graph is being recorded
// through it, so gradients of gradients and gradients of JVPs stay exact.

extension Tensor {
    /// Whether a rule must stay differentiable: recording is on and something involved is tracked.
    static func mustRecord(_ tensors: [Tensor?]) -> Bool {
        Autodiff.isRecording && tensors.contains { $0?.isTracked == true }
    }

    /// The composite definition of the channel LayerNorm (used by the fused op's rules).
    static func channelLayerNormComposite(_ x: Tensor, _ weight: Tensor, _ bias: Tensor?, eps: Float) -> Tensor {
        let c = x.shape[1]
        let mean = x.mean(axis: 1, keepDims: true)
        let centered = x - mean
        let variance = (centered * centered).mean(axis: 1, keepDims: true)
        let y = centered / (variance + eps).sqrt() * weight.reshaped([1, c, 1, 1])
        return bias.map { y + $0.reshaped([1, c, 1, 1]) } ?? y
    }

    /// Per-pixel LayerNorm over the channels of NCHW (biased variance), weight and optional bias
    /// [C]; a fused kernel equal to the composite `(x - mean) / sqrt(var + eps) * w + b`.
    public static func channelLayerNorm(_ x: Tensor, weight: Tensor, bias: Tensor?, eps: Float) -> Tensor {
        require(x.rank == 4, "channelLayerNorm: input must be [N, C, H, W], got \(Shape.describe(x.shape))")
        let (n, c, pixels) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        require(weight.shape == [c] && (bias?.shape ?? [c]) == [c],
                "channelLayerNorm: weight \(Shape.describe(weight.shape)) and bias \(Shape.describe(bias?.shape ?? [])) for \(c) channels")
        let y = Tensor(uninitializedShape: x.shape)
        let mean = Tensor(uninitializedShape: [n, pixels]), rstd = Tensor(uninitializedShape: [n, pixels])
        Profiler.measure("channelLayerNorm") {
            Kernels.channelLayerNorm(x.pointer, batch: n, channels: c, pixels: pixels, eps: eps, weight: weight.pointer,
                                     bias: bias?.pointer, y.mutablePointer, mean: mean.mutablePointer, rstd: rstd.mutablePointer)
        }
        let inputs = [x, weight] + (bias.map { [$0] } ?? [])
        let hasBias = bias != nil
        return y.recorded(op: "channelLayerNorm", inputs: inputs, pullback: { g, _, need in
            if mustRecord([g, x, weight]) {
                let (_, pull) = vjp(at: inputs, createGraph: true) { xs in
                    [channelLayerNormComposite(xs[0], xs[1], hasBias ? xs[2] : nil, eps: eps)]
                }
                let grads = pull([g])
                return grads.enumerated().map { need[$0.offset] ? $0.element : nil }
            }
            var dx: Tensor? = nil
            if need[0] {
                let out = Tensor(uninitializedShape: x.shape)
                Profiler.measure("channelLayerNorm.backward") {
                    Kernels.channelLayerNormProject(g.pointer, scale: weight.pointer, x: x.pointer, mean: mean.pointer, rstd: rstd.pointer,
                                                    batch: n, channels: c, pixels: pixels, out.mutablePointer)
                }
                dx = out
            }
            var dw: Tensor? = nil, db: Tensor? = nil
            if need[1] || (hasBias && need[2]) {
                let gw = Tensor(uninitializedShape: [c]), gb = Tensor(uninitializedShape: [c])
                Kernels.channelLayerNormParameterGradients(g.pointer, x: x.pointer, mean: mean.pointer, rstd: rstd.pointer, batch: n,
                                                           channels: c, pixels: pixels, weightGradient: gw.mutablePointer,
                                                           biasGradient: gb.mutablePointer)
                dw = need[1] ? gw : nil
                db = hasBias && need[2] ? gb : nil
            }
            return hasBias ? [dx, dw, db] : [dx, dw]
        }, tangent: { t, y in
            if mustRecord([x, weight] + t) {
                let tangents = inputs.indices.map { t[$0] ?? Tensor.zeros(inputs[$0].shape) }
                return jvp(at: inputs, tangents: tangents) { xs in
                    channelLayerNormComposite(xs[0], xs[1], hasBias ? xs[2] : nil, eps: eps)
                }.tangent
            }
            // dy = w · P(tx) + x̂ · tw + tb.
            var result: Tensor? = nil
            if let tx = t[0] {
                let projected = Tensor(uninitializedShape: x.shape)
                Kernels.channelLayerNormProject(tx.pointer, scale: nil, x: x.pointer, mean: mean.pointer, rstd: rstd.pointer,
                                                batch: n, channels: c, pixels: pixels, projected.mutablePointer)
                result = projected * weight.reshaped([1, c, 1, 1])
            }
            if t[1] != nil || (hasBias && t[2] != nil) {
                let xhat = (x - mean.reshaped([n, 1, x.shape[2], x.shape[3]])) * rstd.reshaped([n, 1, x.shape[2], x.shape[3]])
                if let tw = t[1] { result = (result.map { $0 + xhat * tw.reshaped([1, c, 1, 1]) }) ?? xhat * tw.reshaped([1, c, 1, 1]) }
                if hasBias, let tb = t[2] { result = (result.map { $0 + tb.reshaped([1, c, 1, 1]) }) ?? tb.reshaped([1, c, 1, 1]).expanded(to: y.shape) }
            }
            return result
        })
    }

    /// gelu(a) · b, the gate of Restormer's feed-forward and ReFusion's mixing module, fused.
    public static func geluGate(_ a: Tensor, _ b: Tensor) -> Tensor {
        require(a.shape == b.shape, "geluGate: shapes \(Shape.describe(a.shape)) and \(Shape.describe(b.shape)) differ")
        let y: Tensor
        if NativeKernels.enabled {
            y = Tensor(uninitializedShape: a.shape)
            let pa = SendablePointer(UnsafeMutablePointer(mutating: a.pointer)), pb = SendablePointer(UnsafeMutablePointer(mutating: b.pointer))
            let py = SendablePointer(y.mutablePointer)
            Profiler.measure("geluGate") { NativeKernels.ranges(a.count) { s, n in fk_gelu_gate(pa.base + s, pb.base + s, py.base + s, n) } }
        } else {
            y = zipRaw(a, b, Fn.GeluGate.self, op: "geluGate")
        }
        return y.recorded(op: "geluGate", inputs: [a, b], pullback: { g, _, need in
            if mustRecord([g, a, b]) {
                return [need[0] ? g * b * a.geluDerivative() : nil, need[1] ? g * a.gelu() : nil]
            }
            let da = need[0] ? Tensor(uninitializedShape: a.shape) : nil
            let db = need[1] ? Tensor(uninitializedShape: a.shape) : nil
            Profiler.measure("geluGate.backward") {
                Kernels.geluGateBackward(g.pointer, a.pointer, b.pointer, count: a.count, da: da?.mutablePointer, db: db?.mutablePointer)
            }
            return [da, db]
        }, tangent: { t, _ in
            if mustRecord([a, b] + t) || !NativeKernels.enabled {
                return addTangents(t[0].map { $0 * b * a.geluDerivative() }, t[1].map { $0 * a.gelu() }, shape: a.shape)
            }
            guard t[0] != nil || t[1] != nil else { return nil }
            let out = Tensor(uninitializedShape: a.shape)
            let pta = t[0].map { SendablePointer(UnsafeMutablePointer(mutating: $0.pointer)) }
            let ptb = t[1].map { SendablePointer(UnsafeMutablePointer(mutating: $0.pointer)) }
            let pa = SendablePointer(UnsafeMutablePointer(mutating: a.pointer)), pb = SendablePointer(UnsafeMutablePointer(mutating: b.pointer))
            let po = SendablePointer(out.mutablePointer)
            Profiler.measure("geluGate.tangent") {
                NativeKernels.ranges(a.count) { s, n in
                    fk_gelu_gate_tangent(pta.map { UnsafePointer($0.base + s) }, ptb.map { UnsafePointer($0.base + s) },
                                         pa.base + s, pb.base + s, po.base + s, n)
                }
            }
            return out
        })
    }
}
