/* Norms, activations, softmax and adaLN modulation: checks, outputs, tape nodes.
 *
 * What each backward keeps beyond its inputs and output: layernorm a mean and rstd per row,
 * rmsnorm an rstd per row (both [rows], x's dtype or f32 for bf16 x, from the arena, and
 * only when a node is recorded); norm_modulate the same statistics as its norm (not the
 * normalised tensor); the activations their input; softmax its output; modulate and
 * gated_residual their inputs. */
#include <math.h>

#include "core/kernels_nn.h"
#include "core/ops.h"
#include "core/ops_util.h"

static const struct duet_kernels_nn *nn_of(const duet_tensor *t) {
  return duet_backend_get(t->device)->nn;
}

/* The backend shared by ts, provided it implements this kernel group, and x's float dtype
 * shared by every non-NULL float input. */
static const duet_backend *nn_prologue(duet_graph *g, const char *op, int n,
                                       duet_tensor *const *ts) {
  if (g->failed) return NULL;
  if (!ts[0]) return duet_graph_fail(g, DUET_EINVAL, "%s: NULL input", op);
  const duet_backend *be = duet_ops_backend(g, op, n, (const duet_tensor *const *)ts);
  if (!be) return NULL;
  if (!be->nn)
    return duet_graph_fail(g, DUET_ENOTSUP, "%s: backend %s has no norm/activation kernels", op,
                           be->name);
  if (!duet_ops_check_float(g, op, ts[0], "x")) return NULL;
  for (int i = 1; i < n; i++)
    if (ts[i] && !duet_ops_check_same_dtype(g, op, ts[0], ts[i])) return NULL;
  return be;
}

static int64_t last_dim(const duet_tensor *x) { return x->ndim ? x->shape[x->ndim - 1] : 0; }

/* A per-channel vector (norm weight or bias) must be [D]. */
static int check_channel_vec(duet_graph *g, const char *op, const duet_tensor *x,
                             const duet_tensor *v, const char *what) {
  if (!v || (v->ndim == 1 && v->shape[0] == last_dim(x))) return 1;
  char sx[96], sv[96];
  duet_graph_fail(g, DUET_EINVAL, "%s: %s %s does not match input %s (expected [%lld])", op, what,
                  duet_shape_str(v, sv, sizeof sv), duet_shape_str(x, sx, sizeof sx),
                  (long long)last_dim(x));
  return 0;
}

static int check_rows(duet_graph *g, const char *op, const duet_tensor *x) {
  if (x->ndim >= 1 && last_dim(x) > 0) return 1;
  char sx[96];
  duet_graph_fail(g, DUET_EINVAL, "%s: input %s has no last axis to normalise over", op,
                  duet_shape_str(x, sx, sizeof sx));
  return 0;
}

static int check_eps(duet_graph *g, const char *op, double eps) {
  if (eps >= 0 && isfinite(eps)) return 1;
  duet_graph_fail(g, DUET_EINVAL, "%s: eps %g must be finite and >= 0", op, eps);
  return 0;
}

/* Per-row statistics for the backward, allocated only when a node was recorded. */
static duet_tensor *row_stat(duet_graph *g, const duet_tensor *x) {
  int64_t rows = x->numel / last_dim(x);
  return duet_graph_new(g, duet_ops_stat_dtype(x), x->device, 1, &rows);
}

/* ---- layernorm ---- */

static void layernorm_backward(duet_graph *g, duet_node *n) {
  duet_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *dy = n->out->grad;
  duet_tensor *dx = duet_ops_grad_if(g, x), *dw = duet_ops_grad_if(g, w),
              *db = duet_ops_grad_if(g, b);
  if (g->failed) return;
  nn_of(dy)->layernorm_bwd(x, w, n->saved[0], n->saved[1], dy, dx, dw, db);
}

duet_tensor *duet_layernorm(duet_graph *g, duet_tensor *x, duet_tensor *w, duet_tensor *b,
                            double eps) {
  duet_tensor *in[3] = {x, w, b};
  const duet_backend *be = nn_prologue(g, "layernorm", 3, in);
  if (!be || !check_rows(g, "layernorm", x) || !check_channel_vec(g, "layernorm", x, w, "weight") ||
      !check_channel_vec(g, "layernorm", x, b, "bias") || !check_eps(g, "layernorm", eps))
    return NULL;
  duet_tensor *y = duet_graph_new_like(g, x);
  if (!y) return NULL;
  duet_tensor *mean = NULL, *rstd = NULL;
  duet_node *n = duet_graph_record(g, "layernorm", layernorm_backward, y, 3, in);
  if (n) {
    n->saved[0] = mean = row_stat(g, x);
    n->saved[1] = rstd = row_stat(g, x);
    if (!mean || !rstd) return NULL;
  }
  if (g->failed) return NULL;
  be->nn->layernorm_fwd(x, w, b, eps, y, mean, rstd);
  return y;
}

/* ---- rmsnorm ---- */

