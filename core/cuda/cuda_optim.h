/* The optimizer step and mixed-precision conversions on the GPU.
 *
 * All pointers are device pointers (CUDA storage from the backend's alloc or a step arena);
 * the work runs on the backend's stream. Functions return DUET_OK or a DUET_E* code with a
 * one-line message; launch errors are reported at once, faults the device reports later
 * surface at the next synchronising call.
 *
 * Mixed precision, the intended flow (docs/cuda.md): the master weights, their gradients and
 * AdamW's moments are f32 on the device; after each update duet_cuda_f32_to_bf16() refreshes a
 * bf16 copy of each weight that the forward and backward compute with; matrix products take
 * bf16 operands with f32 accumulation and write weight gradients straight into the f32
 * gradients (duet_cuda_gemm_run() with ab_type bf16, c_type f32, beta 1); the global norm,
 * clipping and AdamW then work on f32 only. */
#ifndef DUET_CORE_CUDA_OPTIM_H
#define DUET_CORE_CUDA_OPTIM_H

#include <math.h> /* before the C block: in C++ it declares overloads */
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "core/optim.h"

/* Elements [lo, hi) of one parameter: the same arithmetic as duet_adamw_update_elem()
 * (core/optim.h), operation for operation and each rounded to nearest (no fused multiply-add),
 * so the result equals the CPU's bit for bit. */
int duet_cuda_adamw_update_range(float *p, const float *g, float *m, float *v, int64_t lo, int64_t hi,
                                 const duet_adamw_hparams *h, duet_err *err);

/* One contiguous f32 device buffer: a gradient, or a flat bucket of several. */
typedef struct duet_cuda_span {
  float *data;
  int64_t n;
} duet_cuda_span;

/* Sum of squares of every element of every span, in double: each span is cut into blocks of
 * fixed length whose partial sums are added in index order, so the result depends on the
 * spans alone (not on the GPU or on timing). Waits for the stream (the sum is read back). */
int duet_cuda_grad_sumsq(const duet_cuda_span *spans, int count, double *sumsq, duet_err *err);

/* duet_grad_clip() for device gradients: the global L2 norm into *norm; a NaN or Inf norm
 * returns DUET_ENUMERIC naming the first span (by index) with a non-finite sum and leaves the
 * gradients untouched; otherwise, when max_norm > 0 and the norm exceeds it, every element is
 * multiplied by (float)(max_norm / norm), as the CPU does. Waits for the stream. */
int duet_cuda_grad_clip(const duet_cuda_span *spans, int count, double max_norm, double *norm, duet_err *err);

/* x[i] *= s (rounded once, as the CPU's x[k] *= fs). */
int duet_cuda_scale_f32(float *x, int64_t n, float s, duet_err *err);

/* duet_ema_update() on one shadow: shadow[i] = d * shadow[i] + w * p[i], each product and the
 * sum rounded once, as the CPU computes it (the same bits). */
int duet_cuda_ema_update_f32(float *shadow, const float *p, int64_t n, float d, float w, duet_err *err);
/* Exchanges a[i] and b[i] (duet_ema_swap()). */
int duet_cuda_swap_f32(float *a, float *b, int64_t n, duet_err *err);

/* f32 <-> bf16 with the rounding of duet_f32_to_bf16() (nearest even; NaN stays NaN): the same
 * 16-bit patterns as the CPU conversion. */
int duet_cuda_f32_to_bf16(uint16_t *dst, const float *src, int64_t n, duet_err *err);
int duet_cuda_bf16_to_f32(float *dst, const uint16_t *src, int64_t n, duet_err *err);
/* The same on device tensors of equal numel (f32 -> bf16 or bf16 -> f32). */
int duet_cuda_convert(duet_tensor *dst, const duet_tensor *src, duet_err *err);

#ifdef __cplusplus
}
#endif

#endif
