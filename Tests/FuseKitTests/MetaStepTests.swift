import FuseKit
import RestormerFusion
import Testing

/// The exact hypergradient against central finite differences of the end-to-end meta objective.
@Suite struct MetaStepTests {
    static func problem(eta: Float, generatorGain: Float = 1, taskGain: Float = 1) -> MetaStepProblem {
        let tiny = RestormerConfiguration.with { $0.dim = 4; $0.blocks = 1; $0.heads = 2 }
        let f = RestormerFusion(tiny), g = RestormerLossGenerator(tiny)
        let t = SmoothTinySegmenter(classes: 3)
        var gState = g.initialState(seed: 2)
        // A slope of 1 keeps G's PReLU smooth for finite differences.
        gState.parameters["out2.weight"] = Tensor([1])
        gState.parameters["out3.weight"] = gState.parameters["out3.weight"]! * generatorGain
        var tState = t.initialState(seed: 3)
        tState.parameters = tState.parameters.mapValues { $0 * taskGain }
        return MetaStepProblem(
            fusion: f, lossGenerator: g, task: t, loss: FusionLoss(),
            fusionState: f.initialState(seed: 1), generatorState: gState, taskState: tState,
            sources: TestData.uniform([2, 2, 8, 8], seed: 4), nextSources: TestData.uniform([2, 2, 8, 8], seed: 5),
            nextTargets: TaskTargets(segmentation: TestData.labels([2, 8, 8], classes: 3, seed: 6)),
            innerLearningRate: eta, taskInput: { $0 }, contextSeed: 7)
    }

    @Test func exactHypergradientMatchesFiniteDifferencesOfTheMetaObjective() {
        // η, G's output gain and T's gain are set so that the meta objective visibly depends on
        // θ_G at Float32 precision (with the official η = 1e-4 the effect is below resolution; the
        // identity checked here holds for any η). J is strongly curved along ∇J; the check's cubic
        // fit through nine samples absorbs that (two-point differences were 35%, 10%, 1.2%, 0.4%,
        // 0.2% off at steps of 0.08 ... 0.005 of θ_G's size; the fit is 0.2% off at 0.01).
        let problem = Self.problem(eta: 1, generatorGain: 10, taskGain: 3)
        let report = HypergradientCheck.run(problem, gradientSteps: [0.01], randomSteps: [0.02])
        print(report)
        #expect(report.alongGradient < 1e-2, "relative error along the hypergradient: \(report)")
        #expect(report.randomDirections.count == 3 && report.randomDirections.allSatisfy { $0 < 1e-2 }, "\(report)")
        let result = problem.exactHypergradient()
        #expect(Set(result.hypergradient.keys) == Set(problem.generatorState.parameters.keys))
        #expect(result.fusionLoss.isFinite && result.outerTaskLoss.isFinite)
    }

    @Test func finiteDifferenceModeApproximatesTheExactOne() {
        let problem = Self.problem(eta: 1, generatorGain: 10, taskGain: 3)
        let exact = problem.exactHypergradient().hypergradient
        let approx = problem.finiteDifferenceHypergradient().hypergradient
        var dot = 0.0, ne = 0.0, na = 0.0
        for (k, e) in exact {
            let a = approx[k]!
            dot += Double((e * a).sum().item)
            ne += Double((e * e).sum().item)
            na += Double((a * a).sum().item)
        }
        let cosine = dot / (ne.squareRoot() * na.squareRoot())
        print("finite-difference hypergradient: cosine \(cosine), norm ratio \(na.squareRoot() / ne.squareRoot())")
        #expect(cosine > 0.99, "cosine similarity \(cosine)")
        #expect(Swift.abs(na.squareRoot() / ne.squareRoot() - 1) < 0.05)
    }

    @Test func hypergradientIsLinearInTheInnerStepForSmallSteps() {
        // For small η, ∇J ≈ −η (∂²L_f/∂θ_F∂θ_G)ᵀ ∇_θF L_t(θ_F): doubling η doubles it.
        let a = Self.problem(eta: 1e-4).exactHypergradient().hypergradient
        let b = Self.problem(eta: 2e-4).exactHypergradient().hypergradient
        var num = 0.0, den = 0.0
        for (k, x) in a {
            num += Double(((b[k]! - 2 * x) * (b[k]! - 2 * x)).sum().item)
            den += Double((x * x).sum().item)
        }
        #expect((num / den).squareRoot() < 1e-2)
    }
}

/// The plugin gradient check (small steps, so that whole networks with kinks can be checked)
/// still catches a rule that is a few percent off.
@Suite struct PluginGradcheckTests {
    /// A fusion net with one deliberately wrong derivative (its square's rules are 3% off).
    struct SlightlyWrongFusion: FusionNet {
        let conv = Child("conv", Conv2d(2, 1, kernelSize: 3))
        func fuse(_ sources: Tensor, _ p: Scope) -> Tensor {
            let x = conv(sources, p).leakyRelu(slope: 0.01)
            let y = withoutGradient { x.detached() * x.detached() }
            return y.recorded(op: "wrongSquare", inputs: [x], pullback: { g, _, _ in [g * x * 2.06] },
                              tangent: { t, _ in t[0].map { $0 * x * 2.06 } })
        }
    }

    @Test func restormerPluginsPassAndAWrongRuleFails() throws {
        var registry = PluginRegistry()
        RestormerFusionPlugin.register(in: &registry)
        registry.registerFusion("slightly-wrong", summary: "test", configuration: NoParameters.self) { _ in SlightlyWrongFusion() }
        for name in ["restormer-fusion", "restormer-lpn"] {
            let kind: PluginKind = name == "restormer-fusion" ? .fusion : .lossGenerator
            let report = PluginGradcheck.check(try registry.descriptor(name, kind: kind))
            #expect(report.passed, "\(report)")
        }
        let wrong = PluginGradcheck.check(try registry.descriptor("slightly-wrong", kind: .fusion))
        #expect(!wrong.passed, "\(wrong)")
    }
}
