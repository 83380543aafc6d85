/* Differentiable ops. Every op takes the step's graph first, allocates its output from the
 * graph's arena, records its backward when needed (core/graph.h), and returns NULL (with the
 * graph's sticky error set) on bad shapes or a NULL input. Float ops accept f32 and f64
 * (gradient checks run in f64), and bf16 on the GPU (the CPU kernels refuse bf16 with a
 * message naming the op); all inputs of one op share a dtype unless stated.
 *
 * Layout conventions: tokens are [B, L, D] (batch, tokens, channels); attention inputs are
 * [B, L, H*Dh] with heads contiguous in the channel axis, as a linear layer produces them. */
#ifndef DUET_CORE_OPS_H
#define DUET_CORE_OPS_H

#include "core/graph.h"

/* ---- element-wise and reductions (ops_elementwise.c) ---- */
/* b's shape must equal the trailing dims of a's; b is repeated over a's leading dims. */
duet_tensor *duet_add(duet_graph *g, duet_tensor *a, duet_tensor *b);
duet_tensor *duet_sub(duet_graph *g, duet_tensor *a, duet_tensor *b);
duet_tensor *duet_mul(duet_graph *g, duet_tensor *a, duet_tensor *b);
duet_tensor *duet_scale(duet_graph *g, duet_tensor *x, double s);
duet_tensor *duet_sum(duet_graph *g, duet_tensor *x);  /* all elements -> shape [1] */
duet_tensor *duet_mean(duet_graph *g, duet_tensor *x); /* all elements -> shape [1] */

/* ---- matrix products (ops_matmul.c) ---- */
/* a [..., M, K] @ b [..., K, N] (transposes applied first). b may be 2-D and is then shared by
 * every matrix of a; otherwise leading dims must match. */
duet_tensor *duet_matmul(duet_graph *g, duet_tensor *a, duet_tensor *b, int trans_a, int trans_b);
/* x [..., in] @ w[out, in]^T + bias[out] (bias may be NULL): PyTorch's nn.Linear layout. */
duet_tensor *duet_linear(duet_graph *g, duet_tensor *x, duet_tensor *w, duet_tensor *bias);

/* ---- normalisation, activations, modulation (ops_nn.c) ---- */
/* Over the last axis. w, b [D] may be NULL (no affine). */
duet_tensor *duet_layernorm(duet_graph *g, duet_tensor *x, duet_tensor *w, duet_tensor *b, double eps);
/* x / rms(x) * w over the last axis; w [D] may be NULL. */
duet_tensor *duet_rmsnorm(duet_graph *g, duet_tensor *x, duet_tensor *w, double eps);
duet_tensor *duet_gelu(duet_graph *g, duet_tensor *x); /* tanh approximation */
duet_tensor *duet_silu(duet_graph *g, duet_tensor *x);
duet_tensor *duet_softmax(duet_graph *g, duet_tensor *x); /* over the last axis */
/* x [B, L, D], shift/scale [B, D]: x * (1 + scale) + shift, per sample. */
duet_tensor *duet_modulate(duet_graph *g, duet_tensor *x, duet_tensor *shift, duet_tensor *scale);
/* x + gate * y with x, y [B, L, D] and gate [B, D]. */
duet_tensor *duet_gated_residual(duet_graph *g, duet_tensor *x, duet_tensor *gate, duet_tensor *y);

/* x [..., D] normalised over its last axis (layernorm without affine when rms = 0, rmsnorm
 * without gain when rms = 1), then modulated per sample: x [B, L, D], shift/scale [B, D];
 * y = norm(x) * (1 + scale) + shift. One pass instead of norm then modulate, and no
 * normalised tensor kept for the backward (it is recomputed from x and the row statistics). */
duet_tensor *duet_norm_modulate(duet_graph *g, duet_tensor *x, duet_tensor *shift, duet_tensor *scale, int rms,
                                double eps);

/* ---- dtype conversion (ops_cast.c) ---- */
/* x converted to dtype (float dtypes; the same tensor when it already has it). The gradient
 * flows back converted into x's dtype. On the GPU: f32 <-> bf16. */
