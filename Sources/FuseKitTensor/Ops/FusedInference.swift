import CFuseKitKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Fused, row-tiled inference of Restormer-style blocks at full resolution (no gradients): the
// wide intermediates (3·dim q/k/v channels, 2·hidden feed-forward channels) exist only a few
// rows at a time. Each op equals its unfused definition (`PointwiseDepthwise.unfused` and the
// ordinary ops) up to float rounding; layers call them when no graph is being recorded.

extension Tensor {
    /// Whether the fused inference ops may replace the ordinary ones: no graph is being recorded
    /// through any of `tensors` and no forward-mode (JVP) evaluation is carrying tangents.
    public static func canFuseInference(_ tensors: [Tensor?]) -> Bool { !mustRecord(tensors) && !Autodiff.isForwardActive }

    /// Restormer's gated feed-forward: `residual + conv1x1(gelu(h₁) · h₂, projectOut)` with
    /// (h₁, h₂) the two channel halves of `front(x)`, tiled over rows.
    /// - Parameters:
    ///   - front: the (normalised) 1x1 and depthwise convolutions to 2·hidden channels.
    ///   - projectOut: the output 1x1 weight [Cout, hidden, 1, 1].
    ///   - residual: added to the output ([N, Cout, H, W]), or nil.
    public static func gatedFeedForwardInference(_ x: Tensor, front: PointwiseDepthwise, projectOut: Tensor, residual: Tensor?) -> Tensor {
        let hidden = front.outChannels / 2, outChannels = projectOut.shape[0]
        require(front.outChannels == 2 * hidden && projectOut.count == outChannels * hidden,
                "gatedFeedForwardInference: \(front.outChannels) front channels do not fit projectOut \(Shape.describe(projectOut.shape))")
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let plane = h * w
        if let residual { require(residual.shape == [n, outChannels, h, w], "gatedFeedForwardInference: residual \(Shape.describe(residual.shape))") }
        let out = Tensor(uninitializedShape: [n, outChannels, h, w])
        Profiler.measure("fused gatedFeedForward", flops: 2 * Double(n * plane) * Double(front.outChannels * (front.inChannels + 9) + outChannels * hidden)) {
            RowTiles.run([(x, front)]) { chunk in
                let a = chunk.tiles[0], b = a + hidden * chunk.pixels
                chunk.geluGate(a, b, into: a, channels: hidden)
                if let residual { chunk.copyRows(of: residual, into: out) }
                chunk.project(projectOut, a, into: out, accumulate: residual != nil)
            }
        }
        return out
    }

    /// Restormer's transposed (channel) attention: `residual + conv1x1(attention, projectOut)`,
    /// where q, k, v are the three channel thirds of `qkv(x)`. The q·kᵀ statistics are gathered
    /// tile by tile (q and k never exist whole); only v is kept at full resolution.
    public static func channelAttentionInference(_ x: Tensor, qkv: PointwiseDepthwise, heads: Int, temperature: Tensor, projectOut: Tensor,
                                                 residual: Tensor?) -> Tensor {
        let dim = qkv.outChannels / 3
        require(qkv.outChannels == 3 * dim && dim % heads == 0 && temperature.count == heads && projectOut.count == projectOut.shape[0] * dim,
                "channelAttentionInference: \(qkv.outChannels) qkv channels, \(heads) heads, temperature \(Shape.describe(temperature.shape)), projectOut \(Shape.describe(projectOut.shape))")
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let statistics = ChannelAttentionStatistics(batch: n, height: h, channels: dim, heads: heads)
        let v = Tensor(uninitializedShape: [n, dim, h, w])
        let plane = h * w
        Profiler.measure("fused channelAttention", flops: 2 * Double(n * plane) * Double(qkv.outChannels * (qkv.inChannels + 9) + 2 * dim * dim / heads)) {
            RowTiles.run([(x, qkv)]) { chunk in
                let t = chunk.tiles[0], p = chunk.pixels
                statistics.add(chunk, queries: t, keys: t + dim * p)
                chunk.store(t + 2 * dim * p, into: v)
            }
        }
        return Profiler.measure("fused channelAttention.mix", flops: 2 * Double(n * plane) * Double(projectOut.shape[0] * dim)) {
            statistics.mix(v, temperature: temperature, projection: projectOut, residual: residual)
        }
    }
}

/// Channel attention's statistics gathered over row tiles: per image and head, the Gram matrix
/// q·kᵀ over the pixels and the squared norms of q's and k's channels; then the mixing of v.
public final class ChannelAttentionStatistics: @unchecked Sendable {
    public let batch: Int, channels: Int, heads: Int
    let bands: Int
    /// Per (item, band): heads·c·c Gram entries, then `channels` q norms², `channels` k norms².
    let sums: UnsafeMutablePointer<Double>
    var stride: Int { heads * perHead * perHead + 2 * channels }
    var perHead: Int { channels / heads }