static void rmsnorm_backward(duet_graph *g, duet_node *n) {
  duet_tensor *x = n->in[0], *w = n->in[1], *dy = n->out->grad;
  duet_tensor *dx = duet_ops_grad_if(g, x), *dw = duet_ops_grad_if(g, w);
  if (g->failed) return;
  nn_of(dy)->rmsnorm_bwd(x, w, n->saved[0], dy, dx, dw);
}

duet_tensor *duet_rmsnorm(duet_graph *g, duet_tensor *x, duet_tensor *w, double eps) {
  duet_tensor *in[2] = {x, w};
  const duet_backend *be = nn_prologue(g, "rmsnorm", 2, in);
  if (!be || !check_rows(g, "rmsnorm", x) || !check_channel_vec(g, "rmsnorm", x, w, "weight") ||
      !check_eps(g, "rmsnorm", eps))
    return NULL;
  duet_tensor *y = duet_graph_new_like(g, x);
  if (!y) return NULL;
  duet_tensor *rstd = NULL;
  duet_node *n = duet_graph_record(g, "rmsnorm", rmsnorm_backward, y, 2, in);
  if (n && !(n->saved[0] = rstd = row_stat(g, x))) return NULL;
  if (g->failed) return NULL;
  be->nn->rmsnorm_fwd(x, w, eps, y, rstd);
  return y;
}

/* ---- activations ---- */

static void activation_backward(duet_graph *g, duet_node *n) {
  duet_tensor *dx = duet_ops_grad_if(g, n->in[0]);
  if (dx) nn_of(dx)->activation_bwd((duet_activation)n->i[0], n->in[0], n->out->grad, dx);
}

static duet_tensor *activation(duet_graph *g, const char *op, duet_activation act,
                               duet_tensor *x) {
  const duet_backend *be = nn_prologue(g, op, 1, &x);
  if (!be) return NULL;
  duet_tensor *y = duet_graph_new_like(g, x);
  if (!y) return NULL;
  be->nn->activation_fwd(act, x, y);
  duet_node *n = duet_graph_record(g, op, activation_backward, y, 1, &x);
  if (n) n->i[0] = act;
  return y;
}

duet_tensor *duet_gelu(duet_graph *g, duet_tensor *x) {
  return activation(g, "gelu", DUET_ACT_GELU_TANH, x);
}
duet_tensor *duet_silu(duet_graph *g, duet_tensor *x) {
  return activation(g, "silu", DUET_ACT_SILU, x);
}

/* ---- softmax ---- */

static void softmax_backward(duet_graph *g, duet_node *n) {
  duet_tensor *dx = duet_ops_grad_if(g, n->in[0]);
  if (dx) nn_of(dx)->softmax_bwd(n->out, n->out->grad, dx);
}

duet_tensor *duet_softmax(duet_graph *g, duet_tensor *x) {
  const duet_backend *be = nn_prologue(g, "softmax", 1, &x);
  if (!be || !check_rows(g, "softmax", x)) return NULL;
  duet_tensor *y = duet_graph_new_like(g, x);
  if (!y) return NULL;
  be->nn->softmax_fwd(x, y);
  duet_graph_record(g, "softmax", softmax_backward, y, 1, &x);
  return y;
}

/* ---- adaLN modulation and gated residual ---- */

/* x (and y when given) [B, L, D]; each per-sample vector [B, D]. */
static int check_tokens_and_vecs(duet_graph *g, const char *op, const duet_tensor *x,
                                 const duet_tensor *y, const duet_tensor *const *vecs, int nv) {
  char sx[96], sv[96];
  if (x->ndim != 3) {
    duet_graph_fail(g, DUET_EINVAL, "%s: x %s, expected [B, L, D]", op,
                    duet_shape_str(x, sx, sizeof sx));
    return 0;
  }
  if (y && !duet_shape_equal(x, y)) {
    duet_graph_fail(g, DUET_EINVAL, "%s: x %s and y %s differ", op,
                    duet_shape_str(x, sx, sizeof sx), duet_shape_str(y, sv, sizeof sv));
    return 0;
  }
  for (int i = 0; i < nv; i++) {
    const duet_tensor *v = vecs[i];
    if (v->ndim != 2 || v->shape[0] != x->shape[0] || v->shape[1] != x->shape[2]) {
      duet_graph_fail(g, DUET_EINVAL,
                      "%s: per-sample vector %s does not fit x %s (expected [%lld,%lld])", op,
                      duet_shape_str(v, sv, sizeof sv), duet_shape_str(x, sx, sizeof sx),
                      (long long)x->shape[0], (long long)x->shape[2]);
      return 0;
    }
  }
  return 1;
}

static void modulate_backward(duet_graph *g, duet_node *n) {
  duet_tensor *x = n->in[0], *shift = n->in[1], *scale = n->in[2], *dy = n->out->grad;
  duet_tensor *dx = duet_ops_grad_if(g, x), *dsh = duet_ops_grad_if(g, shift),
              *dsc = duet_ops_grad_if(g, scale);
  if (g->failed) return;
  nn_of(dy)->modulate_bwd(x, scale, dy, dx, dsh, dsc);
}

