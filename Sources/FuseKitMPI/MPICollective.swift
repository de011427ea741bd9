import CFuseKitMPI
import Foundation
import FuseKitTensor

/// MPI's collectives over MPI_COMM_WORLD (OpenMPI or any MPI the system library target finds).
/// A process started by `mpirun` or `srun` initialises MPI with ``launched()``.
public struct MPICollective: Collective {
    public let rank: Int
    public let size: Int

    /// The MPI world when this process was started by an MPI launcher (`mpirun`, `mpiexec`,
    /// `srun`), else nil; initialises MPI once and finalises it at exit.
    public static func launched() -> MPICollective? {
        let environment = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_PROCID"]
        guard environment.contains(where: { getenv($0) != nil }) else { return nil }
        if fk_mpi_is_initialized() == 0 {
            guard fk_mpi_init() == 0 else { return nil }
            atexit { fk_mpi_finalize() }
        }
        return MPICollective(rank: Int(fk_mpi_rank()), size: Int(fk_mpi_size()))
    }

    /// Ranks started on this machine (OpenMPI's and Slurm's launchers say), for dividing its cores.
    public var ranksOnThisMachine: Int {
        for name in ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"] {
            if let value = getenv(name).flatMap({ Int(String(cString: $0)) }), value > 0 { return value }
        }
        return 1
    }

    static func check(_ error: Int32, _ what: String) {
        if error != 0 {
            FileHandle.standardError.write(Data("fusekit: MPI \(what) failed with error \(error); stopping every rank\n".utf8))
            fk_mpi_abort(70)
        }
    }

    public func sum(_ values: UnsafeMutableBufferPointer<Float>) {
        guard let base = values.baseAddress, values.count > 0 else { return }
        Self.check(fk_mpi_allreduce_sum_float(base, values.count), "allreduce")
    }

    public func sum(_ values: inout [Double]) {
        let count = values.count
        values.withUnsafeMutableBufferPointer { Self.check(fk_mpi_allreduce_sum_double($0.baseAddress!, count), "allreduce") }
    }

    public func maximum(_ values: inout [Double]) {
        let count = values.count
        values.withUnsafeMutableBufferPointer { Self.check(fk_mpi_allreduce_max_double($0.baseAddress!, count), "allreduce") }
    }

    public func barrier() { Self.check(fk_mpi_barrier(), "barrier") }

    public func abort(exitCode: Int32) -> Never {
        fk_mpi_abort(exitCode)
        exit(exitCode)
    }
}
