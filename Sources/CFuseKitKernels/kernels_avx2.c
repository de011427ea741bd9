#include "FuseKitKernels.h"
#include <immintrin.h>
#include <math.h>

#define AVX2 __attribute__((target("avx2,fma")))

/* ---- vector elementary functions (the same polynomials as VectorMath.swift) ---- */

AVX2 static inline __m256 exp8(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.72283905206835f), lo = _mm256_set1_ps(-87.33654475055310f);
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    xc = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), xc);
    xc = _mm256_fmadd_ps(fx, _mm256_set1_ps(2.12194440e-4f), xc);
    __m256 z = _mm256_mul_ps(xc, xc);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, xc, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, xc, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, xc, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, xc, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, xc, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_add_ps(_mm256_fmadd_ps(y, z, xc), _mm256_set1_ps(1.0f));
    __m256i n = _mm256_cvtps_epi32(fx);
    __m256i half = _mm256_srai_epi32(n, 1);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(n, half), _mm256_set1_epi32(127)), 23));
    __m256 r = _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
    r = _mm256_blendv_ps(r, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
    r = _mm256_blendv_ps(r, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
    return _mm256_blendv_ps(r, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

AVX2 static inline __m256 erf8(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 t = _mm256_andnot_ps(sign, x);
    __m256 s = _mm256_mul_ps(x, x);
    __m256 p = _mm256_set1_ps(-0.0006047151400707662f);
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(0.005005624610930681f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-0.026776401326060295f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(0.11282140016555786f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-0.3761253356933594f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(1.1283791065216064f));
    __m256 small = _mm256_mul_ps(x, p);
    __m256 q = _mm256_set1_ps(-1.412568599334918e-05f);
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(0.00033182004699483514f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-0.0035406637471169233f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(0.023030133917927742f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-0.10425230860710144f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-0.6378551125526428f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-1.1268064975738525f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-0.0004984931438229978f));
    __m256 large = _mm256_sub_ps(_mm256_set1_ps(1.0f), exp8(q));
    large = _mm256_blendv_ps(large, _mm256_set1_ps(1.0f), _mm256_cmp_ps(t, _mm256_set1_ps(3.95f), _CMP_GT_OQ));
    large = _mm256_or_ps(large, _mm256_and_ps(x, sign));  /* copy the sign of x */
    return _mm256_blendv_ps(small, large, _mm256_cmp_ps(t, _mm256_set1_ps(0.921875f), _CMP_GE_OQ));
}

/* Phi(x) and phi(x) of the standard normal. */
AVX2 static inline void cdf_pdf8(__m256 a, __m256 *cdf, __m256 *pdf) {
    *cdf = _mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_add_ps(_mm256_set1_ps(1.0f), erf8(_mm256_mul_ps(a, _mm256_set1_ps(0.70710678118654752f)))));
    *pdf = _mm256_mul_ps(exp8(_mm256_mul_ps(_mm256_mul_ps(a, a), _mm256_set1_ps(-0.5f))), _mm256_set1_ps(0.39894228040143268f));
}

/* Partial vectors at the end of a range go through a zero-padded buffer. */
#define TAIL_LOAD(ptr, n, i) ({ float buf_[8] = {0}; for (long t_ = 0; t_ < (n) - (i); t_++) buf_[t_] = (ptr)[(i) + t_]; _mm256_loadu_ps(buf_); })
#define TAIL_STORE(ptr, n, i, v) do { float buf_[8]; _mm256_storeu_ps(buf_, (v)); for (long t_ = 0; t_ < (n) - (i); t_++) (ptr)[(i) + t_] = buf_[t_]; } while (0)

#define UNARY_KERNEL(name, expr) \
    AVX2 void name(const float *x, float *y, long n) { \
        long i = 0; \
        for (; i + 8 <= n; i += 8) { __m256 v = _mm256_loadu_ps(x + i); _mm256_storeu_ps(y + i, (expr)); } \
        if (i < n) { __m256 v = TAIL_LOAD(x, n, i); TAIL_STORE(y, n, i, (expr)); } \
    }

AVX2 static inline __m256 gelu8(__m256 v) {
    __m256 cdf = _mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_add_ps(_mm256_set1_ps(1.0f), erf8(_mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f)))));
    return _mm256_mul_ps(v, cdf);
}

