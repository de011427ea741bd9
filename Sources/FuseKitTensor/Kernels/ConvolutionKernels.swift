import CFuseKitKernels

/// The sizes of a 2-D convolution (cross-correlation, as PyTorch's `conv2d`).
public struct ConvGeometry: Sendable, Equatable, CustomStringConvertible {
    public var batch, inChannels, outChannels, inHeight, inWidth: Int
    public var kernelHeight, kernelWidth: Int
    public var strideY, strideX, padY, padX, dilationY, dilationX, groups: Int

    public var outHeight: Int { (inHeight + 2 * padY - dilationY * (kernelHeight - 1) - 1) / strideY + 1 }
    public var outWidth: Int { (inWidth + 2 * padX - dilationX * (kernelWidth - 1) - 1) / strideX + 1 }
    public var inPerGroup: Int { inChannels / groups }
    public var outPerGroup: Int { outChannels / groups }
    public var inputShape: [Int] { [batch, inChannels, inHeight, inWidth] }
    /// Pixels of one input plane.
    public var inPlane: Int { inHeight * inWidth }
    /// Pixels of one output plane.
    public var outPlane: Int { outHeight * outWidth }
    /// Rows of the im2col matrix (and columns of a group's weight matrix): Cin/groups · kH · kW.
    public var patchSize: Int { inPerGroup * kernelHeight * kernelWidth }
    public var outputShape: [Int] { [batch, outChannels, outHeight, outWidth] }
    public var weightShape: [Int] { [outChannels, inPerGroup, kernelHeight, kernelWidth] }

    /// A 1x1, stride-1, unpadded convolution: a plain matrix product per image.
    public var isPointwise: Bool {
        kernelHeight == 1 && kernelWidth == 1 && strideY == 1 && strideX == 1 && padY == 0 && padX == 0
    }

    /// A depthwise 3x3, stride-1, "same" convolution, which has a direct kernel.
    public var isDepthwise3x3: Bool {
        groups == inChannels && groups == outChannels && kernelHeight == 3 && kernelWidth == 3
            && strideY == 1 && strideX == 1 && padY == 1 && padX == 1 && dilationY == 1 && dilationX == 1
    }

    public var description: String {
        "conv(in \(Shape.describe(inputShape)), weight \(Shape.describe(weightShape)), stride (\(strideY), \(strideX)), padding (\(padY), \(padX)), dilation (\(dilationY), \(dilationX)), groups \(groups))"
    }

    /// Which kernel path this geometry takes (for profiles).
    public var kind: String { isDepthwise3x3 ? " depthwise3x3" : (isPointwise ? " 1x1" : " \(kernelHeight)x\(kernelWidth)") }

    /// FLOPs of the forward pass (multiply-adds counted as two).
    public var flops: Double {
        2 * Double(batch * outChannels * outHeight * outWidth) * Double(inPerGroup * kernelHeight * kernelWidth)
    }
}

/// Convolution kernels: im2col + sgemm in general, plain GEMMs for 1x1, direct loops for
/// depthwise 3x3. The three functions are the forward pass and its two adjoints.
public enum ConvKernels {
    /// Floats of im2col buffer per chunk (bounds memory on large images).
    static let columnBudget = 1 << 21

    /// Output rows per im2col chunk.
    static func rowsPerChunk(_ g: ConvGeometry) -> Int {
        let perRow = g.patchSize * g.outWidth
        return max(1, min(g.outHeight, columnBudget / max(perRow, 1)))
    }

