import CFuseKitKernels

/// The instruction-set features of a CPU, as cpuid and xgetbv report them.
///
/// A feature counts only when the OS also saves its registers (XCR0): AVX needs the YMM state,
/// AVX-512 the opmask and ZMM states, AMX the tile states.
public struct CPUFeatures: Sendable, Equatable, CustomStringConvertible {
    /// The cpuid vendor string ("GenuineIntel", "AuthenticAMD", ...), empty off x86.
    public var vendor: String
    /// Display family and model (with the extended fields folded in).
    public var family: Int, model: Int
    public var sse3 = false, ssse3 = false, sse41 = false, sse42 = false
    public var avx = false, fma = false, avx2 = false
    public var avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512cd = false, avx512bf16 = false
    public var amxTile = false, amxBF16 = false
    /// The OS saves the YMM / AVX-512 / AMX tile registers on context switches.
    public var osSavesAVX = false, osSavesAVX512 = false, osSavesAMX = false

    public init(vendor: String = "", family: Int = 0, model: Int = 0) {
        self.vendor = vendor
        self.family = family
        self.model = model
    }

    /// The CPU this process runs on.
    public static let current: CPUFeatures = {
        var raw = fk_cpu_features()
        fk_cpu_features_read(&raw)
        let vendor = withUnsafeBytes(of: raw.vendor) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        var f = CPUFeatures(vendor: vendor, family: Int(raw.family), model: Int(raw.model))
        f.sse3 = raw.sse3 != 0
        f.ssse3 = raw.ssse3 != 0
        f.sse41 = raw.sse41 != 0
        f.sse42 = raw.sse42 != 0
        f.avx = raw.avx != 0
        f.fma = raw.fma != 0
        f.avx2 = raw.avx2 != 0
        f.avx512f = raw.avx512f != 0
        f.avx512bw = raw.avx512bw != 0
        f.avx512vl = raw.avx512vl != 0
        f.avx512dq = raw.avx512dq != 0
        f.avx512cd = raw.avx512cd != 0
        f.avx512bf16 = raw.avx512bf16 != 0
        f.amxTile = raw.amx_tile != 0
        f.amxBF16 = raw.amx_bf16 != 0
        f.osSavesAVX = raw.os_avx != 0
        f.osSavesAVX512 = raw.os_avx512 != 0
        f.osSavesAMX = raw.os_amx != 0
        return f
    }()

    /// AVX usable (CPU flag and OS support).
    public var usableAVX: Bool { avx && osSavesAVX }
    /// AVX2 and FMA usable.
    public var usableAVX2FMA: Bool { usableAVX && avx2 && fma }
    /// The AVX-512 subsets OpenBLAS's SkylakeX kernels and FuseKit's kernels need (F, CD, BW, DQ, VL), usable.
    public var usableAVX512: Bool { usableAVX2FMA && avx512f && avx512cd && avx512bw && avx512dq && avx512vl && osSavesAVX512 }
    /// AVX-512 with BF16 (Cooper Lake and later), usable.
    public var usableAVX512BF16: Bool { usableAVX512 && avx512bf16 }
    /// AMX tiles with BF16 (Sapphire Rapids and later), usable.
    public var usableAMXBF16: Bool { usableAVX512BF16 && amxTile && amxBF16 && osSavesAMX }
    /// An AMD or Hygon CPU (OpenBLAS's Zen kernels are tuned for them).
    public var isAMD: Bool { vendor == "AuthenticAMD" || vendor == "HygonGenuine" }

    /// The features that are set, in order ("avx2 fma ..."), with the OS state support.
    public var description: String {
        let flags: [(String, Bool)] = [
            ("sse3", sse3), ("ssse3", ssse3), ("sse4.1", sse41), ("sse4.2", sse42), ("avx", avx), ("fma", fma), ("avx2", avx2),
            ("avx512f", avx512f), ("avx512cd", avx512cd), ("avx512bw", avx512bw), ("avx512dq", avx512dq), ("avx512vl", avx512vl),
            ("avx512bf16", avx512bf16), ("amx-tile", amxTile), ("amx-bf16", amxBF16),
        ]
        let os = "OS saves AVX: \(osSavesAVX ? "yes" : "no"), AVX-512: \(osSavesAVX512 ? "yes" : "no"), AMX: \(osSavesAMX ? "yes" : "no")"
        return flags.filter(\.1).map(\.0).joined(separator: " ") + " (\(os))"
    }
}
