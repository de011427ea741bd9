import FuseKit
import MAFS
import MRFS
import RestormerFusion
import SegFormerTask
import YOLOTask

/// The plugins FuseKit ships, registered by name: the one place that names them. The `fusekit`
/// executable uses this registry; a package that adds its own plugins registers these next to
/// them (see the README, "Writing a plugin").
public enum StandardPlugins {
    /// Registers FuseKit's plugins and the models commands use when none is named.
    public static func register(in registry: inout PluginRegistry) {
        RestormerFusionPlugin.register(in: &registry)
        SegFormerTaskPlugin.register(in: &registry)
        YOLOTaskPlugin.register(in: &registry)
        MRFSPlugin.register(in: &registry)
        MAFSPlugin.register(in: &registry)
        registry.defaults = PluginRegistry.Defaults(fusion: "restormer-fusion", lossGenerator: "restormer-lpn",
                                                    smallTask: "tiny-conv-seg", segmentationTask: "segformer")
    }

    /// A registry of FuseKit's plugins.
    public static func registry() -> PluginRegistry {
        var registry = PluginRegistry()
        register(in: &registry)
        return registry
    }
}