AVX2 static inline __m256 gelu_derivative8(__m256 v) {
    __m256 cdf, pdf;
    cdf_pdf8(v, &cdf, &pdf);
    return _mm256_fmadd_ps(v, pdf, cdf);
}

UNARY_KERNEL(fk_gelu, gelu8(v))
UNARY_KERNEL(fk_gelu_derivative, gelu_derivative8(v))
UNARY_KERNEL(fk_erf, erf8(v))
UNARY_KERNEL(fk_exp, exp8(v))

AVX2 void fk_gelu_gate(const float *a, const float *b, float *y, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(gelu8(_mm256_loadu_ps(a + i)), _mm256_loadu_ps(b + i)));
    if (i < n) { __m256 av = TAIL_LOAD(a, n, i), bv = TAIL_LOAD(b, n, i); TAIL_STORE(y, n, i, _mm256_mul_ps(gelu8(av), bv)); }
}

AVX2 static inline void gate_backward8(__m256 g, __m256 a, __m256 b, __m256 *da, __m256 *db) {
    __m256 cdf, pdf;
    cdf_pdf8(a, &cdf, &pdf);
    *da = _mm256_mul_ps(_mm256_mul_ps(g, b), _mm256_fmadd_ps(a, pdf, cdf));
    *db = _mm256_mul_ps(g, _mm256_mul_ps(a, cdf));
}

AVX2 void fk_gelu_gate_backward(const float *g, const float *a, const float *b, float *da, float *db, long n) {
    long i = 0;
    __m256 x, y;
    for (; i + 8 <= n; i += 8) {
        gate_backward8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), &x, &y);
        if (da) _mm256_storeu_ps(da + i, x);
        if (db) _mm256_storeu_ps(db + i, y);
    }
    if (i < n) {
        gate_backward8(TAIL_LOAD(g, n, i), TAIL_LOAD(a, n, i), TAIL_LOAD(b, n, i), &x, &y);
        if (da) TAIL_STORE(da, n, i, x);
        if (db) TAIL_STORE(db, n, i, y);
    }
}

AVX2 static inline __m256 gate_tangent8(const float *ta, const float *tb, __m256 a, __m256 b, long i, long n, int tail) {
    __m256 cdf, pdf;
    cdf_pdf8(a, &cdf, &pdf);
    __m256 out = _mm256_setzero_ps();
    if (ta) out = _mm256_mul_ps(_mm256_mul_ps(tail ? TAIL_LOAD(ta, n, i) : _mm256_loadu_ps(ta + i), b), _mm256_fmadd_ps(a, pdf, cdf));
    if (tb) out = _mm256_fmadd_ps(tail ? TAIL_LOAD(tb, n, i) : _mm256_loadu_ps(tb + i), _mm256_mul_ps(a, cdf), out);
    return out;
}

AVX2 void fk_gelu_gate_tangent(const float *ta, const float *tb, const float *a, const float *b, float *out, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, gate_tangent8(ta, tb, _mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), i, n, 0));
    if (i < n) TAIL_STORE(out, n, i, gate_tangent8(ta, tb, TAIL_LOAD(a, n, i), TAIL_LOAD(b, n, i), i, n, 1));
}

/* ---- depthwise 3x3 ---- */

/* src[start + l] for lanes l = 0..7, zero where start + l falls outside 0..<w. Masked-off lanes
   are not read (maskload does not fault on them), so the borders need no scalar code. */
