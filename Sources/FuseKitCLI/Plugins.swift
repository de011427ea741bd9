import FuseKit
import RestormerFusion

/// The plugins this command line links, registered by name.
enum StandardPlugins {
    static func registry() -> PluginRegistry {
        var registry = PluginRegistry()
        RestormerFusionPlugin.register(in: &registry)
        return registry
    }
}