    /// Fills col[(c, ky, kx), (oy - rowStart) * outW + ox] for output rows rowStart..<rowEnd.
    static func im2col(_ x: UnsafePointer<Float>, _ g: ConvGeometry, rowStart: Int, rowEnd: Int, _ col: UnsafeMutablePointer<Float>) {
        let kk = g.kernelHeight * g.kernelWidth
        let rows = rowEnd - rowStart, ow = g.outWidth
        let n = rows * ow
        let px = SendablePointer(UnsafeMutablePointer(mutating: x))
        let pc = SendablePointer(col)
        Parallel.forEach(g.inPerGroup * kk, itemCost: n) { r in
            let c = r / kk, ky = (r % kk) / g.kernelWidth, kx = r % g.kernelWidth
            let plane = px.base + c * g.inPlane
            let dst = pc.base + r * n
            for oyRel in 0..<rows {
                let iy = (rowStart + oyRel) * g.strideY - g.padY + ky * g.dilationY
                let out = dst + oyRel * ow
                if iy < 0 || iy >= g.inHeight {
                    out.initialize(repeating: 0, count: ow)
                    continue
                }
                let src = plane + iy * g.inWidth
                let x0 = kx * g.dilationX - g.padX
                if g.strideX == 1 {
                    // Valid ox: 0 <= ox + x0 < inWidth.
                    let lo = max(0, -x0), hi = min(ow, g.inWidth - x0)
                    if lo > 0 { out.initialize(repeating: 0, count: min(lo, ow)) }
                    if hi > lo { (out + lo).update(from: src + lo + x0, count: hi - lo) }
                    if hi < ow { (out + max(hi, lo)).initialize(repeating: 0, count: ow - max(hi, lo)) }
                } else {
                    for ox in 0..<ow {
                        let ix = ox * g.strideX + x0
                        out[ox] = (ix >= 0 && ix < g.inWidth) ? src[ix] : 0
                    }
                }
            }
        }
    }

    /// Adds col back into dx (the adjoint of im2col), for output rows rowStart..<rowEnd.
    static func col2im(_ col: UnsafePointer<Float>, _ g: ConvGeometry, rowStart: Int, rowEnd: Int, _ dx: UnsafeMutablePointer<Float>) {
        let kk = g.kernelHeight * g.kernelWidth
        let rows = rowEnd - rowStart, ow = g.outWidth
        let n = rows * ow
        let pc = SendablePointer(UnsafeMutablePointer(mutating: col))
        let pd = SendablePointer(dx)
        // One channel per work item, so no two workers touch the same plane.
        Parallel.forEach(g.inPerGroup, itemCost: n * kk) { c in
            let plane = pd.base + c * g.inPlane
            for k in 0..<kk {
                let ky = k / g.kernelWidth, kx = k % g.kernelWidth
                let src = pc.base + (c * kk + k) * n
                for oyRel in 0..<rows {
                    let iy = (rowStart + oyRel) * g.strideY - g.padY + ky * g.dilationY
                    if iy < 0 || iy >= g.inHeight { continue }
                    let dst = plane + iy * g.inWidth
                    let row = src + oyRel * ow
                    let x0 = kx * g.dilationX - g.padX
                    if g.strideX == 1 {
                        let lo = max(0, -x0), hi = min(ow, g.inWidth - x0)
                        var ox = lo
                        while ox < hi { dst[ox + x0] += row[ox]; ox += 1 }
                    } else {
                        for ox in 0..<ow {
                            let ix = ox * g.strideX + x0
                            if ix >= 0 && ix < g.inWidth { dst[ix] += row[ox] }
                        }
                    }
                }
            }
        }
    }

    /// Runs `body(rowStart, rowEnd, columns)` over chunks of output rows, with the chunk's
    /// im2col matrix of `x` (one group's planes), or an uninitialised buffer of the same size
    /// when `x` is nil.
    static func forEachRowChunk(_ x: UnsafePointer<Float>?, _ g: ConvGeometry,
                                _ body: (Int, Int, UnsafeMutablePointer<Float>) -> Void) {
        let chunk = rowsPerChunk(g)
        let columnCount = g.patchSize * chunk * g.outWidth
        let col = BufferPool.allocateFloats(columnCount)
        defer { BufferPool.releaseFloats(col, columnCount) }
        var r0 = 0
        while r0 < g.outHeight {
            let r1 = min(g.outHeight, r0 + chunk)
            if let x { im2col(x, g, rowStart: r0, rowEnd: r1, col) }
            body(r0, r1, col)
            r0 = r1
        }
    }

