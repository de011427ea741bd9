#define _GNU_SOURCE
#include "FuseKitPlatform.h"
#include <cblas.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

extern char **environ;

/* ---- CPU features ---- */

void fk_cpu_features_read(fk_cpu_features *f) {
    memset(f, 0, sizeof *f);
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    unsigned max_leaf = a;
    memcpy(f->vendor, &b, 4);
    memcpy(f->vendor + 4, &d, 4);
    memcpy(f->vendor + 8, &c, 4);
    f->vendor[12] = 0;
    __get_cpuid(1, &a, &b, &c, &d);
    int base_family = (a >> 8) & 0xf, base_model = (a >> 4) & 0xf;
    f->family = base_family == 0xf ? base_family + ((a >> 20) & 0xff) : base_family;
    f->model = (base_family == 0x6 || base_family == 0xf) ? base_model + (((a >> 16) & 0xf) << 4) : base_model;
    f->stepping = a & 0xf;
    f->sse3 = (c >> 0) & 1;
    f->ssse3 = (c >> 9) & 1;
    f->fma = (c >> 12) & 1;
    f->sse41 = (c >> 19) & 1;
    f->sse42 = (c >> 20) & 1;
    f->popcnt = (c >> 23) & 1;
    f->avx = (c >> 28) & 1;
    f->f16c = (c >> 29) & 1;
    int osxsave = (c >> 27) & 1;
    if (osxsave) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        f->os_avx = (lo & 0x6) == 0x6;                 /* SSE and YMM state */
        f->os_avx512 = f->os_avx && (lo & 0xe0) == 0xe0; /* opmask, ZMM_Hi256, Hi16_ZMM */
        f->os_amx = (lo & 0x60000) == 0x60000;         /* XTILECFG, XTILEDATA */
    }
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        unsigned subleaves = a;
        f->avx2 = (b >> 5) & 1;
        f->avx512f = (b >> 16) & 1;
        f->avx512dq = (b >> 17) & 1;
        f->avx512cd = (b >> 28) & 1;
        f->avx512bw = (b >> 30) & 1;
        f->avx512vl = (b >> 31) & 1;
        f->amx_bf16 = (d >> 22) & 1;
        f->amx_tile = (d >> 24) & 1;
        if (subleaves >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            f->avx512bf16 = (a >> 5) & 1;
        }
    }
#endif
}

/* ---- OpenBLAS ---- */

const char *fk_blas_core_name(void) { return openblas_get_corename(); }
const char *fk_blas_configuration(void) { return openblas_get_config(); }
int fk_blas_thread_count(void) { return openblas_get_num_threads(); }

const char *fk_blas_library_path(void) {
    Dl_info info;
    if (dladdr((void *)&cblas_sgemm, &info) && info.dli_fname) return info.dli_fname;
    return "";
}

/* Deterministic values in [-1, 1). */
static float probe_value(unsigned long i, unsigned long seed) {
    unsigned long x = (i + 1) * 2654435761UL ^ (seed * 40503UL);
    x ^= x >> 13; x *= 0x5bd1e995UL; x ^= x >> 15;
    return (float)((x & 0xffff) / 32768.0 - 1.0);
}

/* One product C = alpha op(A) op(B) + beta C (row-major) against a double-precision loop. */
static int probe_product(int ta, int tb, int m, int n, int k, float alpha, float beta) {
    size_t sa = (size_t)m * k, sb = (size_t)k * n, sc = (size_t)m * n;
    float *A = malloc(sa * sizeof(float)), *B = malloc(sb * sizeof(float)), *C = malloc(sc * sizeof(float));
    if (!A || !B || !C) { free(A); free(B); free(C); return 0; }
    for (size_t i = 0; i < sa; i++) A[i] = probe_value(i, 1);
    for (size_t i = 0; i < sb; i++) B[i] = probe_value(i, 2);
    for (size_t i = 0; i < sc; i++) C[i] = probe_value(i, 3);
    int lda = ta ? m : k, ldb = tb ? k : n;
    float *C0 = malloc(sc * sizeof(float));
    if (!C0) { free(A); free(B); free(C); return 0; }
    memcpy(C0, C, sc * sizeof(float));
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, A, lda, B, ldb, beta, C, n);
    int ok = 1;
    for (int i = 0; i < m && ok; i++) {
        for (int j = 0; j < n; j++) {
            double s = 0, mag = 0;
            for (int p = 0; p < k; p++) {
                double av = ta ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p];
                double bv = tb ? B[(size_t)j * ldb + p] : B[(size_t)p * ldb + j];
                s += av * bv;
                mag += fabs(av * bv);
            }
            double expected = alpha * s + beta * C0[(size_t)i * n + j];
            double scale = fabs(alpha) * mag + fabs(beta * C0[(size_t)i * n + j]) + 1e-30;
            double got = C[(size_t)i * n + j];
            if (!(fabs(got - expected) <= 1e-5 * scale)) { ok = 0; break; }
        }
    }
    free(A); free(B); free(C); free(C0);
    return ok;
}

