import CFuseKitKernels

/// A 1x1 convolution followed by a depthwise 3x3 one ("same" padding, no bias), optionally after
/// a per-pixel channel LayerNorm: the front of Restormer's attention (q, k, v) and feed-forward.
public struct PointwiseDepthwise: Sendable {
    /// Channel LayerNorm before the 1x1 convolution: weight and optional bias [Cin], eps.
    public var norm: (weight: Tensor, bias: Tensor?, eps: Float)?
    /// The 1x1 weight [Cmid, Cin, 1, 1] (or [Cmid, Cin]).
    public var pointwise: Tensor
    /// The depthwise weight [Cmid, 1, 3, 3].
    public var depthwise: Tensor
    /// The first of the input's channels this sequence reads (the input may have more).
    public var inputOffset: Int

    public init(norm: (weight: Tensor, bias: Tensor?, eps: Float)? = nil, pointwise: Tensor, depthwise: Tensor, inputOffset: Int = 0) {
        self.norm = norm
        self.pointwise = pointwise
        self.depthwise = depthwise
        self.inputOffset = inputOffset
    }

    /// Output channels.
    public var outChannels: Int { pointwise.shape[0] }
    /// Input channels.
    public var inChannels: Int { pointwise.count / pointwise.shape[0] }

    /// The same sequence with ordinary (unfused) ops, the definition the tiles equal.
    public func unfused(_ x: Tensor) -> Tensor {
        let c = inChannels
        let x = x.shape[1] == c ? x : x.sliced(axis: 1, inputOffset..<(inputOffset + c))
        let normed = norm.map { Tensor.channelLayerNorm(x, weight: $0.weight, bias: $0.bias, eps: $0.eps) } ?? x
        let mid = Tensor.conv2d(normed, pointwise.reshaped([outChannels, c, 1, 1]))
        return Tensor.conv2d(mid, depthwise, padding: (1, 1), groups: outChannels)
    }
}

/// Row-tiled inference over full-resolution feature maps: a sequence of pointwise and depthwise
/// convolutions is computed a few rows at a time, so its wide intermediates stay in cache and
/// are never written to memory whole.
///
/// Each worker takes a band of rows of one image and walks it in chunks of `chunkRows` rows. A
/// depthwise 3x3 output row needs its neighbours' 1x1 outputs: the stage keeps the last rows of
/// the previous chunk (a sliding window), so halo rows are computed once per band, and exactly
/// (zero padding only at the image's top and bottom).
public enum RowTiles {
    /// Pixels per chunk: the wide intermediates of a chunk (up to ~128 channels) stay in the
    /// last-level cache of one core's share.
    static let pixelsPerChunk = 8192

    /// Overrides the pixels per chunk in this task (tests use tiny chunks to cross many seams).
    @TaskLocal public static var pixelsPerChunkOverride: Int?

    /// Rows per chunk for an image `width` wide.
    public static func chunkRows(width: Int) -> Int { max(1, (pixelsPerChunkOverride ?? pixelsPerChunk) / max(width, 1)) }

    /// One chunk of rows of one image, as handed to a tile body.
    public struct Chunk {
        /// The batch item.
        public let item: Int
        /// The image rows of this chunk.
        public let rows: Range<Int>
        /// Pixels of the chunk (rows · width).
        public let pixels: Int
        /// Offset of the chunk's first pixel within a plane (rows.lowerBound · width).
        public let planeOffset: Int
        /// Per stage, its output for these rows: [Cmid, pixels] (channel stride `pixels`), writable
        /// scratch owned by this worker until the body returns.
        public let tiles: [UnsafeMutablePointer<Float>]
        /// The band of rows this chunk belongs to, in 0..<``RowTiles/bands(batch:height:)`` (for
        /// per-band accumulators: the chunks of one band run in order on one thread).
        public let band: Int
        /// Pixels of one image plane (H · W).
        public let plane: Int
        /// Use the AVX2 kernels (read on the calling thread: task-local settings do not reach workers).
        let native: Bool

        /// y = gelu(a) · b over `channels` channels of this chunk ([channels, pixels] each; y may alias a or b).
        public func geluGate(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, channels: Int) {
            Kernels.geluGateSpan(a, b, y, count: channels * pixels, native: native)
        }

        /// output[item, :, rows] = weight · source, or += with `accumulate`; weight [Cout, Cin(, 1, 1)],
        /// source [Cin, pixels], output [N, Cout, H, W].
        public func project(_ weight: Tensor, _ source: UnsafePointer<Float>, into output: Tensor, accumulate: Bool) {
            let outChannels = weight.shape[0], inChannels = weight.count / weight.shape[0]
            Gemm.sgemmSerial(transposeA: false, transposeB: false, m: outChannels, n: pixels, k: inChannels, a: weight.pointer, lda: inChannels,
                             b: source, ldb: pixels, beta: accumulate ? 1 : 0,
                             c: output.mutablePointer + item * outChannels * plane + planeOffset, ldc: plane)
        }

