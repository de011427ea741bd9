import CFuseKitKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An x86-64 kernel set ("core") of OpenBLAS's DYNAMIC_ARCH builds: the values of
/// `OPENBLAS_CORETYPE` that FuseKit may select, newest first.
public enum OpenBLASCore: String, CaseIterable, Sendable {
    case sapphireRapids = "SapphireRapids", cooperlake = "Cooperlake", skylakeX = "SkylakeX"
    case zen = "Zen", haswell = "Haswell", sandybridge = "Sandybridge", nehalem = "Nehalem", core2 = "Core2", prescott = "Prescott"

    /// The name OpenBLAS uses (`openblas_get_corename`, `OPENBLAS_CORETYPE`).
    public var name: String { rawValue }

    /// Whether a CPU with these features can run the kernels.
    public func runs(on cpu: CPUFeatures) -> Bool {
        switch self {
        case .sapphireRapids: cpu.usableAMXBF16
        case .cooperlake: cpu.usableAVX512BF16
        case .skylakeX: cpu.usableAVX512
        case .zen, .haswell: cpu.usableAVX2FMA
        case .sandybridge: cpu.usableAVX
        case .nehalem: cpu.sse42
        case .core2: cpu.ssse3
        case .prescott: cpu.sse3
        }
    }

    /// The instruction-set level of any core name OpenBLAS reports (older AMD and Intel names
    /// included), higher is newer; nil for names FuseKit does not know.
    public static func level(of coreName: String) -> Int? {
        switch coreName.lowercased() {
        case "katmai", "coppermine", "northwood", "banias", "athlon", "opteron", "opteron_sse3", "prescott", "atom", "nano", "bobcat", "barcelona": 1
        case "core2", "penryn", "dunnington": 2
        case "nehalem": 3
        case "sandybridge", "bulldozer", "piledriver", "steamroller", "excavator": 4
        case "haswell", "zen": 5
        case "skylakex": 6
        case "cooperlake": 7
        case "sapphirerapids": 8
        default: nil
        }
    }

    /// The cores a CPU can run, best first: the newest level first; at the AVX2 level the Zen
    /// kernels first on AMD and Hygon CPUs, Haswell's first elsewhere.
    public static func candidates(for cpu: CPUFeatures) -> [OpenBLASCore] {
        var order = allCases
        if !cpu.isAMD, let z = order.firstIndex(of: .zen) { order.swapAt(z, z + 1) }
        return order.filter { $0.runs(on: cpu) }
    }
}

/// What FuseKit concludes about the kernel OpenBLAS loaded.
public enum BLASKernelDecision: Equatable, Sendable {
    /// The user set `OPENBLAS_CORETYPE`; FuseKit never overrides it.
    case userSetting(String)
    /// The `fusekit` executable restarted itself with `OPENBLAS_CORETYPE` = the first value;
    /// OpenBLAS had chosen the second.
    case selectedByFuseKit(String, replacing: String)
    /// OpenBLAS was built for one CPU (not DYNAMIC_ARCH): its kernel cannot be changed at run time.
    case fixedBuild
    /// A core name FuseKit does not know (or not an x86-64 machine): left alone.
    case unknownCore(String)
    /// OpenBLAS's choice is at the best level this CPU runs.
    case best(String)
    /// OpenBLAS chose an older kernel than the CPU runs: these newer ones, best first, are worth probing.
    case tryNewer([OpenBLASCore])

    /// The decision for OpenBLAS's loaded core on a CPU.
    /// - Parameters:
    ///   - coreName: `openblas_get_corename()`.
    ///   - dynamicArch: whether OpenBLAS's configuration says DYNAMIC_ARCH.
    ///   - environment: the process's OPENBLAS_CORETYPE setting and FuseKit's markers.
    public static func decide(coreName: String, cpu: CPUFeatures, dynamicArch: Bool, environment: BLASKernelEnvironment) -> BLASKernelDecision {
        if let replaced = environment.replacedCore { return .selectedByFuseKit(environment.coreType ?? coreName, replacing: replaced) }
        if let user = environment.coreType, !environment.treatCoreTypeAsDetected { return .userSetting(user) }
        guard dynamicArch else { return .fixedBuild }
        guard let level = OpenBLASCore.level(of: coreName) else { return .unknownCore(coreName) }
        let newer = OpenBLASCore.candidates(for: cpu).filter { (OpenBLASCore.level(of: $0.name) ?? 0) > level }
        return newer.isEmpty ? .best(coreName) : .tryNewer(newer)
    }
}

