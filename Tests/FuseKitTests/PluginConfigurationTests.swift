import FuseKit
import RestormerFusion
import Testing

/// Plugin parameters declared once: names, types, defaults, rules and variants read off one
/// configuration struct by the registry, recipes and `fusekit plugins`.
@Suite struct PluginConfigurationTests {
    enum Mixing: String, ParameterChoice { case add, gate }

    struct Configuration: PluginConfiguration {
        @Parameter("feature channels", .positive) var width = 8
        @Parameter("input channels", .atLeast(1)) var inputChannels = 1
        @Parameter("dropout rate", .within(0.0..<1.0)) var dropRate = 0.1
        @Parameter("how branches are mixed") var mixing = Mixing.add
        @Parameter("channels per stage", .each(.positive, count: 2)) var stages = [4, 8]
        @Parameter("whether to use a bias") var bias = true
        init() {}
        static let variants = [PluginVariant<Self>("wide", "16 channels, two wide stages") { $0.width = 16; $0.stages = [16, 32] }]
        func validate() throws(ParameterProblem) {
            guard stages.allSatisfy({ $0 % inputChannels == 0 }) else { throw ParameterProblem("stages", "must be multiples of input-channels") }
        }
    }

    struct Probe: TaskNet {
        let configuration: Configuration
        var kind: TaskKind { .segmentation(classes: 2) }
        var inputChannels: Int { configuration.inputChannels }
        func loss(_ images: Tensor, targets: TaskTargets, _ p: Scope) -> Tensor { images.sum() }
        func predict(_ images: Tensor, _ p: Scope) -> TaskPredictions { .segmentation(images) }
    }

    static func registry() -> PluginRegistry {
        var registry = PluginRegistry()
        registry.registerTask("probe", summary: "a probe", configuration: Configuration.self) { Probe(configuration: $0) }
        return registry
    }

    static func make(_ values: [String: ParameterValue], lines: [String: Int] = [:]) throws -> Configuration {
        let net = try registry().makeTask("probe", PluginParameters(values, lines: lines)) as! Probe
        return net.configuration
    }

    @Test func documentationIsReadOffTheDeclaration() throws {
        let d = try Self.registry().descriptor("probe", kind: .task)
        #expect(d.parameters.map(\.name) == ["width", "input-channels", "drop-rate", "mixing", "stages", "bias"])
        #expect(d.parameters[0] == ParameterDocumentation(name: "width", typeName: "an integer", defaultValue: "8", help: "feature channels",
                                                          constraint: "positive"))
        #expect(d.parameters[2].typeName == "a number" && d.parameters[2].constraint == "in [0.0, 1.0)")
        #expect(d.parameters[3].typeName == "one of add, gate" && d.parameters[3].defaultValue == "add")
        #expect(d.parameters[4].typeName == "a list of integers" && d.parameters[4].defaultValue == "[4, 8]")
        #expect(d.variants.map(\.name) == ["wide"])
    }

    @Test func valuesVariantsAndOverrides() throws {
        let defaults = try Self.make([:])
        #expect(defaults.width == 8 && defaults.mixing == .add && defaults.stages == [4, 8] && defaults.dropRate == 0.1)
        let given = try Self.make(["width": .int(3), "input-channels": .int(2), "drop-rate": .int(0), "mixing": .string("gate"),
                                   "stages": .list([.int(2), .int(6)]), "bias": .bool(false)])
        #expect(given.width == 3 && given.inputChannels == 2 && given.dropRate == 0 && given.mixing == .gate && given.stages == [2, 6] && !given.bias)
        let wide = try Self.make(["variant": .string("wide")])
        #expect(wide.width == 16 && wide.stages == [16, 32])
        let overridden = try Self.make(["variant": .string("wide"), "width": .int(12)])
        #expect(overridden.width == 12 && overridden.stages == [16, 32])
        #expect(Configuration.variant("wide")?.width == 16 && Configuration.variant("narrow") == nil)
    }

    @Test func mistakesNameTheKeyAndLine() {
        func message(_ values: [String: ParameterValue]) -> String? {
            let keys = Array(values.keys)
            let error = #expect(throws: PluginError.self) { _ = try Self.make(values, lines: [keys[0]: 7]) }
            return error?.description
        }
        #expect(message(["widht": .int(3)]) == "probe: unknown parameter 'widht' (line 7); did you mean 'width'?")
        #expect(message(["width": .int(0)]) == "probe: parameter 'width' (line 7): must be positive, got 0")
        #expect(message(["width": .string("many")]) == "probe: parameter 'width' (line 7) must be an integer, got string many")
        #expect(message(["width": .double(2.5)]) == "probe: parameter 'width' (line 7) must be an integer, got number 2.5")
        #expect(message(["mixing": .string("blend")]) == "probe: parameter 'mixing' (line 7) must be one of add, gate, got string blend")
        #expect(message(["stages": .list([.int(4)])]) == "probe: parameter 'stages' (line 7): must have 2 values, got 1")
        #expect(message(["stages": .list([.int(4), .int(-1)])]) == "probe: parameter 'stages' (line 7): every value must be positive, got -1")
        #expect(message(["input-channels": .int(3)]) == "probe: parameter 'stages': must be multiples of input-channels")
        #expect(message(["variant": .string("narrow")]) == "probe: parameter 'variant' (line 7): must be one of wide, got 'narrow'")
        #expect(message(["bias": .int(1)]) == "probe: parameter 'bias' (line 7) must be true or false, got integer 1")
    }

    @Test func commandLineValuesParse() throws {
        let p = try PluginParameters.parsing(["width=3", "drop-rate=0.5", "bias=false", "stages=[2, 6]", "mixing=gate"])
        #expect(p.values == ["width": .int(3), "drop-rate": .double(0.5), "bias": .bool(false), "stages": .list([.int(2), .int(6)]),
                             "mixing": .string("gate")])
        #expect(throws: PluginError.self) { _ = try PluginParameters.parsing(["width"]) }
    }

    @Test func summaryCountsParametersAndTracesShapes() throws {
        var registry = PluginRegistry()
        RestormerFusionPlugin.register(in: &registry)
        let summary = try registry.descriptor("restormer-fusion").summary(height: 12, width: 10)
        #expect(summary.parameters == 59_856)
        #expect(summary.root.outputShapes == [[1, 1, 12, 10]])
        let fm = try #require(summary.root.children.first { $0.name == "FM" })
        #expect(fm.outputShapes == [[1, 32, 12, 10]] && fm.ownParameters == 16)
        #expect(summary.root.children.map(\.parameters).reduce(0, +) == 59_856)
        let json = summary.json(plugin: "restormer-fusion")
        #expect(json.hasPrefix("{\"plugin\": \"restormer-fusion\", \"input\": [1, 2, 12, 10], \"parameters\": 59856, \"tree\": {"))
        #expect(summary.text().contains("Total parameters: 59,856"))
    }
}
