import FuseKitTensor
import Testing

// What the plugins' parity tests share: whole-tensor comparisons with a fixture computed in
// float64 by a PyTorch transcription, with PyTorch's own float32 error as an envelope.

/// Whole-tensor comparison: an element passes when |actual - expected| <= absolute · max|expected|
/// + relative · |expected|, or, for a tensor on which PyTorch's own float32 computation is off by
/// more (an ill-conditioned quantity: gradients through BatchNorm on the batch statistics of tiny
/// maps), when it is within `float32Multiple` times PyTorch's largest float32 error on it. Two
/// float32 computations in different summation orders are independent samples of that noise; on
/// the YOLOv8 training pass the largest ratio of ours to PyTorch's was 4.2 (median 0.3).
public struct TensorTolerance: Sendable {
    public var relative: Float
    public var absolute: Float
    /// How many times PyTorch's own float32 error a tensor may be off where that exceeds the fixed bound.
    public static let float32Multiple: Float = 8

    public init(relative: Float, absolute: Float) {
        self.relative = relative
        self.absolute = absolute
    }

    /// Why `actual` does not match `expected`, or nil; `worst` is the largest error relative to
    /// what the element is allowed; `envelope` whether PyTorch's float32 error set the bound.
    public func mismatch(_ actual: Tensor, _ expected: Tensor, float32Error: Float) -> (problem: String?, worst: Float, envelope: Bool) {
        guard actual.shape == expected.shape else { return ("shape \(actual.shape), expected \(expected.shape)", .infinity, false) }
        let a = actual.scalars, e = expected.scalars
        let scale = e.reduce(Float(0)) { Swift.max($0, Swift.abs($1)) }
        var worst: Float = 0, failures = 0, first: Int?
        for i in a.indices {
            let error = Swift.abs(a[i] - e[i])
            let allowed = Swift.max(absolute * scale + relative * Swift.abs(e[i]), Self.float32Multiple * float32Error)
            worst = Swift.max(worst, error / Swift.max(allowed, .leastNormalMagnitude))
            if !(error <= allowed) {
                failures += 1
                if first == nil { first = i }
            }
        }
        let envelope = Self.float32Multiple * float32Error > absolute * scale
        guard let first else { return (nil, worst, envelope) }
        return ("\(failures) of \(a.count) elements off, first [\(first)]: \(a[first]) vs \(e[first]) (largest |expected| \(scale), "
                + "PyTorch float32 error \(float32Error))", worst, envelope)
    }
}

/// Compares a case's tensors with a fixture's (`<key>` and PyTorch's float32 error on it,
/// `f32error.<key>`), recording mismatches and keeping the worst error of each kind.
public final class ParityComparison {
    public let tensors: [String: Tensor]
    public private(set) var worst: [String: Float] = [:]
    public private(set) var compared = 0, boundedByFloat32 = 0

    public init(_ tensors: [String: Tensor]) { self.tensors = tensors }

    public func callAsFunction(_ kind: String, _ actual: Tensor, _ key: String, _ tolerance: TensorTolerance) {
        guard let expected = tensors[key], let float32Error = tensors["f32error." + key]?.item else {
            Issue.record("the fixture has no '\(key)'")
            return
        }
        let (problem, error, envelope) = tolerance.mismatch(actual, expected, float32Error: float32Error)
        worst[kind] = Swift.max(worst[kind] ?? 0, error)
        compared += 1
        if envelope { boundedByFloat32 += 1 }
        #expect(problem == nil, "\(key): \(problem ?? "")")
    }

    /// The worst error / allowed error of each kind, and how many tensors PyTorch's float32 error bounded.
    public var summary: String {
        worst.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            + "; \(boundedByFloat32) of \(compared) tensors bounded by PyTorch's float32 error"
    }
}