duet_tensor *duet_cast(duet_graph *g, duet_tensor *x, duet_dtype dtype);

/* ---- attention and positions (ops_attention.c) ---- */
/* Multi-head scaled dot-product attention. q [B, Lq, H*Dh], k and v [B, Lk, H*Dh];
 * key_mask u8 [B, Lk] (1 = attend, NULL = all) -> [B, Lq, H*Dh]. Scale 1/sqrt(Dh). A query
 * whose keys are all masked yields zeros. */
duet_tensor *duet_attention(duet_graph *g, duet_tensor *q, duet_tensor *k, duet_tensor *v,
                            duet_tensor *key_mask, int heads);

/* Rotary embedding from arbitrary per-token positions.
 * x [B, L, H*Dh]; pos f32/f64 [L, n_axes] (shared by the batch) or [B, L, n_axes].
 * The Dh/2 rotation pairs of each head are split among the axes: axis a owns pairs_per_axis[a]
 * consecutive pairs (sum = Dh/2); pair j of axis a rotates by pos[a] * theta^(-j / pairs_a).
 * Pairs are (x[2i], x[2i+1]) within a head. Positions are real numbers, so two streams whose
 * positions are measured on one time scale share their rotation at equal times. */
#define DUET_ROPE_MAX_AXES 4
typedef struct duet_rope_spec {
  int n_axes;
  int pairs_per_axis[DUET_ROPE_MAX_AXES];
  double theta; /* base, e.g. 10000 */
} duet_rope_spec;
duet_tensor *duet_rope(duet_graph *g, duet_tensor *x, duet_tensor *pos, int heads,
                       const duet_rope_spec *spec);

/* ---- layout (ops_layout.c) ---- */
duet_tensor *duet_reshape(duet_graph *g, duet_tensor *x, int ndim, const int64_t *shape);
/* out.shape[i] = x.shape[perm[i]] */
duet_tensor *duet_permute(duet_graph *g, duet_tensor *x, const int *perm);
/* Concatenates n tensors along `axis` (all other dims equal). */
duet_tensor *duet_concat(duet_graph *g, duet_tensor *const *xs, int n, int axis);
/* x's [start, start + len) along axis. Splitting is n slices. */
duet_tensor *duet_slice(duet_graph *g, duet_tensor *x, int axis, int64_t start, int64_t len);
/* video [B, T, H, W, C] -> tokens [B, (T/pt)(H/ph)(W/pw), pt*ph*pw*C], token order t, h, w;
 * features ordered (pt, ph, pw, C). */
duet_tensor *duet_patchify3d(duet_graph *g, duet_tensor *x, int pt, int ph, int pw);
duet_tensor *duet_unpatchify3d(duet_graph *g, duet_tensor *tokens, int T, int H, int W, int C,
                               int pt, int ph, int pw);
/* audio [B, T, C] -> [B, T/p, p*C] and back. */
duet_tensor *duet_patchify1d(duet_graph *g, duet_tensor *x, int p);
duet_tensor *duet_unpatchify1d(duet_graph *g, duet_tensor *tokens, int T, int C, int p);
/* table [V, D], ids i32 of any shape -> [..., D]; an id outside [0, V) is an error. */
duet_tensor *duet_embedding(duet_graph *g, duet_tensor *table, duet_tensor *ids);

/* ---- embeddings and losses (ops_loss.c) ---- */
/* t [B] -> [B, dim]: [cos(t * f_k), sin(t * f_k)], f_k = max_period^(-k / (dim/2)), scaled by
 * `scale` (1000 maps flow time in [0, 1] onto the usual range). dim must be even. */
duet_tensor *duet_timestep_embedding(duet_graph *g, duet_tensor *t, int dim, double max_period,
                                     double scale);
/* weight * sum(mask * (pred - target)^2) / (sum(mask) * D), where mask [..] covers pred's
 * leading dims or all of it, and D = pred.numel / mask.numel; mask NULL = all ones.
 * 0 when the mask is all zero. target gets no gradient. -> shape [1]. */
duet_tensor *duet_mse(duet_graph *g, duet_tensor *pred, duet_tensor *target, duet_tensor *mask,
                      double weight);

#endif
