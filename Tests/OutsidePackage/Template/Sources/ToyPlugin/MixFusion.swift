import FuseKit

/// The README's example plugin: a two-layer mix of the sources.
public struct MixConfiguration: PluginConfiguration {
    @Parameter("channels of the hidden layer", .positive) public var width = 8
    public init() {}
}

public struct MixFusion: FusionNet {
    let mix: Child<Conv2d>
    let out: Child<Conv2d>

    public init(_ configuration: MixConfiguration) {
        mix = Child("mix", Conv2d(2, configuration.width, kernelSize: 3))
        out = Child("out", Conv2d(configuration.width, 1, kernelSize: 1))
    }

    public func fuse(_ sources: Tensor, _ p: Scope) -> Tensor {
        out(mix(sources, p).gelu(), p).sigmoid()
    }
}

public enum MixFusionPlugin {
    public static func register(in registry: inout PluginRegistry) {
        registry.registerFusion("mix-fusion", summary: "a two-layer mix of the sources", configuration: MixConfiguration.self) { MixFusion($0) }
    }
}
