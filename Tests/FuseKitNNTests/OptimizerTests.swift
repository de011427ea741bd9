import Foundation
import FuseKitNN
import FuseKitTensor
import Testing

/// Optimizer behaviour beyond the PyTorch parity: state handling, groups, missing and invalid
/// gradients, the normalised step, value semantics and the parallel path.
@Suite struct OptimizerTests {
    static func stderr(of result: ExitTest.Result?) -> String {
        String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
    }

    let parameters: [String: Tensor] = [
        "conv.weight": SerializationTestSupport.random([4, 3], seed: 1),
        "conv.bias": SerializationTestSupport.random([4], seed: 2),
    ]
    let gradients: [String: Tensor] = [
        "conv.weight": SerializationTestSupport.random([4, 3], seed: 3),
        "conv.bias": SerializationTestSupport.random([4], seed: 4),
    ]

    @Test func missingGradientLeavesParameterAndStateAlone() throws {
        var state = OptimizerState()
        let once = Adam().update(parameters, gradients: gradients, state: &state, learningRate: 0.01)
        let biasMoment = try #require(state.slot("exp_avg", for: "conv.bias"))
        let twice = Adam().update(once, gradients: ["conv.weight": try #require(gradients["conv.weight"])],
                                  state: &state, learningRate: 0.01)
        #expect(try #require(twice["conv.bias"]).sharesStorage(with: try #require(once["conv.bias"])))
        #expect(SerializationTestSupport.bitwiseEqual(try #require(state.slot("exp_avg", for: "conv.bias")), biasMoment))
        #expect(state.slot("step", for: "conv.bias")?.item == 1)
        #expect(state.slot("step", for: "conv.weight")?.item == 2)
        #expect(state.step == 2)
        #expect(Set(twice.keys) == Set(parameters.keys))
    }

    @Test func updatesDoNotRecordGraphsAndKeepInputsIntact() throws {
        let tracked = parameters.mapValues { $0.requiringGradient() }
        let before = parameters.mapValues(\.scalars)
        var state = OptimizerState()
        let updated = AdamW().update(tracked, gradients: gradients, state: &state, learningRate: 0.1)
        for (name, tensor) in updated {
            #expect(!tensor.isTracked, "\(name) is tracked")
            #expect(tensor.scalars != before[name])
        }
        #expect(parameters.mapValues(\.scalars) == before)
    }

    @Test func savedStateIsNotChangedByLaterUpdates() throws {
        var state = OptimizerState()
        var current = SGD(momentum: 0.9).update(parameters, gradients: gradients, state: &state, learningRate: 0.1)
        let saved = state
        let savedBuffer = try #require(saved.slot("momentum_buffer", for: "conv.weight")).scalars
        current = SGD(momentum: 0.9).update(current, gradients: gradients, state: &state, learningRate: 0.1)
        #expect(try #require(saved.slot("momentum_buffer", for: "conv.weight")).scalars == savedBuffer)
        #expect(saved != state)
        #expect(current.count == 2)
    }

    @Test func stateFlattensAndRebuildsExactly() throws {
        var state = OptimizerState()
        _ = Adam().update(parameters, gradients: gradients, state: &state, learningRate: 0.01)
        let flat = state.flattened
        #expect(Set(flat.keys) == ["exp_avg.conv.weight", "exp_avg.conv.bias", "exp_avg_sq.conv.weight",
                                   "exp_avg_sq.conv.bias", "step.conv.weight", "step.conv.bias"])
        #expect(OptimizerState(step: state.step, flattened: flat) == state)
        #expect(OptimizerState(step: state.step + 1, flattened: flat) != state)
        #expect(OptimizerState.splitFlattenedKey("exp_avg.a.b.c")! == ("exp_avg", "a.b.c"))
        #expect(OptimizerState.splitFlattenedKey("nodot") == nil)
    }

    @Test func standardGroupsExemptBiasesAndNorms() {
        let groups = ParameterGroups.noWeightDecayForBiasesAndNorms(
            normParameterNames: ["encoder.0.norm1.weight", "bn.weight"], noDecayLearningRateScale: 0.5)
        #expect(groups.settings("encoder.0.attn.qkv.weight") == .default)
        #expect(groups.settings("encoder.0.attn.qkv.bias") == GroupSettings(learningRateScale: 0.5, weightDecay: 0))
        #expect(groups.settings("encoder.0.norm1.weight").weightDecay == 0)
        #expect(groups.settings("bn.weight").weightDecay == 0)
        #expect(groups.settings("bias").weightDecay == 0)
        #expect(groups.settings("encoder.0.biasing.weight") == .default)
        #expect(ParameterGroups.noWeightDecay(for: ["temperature"]).settings("temperature") == .noWeightDecay)
    }

    @Test func groupWeightDecayOverridesTheOptimizers() throws {
        // SGD without momentum: p - lr * (g + wd * p); the bias is in a no-decay group.
        let sgd = SGD(weightDecay: 0.5, groups: .noWeightDecay(for: ["conv.bias"]))
        var state = OptimizerState()
        let updated = sgd.update(parameters, gradients: gradients, state: &state, learningRate: 0.1)
        let p = try #require(parameters["conv.bias"]).scalars, g = try #require(gradients["conv.bias"]).scalars
        #expect(try #require(updated["conv.bias"]).scalars == zip(p, g).map { $0 + -0.1 * $1 })
        let pw = try #require(parameters["conv.weight"]).scalars, gw = try #require(gradients["conv.weight"]).scalars
        #expect(try #require(updated["conv.weight"]).scalars == zip(pw, gw).map { $0 + -0.1 * ($1 + 0.5 * $0) })
        #expect(state.slots.isEmpty)
    }

    @Test func normalizedStepUsesOneMaximumForTheWholeModel() throws {
        let params: [String: Tensor] = ["a": Tensor([1, 2]), "b": Tensor([3])]
        let grads: [String: Tensor] = ["a": Tensor([1, -4]), "b": Tensor([2])]
        #expect(NormalizedSGD.maximumMagnitude(of: grads) == 4)
        var state = OptimizerState()
        let updated = NormalizedSGD().update(params, gradients: grads, state: &state, learningRate: 0.5)
        #expect(try #require(updated["a"]).scalars == [1 - 0.5 * 0.25, 2 + 0.5])
        #expect(try #require(updated["b"]).scalars == [3 - 0.5 * 0.5])
        #expect(state.step == 1)

        let zero = NormalizedSGD().update(params, gradients: ["a": Tensor([0, 0]), "b": Tensor([-0.0])],
                                          state: &state, learningRate: 0.5)
        #expect(try #require(zero["a"]).sharesStorage(with: try #require(params["a"])))
        #expect(try #require(zero["b"]).scalars == [3])
        #expect(state.step == 2)
    }

    /// A tensor large enough to be split over the cores gives the same bits as its pieces
    /// updated one by one on the calling thread.
    @Test(arguments: ["sgd", "adam", "adamw", "normalized"])
    func parallelUpdateMatchesSerialPieces(kind: String) throws {
        let optimizer: any Optimizer = switch kind {
        case "sgd": SGD(momentum: 0.9, nesterov: true, weightDecay: 1e-3)
        case "adam": Adam(weightDecay: 1e-2)
        case "adamw": AdamW()
        default: NormalizedSGD()
        }
        let pieces = 8, pieceSize = 20_000
        let whole = SerializationTestSupport.random([pieces * pieceSize], seed: 11)
        let gradientsWhole = [SerializationTestSupport.random([pieces * pieceSize], seed: 12),
                              SerializationTestSupport.random([pieces * pieceSize], seed: 13)]
        func piece(_ t: Tensor, _ k: Int) -> Tensor {
            Tensor(shape: [pieceSize], scalars: Array(t.scalars[k * pieceSize ..< (k + 1) * pieceSize]))
        }
        var wholeState = OptimizerState()
        var wholeParameters = ["w": whole]
        var pieceState = OptimizerState()
        var pieceParameters: [String: Tensor] = [:]
        for k in 0..<pieces { pieceParameters["w\(k)"] = piece(whole, k) }
        for g in gradientsWhole {
            wholeParameters = optimizer.update(wholeParameters, gradients: ["w": g], state: &wholeState, learningRate: 0.01)
            var pieceGradients: [String: Tensor] = [:]
            for k in 0..<pieces { pieceGradients["w\(k)"] = piece(g, k) }
            pieceParameters = optimizer.update(pieceParameters, gradients: pieceGradients, state: &pieceState, learningRate: 0.01)
        }
        let joined = (0..<pieces).flatMap { pieceParameters["w\($0)"]!.scalars }
        #expect(try #require(wholeParameters["w"]).scalars.map(\.bitPattern) == joined.map(\.bitPattern))
    }

    @Test func gradientForUnknownParameterStops() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            var state = OptimizerState()
            _ = Adam().update(["a": Tensor.zeros([2])], gradients: ["b": Tensor.zeros([3])], state: &state, learningRate: 0.1)
        }
        #expect(Self.stderr(of: result).contains("Adam.update: gradient for unknown parameter 'b' (gradient shape [3]"))
    }

    @Test func gradientOfWrongShapeStops() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            var state = OptimizerState()
            _ = SGD().update(["enc.weight": Tensor.zeros([2, 3])], gradients: ["enc.weight": Tensor.zeros([3, 2])],
                             state: &state, learningRate: 0.1)
        }
        #expect(Self.stderr(of: result).contains(
            "SGD.update: gradient for parameter 'enc.weight' has shape [3, 2] but the parameter has shape [2, 3]"))
    }
}
