import Foundation
import FuseKit
import Testing

/// Recipe values that stopped the process (traps, a fatal error in the schedule, an exponential
/// walk over YAML aliases) before the parser checked them. Found while writing the fuzz harness
/// (Tests/Fuzz, fuzz-recipe) and confirmed with it; each is now a line-numbered error.
@Suite struct RecipeFuzzRegressionTests {
    /// A valid recipe with the given synthetic data settings, fusion model settings and extra
    /// top-level lines.
    static func recipe(synthetic: String = "train-count: 4, test-count: 2", fusion: String = "{ plugin: f }", _ extra: String = "") -> String {
        "data:\n  synthetic: { \(synthetic) }\nfusion: \(fusion)\nloss-generator: { plugin: g }\ntask:\n  plugin: t\n" + extra
    }

    static func error(_ text: String) -> String {
        do {
            _ = try Recipe.parse(text, file: "bad.yaml")
            return "no error"
        } catch {
            return String(describing: error)
        }
    }

    @Test func outOfRangeValuesAreErrors() {
        let fusionCases: [(String, String)] = [
            ("{ plugin: f, schedule: { kind: step, step: 0 } }", "'fusion.schedule': step size must be positive, got 0"),
            ("{ plugin: f, schedule: { kind: cosine, t-max: -3 } }", "tMax must be positive, got -3"),
            ("{ plugin: f, schedule: { kind: multistep, milestones: [-1] } }", "milestones must be non-negative"),
            ("{ plugin: f, schedule: { kind: poly, total: 0 } }", "total must be positive, got 0"),
            ("{ plugin: f, schedule: { warmup: -1 } }", "warm-up: steps must be non-negative, got -1"),
            ("{ plugin: f, schedule: { warmup: 2, warmup-start-factor: 2 } }", "the start factor must be in [0, 1], got 2.0"),
            ("{ plugin: f, schedule: { warmup-start-factor: 0.5 } }", "needs 'warmup'"),
            ("{ plugin: f, optimizer: { learning-rate: .inf } }", "'fusion.optimizer.learning-rate' must be a finite number, got '.inf'"),
            ("{ plugin: f, optimizer: { beta1: 1 } }", "'fusion.optimizer.beta1' must be at least 0.0 and below 1.0, got 1.0"),
            ("{ plugin: f, optimizer: { weight-decay: -0.1 } }", "'fusion.optimizer.weight-decay' must be at least 0.0, got -0.1"),
            ("{ plugin: f, optimizer: { epsilon: .nan } }", "must be a finite number"),
        ]
        let extraCases: [(String, String)] = [
            ("seed: -1\n", "'seed' must be an integer from 0 to 2^64 - 1, got '-1'"),
            ("training: { steps-per-epoch: 0 }\n", "'training.steps-per-epoch' must be at least 1, got 0"),
            ("training: { preview-pairs: -2 }\n", "'training.preview-pairs' must be at least 0, got -2"),
            ("training: { inner-learning-rate: 0 }\n", "'training.inner-learning-rate' must be positive"),
            ("evaluation: { max-pairs: 0 }\n", "'evaluation.max-pairs' must be at least 1, got 0"),
            ("fusion-loss: { alpha: -1 }\n", "'fusion-loss.alpha' must be at least 0.0, got -1.0"),
        ]
        let syntheticCases: [(String, String)] = [
            ("train-count: 0", "'data.synthetic.train-count' must be at least 1, got 0"),
            ("test-count: 0", "'data.synthetic.test-count' must be at least 1, got 0"),
            ("width: -4", "'data.synthetic.width' must be at least 1, got -4"),
            ("height: 0", "'data.synthetic.height' must be at least 1, got 0"),
            ("night-fraction: 1.5", "'data.synthetic.night-fraction' must be at least 0.0 and at most 1.0, got 1.5"),
            ("seed: -7", "'data.synthetic.seed' must be an integer from 0 to 2^64 - 1, got '-7'"),
        ]
        let texts = fusionCases.map { (Self.recipe(fusion: $0.0), $0.1) } + extraCases.map { (Self.recipe($0.0), $0.1) }
            + syntheticCases.map { (Self.recipe(synthetic: $0.0), $0.1) }
        #expect(Self.error(Self.recipe()) == "no error")
        for (text, message) in texts {
            let error = Self.error(text)
            #expect(error.contains(message), "\(text)\n-> \(error)")
            #expect(error.hasPrefix("bad.yaml:"), "no file and line: \(error)")
        }
        #expect(Self.error(Self.recipe("seed: 18446744073709551615\n")) == "no error")
    }

    /// 534 bytes whose nested aliases stand for 10^9 plugin parameter values: the parser used
    /// to walk all of them (the fuzz harness timed out after 20 s). The walk now stops after
    /// ``maximumParameterValues``.
    @Test func nestedAliasesInParametersAreBounded() {
        var lines = ["a0: &a0 [1,1,1,1,1,1,1,1,1,1]"]
        for level in 1..<9 {
            lines.append("a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ",") + "]")
        }
        let text = Self.recipe(fusion: "\n  plugin: f\n  parameters:\n" + lines.map { "    " + $0 + "\n" }.joined())
        #expect(Self.error(text).contains("the parameters hold more than 100000 values (are YAML aliases nested?)"))
        // Anchors for repeated settings are fine.
        #expect(Self.error(Self.recipe(fusion: "\n  plugin: f\n  optimizer: &sgd { kind: sgd, momentum: 0.9 }\n", "models:\n  teacher: { plugin: t, optimizer: *sgd }\n"))
                == "no error")
    }
}
