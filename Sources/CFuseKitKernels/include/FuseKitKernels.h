#ifndef FUSEKIT_KERNELS_H
#define FUSEKIT_KERNELS_H

/// Compute-dense FuseKit kernels with AVX2 + FMA code paths, selected at run time.
///
/// Swift packages cannot enable AVX for their own code without unsafe compiler flags (which
/// would make FuseKit unusable as a dependency), so the few kernels whose speed is bound by
/// arithmetic rather than memory live here, compiled per function for AVX2 + FMA with the
/// target attribute. Every function works on one contiguous range; the Swift side splits work
/// over cores and falls back to its own SIMD code when the CPU or the OS lacks AVX2 + FMA.

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// y = gelu(x) = x * Phi(x) (exact erf form).
void fk_gelu(const float *x, float *y, long n);
/// y = d/dx gelu(x) = Phi(x) + x * phi(x).
void fk_gelu_derivative(const float *x, float *y, long n);
/// y = gelu(a) * b.
void fk_gelu_gate(const float *a, const float *b, float *y, long n);
/// da = g * b * gelu'(a), db = g * gelu(a); either output may be NULL.
void fk_gelu_gate_backward(const float *g, const float *a, const float *b, float *da, float *db, long n);
/// out = ta * b * gelu'(a) + tb * gelu(a); either tangent may be NULL (zero).
void fk_gelu_gate_tangent(const float *ta, const float *tb, const float *a, const float *b, float *out, long n);
/// y = erf(x).
void fk_erf(const float *x, float *y, long n);
/// y = exp(x).
void fk_exp(const float *x, float *y, long n);

/// One plane of a depthwise 3x3 cross-correlation, stride 1, zero padding 1: dst = src (*) k.
void fk_depthwise3x3_plane(const float *src, float *dst, long height, long width, const float k[9]);
/// Output rows row0..<row1 of the same convolution of a plane of `height` rows (zero outside it),
/// written from dst on (row row0 first).
void fk_depthwise3x3_rows(const float *src, float *dst, long height, long width, const float k[9], long row0, long row1);
/// Adds, for each of the 9 taps, sum over pixels of g[i, j] * x[i + ky - 1, j + kx - 1] to acc.
void fk_depthwise3x3_weight_gradient_plane(const float *x, const float *g, long height, long width, double acc[9]);

/// Per-pixel LayerNorm over `channels` rows (row c at x + c * channel_stride) of `count` pixels:
/// y[c * output_stride + i] = (x - mean) * rstd * weight[c] + bias[c] (bias may be NULL), with the
/// biased variance; mean_out and rstd_out ([count] each) may be NULL.
void fk_channel_layernorm(const float *x, long channel_stride, long count, long channels, float eps,
                          const float *weight, const float *bias, float *y, long output_stride,
                          float *mean_out, float *rstd_out);

#ifdef __cplusplus
}
#endif

#endif
