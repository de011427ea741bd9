import FuseKitCLI
import FuseKitPlugins

FuseKitCommandLine.main(registry: StandardPlugins.registry())