AVX2 static inline __m256 load_clipped(const float *src, long start, long w) {
    if (start >= 0 && start + 8 <= w) return _mm256_loadu_ps(src + start);
    __m256i index = _mm256_add_epi32(_mm256_set1_epi32((int)start), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i inside = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), index),
                                         _mm256_cmpgt_epi32(_mm256_set1_epi32((int)w), index));
    return _mm256_maskload_ps(src + start, inside);
}

/* Two output rows at a time: the four input rows they read are loaded once for both (12 loads,
   18 FMAs per 16 outputs instead of 18 loads), every column in vectors, borders masked. */
AVX2 void fk_depthwise3x3_rows(const float *src, float *dst, long h, long w, const float k[9], long row0, long row1) {
    const __m256 k0 = _mm256_set1_ps(k[0]), k1 = _mm256_set1_ps(k[1]), k2 = _mm256_set1_ps(k[2]);
    const __m256 k3 = _mm256_set1_ps(k[3]), k4 = _mm256_set1_ps(k[4]), k5 = _mm256_set1_ps(k[5]);
    const __m256 k6 = _mm256_set1_ps(k[6]), k7 = _mm256_set1_ps(k[7]), k8 = _mm256_set1_ps(k[8]);
    for (long i = row0; i < row1; i += 2) {
        const int pair = i + 1 < row1;
        /* Input rows i-1 .. i+2 (NULL: outside the plane, or not needed for a single last row). */
        const float *rows[4];
        for (int t = 0; t < 4; t++) {
            long iy = i - 1 + t;
            rows[t] = (iy >= 0 && iy < h && (t < 3 || pair)) ? src + iy * w : NULL;
        }
        float *out0 = dst + (i - row0) * w, *out1 = out0 + w;
        for (long j = 0; j < w; j += 8) {
            __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
            for (int t = 0; t < 4; t++) {
                const float *row = rows[t];
                if (!row) continue;
                __m256 left = load_clipped(row, j - 1, w), centre = load_clipped(row, j, w), right = load_clipped(row, j + 1, w);
                /* Input row t is kernel row t of output row i and kernel row t - 1 of row i + 1. */
                if (t == 0) {
                    acc0 = _mm256_fmadd_ps(k0, left, acc0); acc0 = _mm256_fmadd_ps(k1, centre, acc0); acc0 = _mm256_fmadd_ps(k2, right, acc0);
                } else if (t == 1) {
                    acc0 = _mm256_fmadd_ps(k3, left, acc0); acc0 = _mm256_fmadd_ps(k4, centre, acc0); acc0 = _mm256_fmadd_ps(k5, right, acc0);
                    acc1 = _mm256_fmadd_ps(k0, left, acc1); acc1 = _mm256_fmadd_ps(k1, centre, acc1); acc1 = _mm256_fmadd_ps(k2, right, acc1);
                } else if (t == 2) {
                    acc0 = _mm256_fmadd_ps(k6, left, acc0); acc0 = _mm256_fmadd_ps(k7, centre, acc0); acc0 = _mm256_fmadd_ps(k8, right, acc0);
                    acc1 = _mm256_fmadd_ps(k3, left, acc1); acc1 = _mm256_fmadd_ps(k4, centre, acc1); acc1 = _mm256_fmadd_ps(k5, right, acc1);
                } else {
                    acc1 = _mm256_fmadd_ps(k6, left, acc1); acc1 = _mm256_fmadd_ps(k7, centre, acc1); acc1 = _mm256_fmadd_ps(k8, right, acc1);
                }
            }
            if (j + 8 <= w) {
                _mm256_storeu_ps(out0 + j, acc0);
                if (pair) _mm256_storeu_ps(out1 + j, acc1);
            } else {
                __m256i inside = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(w - j)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
                _mm256_maskstore_ps(out0 + j, inside, acc0);
                if (pair) _mm256_maskstore_ps(out1 + j, inside, acc1);
            }
        }
    }
}

