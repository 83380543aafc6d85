/* Normalisation, activation and modulation kernel group (CPU: core/cpu/nn.c). f32 and f64.
 *
 * Norms and softmax work on rows: D is the last dim of x and rows = x->numel / D. Per-row
 * statistics (mean, rstd) are 1-D tensors [rows] of x's dtype. Gradient outputs accumulate
 * (dx += ...), as everywhere in core/backend.h, and any of them may be NULL when that input
 * needs no gradient. */
#ifndef DUET_CORE_KERNELS_NN_H
#define DUET_CORE_KERNELS_NN_H

#include "core/tensor.h"

typedef enum duet_activation {
  DUET_ACT_GELU_TANH, /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
  DUET_ACT_SILU,      /* x * sigmoid(x) */
} duet_activation;

struct duet_kernels_nn {
  /* y = (x - mean) * rstd * w + b per row, rstd = 1 / sqrt(var + eps) with the biased
   * variance; w and b [D] may each be NULL. mean and rstd are written when not NULL. */
  void (*layernorm_fwd)(const duet_tensor *x, const duet_tensor *w, const duet_tensor *b,
                        double eps, duet_tensor *y, duet_tensor *mean, duet_tensor *rstd);
  void (*layernorm_bwd)(const duet_tensor *x, const duet_tensor *w, const duet_tensor *mean,
                        const duet_tensor *rstd, const duet_tensor *dy, duet_tensor *dx,
                        duet_tensor *dw, duet_tensor *db);
  /* y = x * rstd * w per row, rstd = 1 / sqrt(mean(x^2) + eps); w may be NULL. */
  void (*rmsnorm_fwd)(const duet_tensor *x, const duet_tensor *w, double eps, duet_tensor *y,
                      duet_tensor *rstd);
  void (*rmsnorm_bwd)(const duet_tensor *x, const duet_tensor *w, const duet_tensor *rstd,
                      const duet_tensor *dy, duet_tensor *dx, duet_tensor *dw);

  void (*activation_fwd)(duet_activation act, const duet_tensor *x, duet_tensor *y);
  void (*activation_bwd)(duet_activation act, const duet_tensor *x, const duet_tensor *dy,
                         duet_tensor *dx);

  /* Softmax per row; a row that is all -inf gives zeros. The backward needs only y. */
  void (*softmax_fwd)(const duet_tensor *x, duet_tensor *y);
  void (*softmax_bwd)(const duet_tensor *y, const duet_tensor *dy, duet_tensor *dx);

  /* x, y [B, L, D]; shift, scale, gate [B, D]. */
  void (*modulate_fwd)(const duet_tensor *x, const duet_tensor *shift, const duet_tensor *scale,
                       duet_tensor *y);
  void (*modulate_bwd)(const duet_tensor *x, const duet_tensor *scale, const duet_tensor *dy,
                       duet_tensor *dx, duet_tensor *dshift, duet_tensor *dscale);
  /* out = x + gate * y */
  void (*gated_residual_fwd)(const duet_tensor *x, const duet_tensor *gate, const duet_tensor *y,
                             duet_tensor *out);
  void (*gated_residual_bwd)(const duet_tensor *gate, const duet_tensor *y,
                             const duet_tensor *dout, duet_tensor *dx, duet_tensor *dgate,
                             duet_tensor *dy);
};

/* Fused norm + adaLN modulation, a group of its own (CPU: core/cpu/norm_modulate.c, CUDA:
 * core/cuda/norm_modulate.cu). x, y [B, L, D]; shift, scale [B, D]:
 *   n = (x - mean) * rstd      (layernorm, rms = 0; biased variance)
 *   n = x * rstd               (rmsnorm, rms = 1; rstd = 1 / sqrt(mean(x^2) + eps))
 *   y = n * (1 + scale[b]) + shift[b]
 * mean (layernorm only) and rstd are [B*L], written when not NULL, of x's dtype or f32 (the
 * CUDA kernels take f32 statistics for bf16 x). The backward recomputes n from x and the
 * statistics; its outputs accumulate and may each be NULL. */
struct duet_kernels_norm_modulate {
  void (*fwd)(int rms, const duet_tensor *x, const duet_tensor *shift, const duet_tensor *scale, double eps,
              duet_tensor *y, duet_tensor *mean, duet_tensor *rstd);
  void (*bwd)(int rms, const duet_tensor *x, const duet_tensor *scale, const duet_tensor *mean,
              const duet_tensor *rstd, const duet_tensor *dy, duet_tensor *dx, duet_tensor *dshift,
              duet_tensor *dscale);
};

#endif
