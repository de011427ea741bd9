// Gathers and scatters by flat index, and the ops built on them.

/// Flat element indices shared by a gather and its adjoint scatter.
public final class IndexBuffer: Sendable {
    /// Flat indices into the source.
    public let indices: [Int]
    /// Wraps indices.
    public init(_ indices: [Int]) { self.indices = indices }
}

extension Tensor {
    /// y[i] = x.flat[indices[i]], shaped `outShape`.
    public func gatherFlat(_ index: IndexBuffer, shape outShape: [Int]) -> Tensor {
        require(index.indices.count == Shape.count(outShape),
                "gather: \(index.indices.count) indices for output shape \(Shape.describe(outShape))")
        let y = Tensor(uninitializedShape: outShape)
        let n = count
        index.indices.withUnsafeBufferPointer { idx in
            let src = pointer, dst = y.mutablePointer
            for i in 0..<idx.count {
                let j = idx[i]
                require(j >= 0 && j < n, "gather: index \(j) out of range for \(n) elements of shape \(Shape.describe(shape))")
                dst[i] = src[j]
            }
        }
        let original = shape
        return y.recorded(op: "gather", inputs: [self], pullback: { g, _, _ in [g.scatterAddFlat(index, shape: original)] },
                          tangent: { t, y in t[0].map { $0.gatherFlat(index, shape: y.shape) } })
    }

    /// y = zeros(outShape); y.flat[indices[i]] += x[i] (the adjoint of `gatherFlat`).
    public func scatterAddFlat(_ index: IndexBuffer, shape outShape: [Int]) -> Tensor {
        require(index.indices.count == count, "scatterAdd: \(index.indices.count) indices for \(count) values")
        let y = Tensor.zeros(outShape)
        let n = y.count
        index.indices.withUnsafeBufferPointer { idx in
            let src = pointer, dst = y.mutablePointer
            for i in 0..<idx.count {
                let j = idx[i]
                require(j >= 0 && j < n, "scatterAdd: index \(j) out of range for output shape \(Shape.describe(outShape))")
                dst[j] += src[i]
            }
        }
        let original = shape
        return y.recorded(op: "scatterAdd", inputs: [self], pullback: { g, _, _ in [g.gatherFlat(index, shape: original)] },
                          tangent: { t, y in t[0].map { $0.scatterAddFlat(index, shape: y.shape) } })
    }

    /// Values along `axis` at positions `index` (same rank; like `torch.gather`). Indices are
    /// integral Float values.
    public func gather(axis: Int, index: Tensor) -> Tensor {
        let a = Shape.normalizeAxis(axis, rank: rank, shape: shape, op: "gather").orDie()
        require(index.rank == rank, "gather: index of shape \(Shape.describe(index.shape)) must have the rank of \(Shape.describe(shape))")
        for d in 0..<rank where d != a {
            require(index.shape[d] <= shape[d], "gather: index shape \(Shape.describe(index.shape)) exceeds \(Shape.describe(shape)) outside axis \(axis)")
        }
        let strides = Shape.strides(shape)
        let idxStrides = Shape.strides(index.shape)
        var flat = [Int](repeating: 0, count: index.count)
        index.withUnsafeBufferPointer { ib in
            for i in 0..<ib.count {
                var rest = i, offset = 0
                for d in 0..<rank {
                    let coord = rest / idxStrides[d]
                    rest %= idxStrides[d]
                    if d == a {
                        let k = Int(ib[i])
                        require(k >= 0 && k < shape[a], "gather: index \(k) out of range for axis \(axis) of size \(shape[a]) (shape \(Shape.describe(shape)))")
                        offset += k * strides[d]
                    } else {
                        offset += coord * strides[d]
                    }
                }
                flat[i] = offset
            }
        }
        return gatherFlat(IndexBuffer(flat), shape: index.shape)
    }

