import FuseKitCLI
import FuseKitMPI
import FuseKitPlugins

FuseKitCommandLine.main(registry: StandardPlugins.registry(), ranks: { MPICollective.launched() })