    /// Accumulators for `batch` images of `height` rows (as ``RowTiles/run(_:_:)`` splits them).
    public init(batch: Int, height: Int, channels: Int, heads: Int) {
        self.batch = batch
        self.channels = channels
        self.heads = heads
        bands = RowTiles.bands(batch: batch, height: height)
        let count = batch * bands * (heads * (channels / heads) * (channels / heads) + 2 * channels)
        sums = .allocate(capacity: count)
        sums.initialize(repeating: 0, count: count)
    }

    deinit { sums.deallocate() }

    /// Adds a chunk's q and k ([channels, chunk.pixels] each); only the chunk's band slot is written.
    public func add(_ chunk: RowTiles.Chunk, queries q: UnsafePointer<Float>, keys k: UnsafePointer<Float>) {
        let slot = sums + (chunk.item * bands + chunk.band) * stride
        let p = chunk.pixels, c = perHead
        for head in 0..<heads {
            for i in 0..<c {
                let qi = q + (head * c + i) * p
                for j in 0..<c { slot[(head * c + i) * c + j] += Double(Kernels.dot(qi, k + (head * c + j) * p, count: p)) }
            }
        }
        let norms = slot + heads * c * c
        for ch in 0..<channels {
            norms[ch] += Double(Kernels.dot(q + ch * p, q + ch * p, count: p))
            norms[channels + ch] += Double(Kernels.dot(k + ch * p, k + ch * p, count: p))
        }
    }

    /// The attention maps of image `item`: per head softmax over j of
    /// temperature · q̂ᵢ·k̂ⱼ with q̂, k̂ L2-normalised over the pixels (norms clamped at eps).
    public func attention(item: Int, temperature: Tensor, eps: Float = 1e-12) -> [Double] {
        let c = perHead
        var total = [Double](repeating: 0, count: stride)
        for band in 0..<bands {
            let slot = sums + (item * bands + band) * stride
            for i in 0..<stride { total[i] += slot[i] }
        }
        let t = temperature.scalars
        var maps = [Double](repeating: 0, count: heads * c * c)
        for head in 0..<heads {
            for i in 0..<c {
                let qn = Swift.max(total[heads * c * c + head * c + i].squareRoot(), Double(eps))
                var logits = (0..<c).map { j -> Double in
                    let kn = Swift.max(total[heads * c * c + channels + head * c + j].squareRoot(), Double(eps))
                    return Double(t[head]) * total[(head * c + i) * c + j] / (qn * kn)
                }
                let top = logits.max()!
                logits = logits.map { exp($0 - top) }
                let sum = logits.reduce(0, +)
                for j in 0..<c { maps[(head * c + i) * c + j] = logits[j] / sum }
            }
        }
        return maps
    }

    /// `residual + projection · (attention · v)` per image, as one matrix M = projection ·
    /// blockdiag(attention maps) applied to v [N, channels, H, W].
    /// - Parameters:
    ///   - output: where to write, at channels `channelOffset`..., or nil for a new tensor.
    public func mix(_ v: Tensor, temperature: Tensor, projection: Tensor, residual: Tensor?, into output: Tensor? = nil,
                    channelOffset: Int = 0) -> Tensor {
        let (n, h, w) = (v.shape[0], v.shape[2], v.shape[3])
        let outChannels = projection.shape[0], plane = h * w, c = perHead
        let out = output ?? Tensor(uninitializedShape: [n, outChannels, h, w])
        let totalChannels = out.shape[1]
        require(out.shape[0] == n && out.shape[2] == h && out.shape[3] == w && totalChannels >= channelOffset + outChannels,
                "channel attention: output \(Shape.describe(out.shape)) for \(outChannels) channels at \(channelOffset)")
        if let residual {
            require(residual.shape == [n, outChannels, h, w], "channel attention: residual \(Shape.describe(residual.shape))")
            for item in 0..<n {
                Kernels.copy(from: residual.pointer + item * outChannels * plane,
                             to: out.mutablePointer + (item * totalChannels + channelOffset) * plane, count: outChannels * plane)
            }
        }
        let p = projection.scalars
        for item in 0..<n {
            let maps = attention(item: item, temperature: temperature)
            var mixing = [Float](repeating: 0, count: outChannels * channels)
            for o in 0..<outChannels {
                for head in 0..<heads {
                    for j in 0..<c {
                        var s = 0.0
                        for i in 0..<c { s += Double(p[o * channels + head * c + i]) * maps[(head * c + i) * c + j] }
                        mixing[o * channels + head * c + j] = Float(s)
                    }
                }
            }
            mixing.withUnsafeBufferPointer { m in
                Gemm.sgemm(transposeA: false, transposeB: false, m: outChannels, n: plane, k: channels, a: m.baseAddress!, lda: channels,
                           b: v.pointer + item * channels * plane, ldb: plane, beta: residual == nil ? 0 : 1,
                           c: out.mutablePointer + (item * totalChannels + channelOffset) * plane, ldc: plane)
            }
        }
        return out
    }
}