        /// output[item, :, rows] = source[item, :, rows] (both [N, C, H, W] with the same C).
        public func copyRows(of source: Tensor, into output: Tensor) {
            let channels = source.shape[1], base = item * channels * plane + planeOffset
            for c in 0..<channels { (output.mutablePointer + base + c * plane).update(from: source.pointer + base + c * plane, count: pixels) }
        }

        /// output[item, :, rows] = tile ([channels, pixels], e.g. a part of a stage's tile).
        public func store(_ tile: UnsafePointer<Float>, into output: Tensor) {
            let channels = output.shape[1], base = item * channels * plane + planeOffset
            for c in 0..<channels { (output.mutablePointer + base + c * plane).update(from: tile + c * pixels, count: pixels) }
        }
    }

    /// Runs each stage over every chunk of rows and calls `body` with the chunk's tiles, in
    /// parallel over bands of rows (`workers` of them at most; chunks of one band in order).
    /// Every input is [N, Cin, H, W] with the same N, H, W; `body` must only write disjoint rows.
    public static func run(_ inputs: [(Tensor, PointwiseDepthwise)], _ body: (Chunk) -> Void) {
        precondition(!inputs.isEmpty)
        let shape = inputs[0].0.shape
        require(shape.count == 4, "RowTiles: inputs must be [N, C, H, W], got \(Shape.describe(shape))")
        let (batch, height, width) = (shape[0], shape[2], shape[3])
        for (x, stage) in inputs {
            require(x.rank == 4 && x.shape[0] == batch && x.shape[2] == height && x.shape[3] == width && x.shape[1] >= stage.inputOffset + stage.inChannels,
                    "RowTiles: input \(Shape.describe(x.shape)) does not fit \(stage.inChannels) input channels at \(batch)x\(height)x\(width)")
            require(stage.depthwise.shape == [stage.outChannels, 1, 3, 3],
                    "RowTiles: depthwise weight \(Shape.describe(stage.depthwise.shape)) for \(stage.outChannels) channels")
        }
        let bandsPerItem = bands(batch: batch, height: height)
        let chunk = chunkRows(width: width)
        let native = NativeKernels.enabled
        let stages = UncheckedSendable(inputs)
        withoutActuallyEscaping(body) { body in
            let work = UncheckedSendable(body)
            Parallel.forEach(batch * bandsPerItem, itemCost: Int.max / 4) { job in
                let item = job / bandsPerItem, band = job % bandsPerItem
                let r0 = height * band / bandsPerItem, r1 = height * (band + 1) / bandsPerItem
                guard r1 > r0 else { return }
                var windows = stages.value.map { SlidingStage(input: $0.0, stage: $0.1, item: item, height: height, width: width, chunkRows: chunk, native: native) }
                defer { for i in windows.indices { windows[i].release() } }
                var start = r0
                while start < r1 {
                    let end = min(r1, start + chunk)
                    let tiles = windows.indices.map { windows[$0].tile(rows: start..<end) }
                    work.value(Chunk(item: item, rows: start..<end, pixels: (end - start) * width, planeOffset: start * width,
                                     tiles: tiles, band: band, plane: height * width, native: native))
                    start = end
                }
            }
        }
    }

    /// Bands of rows per image: enough for every worker when the batch is smaller than the pool.
    public static func bands(batch: Int, height: Int) -> Int {
        let threads = Parallel.threadCount
        return batch >= threads ? 1 : max(1, min(height, (threads + batch - 1) / batch))
    }
}

/// One stage's sliding window over the rows of one image.
struct SlidingStage {
    let input: UnsafePointer<Float>
    let inChannels, outChannels, height, width, capacityRows: Int
    let normWeight: UnsafePointer<Float>?, normBias: UnsafePointer<Float>?, eps: Float
    let pointwise: UnsafePointer<Float>, depthwise: UnsafePointer<Float>
    /// Use the AVX2 kernels (read on the calling thread: task-local settings do not reach workers).
    let native: Bool
    /// 1x1 outputs [Cmid, capacityRows, W]; slot 0 holds image row `held.lowerBound`.
    let mid: UnsafeMutablePointer<Float>
    /// Normalised input rows [Cin, capacityRows, W] and the LayerNorm's per-pixel scratch.
    let normed: UnsafeMutablePointer<Float>?, scratch: UnsafeMutablePointer<Float>?
    /// Depthwise outputs [Cmid, chunk pixels].
    let out: UnsafeMutablePointer<Float>
    var held: Range<Int> = 0..<0

