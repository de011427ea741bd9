// Sums, means, extrema and variances over axes.

extension Tensor {
    /// Sorted, unique, non-negative axes (all axes when nil).
    func normalizedAxes(_ axes: [Int]?, op: String) -> [Int] {
        guard let axes else { return Array(0..<rank) }
        return Set(axes.map { Shape.normalizeAxis($0, rank: rank, shape: shape, op: op).orDie() }).sorted()
    }

    /// The shape after reducing `axes` with kept (size 1) dimensions.
    func keptShape(_ axes: [Int]) -> [Int] {
        var s = shape
        for a in axes { s[a] = 1 }
        return s
    }

    /// Raw reduction over sorted axes; returns the tensor with kept dimensions.
    func reduceRaw(_ axes: [Int], kind: ReduceKind) -> Tensor {
        var current = self.detached()
        // Runs of consecutive axes, reduced from the last run to the first.
        var runs: [(Int, Int)] = []
        for a in axes {
            if let last = runs.last, last.1 == a - 1 { runs[runs.count - 1].1 = a } else { runs.append((a, a)) }
        }
        if runs.isEmpty { return self.detached() }
        for (start, end) in runs.reversed() {
            let s = current.shape
            let outer = Shape.count(Array(s[..<start]))
            let reduced = Shape.count(Array(s[start...end]))
            let inner = Shape.count(Array(s[(end + 1)...]))
            var outShape = s
            for i in start...end { outShape[i] = 1 }
            let out = Tensor(uninitializedShape: outShape)
            Profiler.measure("reduce \(kind)") {
                Kernels.reduce(current.pointer, outer: outer, reduced: reduced, inner: inner, out.mutablePointer, kind: kind)
            }
            current = out
        }
        return current
    }

    /// Sum over `axes` (all when nil).
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = normalizedAxes(axes, op: "sum")
        let kept = keptShape(ax)
        let outShape = keepDims ? kept : shape.enumerated().filter { !ax.contains($0.offset) }.map(\.element)
        let original = shape
        let y = reduceRaw(ax, kind: .sum).detached().reshapedRaw(outShape)
        return y.recorded(op: "sum", inputs: [self], pullback: { g, _, _ in [g.reshaped(kept).expanded(to: original)] },
                          tangent: { t, _ in t[0].map { $0.sum(axes: ax, keepDims: keepDims) } })
    }

    /// Sum over one axis.
    public func sum(axis: Int, keepDims: Bool = false) -> Tensor { sum(axes: [axis], keepDims: keepDims) }

    /// Mean over `axes` (all when nil).
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = normalizedAxes(axes, op: "mean")
        let n = ax.reduce(1) { $0 * shape[$1] }
        return sum(axes: ax, keepDims: keepDims) * (1 / Float(Swift.max(n, 1)))
    }

    /// Mean over one axis.
    public func mean(axis: Int, keepDims: Bool = false) -> Tensor { mean(axes: [axis], keepDims: keepDims) }

    /// Maximum over `axes`; the gradient is shared equally among tied maxima (like `torch.amax`).
    public func max(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor { extremum(axes, keepDims, .max) }

    /// Minimum over `axes`; the gradient is shared equally among tied minima (like `torch.amin`).
    public func min(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor { extremum(axes, keepDims, .min) }

    private func extremum(_ axes: [Int]?, _ keepDims: Bool, _ kind: ReduceKind) -> Tensor {
        let ax = normalizedAxes(axes, op: kind == .max ? "max" : "min")
        let kept = keptShape(ax)
        let outShape = keepDims ? kept : shape.enumerated().filter { !ax.contains($0.offset) }.map(\.element)
        let raw = reduceRaw(ax, kind: kind)
        // Share of each element in the gradient: 1/ties at the extrema, 0 elsewhere.
        let share = KinkPattern.decision {
            withoutGradient {
                let hits = self.detached().equal(raw)
                return hits / hits.sum(axes: ax, keepDims: true)
            }
        }
        if KinkPattern.isActive { return (Tensor.masked(self, share) * share).sum(axes: ax, keepDims: keepDims) }
        let y = raw.reshapedRaw(outShape)
        let original = shape
        return y.recorded(op: kind == .max ? "max" : "min", inputs: [self], pullback: { g, _, _ in
            [g.reshaped(kept).expanded(to: original) * share]
        }, tangent: { t, _ in t[0].map { ($0 * share).sum(axes: ax, keepDims: keepDims) } })
    }

    /// Variance over `axes` with `correction` (0: biased, as LayerNorm; 1: unbiased).
    public func variance(axes: [Int]? = nil, correction: Int = 0, keepDims: Bool = false) -> Tensor {
        let ax = normalizedAxes(axes, op: "variance")
        let n = ax.reduce(1) { $0 * shape[$1] }
        let centered = self - mean(axes: ax, keepDims: true)
        return (centered * centered).sum(axes: ax, keepDims: keepDims) * (1 / Float(Swift.max(n - correction, 1)))
    }

    /// Index of the maximum along `axis` (as Float values; not differentiable).
    public func argmax(axis: Int, keepDims: Bool = false) -> Tensor {
        KinkPattern.decision { argmaxRaw(axis: axis, keepDims: keepDims) }
    }

    private func argmaxRaw(axis: Int, keepDims: Bool) -> Tensor {
        let a = Shape.normalizeAxis(axis, rank: rank, shape: shape, op: "argmax").orDie()
        let (outer, dim, inner) = splitSizes(a)
        var outShape = shape
        if keepDims { outShape[a] = 1 } else { outShape.remove(at: a) }
        let y = Tensor(uninitializedShape: outShape)
        let px = SendablePointer(UnsafeMutablePointer(mutating: pointer))
        let py = SendablePointer(y.mutablePointer)
        Parallel.forEach(outer, itemCost: dim * inner) { o in
            for i in 0..<inner {
                var best = -Float.infinity, bestIndex = 0
                for d in 0..<dim {
                    let v = px.base[(o * dim + d) * inner + i]
                    if v > best || (v.isNaN && !best.isNaN) { best = v; bestIndex = d }
                }
                py.base[o * inner + i] = Float(bestIndex)
            }
        }
        return y
    }

    /// Reshape of an untracked tensor without recording.
    func reshapedRaw(_ s: [Int]) -> Tensor { Tensor(shape: s, storage: storage, node: nil) }
}