void fk_depthwise3x3_plane(const float *src, float *dst, long h, long w, const float k[9]) {
    fk_depthwise3x3_rows(src, dst, h, w, k, 0, h);
}

AVX2 void fk_depthwise3x3_weight_gradient_plane(const float *x, const float *g, long h, long w, double acc[9]) {
    for (int ky = 0; ky < 3; ky++) {
        for (int kx = 0; kx < 3; kx++) {
            long dy = ky - 1, dx = kx - 1;
            long i0 = dy < 0 ? -dy : 0, i1 = dy > 0 ? h - dy : h;
            long j0 = dx < 0 ? -dx : 0, j1 = dx > 0 ? w - dx : w;
            double total = 0;
            for (long i = i0; i < i1; i++) {
                const float *gr = g + i * w, *xr = x + (i + dy) * w + dx;
                __m256 s = _mm256_setzero_ps();
                long j = j0;
                for (; j + 8 <= j1; j += 8) s = _mm256_fmadd_ps(_mm256_loadu_ps(gr + j), _mm256_loadu_ps(xr + j), s);
                float lanes[8];
                _mm256_storeu_ps(lanes, s);
                float row = lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
                for (; j < j1; j++) row += gr[j] * xr[j];
                total += row;
            }
            acc[ky * 3 + kx] += total;
        }
    }
}

/* ---- channel LayerNorm ---- */

/* Per-pixel LayerNorm over `channels` rows of x (row c at x + c * channel_stride), count pixels:
   y[c] = (x[c] - mean) * rstd * weight[c] + bias[c], rstd = 1 / sqrt(var + eps) with the biased
   variance. Eight pixels at a time, all channels read while they are in L1 (no scratch rows).
   mean_out and rstd_out (count each) may be NULL. */
AVX2 void fk_channel_layernorm(const float *x, long channel_stride, long count, long channels, float eps,
                               const float *weight, const float *bias, float *y, long output_stride,
                               float *mean_out, float *rstd_out) {
    const __m256 inv_c = _mm256_set1_ps(1.0f / (float)channels), veps = _mm256_set1_ps(eps), one = _mm256_set1_ps(1.0f);
    for (long i = 0; i < count; i += 8) {
        const long lanes = count - i < 8 ? count - i : 8;
        const __m256i inside = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        const int full = lanes == 8;
#define LOAD(p) (full ? _mm256_loadu_ps(p) : _mm256_maskload_ps((p), inside))
        __m256 sum = _mm256_setzero_ps();
        for (long c = 0; c < channels; c++) sum = _mm256_add_ps(sum, LOAD(x + c * channel_stride + i));
        const __m256 mean = _mm256_mul_ps(sum, inv_c);
        __m256 squares = _mm256_setzero_ps();
        for (long c = 0; c < channels; c++) {
            __m256 d = _mm256_sub_ps(LOAD(x + c * channel_stride + i), mean);
            squares = _mm256_add_ps(squares, _mm256_mul_ps(d, d));
        }
        const __m256 rstd = _mm256_div_ps(one, _mm256_sqrt_ps(_mm256_add_ps(_mm256_mul_ps(squares, inv_c), veps)));
        for (long c = 0; c < channels; c++) {
            __m256 v = _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(LOAD(x + c * channel_stride + i), mean), rstd), _mm256_set1_ps(weight[c]));
            v = _mm256_add_ps(v, _mm256_set1_ps(bias ? bias[c] : 0.0f));
            if (full) _mm256_storeu_ps(y + c * output_stride + i, v); else _mm256_maskstore_ps(y + c * output_stride + i, inside, v);
        }
        if (mean_out) { if (full) _mm256_storeu_ps(mean_out + i, mean); else _mm256_maskstore_ps(mean_out + i, inside, mean); }
        if (rstd_out) { if (full) _mm256_storeu_ps(rstd_out + i, rstd); else _mm256_maskstore_ps(rstd_out + i, inside, rstd); }
#undef LOAD
    }
}
