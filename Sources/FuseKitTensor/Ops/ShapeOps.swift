// Reshaping, permuting, slicing, padding, concatenating and broadcasting.

extension Tensor {
    /// The same elements with a new shape (no copy). One dimension may be -1 (inferred).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var target = newShape
        if let infer = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().filter { $0.offset != infer }.reduce(1) { $0 * $1.element }
            require(known > 0 && count % known == 0,
                    "reshape: cannot reshape \(Shape.describe(shape)) (\(count) elements) to \(Shape.describe(newShape))")
            target[infer] = count / known
        }
        require(Shape.count(target) == count && target.allSatisfy { $0 >= 0 },
                "reshape: cannot reshape \(Shape.describe(shape)) (\(count) elements) to \(Shape.describe(newShape))")
        if target == shape { return self }
        let original = shape
        let y = Tensor(shape: target, storage: storage, node: nil)
        return y.recorded(op: "reshape", inputs: [self], pullback: { g, _, _ in [g.reshaped(original)] },
                          tangent: { t, y in t[0].map { $0.reshaped(y.shape) } })
    }

    /// Flattens dimensions `start...end` into one.
    public func flattened(from start: Int = 0, through end: Int = -1) -> Tensor {
        let s = Shape.normalizeAxis(start, rank: rank, shape: shape, op: "flatten").orDie()
        let e = Shape.normalizeAxis(end, rank: rank, shape: shape, op: "flatten").orDie()
        require(s <= e, "flatten: start axis \(start) is after end axis \(end) for shape \(Shape.describe(shape))")
        return reshaped(Array(shape[..<s]) + [Shape.count(Array(shape[s...e]))] + Array(shape[(e + 1)...]))
    }

    /// Inserts a dimension of size 1 at `axis`.
    public func unsqueezed(at axis: Int) -> Tensor {
        let a = Shape.normalizeAxis(axis, rank: rank + 1, shape: shape, op: "unsqueeze").orDie()
        var s = shape
        s.insert(1, at: a)
        return reshaped(s)
    }

    /// Removes dimension `axis`, which must have size 1.
    public func squeezed(at axis: Int) -> Tensor {
        let a = Shape.normalizeAxis(axis, rank: rank, shape: shape, op: "squeeze").orDie()
        require(shape[a] == 1, "squeeze: axis \(axis) of shape \(Shape.describe(shape)) has size \(shape[a]), not 1")
        var s = shape
        s.remove(at: a)
        return reshaped(s)
    }

    /// The tensor broadcast (materialised) to `target`.
    public func expanded(to target: [Int]) -> Tensor {
        if target == shape { return self }
        let checked = Shape.broadcast(shape, target, op: "expand").orDie()
        require(checked == target, "expand: cannot expand \(Shape.describe(shape)) to \(Shape.describe(target))")
        let original = shape
        let y = Tensor(uninitializedShape: target)
        Profiler.measure("expand") { Kernels.expand(pointer, shape: shape, y.mutablePointer, outShape: target) }
        return y.recorded(op: "expand", inputs: [self], pullback: { g, _, _ in [g.summed(toShape: original)] },
                          tangent: { t, y in t[0].map { $0.expanded(to: y.shape) } })
    }

    /// Sums a broadcast result back down to `target` (the adjoint of broadcasting).
    public func summed(toShape target: [Int]) -> Tensor {
        if target == shape { return self }
        require(target.count <= rank, "sum(toShape:): cannot reduce \(Shape.describe(shape)) to \(Shape.describe(target))")
        let lead = rank - target.count
        var axes = Array(0..<lead)
        for i in 0..<target.count where target[i] != shape[lead + i] {
            require(target[i] == 1, "sum(toShape:): cannot reduce \(Shape.describe(shape)) to \(Shape.describe(target))")
            axes.append(lead + i)
        }
        return sum(axes: axes, keepDims: true).reshaped(target)
    }

    /// Dimensions reordered: the result's axis i is this tensor's axis `permutation[i]`.
    public func permuted(_ permutation: [Int]) -> Tensor {
        require(permutation.count == rank && Set(permutation) == Set(0..<rank),
                "permute: \(permutation) is not a permutation of the axes of shape \(Shape.describe(shape))")
        if permutation == Array(0..<rank) { return self }
        let outShape = permutation.map { shape[$0] }
        let y = Tensor(uninitializedShape: outShape)
        Profiler.measure("permute") { Kernels.permute(pointer, shape: shape, perm: permutation, y.mutablePointer) }
        let inverse = (0..<rank).map { axis in permutation.firstIndex(of: axis)! }
        return y.recorded(op: "permute", inputs: [self], pullback: { g, _, _ in [g.permuted(inverse)] },
                          tangent: { t, _ in t[0].map { $0.permuted(permutation) } })
    }

    /// Swaps two axes.
    public func transposed(_ axis0: Int = -2, _ axis1: Int = -1) -> Tensor {
        let a = Shape.normalizeAxis(axis0, rank: rank, shape: shape, op: "transpose").orDie()
        let b = Shape.normalizeAxis(axis1, rank: rank, shape: shape, op: "transpose").orDie()
        var perm = Array(0..<rank)
        perm.swapAt(a, b)
        return permuted(perm)
    }

    /// (outer, dim, inner) view sizes around `axis`.
    func splitSizes(_ axis: Int) -> (Int, Int, Int) {
        (Shape.count(Array(shape[..<axis])), shape[axis], Shape.count(Array(shape[(axis + 1)...])))
    }

    /// Elements `range` along `axis` (a copy).
    public func sliced(axis: Int, _ range: Range<Int>) -> Tensor {
        let a = Shape.normalizeAxis(axis, rank: rank, shape: shape, op: "slice").orDie()
        require(range.lowerBound >= 0 && range.upperBound <= shape[a],
                "slice: range \(range) is out of bounds for axis \(axis) of shape \(Shape.describe(shape))")
        if range.count == shape[a] { return self }
        var outShape = shape
        outShape[a] = range.count
        let (outer, dim, inner) = splitSizes(a)
        let y = Tensor(uninitializedShape: outShape)
        Profiler.measure("slice") {
            Kernels.slice(pointer, outer: outer, dim: dim, inner: inner, start: range.lowerBound, length: range.count, y.mutablePointer)
        }
        let before = range.lowerBound, after = dim - range.upperBound
        return y.recorded(op: "slice", inputs: [self], pullback: { g, _, _ in [g.padded(axis: a, before: before, after: after)] },
                          tangent: { t, _ in t[0].map { $0.sliced(axis: a, range) } })
    }

    /// Elements within `ranges`, one per leading axis (missing axes are taken whole).
    public func sliced(_ ranges: [Range<Int>]) -> Tensor {
        var y = self
        for (axis, r) in ranges.enumerated() { y = y.sliced(axis: axis, r) }
        return y
    }

    /// Pads `axis` with `before` and `after` entries of `value`.
    public func padded(axis: Int, before: Int, after: Int, value: Float = 0) -> Tensor {
        let a = Shape.normalizeAxis(axis, rank: rank, shape: shape, op: "pad").orDie()
        require(before >= 0 && after >= 0, "pad: negative padding (\(before), \(after)) for shape \(Shape.describe(shape))")
        if before == 0 && after == 0 { return self }
        var outShape = shape
        outShape[a] += before + after
        let (outer, dim, inner) = splitSizes(a)
        let y = Tensor(uninitializedShape: outShape)
        Profiler.measure("pad") {
            Kernels.pad(pointer, outer: outer, dim: dim, inner: inner, before: before, after: after, value: value, y.mutablePointer)
        }
        return y.recorded(op: "pad", inputs: [self], pullback: { g, _, _ in [g.sliced(axis: a, before..<(before + dim))] },
                          tangent: { t, _ in t[0].map { $0.padded(axis: a, before: before, after: after, value: 0) } })
    }

    /// Pads the trailing axes, PyTorch `F.pad` order: `[(before, after)]` for the last axis first.
    public func padded(_ pads: [(before: Int, after: Int)], value: Float = 0) -> Tensor {
        var y = self
        for (i, p) in pads.enumerated() { y = y.padded(axis: rank - 1 - i, before: p.before, after: p.after, value: value) }
        return y
    }

    /// Concatenation along `axis`.
    public static func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
        require(!tensors.isEmpty, "concat: no tensors")
        let first = tensors[0]
        let a = Shape.normalizeAxis(axis, rank: first.rank, shape: first.shape, op: "concat").orDie()
        for t in tensors {
            var s1 = t.shape, s0 = first.shape
            require(s1.count == s0.count, "concat: shapes \(Shape.describe(first.shape)) and \(Shape.describe(t.shape)) differ in rank")
            s1[a] = 0; s0[a] = 0
            require(s1 == s0, "concat: shapes \(Shape.describe(first.shape)) and \(Shape.describe(t.shape)) differ outside axis \(axis)")
        }
        if tensors.count == 1 { return first }
        var outShape = first.shape
        outShape[a] = tensors.reduce(0) { $0 + $1.shape[a] }
        let y = Tensor(uninitializedShape: outShape)
        let outer = Shape.count(Array(first.shape[..<a]))
        let inner = Shape.count(Array(first.shape[(a + 1)...]))
        let outRow = outShape[a] * inner
        var offset = 0
        var bounds: [Range<Int>] = []
        let t0 = Profiler.isActive ? Profiler.now() : 0
        for t in tensors {
            let block = t.shape[a] * inner
            let src = SendablePointer(UnsafeMutablePointer(mutating: t.pointer))
            let dst = SendablePointer(y.mutablePointer + offset * inner)
            Parallel.forEach(outer, itemCost: block) { o in
                (dst.base + o * outRow).update(from: src.base + o * block, count: block)
            }
            bounds.append(offset..<(offset + t.shape[a]))
            offset += t.shape[a]
        }
        if Profiler.isActive { Profiler.record("concat", seconds: Profiler.now() - t0) }
        let shapes = tensors.map(\.shape)
        let ranges = bounds
        return y.recorded(op: "concat", inputs: tensors, pullback: { g, _, need in
            ranges.indices.map { need[$0] ? g.sliced(axis: a, ranges[$0]) : nil }
        }, tangent: { ts, _ in
            concat(ts.indices.map { ts[$0] ?? Tensor.zeros(shapes[$0]) }, axis: a)
        })
    }

    /// Pieces of the given sizes along `axis`.
    public func split(sizes: [Int], axis: Int) -> [Tensor] {
        let a = Shape.normalizeAxis(axis, rank: rank, shape: shape, op: "split").orDie()
        require(sizes.reduce(0, +) == shape[a], "split: sizes \(sizes) do not add up to \(shape[a]) along axis \(axis) of \(Shape.describe(shape))")
        var start = 0
        return sizes.map { n in
            defer { start += n }
            return sliced(axis: a, start..<(start + n))
        }
    }

    /// `chunks` equal pieces along `axis` (the size must divide evenly).
    public func chunked(_ chunks: Int, axis: Int) -> [Tensor] {
        let a = Shape.normalizeAxis(axis, rank: rank, shape: shape, op: "chunk").orDie()
        require(chunks > 0 && shape[a] % chunks == 0, "chunk: axis \(axis) of shape \(Shape.describe(shape)) does not split into \(chunks) equal chunks")
        return split(sizes: [Int](repeating: shape[a] / chunks, count: chunks), axis: a)
    }

    /// Stacks equally shaped tensors along a new axis.
    public static func stack(_ tensors: [Tensor], axis: Int = 0) -> Tensor {
        require(!tensors.isEmpty, "stack: no tensors")
        return concat(tensors.map { $0.unsqueezed(at: axis) }, axis: axis)
    }
}
