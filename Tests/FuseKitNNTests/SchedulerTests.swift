import Foundation
import FuseKitNN
import Testing

/// Learning-rate schedules: hand-computed values, PyTorch's schedulers, and the recipe form.
@Suite struct SchedulerTests {
    static func rates(_ schedule: LearningRateSchedule, base: Double, steps: Range<Int>) -> [Double] {
        steps.map { schedule.learningRate(base: base, at: $0) }
    }

    static func close(_ a: Double, _ b: Double, relative: Double = 1e-12) -> Bool {
        abs(a - b) <= relative * max(abs(a), abs(b), 1e-300)
    }

    @Test func constant() {
        #expect(Self.rates(.constant, base: 0.01, steps: 0..<5) == [0.01, 0.01, 0.01, 0.01, 0.01])
        #expect(LearningRateSchedule.constant.learningRate(base: Float(1e-4), at: 1000) == Float(1e-4))
    }

    @Test func stepDecayAsTDFusion() {
        // torch.optim.lr_scheduler.StepLR(step_size=10, gamma=0.1) per epoch, lr 1e-4.
        let schedule = LearningRateSchedule(.step(size: 10, gamma: 0.1))
        let rates = Self.rates(schedule, base: 1e-4, steps: 0..<40)
        #expect(rates[0..<10].allSatisfy { $0 == 1e-4 })
        #expect(rates[10..<20].allSatisfy { Self.close($0, 1e-5) })
        #expect(rates[20..<30].allSatisfy { Self.close($0, 1e-6) })
        #expect(Self.close(rates[39], 1e-7))
    }

    @Test func multiStepCountsMilestonesPassed() {
        let schedule = LearningRateSchedule(.multiStep(milestones: [6, 3, 6], gamma: 0.5))
        #expect(Self.rates(schedule, base: 1, steps: 0..<8) == [1, 1, 1, 0.5, 0.5, 0.5, 0.125, 0.125])
    }

    @Test func cosineClosedForm() {
        let schedule = LearningRateSchedule(.cosine(tMax: 10, etaMin: 0.001))
        #expect(schedule.learningRate(base: 0.1, at: 0) == 0.1)
        #expect(Self.close(schedule.learningRate(base: 0.1, at: 5), 0.0505))
        #expect(Self.close(schedule.learningRate(base: 0.1, at: 10), 0.001))
        #expect(Self.close(schedule.learningRate(base: 0.1, at: 15), 0.0505))
        #expect(Self.close(schedule.learningRate(base: 0.1, at: 2), 0.001 + 0.099 * (1 + cos(Double.pi / 5)) / 2))
    }

    @Test func polyAsMMSeg() {
        let schedule = LearningRateSchedule(.poly(power: 0.9, total: 100, minimum: 1e-4))
        #expect(schedule.learningRate(base: 0.01, at: 0) == 0.01)
        #expect(Self.close(schedule.learningRate(base: 0.01, at: 50), (0.01 - 1e-4) * pow(0.5, 0.9) + 1e-4))
        #expect(Self.close(schedule.learningRate(base: 0.01, at: 100), 1e-4))
        #expect(Self.close(schedule.learningRate(base: 0.01, at: 250), 1e-4))
        let linear = LearningRateSchedule(.poly(power: 1, total: 4, minimum: 0))
        #expect(Self.rates(linear, base: 1, steps: 0..<6) == [1, 0.75, 0.5, 0.25, 0, 0])
    }

    @Test func linearWarmupMultipliesTheDecay() {
        let schedule = LearningRateSchedule(.constant, warmup: .init(steps: 5, startFactor: 0.1))
        let expected = [0.1, 0.28, 0.46, 0.64, 0.82, 1, 1]
        #expect(zip(Self.rates(schedule, base: 1, steps: 0..<7), expected).allSatisfy { Self.close($0, $1) })
        let withStep = LearningRateSchedule(.step(size: 2, gamma: 0.5), warmup: .init(steps: 4, startFactor: 0))
        #expect(Self.rates(withStep, base: 1, steps: 0..<6) == [0, 0.25, 0.25, 0.375, 0.25, 0.25])
        #expect(LearningRateSchedule(.constant, warmup: .init(steps: 0)).learningRate(base: 2.0, at: 0) == 2)
    }

