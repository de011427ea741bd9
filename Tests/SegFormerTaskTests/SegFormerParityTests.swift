import Foundation
import FuseKit
import SegFormerTask
import Testing

/// Deterministic weights, inputs and labels shared with the PyTorch transcription of TDFusion's
/// SegFormer (`nets/Segformer.py` + `nets/backbone_SS.py`), Fixtures/segformer_reference.py, which prints
/// the expected figures below.
enum DeterministicValues {
    /// value[i] from sin(0.61 i + (sum of the name's characters mod 97)), scaled by kind.
    static func state(for module: any Module) -> ModelState {
        var state = ModelState()
        for (name, spec) in module.namedSpecs() {
            let offset = Double(name.unicodeScalars.reduce(0) { $0 + Int($1.value) } % 97)
            let count = Shape.count(spec.shape)
            let rows = spec.shape.first ?? 1
            let values: [Float] = (0..<count).map { i in
                let wave = sin(0.61 * Double(i) + offset)
                if name.hasSuffix("num_batches_tracked") { return 0 }
                if name.hasSuffix("running_var") { return Float(1 + 0.5 * Swift.abs(wave)) }
                if spec.shape.count == 1 && name.hasSuffix(".weight") { return Float(1 + 0.1 * wave) }
                if spec.shape.count <= 1 { return Float(0.1 * wave) }
                return Float(wave / (Double(count) / Double(rows)).squareRoot())
            }
            let tensor = Tensor(shape: spec.shape, scalars: values)
            if spec.isBuffer { state.buffers[name] = tensor } else { state.parameters[name] = tensor }
        }
        return state
    }

    static func input(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, scalars: (0..<Shape.count(shape)).map { i in
            Float(0.5 + 0.4 * sin(0.1 * Double(i)) * cos(0.037 * Double(i)))
        })
    }

    static func labels(_ shape: [Int], classes: Int) -> Tensor {
        Tensor(shape: shape, scalars: (0..<Shape.count(shape)).map { i in
            i % 11 == 0 ? 255 : Float((i * 7 + (i / 13) * 3) % classes)
        })
    }
}

func sumOfSquares(_ t: Tensor) -> Double { t.scalars.reduce(0) { $0 + Double($1) * Double($1) } }
func sum(_ t: Tensor) -> Double { t.scalars.reduce(0) { $0 + Double($1) } }
func relativeDifference(_ a: Double, _ b: Double) -> Double { Swift.abs(a - b) / Swift.max(Swift.abs(b), 1e-12) }

/// SegFormer against a PyTorch transcription of the official code (TDFusion's copy of NVlabs'
/// MixVisionTransformer and SegFormerHead), with deterministic weights on a 2x1x64x96 batch.
@Suite struct SegFormerParityTests {
    struct Expected {
        var logitSum, logitAbsSum, logitSquares: Double
        var samples: [Float]
        var loss: Double
        var gradientSquares: [String: Double]
    }

    static let exact = Expected(
        logitSum: -1371.483154, logitAbsSum: 4736.024414, logitSquares: 3773.825439,
        samples: [-0.68955, -0.68811, -0.692384, -0.301002, -0.986221, 0.96964, -0.998667], loss: 2.4581203,
        gradientSquares: ["backbone.patch_embed1.proj.weight": 6.3287830e-01, "backbone.block1.0.attn.kv.weight": 3.2606715e-04,
                          "backbone.block4.1.mlp.dwconv.dwconv.weight": 3.2795026e-05, "decode_head.linear_fuse.conv.weight": 1.4663539e+02,
                          "decode_head.linear_c1.proj.bias": 1.6750061e-03])
    static let tanh = Expected(
        logitSum: -1371.486816, logitAbsSum: 4736.037109, logitSquares: 3773.845459,
        samples: [-0.68955, -0.68811, -0.692384, -0.301002, -0.986223, 0.969639, -0.998668], loss: 2.4581215,
        gradientSquares: ["backbone.patch_embed1.proj.weight": 6.3211697e-01, "backbone.block1.0.attn.kv.weight": 3.2566860e-04,
                          "backbone.block4.1.mlp.dwconv.dwconv.weight": 3.2830143e-05, "decode_head.linear_fuse.conv.weight": 1.4663943e+02,
                          "decode_head.linear_c1.proj.bias": 1.6750407e-03])

    @Test(arguments: [GELUForm.exact, .tanh])
    func logitsLossAndGradientsMatchPyTorch(gelu: GELUForm) {
        var configuration = SegFormerConfiguration.b0
        configuration.gelu = gelu
        let net = SegFormer(configuration: configuration, classes: 9, inputChannels: 1)
        let state = DeterministicValues.state(for: net)
        let x = DeterministicValues.input([2, 1, 64, 96])
        let expected = gelu == .exact ? Self.exact : Self.tanh
        let logits = withoutGradient { net.logits(x, Scope(state)) }
        #expect(logits.shape == [2, 9, 16, 24])
        #expect(relativeDifference(sum(logits), expected.logitSum) < 1e-6, "sum \(sum(logits))")
        #expect(relativeDifference(logits.scalars.reduce(0) { $0 + Swift.abs(Double($1)) }, expected.logitAbsSum) < 1e-6)
        #expect(relativeDifference(sumOfSquares(logits), expected.logitSquares) < 1e-6)
        for (index, value) in zip([0, 1, 100, 1000, 3333, 5000, 6911], expected.samples) {
            #expect(Swift.abs(logits.scalars[index] - value) < 2e-5, "logit \(index): \(logits.scalars[index]) vs \(value)")
        }
        let labels = DeterministicValues.labels([2, 64, 96], classes: 9)
        let (loss, gradient) = valueWithGradient(at: state.parameters) { parameters in
            net.loss(x, targets: TaskTargets(segmentation: labels), Scope(parameters: parameters, buffers: state.buffers))
        }
        #expect(relativeDifference(Double(loss.item), expected.loss) < 1e-6, "loss \(loss.item)")
        for (name, squares) in expected.gradientSquares {
            let found = sumOfSquares(gradient[name]!)
            #expect(relativeDifference(found, squares) < 1e-4, "\(name): \(found) vs \(squares)")
        }
    }
}
