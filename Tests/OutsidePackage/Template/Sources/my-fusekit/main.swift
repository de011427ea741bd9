import FuseKitCLI
import FuseKitPlugins
import ToyPlugin

var registry = StandardPlugins.registry()
MixFusionPlugin.register(in: &registry)
FuseKitCommandLine.main(registry: registry)