duet_tensor *duet_modulate(duet_graph *g, duet_tensor *x, duet_tensor *shift, duet_tensor *scale) {
  duet_tensor *in[3] = {x, shift, scale};
  if (!g->failed && (!shift || !scale))
    return duet_graph_fail(g, DUET_EINVAL, "modulate: NULL shift or scale");
  const duet_backend *be = nn_prologue(g, "modulate", 3, in);
  const duet_tensor *vecs[2] = {shift, scale};
  if (!be || !check_tokens_and_vecs(g, "modulate", x, NULL, vecs, 2)) return NULL;
  duet_tensor *y = duet_graph_new_like(g, x);
  if (!y) return NULL;
  be->nn->modulate_fwd(x, shift, scale, y);
  duet_graph_record(g, "modulate", modulate_backward, y, 3, in);
  return y;
}

static void gated_residual_backward(duet_graph *g, duet_node *n) {
  duet_tensor *x = n->in[0], *gate = n->in[1], *y = n->in[2], *dout = n->out->grad;
  /* The residual path passes dout on unchanged: x takes dout's storage as its gradient when it
   * has none yet (and is neither of the other inputs, whose gradients the kernel then writes). */
  int passed = x->requires_grad && x != gate && x != y && duet_graph_grad_pass(g, x, dout);
  duet_tensor *dx = passed ? NULL : duet_ops_grad_if(g, x), *dg = duet_ops_grad_if(g, gate),
              *dy = duet_ops_grad_if(g, y);
  if (g->failed) return;
  nn_of(dout)->gated_residual_bwd(gate, y, dout, dx, dg, dy);
}

duet_tensor *duet_gated_residual(duet_graph *g, duet_tensor *x, duet_tensor *gate,
                                 duet_tensor *y) {
  duet_tensor *in[3] = {x, gate, y};
  if (!g->failed && (!gate || !y))
    return duet_graph_fail(g, DUET_EINVAL, "gated_residual: NULL gate or y");
  const duet_backend *be = nn_prologue(g, "gated_residual", 3, in);
  const duet_tensor *vecs[1] = {gate};
  if (!be || !check_tokens_and_vecs(g, "gated_residual", x, y, vecs, 1)) return NULL;
  duet_tensor *out = duet_graph_new_like(g, x);
  if (!out) return NULL;
  be->nn->gated_residual_fwd(x, gate, y, out);
  duet_graph_record(g, "gated_residual", gated_residual_backward, out, 3, in);
  return out;
}

/* ---- fused norm + modulation ---- */

static void norm_modulate_backward(duet_graph *g, duet_node *n) {
  duet_tensor *x = n->in[0], *shift = n->in[1], *scale = n->in[2], *dy = n->out->grad;
  duet_tensor *dx = duet_ops_grad_if(g, x), *dsh = duet_ops_grad_if(g, shift),
              *dsc = duet_ops_grad_if(g, scale);
  if (g->failed) return;
  duet_backend_get(dy->device)->norm_modulate->bwd((int)n->i[0], x, scale, n->saved[0], n->saved[1], dy, dx, dsh,
                                                   dsc);
}

duet_tensor *duet_norm_modulate(duet_graph *g, duet_tensor *x, duet_tensor *shift, duet_tensor *scale, int rms,
                                double eps) {
  duet_tensor *in[3] = {x, shift, scale};
  if (!g->failed && (!shift || !scale))
    return duet_graph_fail(g, DUET_EINVAL, "norm_modulate: NULL shift or scale");
  const duet_backend *be = nn_prologue(g, "norm_modulate", 3, in);
  const duet_tensor *vecs[2] = {shift, scale};
  if (!be || !check_tokens_and_vecs(g, "norm_modulate", x, NULL, vecs, 2) ||
      !check_rows(g, "norm_modulate", x) || !check_eps(g, "norm_modulate", eps))
    return NULL;
  if (!be->norm_modulate)
    return duet_graph_fail(g, DUET_ENOTSUP, "norm_modulate: backend %s has no fused norm kernels", be->name);
  duet_tensor *y = duet_graph_new_like(g, x);
  if (!y) return NULL;
  duet_tensor *mean = NULL, *rstd = NULL;
  duet_node *n = duet_graph_record(g, "norm_modulate", norm_modulate_backward, y, 3, in);
  if (n) {
    n->i[0] = rms != 0;
    if (!rms && !(n->saved[0] = mean = row_stat(g, x))) return NULL;
    if (!(n->saved[1] = rstd = row_stat(g, x))) return NULL;
  }
  if (g->failed) return NULL;
  be->norm_modulate->fwd(rms != 0, x, shift, scale, eps, y, mean, rstd);
  return y;
}
