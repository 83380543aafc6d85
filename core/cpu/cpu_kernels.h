/* The CPU backend's kernel tables, one per group, each defined in its own file here. */
#ifndef DUET_CORE_CPU_KERNELS_H
#define DUET_CORE_CPU_KERNELS_H

#include "core/kernels_elementwise.h"
#include "core/kernels_nn.h"
#include "core/kernels_attention.h"
#include "core/kernels_layout.h"
#include "core/kernels_loss.h"

extern const struct duet_kernels_elementwise duet_cpu_elementwise_kernels;
extern const struct duet_kernels_nn duet_cpu_nn_kernels;
extern const struct duet_kernels_attention duet_cpu_attention_kernels;
extern const struct duet_kernels_layout duet_cpu_layout_kernels;
extern const struct duet_kernels_loss duet_cpu_loss_kernels;

/* Rotary positions (core/cpu/rope.c): y = x rotated by pos's angles, or, with inverse, dx +=
 * dy rotated back. The attention kernels' table calls it. */
struct duet_rope_spec;
void duet_cpu_rope_apply(const duet_tensor *x, const duet_tensor *pos, int heads,
                         const struct duet_rope_spec *spec, int inverse, duet_tensor *y);

/* core/cpu/gemm_bf16.c: C = alpha op(A) op(B) + beta C with A and B rounded to bf16 and the
 * products summed in f32 (oneDNN). Outside parallel regions only. Returns 0, or -1 when it
 * did nothing (no oneDNN, no primitive for the shape, k = 0): the caller computes in f32. */
int duet_cpu_gemm_bf16(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                       int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* core/cpu/attention_amx.c: attention over f32 tensors q [B, Lq, C], k and v [B, Lk, C] in
 * `heads` heads with bf16 operands on Intel AMX, same arguments and results as the attention
 * kernels (the backward adds into dq, dk and dv, any of which may be NULL). Outside parallel
 * regions only. Returns 0, or -1 when it did nothing (no AMX, a head size that is not a
 * multiple of 32 or above 256, no memory): the caller runs the f32 tiles. */
int duet_cpu_attention_fwd_bf16(int64_t B, int64_t Lq, int64_t Lk, int64_t C, int64_t heads,
                                const float *q, const float *k, const float *v,
                                const uint8_t *mask, float scale, float *o, float *lse);
int duet_cpu_attention_bwd_bf16(int64_t B, int64_t Lq, int64_t Lk, int64_t C, int64_t heads,
                                const float *q, const float *k, const float *v,
                                const uint8_t *mask, float scale, const float *o,
                                const float *lse, const float *dout, float *dq, float *dk,
                                float *dv);

/* Work at or above this many elements is split across OpenMP threads. */
#define DUET_CPU_PARALLEL_MIN 32768

#endif