    /// One-hot encoding of integral class indices along a new last axis (like `F.one_hot`).
    public static func oneHot(_ indices: Tensor, classes: Int) -> Tensor {
        let y = Tensor.zeros(indices.shape + [classes])
        indices.withUnsafeBufferPointer { ib in
            for i in 0..<ib.count {
                let k = Int(ib[i])
                require(k >= 0 && k < classes, "oneHot: class \(k) out of range for \(classes) classes")
                y.mutablePointer[i * classes + k] = 1
            }
        }
        return y
    }

    // MARK: pooling

    /// 2-D max pooling over NCHW (first maximum on ties, as PyTorch).
    public func maxPool2d(kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0), ceilMode: Bool = false) -> Tensor {
        let g = poolGeometry(kernel, stride ?? kernel, padding, ceilMode, op: "maxPool2d")
        let flat = KinkPattern.decision { () -> [Int] in
            var flat = [Int](repeating: 0, count: g.planes * g.outHeight * g.outWidth)
            flat.withUnsafeMutableBufferPointer { Kernels.maxPoolIndices(pointer, g, $0.baseAddress!) }
            return flat
        }
        return gatherFlat(IndexBuffer(flat), shape: [shape[0], shape[1], g.outHeight, g.outWidth])
    }

    /// 2-D average pooling over NCHW.
    public func avgPool2d(kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0),
                          ceilMode: Bool = false, countIncludePad: Bool = true) -> Tensor {
        let g = poolGeometry(kernel, stride ?? kernel, padding, ceilMode, op: "avgPool2d")
        return Tensor.avgPool(self, g, countIncludePad)
    }

    func poolGeometry(_ k: (Int, Int), _ s: (Int, Int), _ p: (Int, Int), _ ceil: Bool, op: String) -> Kernels.PoolGeometry {
        require(rank == 4, "\(op): input must be [N, C, H, W], got \(Shape.describe(shape))")
        require(k.0 >= 1 && k.1 >= 1 && s.0 >= 1 && s.1 >= 1 && p.0 >= 0 && p.1 >= 0 && p.0 * 2 <= k.0 && p.1 * 2 <= k.1,
                "\(op): invalid kernel \(k), stride \(s) or padding \(p) (padding must be at most half the kernel)")
        let g = Kernels.PoolGeometry(planes: shape[0] * shape[1], inHeight: shape[2], inWidth: shape[3], kernelY: k.0, kernelX: k.1,
                                     strideY: s.0, strideX: s.1, padY: p.0, padX: p.1, ceilMode: ceil)
        require(g.outHeight >= 1 && g.outWidth >= 1, "\(op): input \(Shape.describe(shape)) is smaller than the kernel \(k)")
        return g
    }

    static func avgPool(_ x: Tensor, _ g: Kernels.PoolGeometry, _ includePad: Bool) -> Tensor {
        let y = Tensor(uninitializedShape: [x.shape[0], x.shape[1], g.outHeight, g.outWidth])
        Kernels.avgPool(x.pointer, g, countIncludePad: includePad, y.mutablePointer, adjoint: false)
        return y.recorded(op: "avgPool2d", inputs: [x], pullback: { gy, _, _ in [avgPoolAdjoint(gy, g, includePad)] },
                          tangent: { t, _ in t[0].map { avgPool($0, g, includePad) } })
    }

    static func avgPoolAdjoint(_ gy: Tensor, _ g: Kernels.PoolGeometry, _ includePad: Bool) -> Tensor {
        let dx = Tensor(uninitializedShape: [gy.shape[0], gy.shape[1], g.inHeight, g.inWidth])
        Kernels.avgPool(gy.pointer, g, countIncludePad: includePad, dx.mutablePointer, adjoint: true)
        return dx.recorded(op: "avgPool2d.adjoint", inputs: [gy], pullback: { c, _, _ in [avgPool(c, g, includePad)] },
                           tangent: { t, _ in t[0].map { avgPoolAdjoint($0, g, includePad) } })
    }

    // MARK: resizing

    /// Bilinear resize of NCHW to `size` (height, width), PyTorch's `interpolate(mode="bilinear")`.
    public func resizedBilinear(to size: (Int, Int), alignCorners: Bool = false) -> Tensor {
        require(rank == 4, "resizeBilinear: input must be [N, C, H, W], got \(Shape.describe(shape))")
        require(size.0 >= 1 && size.1 >= 1, "resizeBilinear: invalid size \(size)")
        if size.0 == shape[2] && size.1 == shape[3] { return self }
        return Tensor.bilinear(self, inSize: (shape[2], shape[3]), outSize: size, alignCorners: alignCorners, adjoint: false)
    }

    static func bilinear(_ x: Tensor, inSize: (Int, Int), outSize: (Int, Int), alignCorners: Bool, adjoint: Bool) -> Tensor {
        let planes = x.shape[0] * x.shape[1]
        let target = adjoint ? inSize : outSize
        let y = Tensor(uninitializedShape: [x.shape[0], x.shape[1], target.0, target.1])
        Profiler.measure("resizeBilinear") {
            Kernels.resizeBilinear(x.pointer, planes: planes, inHeight: inSize.0, inWidth: inSize.1, outHeight: outSize.0,
                                   outWidth: outSize.1, alignCorners: alignCorners, y.mutablePointer, adjoint: adjoint)
        }
        return y.recorded(op: adjoint ? "resizeBilinear.adjoint" : "resizeBilinear", inputs: [x], pullback: { g, _, _ in
            [bilinear(g, inSize: inSize, outSize: outSize, alignCorners: alignCorners, adjoint: !adjoint)]
        }, tangent: { t, _ in t[0].map { bilinear($0, inSize: inSize, outSize: outSize, alignCorners: alignCorners, adjoint: adjoint) } })
    }

    /// Nearest-neighbour resize of NCHW to `size`, PyTorch's `interpolate(mode="nearest")`.
    public func resizedNearest(to size: (Int, Int)) -> Tensor {
        require(rank == 4, "resizeNearest: input must be [N, C, H, W], got \(Shape.describe(shape))")
        require(size.0 >= 1 && size.1 >= 1, "resizeNearest: invalid size \(size)")
        let (h, w) = (shape[2], shape[3])
        let sy = Float(h) / Float(size.0), sx = Float(w) / Float(size.1)
        let rows = (0..<size.0).map { Swift.min(Int((Float($0) * sy).rounded(.down)), h - 1) }
        let cols = (0..<size.1).map { Swift.min(Int((Float($0) * sx).rounded(.down)), w - 1) }
        let planes = shape[0] * shape[1]
        var flat = [Int](repeating: 0, count: planes * size.0 * size.1)
        var i = 0
        for p in 0..<planes {
            for r in rows {
                for c in cols { flat[i] = (p * h + r) * w + c; i += 1 }
            }
        }
        return gatherFlat(IndexBuffer(flat), shape: [shape[0], shape[1], size.0, size.1])
    }

    /// [N, C r², H, W] -> [N, C, H r, W r].
    public func pixelShuffle(_ r: Int) -> Tensor {
        require(rank == 4 && shape[1] % (r * r) == 0, "pixelShuffle: channels of \(Shape.describe(shape)) are not divisible by \(r * r)")
        let (n, c, h, w) = (shape[0], shape[1] / (r * r), shape[2], shape[3])
        return reshaped([n, c, r, r, h, w]).permuted([0, 1, 4, 2, 5, 3]).reshaped([n, c, h * r, w * r])
    }

    /// [N, C, H r, W r] -> [N, C r², H, W].
    public func pixelUnshuffle(_ r: Int) -> Tensor {
        require(rank == 4 && shape[2] % r == 0 && shape[3] % r == 0, "pixelUnshuffle: spatial size of \(Shape.describe(shape)) is not divisible by \(r)")
        let (n, c, h, w) = (shape[0], shape[1], shape[2] / r, shape[3] / r)
        return reshaped([n, c, h, r, w, r]).permuted([0, 1, 3, 5, 2, 4]).reshaped([n, c * r * r, h, w])
    }
}