    struct Reference: Decodable {
        let schedule: LearningRateSchedule
        let rates: [Double]
    }

    /// Schedules decoded from their recipe form against the rates PyTorch's schedulers produced
    /// (stepped recursively, so agreement is to rounding).
    @Test func matchesPyTorchSchedulers() throws {
        let url = SerializationTestSupport.fixtures.appendingPathComponent("schedule_reference.json")
        let references = try JSONDecoder().decode([String: Reference].self, from: Data(contentsOf: url))
        #expect(Set(references.keys) == ["step", "multistep", "cosine", "warmup_step", "warmup_cosine"])
        for (name, reference) in references {
            for (step, expected) in reference.rates.enumerated() {
                let actual = reference.schedule.learningRate(base: 0.1, at: step)
                #expect(Self.close(actual, expected, relative: 1e-9), "\(name) step \(step): \(actual) vs PyTorch \(expected)")
            }
        }
    }

    @Test func recipeFormDecodesWithDefaults() throws {
        func decode(_ json: String) throws -> LearningRateSchedule {
            try JSONDecoder().decode(LearningRateSchedule.self, from: Data(json.utf8))
        }
        #expect(try decode(#"{"kind": "step", "step": 10, "gamma": 0.1}"#) == LearningRateSchedule(.step(size: 10, gamma: 0.1)))
        #expect(try decode(#"{"kind": "step", "step": 3}"#) == LearningRateSchedule(.step(size: 3, gamma: 0.1)))
        #expect(try decode(#"{"kind": "multistep", "milestones": [2, 5]}"#)
            == LearningRateSchedule(.multiStep(milestones: [2, 5], gamma: 0.1)))
        #expect(try decode(#"{"kind": "cosine", "tMax": 50}"#) == LearningRateSchedule(.cosine(tMax: 50, etaMin: 0)))
        #expect(try decode(#"{"kind": "poly", "total": 160000, "power": 1.0, "min": 0, "warmup": 1500, "warmupStartFactor": 1e-6}"#)
            == LearningRateSchedule(.poly(power: 1, total: 160_000, minimum: 0), warmup: .init(steps: 1500, startFactor: 1e-6)))
        #expect(try decode(#"{"kind": "constant", "warmup": 3}"#)
            == LearningRateSchedule(.constant, warmup: .init(steps: 3, startFactor: 1.0 / 3.0)))
    }

    @Test func recipeFormRoundTrips() throws {
        let schedules: [LearningRateSchedule] = [
            .constant,
            LearningRateSchedule(.step(size: 7, gamma: 0.5), warmup: .init(steps: 2, startFactor: 0.2)),
            LearningRateSchedule(.multiStep(milestones: [1, 9], gamma: 0.3)),
            LearningRateSchedule(.cosine(tMax: 12, etaMin: 1e-6)),
            LearningRateSchedule(.poly(power: 0.9, total: 40, minimum: 1e-5)),
        ]
        for schedule in schedules {
            let data = try JSONEncoder().encode(schedule)
            #expect(try JSONDecoder().decode(LearningRateSchedule.self, from: data) == schedule)
        }
    }

    @Test(arguments: [
        (#"{"kind": "exponential"}"#, "unknown learning-rate schedule kind 'exponential'"),
        (#"{"kind": "step", "step": 10, "gama": 0.1}"#, "unknown key 'gama'"),
        (#"{"kind": "step", "gamma": 0.1}"#, "step"),
        (#"{"kind": "step", "step": 0}"#, "step size must be positive"),
        (#"{"kind": "cosine", "tMax": -1}"#, "tMax must be positive"),
        (#"{"kind": "poly", "total": 0}"#, "total must be positive"),
        (#"{"kind": "constant", "warmup": 5, "warmupStartFactor": 2}"#, "start factor must be in [0, 1]"),
        (#"{"kind": "constant", "warmupStartFactor": 0.5}"#, "warmupStartFactor needs warmup"),
    ])
    func invalidRecipeFormsAreRejected(json: String, message: String) {
        #expect {
            _ = try JSONDecoder().decode(LearningRateSchedule.self, from: Data(json.utf8))
        } throws: { error in
            "\(error)".contains(message)
        }
    }
}
