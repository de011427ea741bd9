import FuseKit
import RestormerFusion
import SegFormerTask
import YOLOTask

/// The plugins this command line links, registered by name.
enum StandardPlugins {
    static func registry() -> PluginRegistry {
        var registry = PluginRegistry()
        RestormerFusionPlugin.register(in: &registry)
        SegFormerTaskPlugin.register(in: &registry)
        YOLOTaskPlugin.register(in: &registry)
        return registry
    }
}
