/* Attention and rotary-position kernel group (CPU: core/cpu/attention.c). f32 and f64.
 *
 * Layouts are those of core/ops.h: q [B, Lq, H*Dh], k and v [B, Lk, H*Dh], heads contiguous
 * in the channel axis. Gradient outputs accumulate (dx += ...) and may be NULL. */
#ifndef DUET_CORE_KERNELS_ATTENTION_H
#define DUET_CORE_KERNELS_ATTENTION_H

#include "core/ops.h"
#include "core/tensor.h"

struct duet_kernels_attention {
  /* o = softmax(scale * q k^T, keys where key_mask is 0 removed) v, per batch and head.
   * key_mask u8 [B, Lk] or NULL. lse [B, H, Lq] (may be NULL) receives the log-sum-exp of
   * each query row's kept scaled scores, -inf for a row with no key to attend (its o is 0).
   * The backward recomputes the probabilities from q, k and lse instead of keeping them. */
  void (*attention_fwd)(const duet_tensor *q, const duet_tensor *k, const duet_tensor *v,
                        const duet_tensor *key_mask, int heads, double scale, duet_tensor *o,
                        duet_tensor *lse);
  void (*attention_bwd)(const duet_tensor *q, const duet_tensor *k, const duet_tensor *v,
                        const duet_tensor *key_mask, int heads, double scale,
                        const duet_tensor *o, const duet_tensor *lse, const duet_tensor *dout,
                        duet_tensor *dq, duet_tensor *dk, duet_tensor *dv);

  /* y = R(pos) x with the rotation of duet_rope_spec (core/ops.h); pos is f32 or f64,
   * [L, n_axes] or [B, L, n_axes], independently of x's dtype. */
  void (*rope_fwd)(const duet_tensor *x, const duet_tensor *pos, int heads,
                   const duet_rope_spec *spec, duet_tensor *y);
  /* dx += R(pos)^T dy: the inverse rotation. */
  void (*rope_bwd)(const duet_tensor *dy, const duet_tensor *pos, int heads,
                   const duet_rope_spec *spec, duet_tensor *dx);
};

#endif