int fk_blas_probe_products(void) {
    /* Odd sizes reach the edge code of every blocking; the large one the packed inner kernels. */
    static const int shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {33, 17, 65}, {64, 64, 64}, {97, 131, 53}, {256, 192, 320}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        for (int t = 0; t < 4; t++) {
            if (!probe_product(t & 1, t >> 1, m, n, k, t == 3 ? 0.5f : 1.0f, t == 2 ? 1.0f : 0.0f)) return 0;
        }
    }
    return 1;
}

/* A process started as a probe runs the products before main, prints the core name and exits. */
__attribute__((constructor)) static void fk_blas_probe_entry(void) {
    const char *flag = getenv("FUSEKIT_BLAS_PROBE");
    if (!flag || strcmp(flag, "1") != 0) return;
    openblas_set_num_threads(1);
    int ok = fk_blas_probe_products();
    printf("%s\n", openblas_get_corename());
    fflush(stdout);
    _exit(ok ? 0 : 1);
}

/* The environment with OPENBLAS_CORETYPE and FUSEKIT_BLAS_PROBE replaced. */
static char **probe_environment(const char *coretype) {
    size_t count = 0;
    while (environ[count]) count++;
    char **env = calloc(count + 3, sizeof(char *));
    if (!env) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < count; i++) {
        if (strncmp(environ[i], "OPENBLAS_CORETYPE=", 18) == 0 || strncmp(environ[i], "FUSEKIT_BLAS_PROBE=", 19) == 0) continue;
        env[j++] = environ[i];
    }
    static char probe_flag[] = "FUSEKIT_BLAS_PROBE=1";
    size_t len = strlen(coretype) + 19;
    char *core = malloc(len);
    if (!core) { free(env); return NULL; }
    snprintf(core, len, "OPENBLAS_CORETYPE=%s", coretype);
    env[j++] = core;
    env[j++] = probe_flag;
    env[j] = NULL;
    return env;
}

int fk_blas_probe_spawn(const char *executable, const char *coretype, double timeout_seconds, char *corename, size_t capacity) {
    if (capacity) corename[0] = 0;
    char path[4096];
    if (!executable) {
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
        if (n <= 0) return FK_PROBE_FAILED_TO_RUN;
        path[n] = 0;
        executable = path;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return FK_PROBE_FAILED_TO_RUN;
    char **env = probe_environment(coretype);
    if (!env) { close(fds[0]); close(fds[1]); return FK_PROBE_FAILED_TO_RUN; }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    char *argv[] = {(char *)executable, NULL};
    pid_t pid;
    int spawned = posix_spawn(&pid, executable, &actions, NULL, argv, env);
    posix_spawn_file_actions_destroy(&actions);
    for (char **e = env; *e; e++) if (strncmp(*e, "OPENBLAS_CORETYPE=", 18) == 0) free(*e);
    free(env);
    close(fds[1]);
    if (spawned != 0) { close(fds[0]); return FK_PROBE_FAILED_TO_RUN; }

    int status = 0, finished = 0;
    struct timespec start, now, pause = {0, 2000000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) { finished = 1; break; }
        if (r < 0 && errno != EINTR) break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) * 1e-9 > timeout_seconds) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        nanosleep(&pause, NULL);
    }
    char buffer[256];
    ssize_t got = read(fds[0], buffer, sizeof buffer - 1);
    close(fds[0]);
    if (got > 0 && capacity) {
        buffer[got] = 0;
        buffer[strcspn(buffer, "\r\n")] = 0;
        snprintf(corename, capacity, "%s", buffer);
    }
    if (!finished) return FK_PROBE_FAILED_TO_RUN;
    if (WIFSIGNALED(status)) return FK_PROBE_CRASHED;
    if (!WIFEXITED(status) || got <= 0) return FK_PROBE_FAILED_TO_RUN;
    if (WEXITSTATUS(status) == 0) return FK_PROBE_PASSED;
    if (WEXITSTATUS(status) == 1) return FK_PROBE_WRONG_RESULTS;
    return FK_PROBE_FAILED_TO_RUN;
}

/* ---- re-execution ---- */

int fk_reexecute_self(const char *const *names, const char *const *values) {
    char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0) return -1;
    path[n] = 0;
    /* The arguments as the kernel recorded them. */
    FILE *cmd = fopen("/proc/self/cmdline", "rb");
    if (!cmd) return -1;
    size_t cap = 1 << 16, len = 0;
    char *args = malloc(cap);
    if (!args) { fclose(cmd); return -1; }
    size_t r;
    while ((r = fread(args + len, 1, cap - len, cmd)) > 0) {
        len += r;
        if (len == cap) {
            char *bigger = realloc(args, cap *= 2);
            if (!bigger) { free(args); fclose(cmd); return -1; }
            args = bigger;
        }
    }
    fclose(cmd);
    size_t argc = 0;
    for (size_t i = 0; i < len; i++) if (args[i] == 0) argc++;
    char **argv = calloc(argc + 1, sizeof(char *));
    if (!argv) { free(args); return -1; }
    size_t a = 0;
    for (size_t i = 0; i < len && a < argc; a++) { argv[a] = args + i; i += strlen(args + i) + 1; }
    argv[a] = NULL;
    for (size_t i = 0; names[i]; i++) setenv(names[i], values[i], 1);
    execve(path, argv, environ);
    free(argv);
    free(args);
    return -1;
}
