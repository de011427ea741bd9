import Foundation
import FuseKitNN
import FuseKitTensor
import Testing

/// SGD, Adam and AdamW against `torch.optim` (fixture from `Fixtures/make_optimizer_fixtures.py`):
/// five steps with changing learning rates, a zero gradient element, a parameter without a
/// gradient at one step, and two parameter groups.
@Suite struct OptimizerParityTests {
    static let names = ["layer.weight", "layer.bias", "norm.weight"]
    static let steps = 5

    struct Configuration: Sendable {
        let name: String
        let optimizer: any Optimizer
        let baseLearningRate: Float
    }

    static let configurations: [Configuration] = [
        Configuration(name: "sgd_nesterov", optimizer: SGD(momentum: 0.9, nesterov: true, weightDecay: 1e-2), baseLearningRate: 0.1),
        Configuration(name: "sgd_dampening", optimizer: SGD(momentum: 0.8, dampening: 0.3), baseLearningRate: 0.1),
        Configuration(name: "sgd_plain", optimizer: SGD(), baseLearningRate: 0.1),
        Configuration(name: "adam", optimizer: Adam(), baseLearningRate: 0.01),
        Configuration(name: "adam_wd", optimizer: Adam(epsilon: 1e-10, weightDecay: 0.1), baseLearningRate: 0.01),
        Configuration(
            name: "adamw_groups",
            optimizer: AdamW(beta1: 0.8, beta2: 0.99, weightDecay: 0.05,
                             groups: .noWeightDecayForBiasesAndNorms(normParameterNames: ["norm.weight"], noDecayLearningRateScale: 0.5)),
            baseLearningRate: 0.01),
    ]

    static func reference() throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        try SafeTensors.read(from: SerializationTestSupport.fixtures.appendingPathComponent("optimizer_reference.safetensors"))
    }

    @Test func fixtureListsTheConfigurationsTested() throws {
        let metadata = try Self.reference().metadata
        let configs = try JSONSerialization.jsonObject(with: Data((metadata["configs"] ?? "{}").utf8)) as? [String: Any]
        #expect(Set(configs?.keys.map { $0 } ?? []) == Set(Self.configurations.map(\.name)))
        #expect(metadata["no_decay"] == "layer.bias,norm.weight")
    }

    @Test(arguments: configurations.map(\.name))
    func matchesPyTorch(configuration name: String) throws {
        let configuration = try #require(Self.configurations.first { $0.name == name })
        let reference = try Self.reference().tensors
        let lrFactors = try #require(reference["lr_factors"]).scalars
        var parameters: [String: Tensor] = [:]
        for parameterName in Self.names {
            let initial = try #require(reference["init.\(parameterName)"])
            parameters[parameterName] = initial
        }
        var state = OptimizerState()
        var worst: Float = 0
        for step in 0..<Self.steps {
            var gradients: [String: Tensor] = [:]
            for parameterName in Self.names {
                let present = try #require(reference["present.\(parameterName)"]).scalars[step]
                if present != 0 {
                    gradients[parameterName] = SerializationTestSupport.row(try #require(reference["grad.\(parameterName)"]), step)
                }
            }
            let learningRate = Float(Double(configuration.baseLearningRate) * Double(lrFactors[step]))
            parameters = configuration.optimizer.update(parameters, gradients: gradients, state: &state, learningRate: learningRate)
            for parameterName in Self.names {
                let expected = SerializationTestSupport.row(try #require(reference["\(configuration.name).\(parameterName)"]), step)
                let actual = try #require(parameters[parameterName])
                #expect(actual.shape == expected.shape)
                let scale = max(1, expected.scalars.map(abs).max() ?? 0)
                let difference = zip(actual.scalars, expected.scalars).map { abs($0 - $1) }.max() ?? 0
                worst = max(worst, difference / scale)
                #expect(difference <= 1e-6 * scale,
                        "\(configuration.name) step \(step + 1) \(parameterName): max difference \(difference)")
            }
        }
        #expect(state.step == Self.steps)
        print("optimizer parity \(configuration.name): max |Swift - PyTorch| / scale = \(worst)")
    }
}