    /// Whether the (batch, group) products are small enough to run in parallel, one per worker.
    static func parallelItems(_ g: ConvGeometry) -> Bool {
        Gemm.parallelizesAcrossProducts(count: g.batch * g.groups, work: g.outPerGroup * g.patchSize * g.outPlane)
    }

    /// Runs `body(b, group, serial)` for every (batch, group) pair: in parallel with serial
    /// products when they are small, else one after the other with split products.
    static func forEachItem(_ g: ConvGeometry, _ body: (Int, Int, Bool) -> Void) {
        if parallelItems(g) {
            Parallel.forEach(g.batch * g.groups, itemCost: g.outPerGroup * g.patchSize * g.outPlane / 16) { item in
                body(item / g.groups, item % g.groups, true)
            }
        } else {
            for b in 0..<g.batch { for grp in 0..<g.groups { body(b, grp, false) } }
        }
    }

    /// y = conv(x, w).
    public static func forward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ g: ConvGeometry, _ y: UnsafeMutablePointer<Float>) {
        if g.isDepthwise3x3 {
            Depthwise3x3.forward(x, w, g, y, flipped: false)
            return
        }
        let (inPlane, outPlane, kdim) = (g.inPlane, g.outPlane, g.patchSize)
        let px = SendablePointer(UnsafeMutablePointer(mutating: x)), pw = SendablePointer(UnsafeMutablePointer(mutating: w))
        let py = SendablePointer(y)
        forEachItem(g) { b, grp, serial in
            let product = Gemm.product(serial: serial)
            let xg = px.base + (b * g.inChannels + grp * g.inPerGroup) * inPlane
            let yg = py.base + (b * g.outChannels + grp * g.outPerGroup) * outPlane
            let wg = pw.base + grp * g.outPerGroup * kdim
            if g.isPointwise {
                product(false, false, g.outPerGroup, outPlane, kdim, 1, wg, kdim, xg, outPlane, 0, yg, outPlane)
                return
            }
            forEachRowChunk(xg, g) { r0, r1, col in
                let n = (r1 - r0) * g.outWidth
                product(false, false, g.outPerGroup, n, kdim, 1, wg, kdim, col, n, 0, yg + r0 * g.outWidth, outPlane)
            }
        }
    }

    /// dx = conv's adjoint in x applied to dy (a transposed convolution).
    public static func backwardInput(_ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ g: ConvGeometry, _ dx: UnsafeMutablePointer<Float>) {
        if g.isDepthwise3x3 {
            Depthwise3x3.forward(dy, w, g, dx, flipped: true)
            return
        }
        let (inPlane, outPlane, kdim) = (g.inPlane, g.outPlane, g.patchSize)
        if !g.isPointwise { Kernels.fill(dx, count: g.batch * g.inChannels * inPlane, value: 0) }
        let pdy = SendablePointer(UnsafeMutablePointer(mutating: dy)), pw = SendablePointer(UnsafeMutablePointer(mutating: w))
        let pdx = SendablePointer(dx)
        forEachItem(g) { b, grp, serial in
            let product = Gemm.product(serial: serial)
            let dyg = pdy.base + (b * g.outChannels + grp * g.outPerGroup) * outPlane
            let dxg = pdx.base + (b * g.inChannels + grp * g.inPerGroup) * inPlane
            let wg = pw.base + grp * g.outPerGroup * kdim
            if g.isPointwise {
                product(true, false, g.inPerGroup, outPlane, g.outPerGroup, 1, wg, kdim, dyg, outPlane, 0, dxg, inPlane)
                return
            }
            forEachRowChunk(nil, g) { r0, r1, col in
                let n = (r1 - r0) * g.outWidth
                // col = Wᵀ · dy[:, rows]; dy's row block has stride outPlane per channel.
                product(true, false, kdim, n, g.outPerGroup, 1, wg, kdim, dyg + r0 * g.outWidth, outPlane, 0, col, n)
                col2im(col, g, rowStart: r0, rowEnd: r1, dxg)
            }
        }
    }

    /// dw = conv's adjoint in w: the correlation of x with dy, summed over the batch.
    public static func backwardWeight(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ g: ConvGeometry, _ dw: UnsafeMutablePointer<Float>) {
        if g.isDepthwise3x3 {
            Depthwise3x3.weightGradient(x, dy, g, dw)
            return
        }
        let weightCount = g.outChannels * g.patchSize
        if g.batch == 0 {
            Kernels.fill(dw, count: weightCount, value: 0)
            return
        }
        // Small products: each worker sums a share of the batch into its own buffer.
        let workers = parallelItems(g) ? min(Parallel.threadCount, g.batch) : 1
        let partials = workers > 1 ? BufferPool.allocateFloats((workers - 1) * weightCount) : nil
        defer { if let partials { BufferPool.releaseFloats(partials, (workers - 1) * weightCount) } }
        let pp = partials.map(SendablePointer.init), pdw = SendablePointer(dw)
        let px = SendablePointer(UnsafeMutablePointer(mutating: x)), pdy = SendablePointer(UnsafeMutablePointer(mutating: dy))
        Parallel.forEach(workers, itemCost: Int.max / 4) { t in
            let target = t == 0 ? pdw.base : pp!.base + (t - 1) * weightCount
            accumulateWeightGradient(px.base, pdy.base, g, target, batches: stride(from: t, to: g.batch, by: workers), serial: workers > 1)
        }
        for t in 1..<max(workers, 1) {
            let src = partials! + (t - 1) * weightCount
            for i in 0..<weightCount { dw[i] += src[i] }
        }
    }

    /// dw (overwritten) = the sum over the given batch items of the correlation of x with dy.
    static func accumulateWeightGradient(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ g: ConvGeometry,
                                         _ dw: UnsafeMutablePointer<Float>, batches: StrideTo<Int>, serial: Bool) {
        let product = Gemm.product(serial: serial)
        let (inPlane, outPlane, kdim) = (g.inPlane, g.outPlane, g.patchSize)
        var first = true
        for b in batches {
            for grp in 0..<g.groups {
                let xg = x + (b * g.inChannels + grp * g.inPerGroup) * inPlane
                let dyg = dy + (b * g.outChannels + grp * g.outPerGroup) * outPlane
                let dwg = dw + grp * g.outPerGroup * kdim
                if g.isPointwise {
                    product(false, true, g.outPerGroup, kdim, outPlane, 1, dyg, outPlane, xg, outPlane, first ? 0 : 1, dwg, kdim)
                } else {
                    forEachRowChunk(xg, g) { r0, r1, col in
                        let n = (r1 - r0) * g.outWidth
                        product(false, true, g.outPerGroup, kdim, n, 1, dyg + r0 * g.outWidth, outPlane, col, n,
                                (first && r0 == 0) ? 0 : 1, dwg, kdim)
                    }
                }
            }
            first = false
        }
    }
}

