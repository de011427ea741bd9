// Softmax, log-softmax and L2 normalisation along an axis.

extension Tensor {
    /// Softmax along `axis`.
    public func softmax(axis: Int = -1) -> Tensor {
        let a = Shape.normalizeAxis(axis, rank: rank, shape: shape, op: "softmax").orDie()
        let (outer, dim, inner) = splitSizes(a)
        let y = Tensor(uninitializedShape: shape)
        Profiler.measure("softmax") { Kernels.softmax(pointer, outer: outer, dim: dim, inner: inner, y.mutablePointer, log: false) }
        return y.recorded(op: "softmax", inputs: [self], savesOutput: true, pullback: { g, y, _ in
            [y * (g - (g * y).sum(axis: a, keepDims: true))]
        }, tangent: { t, y in t[0].map { y * ($0 - ($0 * y).sum(axis: a, keepDims: true)) } })
    }

    /// Log-softmax along `axis`, computed stably.
    public func logSoftmax(axis: Int = -1) -> Tensor {
        let a = Shape.normalizeAxis(axis, rank: rank, shape: shape, op: "logSoftmax").orDie()
        let (outer, dim, inner) = splitSizes(a)
        let y = Tensor(uninitializedShape: shape)
        Profiler.measure("logSoftmax") { Kernels.softmax(pointer, outer: outer, dim: dim, inner: inner, y.mutablePointer, log: true) }
        return y.recorded(op: "logSoftmax", inputs: [self], savesOutput: true, pullback: { g, y, _ in
            [g - y.exp() * g.sum(axis: a, keepDims: true)]
        }, tangent: { t, y in t[0].map { $0 - ($0 * y.exp()).sum(axis: a, keepDims: true) } })
    }

    /// Euclidean norm over `axes`, with a gradient of 0 where the norm is 0 (like `torch.linalg.norm`).
    public func norm(axes: [Int], keepDims: Bool = false) -> Tensor {
        let ax = normalizedAxes(axes, op: "norm")
        let x = self
        let y = withoutGradient { (x.detached() * x.detached()).sum(axes: ax, keepDims: keepDims).sqrt() }
        let kept = keptShape(ax)
        return y.recorded(op: "norm", inputs: [x], savesOutput: true, pullback: { g, y, _ in
            let yk = y.reshaped(kept)
            let safe = Tensor.select(yk.greater(0), yk, Tensor(1))
            return [Tensor.masked(g.reshaped(kept) * x / safe, yk.greater(0))]
        }, tangent: { t, y in
            t[0].map { t in
                let yk = y.reshaped(kept)
                let safe = Tensor.select(yk.greater(0), yk, Tensor(1))
                return Tensor.masked((x * t).sum(axes: ax, keepDims: true) / safe, yk.greater(0)).reshaped(y.shape)
            }
        })
    }

    /// x / max(||x||, eps) along `axis` (PyTorch `F.normalize`, p = 2).
    public func l2Normalized(axis: Int, eps: Float = 1e-12) -> Tensor {
        self / norm(axes: [axis], keepDims: true).clamped(min: eps)
    }
}
