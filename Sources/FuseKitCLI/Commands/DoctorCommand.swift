import ArgumentParser
import FuseKit

/// `fusekit doctor`: what FuseKit runs on (BLAS library and kernel, CPU features, FuseKit's
/// kernel set, threads, buffer pool).
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Print the BLAS library and kernel, CPU features, FuseKit's kernels, threads and buffer pool.",
        discussion: "With --coretype, print only the OpenBLAS kernel in use (for OPENBLAS_CORETYPE in scripts such as CI).")

    @Flag(help: "Print only the name of the OpenBLAS kernel in use.")
    var coretype = false

    func run() {
        let check = BLASKernel.check
        if coretype {
            print(check.coreName)
            return
        }
        let cpu = CPUFeatures.current
        print("fusekit \(FuseKitVersion.string)")
        print("BLAS library: \(BLASKernel.libraryPath)")
        print("BLAS configuration: \(BLASKernel.configuration)")
        print("BLAS kernel: \(check.coreName) (\(Self.describe(check)))")
        for probe in check.probes { print("  probe \(probe.summary)") }
        print("CPU: \(cpu.vendor) family \(cpu.family) model \(cpu.model)")
        print("CPU features: \(cpu)")
        print("FuseKit kernels: \(NativeKernels.kernelSet)")
        let blasThreads = Gemm.useOpenBLASThreads ? "OpenBLAS threads its own products (FUSEKIT_GEMM=openblas)"
            : "OpenBLAS single-threaded, FuseKit splits large products over its workers"
        print("Threads: \(Parallel.threadCount) FuseKit workers (FUSEKIT_THREADS); \(blasThreads)")
        print("Buffer pool: \(BufferPool.capacity >> 20) MiB (FUSEKIT_POOL_MIB)")
    }

    static func describe(_ check: BLASKernel.Check) -> String {
        switch check.decision {
        case .userSetting(let value): "OPENBLAS_CORETYPE=\(value) set by the user, left as it is"
        case .selectedByFuseKit(let value, let replaced): "OPENBLAS_CORETYPE=\(value) set by fusekit; OpenBLAS had chosen \(replaced)"
        case .fixedBuild: "OpenBLAS is built for one CPU type, its kernel cannot be changed"
        case .unknownCore: "a core FuseKit does not know, left as it is"
        case .best: "chosen by OpenBLAS, the best this CPU runs"
        case .tryNewer: check.recommended.map { "chosen by OpenBLAS; \($0.name) passed its probe: set OPENBLAS_CORETYPE=\($0.name)" }
            ?? "chosen by OpenBLAS; no newer kernel passed its probe"
        }
    }
}