    init(input x: Tensor, stage: PointwiseDepthwise, item: Int, height: Int, width: Int, chunkRows: Int, native: Bool) {
        self.native = native
        inChannels = stage.inChannels
        outChannels = stage.outChannels
        self.height = height
        self.width = width
        capacityRows = chunkRows + 2
        input = x.pointer + (item * x.shape[1] + stage.inputOffset) * height * width
        normWeight = stage.norm?.weight.pointer
        normBias = stage.norm?.bias?.pointer
        eps = stage.norm?.eps ?? 0
        pointwise = stage.pointwise.pointer
        depthwise = stage.depthwise.pointer
        mid = BufferPool.allocateFloats(outChannels * capacityRows * width)
        out = BufferPool.allocateFloats(outChannels * chunkRows * width)
        if stage.norm != nil {
            normed = BufferPool.allocateFloats(inChannels * capacityRows * width)
            scratch = BufferPool.allocateFloats(2 * capacityRows * width)
        } else {
            normed = nil
            scratch = nil
        }
    }

    func release() {
        BufferPool.releaseFloats(mid, outChannels * capacityRows * width)
        BufferPool.releaseFloats(out, outChannels * (capacityRows - 2) * width)
        if let normed, let scratch {
            BufferPool.releaseFloats(normed, inChannels * capacityRows * width)
            BufferPool.releaseFloats(scratch, 2 * capacityRows * width)
        }
    }

    /// The depthwise output for image rows `rows` (at most capacityRows - 2 of them), [Cmid, rows · W].
    mutating func tile(rows: Range<Int>) -> UnsafeMutablePointer<Float> {
        let needed = max(rows.lowerBound - 1, 0)..<min(rows.upperBound + 1, height)
        let slab = capacityRows * width
        if held.lowerBound <= needed.lowerBound && held.upperBound > needed.lowerBound && held.upperBound <= needed.upperBound {
            // Keep the rows this chunk shares with the previous one; move them to slot 0.
            let shift = (needed.lowerBound - held.lowerBound) * width, kept = (held.upperBound - needed.lowerBound) * width
            if shift > 0 {
                for c in 0..<outChannels { (mid + c * slab).update(from: mid + c * slab + shift, count: kept) }
            }
            computePointwise(rows: held.upperBound..<needed.upperBound, slot: held.upperBound - needed.lowerBound)
        } else {
            computePointwise(rows: needed, slot: 0)
        }
        held = needed
        let first = rows.lowerBound - needed.lowerBound, n = rows.count * width
        for c in 0..<outChannels {
            let k = depthwise + c * 9, src = mid + c * slab, dst = out + c * n
            if native {
                fk_depthwise3x3_rows(src, dst, needed.count, width, k, first, first + rows.count)
            } else {
                Depthwise3x3.row3x3(src, dst, needed.count, width, k, rows: first..<(first + rows.count))
            }
        }
        return out
    }

    /// The (normalised) 1x1 outputs of image rows `rows` into mid from row slot `slot` on.
    func computePointwise(rows: Range<Int>, slot: Int) {
        guard !rows.isEmpty else { return }
        let n = rows.count * width, plane = height * width
        let source: UnsafePointer<Float>, sourceStride: Int
        if let normed, let scratch, let normWeight {
            Kernels.channelLayerNormSpan(input + rows.lowerBound * width, channelStride: plane, count: n, channels: inChannels, eps: eps,
                                         weight: normWeight, bias: normBias, normed, outputStride: n,
                                         mean: scratch, rstd: scratch + capacityRows * width, native: native)
            source = UnsafePointer(normed)
            sourceStride = n
        } else {
            source = input + rows.lowerBound * width
            sourceStride = plane
        }
        Gemm.sgemmSerial(transposeA: false, transposeB: false, m: outChannels, n: n, k: inChannels, a: pointwise, lda: inChannels,
                         b: source, ldb: sourceStride, c: mid + slot * width, ldc: capacityRows * width)
    }
}

extension Kernels {
    /// Σ a[i]·b[i] over `count` elements on the calling thread.
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) -> Float {
        var s0 = SIMD8<Float>(repeating: 0), s1 = SIMD8<Float>(repeating: 0)
        var i = 0
        while i + 16 <= n {
            s0 += load(a + i) * load(b + i)
            s1 += load(a + i + 8) * load(b + i + 8)
            i += 16
        }
        while i + 8 <= n { s0 += load(a + i) * load(b + i); i += 8 }
        var s = (s0 + s1).sum()
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// y = gelu(a) · b over `count` elements on the calling thread (y may alias a or b).
    static func geluGateSpan(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int, native: Bool) {
        if native {
            fk_gelu_gate(a, b, y, n)
            return
        }
        var i = 0
        while i + 8 <= n { store(Fn.GeluGate.apply(load(a + i), load(b + i)), y + i); i += 8 }
        if i < n { storePartial(Fn.GeluGate.apply(loadPartial(a + i, n - i), loadPartial(b + i, n - i)), y + i, n - i) }
    }
}
