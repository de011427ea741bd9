import Foundation
import FuseKitNN
import FuseKitTensor

/// Weights that a PyTorch transcription and FuseKit compute alike from each tensor's state-dict
/// name, so that parity fixtures need not store them. Over the flat row-major index i, in Double
/// then rounded to Float: offset = (sum of the name's unicode scalars) mod 97,
/// wave_i = sin(0.61 i + q i² + offset); then `num_batches_tracked` 0, `running_var`
/// 1 + 0.5 |wave|, 1-D `.weight` 1 + 0.1 wave, other 0-D and 1-D 0.1 wave, else
/// wave / sqrt(count / shape[0]).
///
/// With q = 0 every weight matrix has rank 2 (sin(a + b) expands into two products), which
/// leaves networks that chain linear layers nearly degenerate; the MRFS fixtures use q = 0.001.
public enum DeterministicWeights {
    /// The value of every parameter and buffer of `module`.
    public static func state(for module: any Module, quadraticPhase q: Double = 0) -> ModelState {
        var state = ModelState()
        for (name, spec) in module.namedSpecs() {
            let tensor = Tensor(shape: spec.shape, scalars: values(name: name, shape: spec.shape, quadraticPhase: q))
            if spec.isBuffer { state.buffers[name] = tensor } else { state.parameters[name] = tensor }
        }
        return state
    }

    /// The values of one tensor.
    public static func values(name: String, shape: [Int], quadraticPhase q: Double = 0) -> [Float] {
        let offset = Double(name.unicodeScalars.reduce(0) { $0 + Int($1.value) } % 97)
        let count = Shape.count(shape), rows = shape.first ?? 1
        return (0..<count).map { i in
            let index = Double(i)
            let wave = sin(0.61 * index + q * index * index + offset)
            if name.hasSuffix("num_batches_tracked") { return 0 }
            if name.hasSuffix("running_var") { return Float(1 + 0.5 * Swift.abs(wave)) }
            if shape.count == 1 && name.hasSuffix(".weight") { return Float(1 + 0.1 * wave) }
            if shape.count <= 1 { return Float(0.1 * wave) }
            return Float(wave / (Double(count) / Double(rows)).squareRoot())
        }
    }
}
