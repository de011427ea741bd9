import FuseKitTensor
import Testing

/// The OpenBLAS kernel check: the decision over tables of (core, CPU features), the selection's
/// fallback over probe outcomes, real probes in child processes, and the loaded kernel's products
/// against a plain reference.
@Suite struct BLASKernelTests {
    /// A CPU with the features of each generation (and the OS saving the registers).
    static func cpu(_ vendor: String = "GenuineIntel", level: Int, osSavesAVX512: Bool = true) -> CPUFeatures {
        var f = CPUFeatures(vendor: vendor, family: 6, model: 0)
        f.sse3 = level >= 1
        f.ssse3 = level >= 2
        (f.sse41, f.sse42) = (level >= 3, level >= 3)
        (f.avx, f.osSavesAVX) = (level >= 4, level >= 4)
        (f.avx2, f.fma) = (level >= 5, level >= 5)
        (f.avx512f, f.avx512bw, f.avx512vl, f.avx512dq, f.avx512cd) = (level >= 6, level >= 6, level >= 6, level >= 6, level >= 6)
        f.osSavesAVX512 = level >= 6 && osSavesAVX512
        f.avx512bf16 = level >= 7
        (f.amxTile, f.amxBF16, f.osSavesAMX) = (level >= 8, level >= 8, level >= 8)
        return f
    }

    static let detected = BLASKernelEnvironment()

    @Test func decisionTable() {
        let xeonAMX = Self.cpu(level: 8), zen3 = Self.cpu("AuthenticAMD", level: 5)
        let cases: [(core: String, cpu: CPUFeatures, environment: BLASKernelEnvironment, dynamic: Bool, expected: BLASKernelDecision)] = [
            // The issue's VM: AVX-512 + AMX, OpenBLAS fell back to Prescott.
            ("Prescott", xeonAMX, Self.detected, true,
             .tryNewer([.sapphireRapids, .cooperlake, .skylakeX, .haswell, .zen, .sandybridge, .nehalem, .core2])),
            // The same CPU whose OS does not save the ZMM registers: AVX2 at best.
            ("Prescott", Self.cpu(level: 8, osSavesAVX512: false), Self.detected, true, .tryNewer([.haswell, .zen, .sandybridge, .nehalem, .core2])),
            ("Haswell", xeonAMX, Self.detected, true, .tryNewer([.sapphireRapids, .cooperlake, .skylakeX])),
            ("SkylakeX", Self.cpu(level: 6), Self.detected, true, .best("SkylakeX")),
            ("Haswell", Self.cpu(level: 6), Self.detected, true, .tryNewer([.skylakeX])),
            ("Cooperlake", Self.cpu(level: 7), Self.detected, true, .best("Cooperlake")),
            // This machine's kind: an AMD EPYC with AVX2, no AVX-512.
            ("Zen", zen3, Self.detected, true, .best("Zen")),
            ("Haswell", zen3, Self.detected, true, .best("Haswell")),
            ("Prescott", zen3, Self.detected, true, .tryNewer([.zen, .haswell, .sandybridge, .nehalem, .core2])),
            ("Barcelona", zen3, Self.detected, true, .tryNewer([.zen, .haswell, .sandybridge, .nehalem, .core2])),
            ("Sandybridge", Self.cpu(level: 4), Self.detected, true, .best("Sandybridge")),
            ("Prescott", Self.cpu(level: 1), Self.detected, true, .best("Prescott")),
            // Never overridden, not changeable, not understood.
            ("Prescott", xeonAMX, BLASKernelEnvironment(coreType: "Prescott"), true, .userSetting("Prescott")),
            ("Prescott", xeonAMX, Self.detected, false, .fixedBuild),
            ("NEOVERSEN1", xeonAMX, Self.detected, true, .unknownCore("NEOVERSEN1")),
            // After fusekit's restart.
            ("SkylakeX", xeonAMX, BLASKernelEnvironment(coreType: "SkylakeX", replacedCore: "Prescott"), true, .selectedByFuseKit("SkylakeX", replacing: "Prescott")),
            // The test hook treats OPENBLAS_CORETYPE as OpenBLAS's own detection.
            ("Prescott", zen3, BLASKernelEnvironment(coreType: "Prescott", treatCoreTypeAsDetected: true), true, .tryNewer([.zen, .haswell, .sandybridge, .nehalem, .core2])),
        ]
        for c in cases {
            let decision = BLASKernelDecision.decide(coreName: c.core, cpu: c.cpu, dynamicArch: c.dynamic, environment: c.environment)
            #expect(decision == c.expected, "\(c.core) on \(c.cpu)")
        }
    }

