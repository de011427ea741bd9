import CFuseKitKernels

/// Dispatch to the AVX2 + FMA kernels of `CFuseKitKernels` when the CPU has them.
public enum NativeKernels {
    /// Whether the CPU supports the AVX2 + FMA kernels (`FUSEKIT_PORTABLE=1` turns them off).
    public static let cpuSupportsAVX2: Bool = !forcedPortable && CPUFeatures.current.usableAVX2FMA

    /// `FUSEKIT_PORTABLE=1`: use the portable kernels even where the CPU runs the AVX2 ones.
    static let forcedPortable = getenvString("FUSEKIT_PORTABLE") == "1"

    /// The kernel set in use, for diagnostics: "AVX2 + FMA" or "portable (Swift SIMD)" with the reason.
    public static var kernelSet: String {
        if cpuSupportsAVX2 { return "AVX2 + FMA" }
        return "portable (Swift SIMD; \(forcedPortable ? "FUSEKIT_PORTABLE=1" : "the CPU has no usable AVX2 + FMA"))"
    }

    /// Forces the portable Swift SIMD kernels in this task (tests compare both paths).
    @TaskLocal public static var portableOnly = false

    /// Whether to use the AVX2 kernels here and now.
    @inlinable public static var enabled: Bool { cpuSupportsAVX2 && !portableOnly }

    /// Runs a range kernel over `count` elements, split over the cores.
    @inlinable
    static func ranges(_ count: Int, grain: Int = 16_384, _ body: (Int, Int) -> Void) {
        Parallel.forRanges(count, grain: grain) { r in body(r.lowerBound, r.count) }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
private func getenvString(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

extension Tensor {
    /// Raw unary kernel: the AVX2 C kernel when enabled, else the Swift SIMD one.
    @inlinable
    static func mapRaw<F: UnaryVectorFunction>(_ x: Tensor, _ f: F.Type,
                                               native: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        guard NativeKernels.enabled else { return mapRaw(x, f) }
        let out = Tensor(uninitializedShape: x.shape)
        let src = SendablePointer(UnsafeMutablePointer(mutating: x.pointer)), dst = SendablePointer(out.mutablePointer)
        Profiler.measure("pointwise \(F.self)") {
            NativeKernels.ranges(x.count) { start, n in native(src.base + start, dst.base + start, n) }
        }
        return out
    }
}
