import FuseKitImage
import FuseKitNN
import FuseKitTensor

/// Gradient checks of registered plugins (what `fusekit gradcheck` runs): each plugin in its
/// small configuration, with respect to all its parameters and its input, VJP and JVP against
/// finite differences; and the exact hypergradient of a tiny meta step against finite
/// differences of the meta objective.
public enum PluginGradcheck {
    static func uniform(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        return Tensor.uniform(shape, using: &rng)
    }

    /// The seed of the random directions and cotangents ``check(_:directionSeed:)`` draws by
    /// default.
    public static let defaultDirectionSeed = GradientCheck.Options().seed

    static func options(directionSeed: UInt64) -> GradientCheck.Options {
        var o = GradientCheck.Options()
        o.seed = directionSeed
        // Steps of 2e-3 of each input's RMS. The finite differences hold the kinks, so the step
        // is set by the smooth parts: over six direction seeds, 2e-4 left float32 noise of 1e-3
        // to 1e-2 in the whole networks' worst elements and 2e-3 of 1e-4 to 2e-3, while at 1e-2
        // the curvature of MAFS's and MRFS's attention and normalisations misses by 1-15%.
        o.epsilon = 2e-3
        o.trials = 2
        return o
    }

    /// Random labels for a task network's loss.
    static func targets(for task: any TaskNet, batch: Int, size: (height: Int, width: Int), seed: UInt64) -> TaskTargets {
        var rng = RandomGenerator(seed: seed)
        switch task.kind {
        case .segmentation(let classes):
            let n = batch * size.height * size.width
            return TaskTargets(segmentation: Tensor(shape: [batch, size.height, size.width],
                                                    scalars: (0..<n).map { _ in Float(rng.nextInt(below: classes)) }))
        case .detection(let classes):
            let boxes = (0..<batch).map { _ in
                (0..<2).map { _ in
                    BoundingBox(classIndex: rng.nextInt(below: classes), centerX: 0.3 + 0.4 * Double(rng.nextUniform()),
                                centerY: 0.3 + 0.4 * Double(rng.nextUniform()), width: 0.2 + 0.3 * Double(rng.nextUniform()),
                                height: 0.2 + 0.3 * Double(rng.nextUniform()))
                }
            }
            return TaskTargets(boxes: boxes)
        }
    }

    /// Checks one plugin along the random directions and cotangents of `directionSeed`.
    public static func check(_ descriptor: PluginDescriptor, directionSeed: UInt64 = defaultDirectionSeed) -> GradientCheck.Report {
        let settings = descriptor.gradcheck
        let (b, h, w) = (settings.batch, settings.inputSize.height, settings.inputSize.width)
        // Every evaluation gets the same context: training mode, identical dropout masks.
        func scope(_ p: [String: Tensor], _ buffers: [String: Tensor]) -> Scope {
            Scope(parameters: p, buffers: buffers, context: ForwardContext(training: true, rng: RandomGenerator(seed: 1)))
        }
        func run(_ module: any Module, input: Tensor, _ f: @escaping (Tensor, Scope) -> Tensor) -> GradientCheck.Report {
            let state = settings.state(of: module, seed: 7)
            var inputs = state.parameters
            inputs["input"] = input
            return GradientCheck.check(descriptor.name, parameters: inputs, options: options(directionSeed: directionSeed)) { d in
                var p = d
                let x = p.removeValue(forKey: "input")!
                return f(x, scope(p, state.buffers))
            }
        }
        switch settings.makeModule() {
        case let net as any FusionNet:
            return run(net, input: uniform([b, 2, h, w], seed: 3)) { net.fuse($0, $1) }
        case let net as any LossGenerator:
            return run(net, input: uniform([b, 2, h, w], seed: 3)) { net.weights($0, $1) }
        case let net as any TaskNet:
            let targets = Self.targets(for: net, batch: b, size: (h, w), seed: 5)
            if let objective = settings.taskObjective {
                return run(net, input: uniform([b, net.inputChannels, h, w], seed: 3)) { objective(net, $0, $1) }
            }
            return run(net, input: uniform([b, net.inputChannels, h, w], seed: 3)) { net.loss($0, targets: targets, $1) }
        case let net as any JointModel:
            // Every output, flattened into one vector: the check compares each element's JVP with
            // its own finite difference, whose float32 noise is set by that element's size (a sum of
            // all outputs would have a noise floor set by the sum, which hides real errors).
            let infrared = uniform([b, 1, h, w], seed: 3)
            return run(net, input: uniform([b, net.visibleChannels, h, w], seed: 4)) { visible, p in
                let out = net.forward(JointInput(infrared: infrared, visible: visible), p)
                let outputs = [out.fused, out.logits] + out.auxiliary.keys.sorted().map { out.auxiliary[$0]! }
                return Tensor.concat(outputs.map { $0.reshaped([$0.count]) }, axis: 0)
            }
        case let other:
            preconditionFailure("\(descriptor.name): \(type(of: other)) is not a \(descriptor.kind.protocolName)")
        }
    }

    /// The exact hypergradient of a tiny meta step with the given plugins (small configurations)
    /// against finite differences of the meta objective.
    public static func checkHypergradient(fusion: String, lossGenerator: String, task: String,
                                          in registry: PluginRegistry) throws -> HypergradientCheck.Report {
        let f = try registry.descriptor(fusion, kind: .fusion), g = try registry.descriptor(lossGenerator, kind: .lossGenerator)
        let t = try registry.descriptor(task, kind: .task)
        let fusionNet = f.gradcheck.makeModule() as! any FusionNet
        let generator = g.gradcheck.makeModule() as! any LossGenerator
        let taskNet = t.gradcheck.makeModule() as! any TaskNet
        // An input both the fusion net's and the task net's small configurations take.
        let (h, w) = (Swift.max(t.gradcheck.inputSize.height, f.gradcheck.inputSize.height),
                      Swift.max(t.gradcheck.inputSize.width, f.gradcheck.inputSize.width))
        var taskState = t.gradcheck.state(of: taskNet, seed: 3)
        // A larger T and inner step make the meta objective depend visibly on θ_G at Float32
        // precision (the identity holds for any η).
        taskState.parameters = taskState.parameters.mapValues { $0 * 3 }
        let problem = MetaStepProblem(
            fusion: fusionNet, lossGenerator: generator, task: taskNet, loss: FusionLoss(),
            fusionState: f.gradcheck.state(of: fusionNet, seed: 1), generatorState: g.gradcheck.state(of: generator, seed: 2), taskState: taskState,
            sources: uniform([2, 2, h, w], seed: 4), nextSources: uniform([2, 2, h, w], seed: 5),
            nextTargets: targets(for: taskNet, batch: 2, size: (h, w), seed: 6), innerLearningRate: 1,
            taskInput: { x in taskNet.inputChannels > 1 ? Tensor.concat([Tensor](repeating: x, count: taskNet.inputChannels), axis: 1) : x },
            contextSeed: 7, training: false)
        return HypergradientCheck.run(problem)
    }
}