    @Test func selectionFallsBackToTheNextOlderKernelThatPasses() {
        func table(_ outcomes: [OpenBLASCore: (BLASKernelProbe.Outcome, String)]) -> (OpenBLASCore) -> BLASKernelProbe {
            { core in
                let (outcome, reported) = outcomes[core] ?? (.passed, core.name)
                return BLASKernelProbe(core: core, outcome: outcome, reportedCore: reported)
            }
        }
        let candidates: [OpenBLASCore] = [.sapphireRapids, .cooperlake, .skylakeX, .haswell, .zen, .sandybridge]
        // OpenBLAS 0.3.21 does not know SapphireRapids and cannot force Cooperlake (it loads Haswell instead); SkylakeX crashes.
        let crashing = table([.sapphireRapids: (.passed, "Haswell"), .cooperlake: (.passed, "Haswell"), .skylakeX: (.crashed, "")])
        let first = BLASKernel.select(candidates, probe: crashing)
        #expect(first.chosen == .haswell)
        #expect(first.probes.map(\.core) == [.sapphireRapids, .cooperlake, .skylakeX, .haswell])
        let wrong = table([.sapphireRapids: (.wrongResults, "SapphireRapids"), .cooperlake: (.failedToRun, ""), .skylakeX: (.passed, "SkylakeX")])
        #expect(BLASKernel.select(candidates, probe: wrong).chosen == .skylakeX)
        let none = BLASKernel.select(candidates) { BLASKernelProbe(core: $0, outcome: .crashed, reportedCore: "") }
        #expect(none.chosen == nil && none.probes.count == candidates.count)
    }

    /// Real probes in child processes of this test binary.
    @Test func probesInChildProcesses() {
        let cpu = CPUFeatures.current
        guard BLASKernel.isDynamicArch, OpenBLASCore.prescott.runs(on: cpu) else {
            print("BLAS probes: OpenBLAS is not a DYNAMIC_ARCH build on x86-64 here (\(BLASKernel.configuration)); nothing to probe")
            return
        }
        var accepted: [OpenBLASCore] = []
        for core in OpenBLASCore.allCases {
            let probe = BLASKernel.probe(core)
            print("BLAS probe \(probe.summary) (reported \(probe.reportedCore.isEmpty ? "nothing" : probe.reportedCore))")
            if !core.runs(on: cpu) { #expect(!probe.accepted, "\(core.name) needs features this CPU lacks") }
            if probe.accepted { accepted.append(core) }
        }
        #expect(accepted.contains(.prescott), "the SSE3 kernels run on every x86-64 CPU")
        let selection = BLASKernel.select(OpenBLASCore.candidates(for: cpu)) { BLASKernel.probe($0) }
        #expect(selection.chosen == OpenBLASCore.candidates(for: cpu).first { accepted.contains($0) })
        #expect(selection.chosen.map { $0.runs(on: cpu) } == true)
    }

    /// The loaded kernel (the corrected one under CI) against a plain double-precision product,
    /// through FuseKit's split and serial paths, every transpose, alpha and beta.
    @Test func loadedKernelMatchesReference() {
        print("OpenBLAS kernel under test: \(BLASKernel.coreName)")
        let shapes = [(1, 1, 1), (5, 7, 3), (33, 65, 17), (64, 300, 96), (130, 257, 129), (16, 8, 40_000), (300, 40, 700)]
        for (m, n, k) in shapes {
            for transposeA in [false, true] {
                for transposeB in [false, true] {
                    for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1)] {
                        let a = Random.uniform(transposeA ? [k, m] : [m, k], seed: 1, -1, 1).scalars
                        let b = Random.uniform(transposeB ? [n, k] : [k, n], seed: 2, -1, 1).scalars
                        let c0 = Random.uniform([m, n], seed: 3, -1, 1).scalars
                        let (lda, ldb) = (transposeA ? m : k, transposeB ? k : n)
                        for serial in [false, true] {
                            var c = c0
                            a.withUnsafeBufferPointer { pa in
                                b.withUnsafeBufferPointer { pb in
                                    c.withUnsafeMutableBufferPointer { pc in
                                        Gemm.product(serial: serial)(transposeA, transposeB, m, n, k, alpha, pa.baseAddress!, lda,
                                                                     pb.baseAddress!, ldb, beta, pc.baseAddress!, n)
                                    }
                                }
                            }
                            var worst = 0.0
                            for i in 0..<m {
                                for j in 0..<n {
                                    var sum = 0.0, magnitude = 0.0
                                    for p in 0..<k {
                                        let av = Double(transposeA ? a[p * lda + i] : a[i * lda + p])
                                        let bv = Double(transposeB ? b[j * ldb + p] : b[p * ldb + j])
                                        sum += av * bv
                                        magnitude += Swift.abs(av * bv)
                                    }
                                    let expected = Double(alpha) * sum + Double(beta) * Double(c0[i * n + j])
                                    let scale = Double(alpha) * magnitude + Swift.abs(Double(beta) * Double(c0[i * n + j])) + 1e-30
                                    worst = Swift.max(worst, Swift.abs(Double(c[i * n + j]) - expected) / scale)
                                }
                            }
                            #expect(worst < 1e-5, "\(m)x\(n)x\(k) transposes \(transposeA) \(transposeB) alpha \(alpha) beta \(beta) serial \(serial): \(worst)")
                        }
                    }
                }
            }
        }
    }
}