/// The environment variables the kernel check reads.
public struct BLASKernelEnvironment: Equatable, Sendable {
    /// `OPENBLAS_CORETYPE`, when set.
    public var coreType: String?
    /// `FUSEKIT_BLAS_REPLACED`: set by the `fusekit` executable when it restarted itself, to
    /// the core OpenBLAS had chosen (so it restarts at most once).
    public var replacedCore: String?
    /// `FUSEKIT_BLAS_TREAT_CORETYPE_AS_DETECTED=1`, a test hook: treat OPENBLAS_CORETYPE as if
    /// OpenBLAS had detected that core itself, which simulates a CPU that OpenBLAS misdetects
    /// (the re-execution is otherwise only reachable on such a machine).
    public var treatCoreTypeAsDetected = false
    /// `FUSEKIT_BLAS_CHECK=0` turns the check (probes, warning, restart) off.
    public var checkDisabled = false

    public init(coreType: String? = nil, replacedCore: String? = nil, treatCoreTypeAsDetected: Bool = false, checkDisabled: Bool = false) {
        self.coreType = coreType
        self.replacedCore = replacedCore
        self.treatCoreTypeAsDetected = treatCoreTypeAsDetected
        self.checkDisabled = checkDisabled
    }

    /// This process's environment.
    public static var process: BLASKernelEnvironment {
        func value(_ name: String) -> String? { getenv(name).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } }
        return BLASKernelEnvironment(coreType: value("OPENBLAS_CORETYPE"), replacedCore: value(BLASKernel.replacedVariable),
                                     treatCoreTypeAsDetected: value("FUSEKIT_BLAS_TREAT_CORETYPE_AS_DETECTED") == "1",
                                     checkDisabled: value("FUSEKIT_BLAS_CHECK") == "0")
    }
}

/// The result of running one kernel in a probe child process.
public struct BLASKernelProbe: Equatable, Sendable {
    public enum Outcome: Equatable, Sendable {
        /// The products equal the reference.
        case passed
        /// The products differ from the reference.
        case wrongResults
        /// The child was killed by a signal (an illegal instruction, typically).
        case crashed
        /// The child could not start, timed out or exited unexpectedly.
        case failedToRun
    }
    public var core: OpenBLASCore
    public var outcome: Outcome
    /// The core OpenBLAS reported in the child (an unknown name makes OpenBLAS fall back silently).
    public var reportedCore: String

    public init(core: OpenBLASCore, outcome: Outcome, reportedCore: String) {
        self.core = core
        self.outcome = outcome
        self.reportedCore = reportedCore
    }

    /// The kernel can be used: correct products, and OpenBLAS really loaded it.
    public var accepted: Bool { outcome == .passed && reportedCore.lowercased() == core.name.lowercased() }

    public var summary: String {
        switch outcome {
        case .passed: accepted ? "\(core.name): passed" : "\(core.name): OpenBLAS loaded \(reportedCore) instead"
        case .wrongResults: "\(core.name): wrong products"
        case .crashed: "\(core.name): crashed"
        case .failedToRun: "\(core.name): probe did not run"
        }
    }
}

/// OpenBLAS's kernel selection, checked against the CPU.
///
/// Some OpenBLAS builds do not recognise new CPUs (cloud VMs often hide the model) and fall back
/// to old SSE3 kernels several times slower. The check reads the CPU's features, compares them
/// with the core OpenBLAS loaded and, when a newer one should run, probes each candidate in a
/// child process (some builds crash or compute wrong results with some forced kernels) and
/// recommends the best that passes. OpenBLAS reads `OPENBLAS_CORETYPE` only when it loads, so
/// the recommendation takes effect in a new process: the `fusekit` executable restarts itself
/// once (``reexecuteWithRecommendedKernel()``); other applications get a one-time warning
/// naming the variable to set (``warnOnceIfSuboptimal()``). A user's own `OPENBLAS_CORETYPE`
/// is never overridden.
public enum BLASKernel {
    /// The marker variable of a restart (see ``BLASKernelEnvironment/replacedCore``).
    public static let replacedVariable = "FUSEKIT_BLAS_REPLACED"

