#ifndef FUSEKIT_PLATFORM_H
#define FUSEKIT_PLATFORM_H

/// CPU feature detection (cpuid + xgetbv) and the OpenBLAS kernel probe.
///
/// The probe runs in a child process: the current executable started again with
/// FUSEKIT_BLAS_PROBE=1 and OPENBLAS_CORETYPE set. A constructor in this library intercepts
/// such a process before `main`, runs a few sgemm products on the kernel OpenBLAS loaded and
/// compares them with a plain reference, prints OpenBLAS's core name and exits. A kernel that
/// needs instructions the CPU lacks kills only the child (SIGILL).

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// What cpuid and xgetbv report. Every flag is 0 or 1.
typedef struct {
    char vendor[13];
    int family, model, stepping;
    int sse3, ssse3, sse41, sse42, popcnt;
    int avx, fma, avx2, f16c;
    int avx512f, avx512bw, avx512vl, avx512dq, avx512cd, avx512bf16;
    int amx_tile, amx_bf16;
    /// XCR0 says the OS saves the AVX (YMM) state, the AVX-512 (opmask, ZMM) state, the AMX tiles.
    int os_avx, os_avx512, os_amx;
} fk_cpu_features;

/// Reads the features of the CPU this process runs on (all zero on non-x86 machines).
void fk_cpu_features_read(fk_cpu_features *out);

/// The outcome of probing one OpenBLAS kernel in a child process.
enum {
    FK_PROBE_PASSED = 0,        ///< exited normally, products equal the reference
    FK_PROBE_WRONG_RESULTS = 1, ///< exited normally, products differ from the reference
    FK_PROBE_CRASHED = 2,       ///< killed by a signal (e.g. SIGILL)
    FK_PROBE_FAILED_TO_RUN = 3, ///< could not start, timed out, or exited unexpectedly
};

/// Starts `executable` (NULL: this process's own, /proc/self/exe) with OPENBLAS_CORETYPE=`coretype`
/// and FUSEKIT_BLAS_PROBE=1, waits at most `timeout_seconds`, and returns an FK_PROBE_* value.
/// `corename` receives the core name OpenBLAS reported in the child (empty if none).
int fk_blas_probe_spawn(const char *executable, const char *coretype, double timeout_seconds,
                        char *corename, size_t corename_capacity);

/// Runs the probe's products in this process: 1 when they equal the reference.
int fk_blas_probe_products(void);

/// OpenBLAS's core name and configuration string, and the file the library was loaded from
/// (empty when unknown).
const char *fk_blas_core_name(void);
const char *fk_blas_configuration(void);
const char *fk_blas_library_path(void);
/// OpenBLAS's own thread count.
int fk_blas_thread_count(void);

/// Replaces this process with `/proc/self/exe` started with the same arguments and the
/// environment plus `name=value` for each pair (NULL-terminated arrays). Returns only on failure.
int fk_reexecute_self(const char *const *names, const char *const *values);

#ifdef __cplusplus
}
#endif

#endif