/// Direct depthwise 3x3 convolution, stride 1, padding 1, vectorised along rows.
enum Depthwise3x3 {
    /// y = depthwise conv of x with w; with `flipped`, the kernel is rotated 180 degrees (the
    /// adjoint in x of the unflipped convolution).
    static func forward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ g: ConvGeometry, _ y: UnsafeMutablePointer<Float>, flipped: Bool) {
        let h = g.inHeight, wd = g.inWidth
        let planes = g.batch * g.inChannels
        let px = SendablePointer(UnsafeMutablePointer(mutating: x))
        let pw = SendablePointer(UnsafeMutablePointer(mutating: w))
        let py = SendablePointer(y)
        Parallel.forEach(planes, itemCost: h * wd * 9) { p in
            let c = p % g.inChannels
            var k = [Float](repeating: 0, count: 9)
            for i in 0..<9 { k[i] = pw.base[c * 9 + (flipped ? 8 - i : i)] }
            let src = px.base + p * h * wd
            let dst = py.base + p * h * wd
            k.withUnsafeBufferPointer { kb in
                if NativeKernels.enabled {
                    fk_depthwise3x3_plane(src, dst, h, wd, kb.baseAddress!)
                } else {
                    row3x3(src, dst, h, wd, kb.baseAddress!)
                }
            }
        }
    }

    @inline(__always)
    /// Output rows `rows` (default all) of one plane, written from `dst` on.
    static func row3x3(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ h: Int, _ w: Int, _ k: UnsafePointer<Float>,
                       rows: Range<Int>? = nil) {
        let rows = rows ?? 0..<h
        for i in rows {
            let out = dst + (i - rows.lowerBound) * w
            out.initialize(repeating: 0, count: w)
            for ky in 0..<3 {
                let iy = i + ky - 1
                if iy < 0 || iy >= h { continue }
                let row = src + iy * w
                let k0 = k[ky * 3], k1 = k[ky * 3 + 1], k2 = k[ky * 3 + 2]
                let v0 = SIMD8<Float>(repeating: k0), v1 = SIMD8<Float>(repeating: k1), v2 = SIMD8<Float>(repeating: k2)
                // Left border.
                out[0] += k1 * row[0] + (w > 1 ? k2 * row[1] : 0)
                if w == 1 { continue }
                // Interior j in 1..<w-1 reads row[j-1], row[j], row[j+1].
                var j = 1
                while j + 8 <= w - 1 {
                    let a = Kernels.load(row + j - 1), b = Kernels.load(row + j), c = Kernels.load(row + j + 1)
                    Kernels.store(Kernels.load(out + j) + v0 * a + v1 * b + v2 * c, out + j)
                    j += 8
                }
                while j < w - 1 {
                    out[j] += k0 * row[j - 1] + k1 * row[j] + k2 * row[j + 1]
                    j += 1
                }
                // Right border.
                out[w - 1] += k0 * row[w - 2] + k1 * row[w - 1]
            }
        }
    }

    /// dw[c, ky, kx] = sum over batch and pixels of dy[b, c, i, j] * x[b, c, i + ky - 1, j + kx - 1].
    static func weightGradient(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ g: ConvGeometry, _ dw: UnsafeMutablePointer<Float>) {
        let h = g.inHeight, w = g.inWidth
        let px = SendablePointer(UnsafeMutablePointer(mutating: x))
        let pg = SendablePointer(UnsafeMutablePointer(mutating: dy))
        let pw = SendablePointer(dw)
        Parallel.forEach(g.inChannels, itemCost: g.batch * h * w * 9) { c in
            var acc = [Double](repeating: 0, count: 9)
            if NativeKernels.enabled {
                acc.withUnsafeMutableBufferPointer { a in
                    for b in 0..<g.batch {
                        let plane = (b * g.inChannels + c) * h * w
                        fk_depthwise3x3_weight_gradient_plane(px.base + plane, pg.base + plane, h, w, a.baseAddress!)
                    }
                }
                for i in 0..<9 { pw.base[c * 9 + i] = Float(acc[i]) }
                return
            }
            for b in 0..<g.batch {
                let plane = (b * g.inChannels + c) * h * w
                let xs = px.base + plane, gs = pg.base + plane
                for ky in 0..<3 {
                    for kx in 0..<3 {
                        let dy0 = ky - 1, dx0 = kx - 1
                        let i0 = max(0, -dy0), i1 = min(h, h - dy0)
                        let j0 = max(0, -dx0), j1 = min(w, w - dx0)
                        var sum = SIMD8<Float>(repeating: 0)
                        var tail: Float = 0
                        for i in i0..<i1 {
                            let grow = gs + i * w, xrow = xs + (i + dy0) * w + dx0
                            var j = j0
                            while j + 8 <= j1 {
                                sum += Kernels.load(grow + j) * Kernels.load(xrow + j)
                                j += 8
                            }
                            while j < j1 { tail += grow[j] * xrow[j]; j += 1 }
                        }
                        acc[ky * 3 + kx] += Double(sum.sum()) + Double(tail)
                    }
                }
            }
            for i in 0..<9 { pw.base[c * 9 + i] = Float(acc[i]) }
        }
    }
}
