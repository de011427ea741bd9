import FuseKitTensor
import Testing

/// The fused, row-tiled inference ops equal their unfused definitions on whole images (odd sizes,
/// many chunks and band seams, one-row and one-column images), on both kernel paths.
@Suite struct FusedInferenceTests {
    static let sizes = [(1, 13, 11), (2, 29, 7), (1, 1, 9), (1, 17, 1), (1, 40, 33)]

    static func stage(_ cin: Int, _ cmid: Int, normalised: Bool, seed: UInt64) -> PointwiseDepthwise {
        let norm = normalised ? (weight: Random.normal([cin], seed: seed) * 0.3 + 1, bias: Random.normal([cin], seed: seed + 1) as Tensor?, eps: Float(1e-5)) : nil
        return PointwiseDepthwise(norm: norm, pointwise: Random.normal([cmid, cin, 1, 1], seed: seed + 2, scale: 0.4),
                                  depthwise: Random.normal([cmid, 1, 3, 3], seed: seed + 3, scale: 0.4))
    }

    /// max |a - b| ≤ 1e-5 · max |b|.
    static func expectRelativelyClose(_ a: Tensor, _ b: Tensor, _ label: String) {
        #expect(a.shape == b.shape, "\(label): shapes \(a.shape) vs \(b.shape)")
        guard a.shape == b.shape else { return }
        let scale = b.abs().max().item
        let worst = (a - b).abs().max().item
        #expect(worst <= 1e-5 * scale, "\(label): max difference \(worst), scale \(scale)")
    }

    /// Runs `body` with default chunks, with chunks of one row, and on the portable kernels.
    static func variants(_ body: (String) -> Void) {
        body("default chunks")
        RowTiles.$pixelsPerChunkOverride.withValue(1) { body("one-row chunks") }
        RowTiles.$pixelsPerChunkOverride.withValue(20) { NativeKernels.$portableOnly.withValue(true) { body("portable, 20-pixel chunks") } }
    }

    @Test func gatedFeedForwardEqualsUnfused() {
        for (n, h, w) in Self.sizes {
            for normalised in [true, false] {
                let dim = 6, hidden = 10
                let x = Random.normal([n, dim, h, w], seed: 7)
                let front = Self.stage(dim, 2 * hidden, normalised: normalised, seed: 11)
                let projectOut = Random.normal([dim, hidden, 1, 1], seed: 13, scale: 0.3)
                let reference = withoutGradient { () -> Tensor in
                    let mid = front.unfused(x)
                    let gate = Tensor.geluGate(mid.sliced(axis: 1, 0..<hidden), mid.sliced(axis: 1, hidden..<(2 * hidden)))
                    return x + Tensor.conv2d(gate, projectOut)
                }
                Self.variants { label in
                    let fused = withoutGradient { Tensor.gatedFeedForwardInference(x, front: front, projectOut: projectOut, residual: x) }
                    Self.expectRelativelyClose(fused, reference, "GDFN \(n)x\(h)x\(w) norm \(normalised), \(label)")
                }
                let noResidual = withoutGradient { Tensor.gatedFeedForwardInference(x, front: front, projectOut: projectOut, residual: nil) }
                Self.expectRelativelyClose(noResidual + x, reference, "GDFN without residual \(n)x\(h)x\(w)")
            }
        }
    }

    @Test func channelAttentionEqualsUnfused() {
        for (n, h, w) in Self.sizes {
            let dim = 8, heads = 2
            let x = Random.normal([n, dim, h, w], seed: 17)
            let qkv = Self.stage(dim, 3 * dim, normalised: true, seed: 19)
            let temperature = Random.uniform([heads, 1, 1], seed: 23, 0.5, 2)
            let projectOut = Random.normal([dim, dim, 1, 1], seed: 29, scale: 0.3)
            let reference = withoutGradient { () -> Tensor in
                let t = qkv.unfused(x)
                let grouped = [n, heads, dim / heads, h * w]
                let q = t.sliced(axis: 1, 0..<dim).reshaped(grouped).l2Normalized(axis: -1)
                let k = t.sliced(axis: 1, dim..<(2 * dim)).reshaped(grouped).l2Normalized(axis: -1)
                let v = t.sliced(axis: 1, (2 * dim)..<(3 * dim)).reshaped(grouped)
                let logits = Tensor.matmul(q, k, transposeB: true) * temperature.reshaped([1, heads, 1, 1])
                let attended = Tensor.matmul(logits.softmax(axis: -1), v).reshaped([n, dim, h, w])
                return x + Tensor.conv2d(attended, projectOut)
            }
            Self.variants { label in
                let fused = withoutGradient {
                    Tensor.channelAttentionInference(x, qkv: qkv, heads: heads, temperature: temperature, projectOut: projectOut, residual: x)
                }
                Self.expectRelativelyClose(fused, reference, "attention \(n)x\(h)x\(w), \(label)")
            }
        }
    }

    @Test func recordingUsesTheOrdinaryOps() {
        let x = Random.normal([1, 2, 3, 3], seed: 1)
        #expect(Tensor.canFuseInference([x]))
        let tracked = valueWithGradient(at: [x]) { xs -> Tensor in
            #expect(!Tensor.canFuseInference([xs[0]]))
            return xs[0].sum()
        }
        #expect(tracked.gradients.count == 1)
        _ = withoutGradient { jvp(at: [x], tangents: [x]) { xs -> Tensor in
            #expect(!Tensor.canFuseInference([xs[0]]), "forward mode carries tangents through the ordinary ops")
            return xs[0]
        } }
    }
}