    /// OpenBLAS's loaded core (`openblas_get_corename`).
    public static var coreName: String { String(cString: fk_blas_core_name()) }
    /// OpenBLAS's configuration string (`openblas_get_config`).
    public static var configuration: String { String(cString: fk_blas_configuration()) }
    /// The file OpenBLAS was loaded from.
    public static var libraryPath: String { String(cString: fk_blas_library_path()) }
    /// OpenBLAS's own thread count.
    public static var openBLASThreads: Int { Int(fk_blas_thread_count()) }
    /// Whether OpenBLAS chooses its kernels at run time.
    public static var isDynamicArch: Bool { configuration.contains("DYNAMIC_ARCH") }

    /// Runs the products of the probe with `core` in a child process of `executable` (nil: this
    /// process's executable, which must link FuseKitTensor).
    public static func probe(_ core: OpenBLASCore, executable: String? = nil, timeout: Double = 30) -> BLASKernelProbe {
        var name = [CChar](repeating: 0, count: 64)
        let status = fk_blas_probe_spawn(executable, core.name, timeout, &name, name.count)
        let reported = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let outcome: BLASKernelProbe.Outcome
        switch Int(status) {
        case Int(FK_PROBE_PASSED): outcome = .passed
        case Int(FK_PROBE_WRONG_RESULTS): outcome = .wrongResults
        case Int(FK_PROBE_CRASHED): outcome = .crashed
        default: outcome = .failedToRun
        }
        return BLASKernelProbe(core: core, outcome: outcome, reportedCore: reported)
    }

    /// The first candidate whose probe is accepted, trying them in order (so a kernel that
    /// fails falls back to the next older one), and every probe made.
    public static func select(_ candidates: [OpenBLASCore], probe: (OpenBLASCore) -> BLASKernelProbe) -> (chosen: OpenBLASCore?, probes: [BLASKernelProbe]) {
        var probes: [BLASKernelProbe] = []
        for core in candidates {
            let result = probe(core)
            probes.append(result)
            if result.accepted { return (core, probes) }
        }
        return (nil, probes)
    }

    /// The outcome of the check in this process.
    public struct Check: Sendable {
        /// OpenBLAS's loaded core.
        public var coreName: String
        public var decision: BLASKernelDecision
        /// The probes made (only when a newer kernel was worth trying).
        public var probes: [BLASKernelProbe]
        /// A newer kernel that passed its probe: set `OPENBLAS_CORETYPE` to its name.
        public var recommended: OpenBLASCore?
    }

    /// Checks this process's kernel (once; probes run only when a newer kernel may run).
    public static let check: Check = {
        let environment = BLASKernelEnvironment.process
        let current = coreName
        let decision = BLASKernelDecision.decide(coreName: current, cpu: .current, dynamicArch: isDynamicArch, environment: environment)
        guard case .tryNewer(let candidates) = decision, !environment.checkDisabled else {
            return Check(coreName: current, decision: decision, probes: [], recommended: nil)
        }
        let (chosen, probes) = select(candidates) { probe($0) }
        return Check(coreName: current, decision: decision, probes: probes, recommended: chosen)
    }()

    /// For executables: when a newer kernel passed its probe, replaces this process with a new
    /// run of the same executable and arguments, with `OPENBLAS_CORETYPE` set. Call it first
    /// thing in `main`, before any work; it returns when nothing is to be done or the restart failed.
    public static func reexecuteWithRecommendedKernel() {
        guard let core = check.recommended else { return }
        let names = ["OPENBLAS_CORETYPE", replacedVariable], values = [core.name, check.coreName]
        withCStrings(names) { n in withCStrings(values) { v in _ = fk_reexecute_self(n, v) } }
        writeWarning("FuseKit: could not restart with OPENBLAS_CORETYPE=\(core.name) (\(String(cString: strerror(errno))))")
    }

    private static let warned: Bool = {
        if let core = check.recommended {
            writeWarning("""
                FuseKit: OpenBLAS loaded its \(check.coreName) kernels, but this CPU runs its \(core.name) kernels (checked in a child \
                process), which are much faster. Set OPENBLAS_CORETYPE=\(core.name) in the environment before the process \
                starts (OpenBLAS reads it only when it loads); FUSEKIT_BLAS_CHECK=0 silences this check.
                """)
            return true
        }
        return false
    }()

    /// Prints the recommendation once per process, on standard error (FuseKit calls it before
    /// its first matrix product).
    public static func warnOnceIfSuboptimal() { _ = warned }

    static func writeWarning(_ text: String) {
        let line = Array((text + "\n").utf8)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}

private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } } + [nil]
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
