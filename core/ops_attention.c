/* Multi-head attention and rotary positions: checks, outputs, tape nodes.
 *
 * attention keeps, beyond its inputs and output, one log-sum-exp per (batch, head, query)
 * ([B, H, Lq], q's dtype, from the arena, only when a node is recorded); the backward
 * recomputes the probabilities from it, so no [Lq, Lk] matrix outlives the forward.
 * rope keeps nothing but its positions and spec. */
#include <math.h>

#include "core/kernels_attention.h"
#include "core/ops.h"
#include "core/ops_util.h"

static const struct duet_kernels_attention *attn_of(const duet_tensor *t) {
  return duet_backend_get(t->device)->attention;
}

static const duet_backend *attn_backend(duet_graph *g, const char *op, int n,
                                        const duet_tensor *const *ts) {
  const duet_backend *be = duet_ops_backend(g, op, n, ts);
  if (be && !be->attention)
    return duet_graph_fail(g, DUET_ENOTSUP, "%s: backend %s has no attention kernels", op, be->name);
  return be;
}

/* C channels split into `heads` heads of Dh channels; rope also needs Dh even. */
static int check_heads(duet_graph *g, const char *op, const duet_tensor *x, int heads,
                       int need_even) {
  char sx[96];
  int64_t C = x->shape[2];
  if (heads <= 0 || C <= 0 || C % heads != 0 || (need_even && (C / heads) % 2 != 0)) {
    duet_graph_fail(g, DUET_EINVAL, "%s: the channels of %s do not split into %d heads%s", op,
                    duet_shape_str(x, sx, sizeof sx), heads, need_even ? " of an even size" : "");
    return 0;
  }
  return 1;
}

/* ---- attention ---- */

static void attention_backward(duet_graph *g, duet_node *n) {
  duet_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *mask = n->in[3];
  duet_tensor *dout = n->out->grad;
  duet_tensor *dq = duet_ops_grad_if(g, q), *dk = duet_ops_grad_if(g, k),
              *dv = duet_ops_grad_if(g, v);
  if (g->failed) return;
  attn_of(dout)->attention_bwd(q, k, v, mask, (int)n->i[0], n->f[0], n->out, n->saved[0], dout,
                               dq, dk, dv);
}

duet_tensor *duet_attention(duet_graph *g, duet_tensor *q, duet_tensor *k, duet_tensor *v,
                            duet_tensor *key_mask, int heads) {
  if (g->failed) return NULL;
  if (!q || !k || !v) return duet_graph_fail(g, DUET_EINVAL, "attention: NULL q, k or v");
  const duet_tensor *ts[4] = {q, k, v, key_mask};
  const duet_backend *be = attn_backend(g, "attention", 4, ts);
  if (!be || !duet_ops_check_float(g, "attention", q, "q") ||
      !duet_ops_check_same_dtype(g, "attention", q, k) ||
      !duet_ops_check_same_dtype(g, "attention", q, v))
    return NULL;
  char sq[96], sk[96], sv[96];
  if (q->ndim != 3 || k->ndim != 3 || !duet_shape_equal(k, v) || q->shape[0] != k->shape[0] ||
      q->shape[2] != k->shape[2])
    return duet_graph_fail(g, DUET_EINVAL,
                           "attention: q %s, k %s, v %s do not fit "
                           "(expected [B,Lq,C], [B,Lk,C], [B,Lk,C])",
                           duet_shape_str(q, sq, sizeof sq), duet_shape_str(k, sk, sizeof sk),
                           duet_shape_str(v, sv, sizeof sv));
  if (!check_heads(g, "attention", q, heads, 0)) return NULL;
  if (key_mask && (key_mask->dtype != DUET_U8 || key_mask->ndim != 2 ||
                   key_mask->shape[0] != k->shape[0] || key_mask->shape[1] != k->shape[1]))
    return duet_graph_fail(g, DUET_EINVAL, "attention: key mask %s %s, expected u8 [%lld,%lld]",
                           duet_dtype_name(key_mask->dtype),
                           duet_shape_str(key_mask, sv, sizeof sv), (long long)k->shape[0],
                           (long long)k->shape[1]);
  double scale = 1.0 / sqrt((double)(q->shape[2] / heads));
  duet_tensor *o = duet_graph_new_like(g, q);
  if (!o) return NULL;
  duet_tensor *in[4] = {q, k, v, key_mask}, *lse = NULL;
  duet_node *n = duet_graph_record(g, "attention", attention_backward, o, 4, in);
  if (n) {
    int64_t shape[3] = {q->shape[0], heads, q->shape[1]};
    /* f32 for bf16 q: the backward recomputes P from it. */
    if (!(n->saved[0] = lse = duet_graph_new(g, duet_ops_stat_dtype(q), q->device, 3, shape))) return NULL;
    n->i[0] = heads;
    n->f[0] = scale;
  }
  if (g->failed) return NULL;
  be->attention->attention_fwd(q, k, v, key_mask, heads, scale, o, lse);
  return o;
}

/* ---- rotary positions ---- */

static void rope_backward(duet_graph *g, duet_node *n) {
  duet_tensor *dx = duet_ops_grad_if(g, n->in[0]);
  if (dx) attn_of(dx)->rope_bwd(n->out->grad, n->saved[0], (int)n->i[0], n->extra, dx);
}

static int check_rope_spec(duet_graph *g, const duet_rope_spec *spec, int64_t dh) {
  if (!spec) {
    duet_graph_fail(g, DUET_EINVAL, "rope: NULL spec");
    return 0;
  }
  if (spec->n_axes < 1 || spec->n_axes > DUET_ROPE_MAX_AXES) {
    duet_graph_fail(g, DUET_EINVAL, "rope: %d axes, expected 1..%d", spec->n_axes, DUET_ROPE_MAX_AXES);
    return 0;
  }
  int64_t sum = 0;
  for (int a = 0; a < spec->n_axes; a++) {
    if (spec->pairs_per_axis[a] < 0) {
      duet_graph_fail(g, DUET_EINVAL, "rope: axis %d has %d pairs", a, spec->pairs_per_axis[a]);
      return 0;
    }
    sum += spec->pairs_per_axis[a];
  }
  if (sum != dh / 2) {
    duet_graph_fail(g, DUET_EINVAL,
                    "rope: the axes own %lld pairs, but a head of %lld channels has %lld",
                    (long long)sum, (long long)dh, (long long)(dh / 2));
    return 0;
  }
  if (!(spec->theta > 0) || !isfinite(spec->theta)) {
    duet_graph_fail(g, DUET_EINVAL, "rope: theta %g must be finite and > 0", spec->theta);
    return 0;
  }
  return 1;
}

duet_tensor *duet_rope(duet_graph *g, duet_tensor *x, duet_tensor *pos, int heads,
                       const duet_rope_spec *spec) {
  if (g->failed) return NULL;
  if (!x || !pos) return duet_graph_fail(g, DUET_EINVAL, "rope: NULL x or pos");
  const duet_tensor *ts[2] = {x, pos};
  const duet_backend *be = attn_backend(g, "rope", 2, ts);
  if (!be || !duet_ops_check_float(g, "rope", x, "x") || !duet_ops_check_float(g, "rope", pos, "pos"))
    return NULL;
  char sx[96], sp[96];
  if (x->ndim != 3)
    return duet_graph_fail(g, DUET_EINVAL, "rope: x %s, expected [B, L, H*Dh]",
                           duet_shape_str(x, sx, sizeof sx));
  if (!check_heads(g, "rope", x, heads, 1) || !check_rope_spec(g, spec, x->shape[2] / heads))
    return NULL;
  int shared = pos->ndim == 2, per_sample = pos->ndim == 3;
  int fits = (shared && pos->shape[0] == x->shape[1] && pos->shape[1] == spec->n_axes) ||
             (per_sample && pos->shape[0] == x->shape[0] && pos->shape[1] == x->shape[1] &&
              pos->shape[2] == spec->n_axes);
  if (!fits)
    return duet_graph_fail(g, DUET_EINVAL,
                           "rope: positions %s do not fit x %s with %d axes "
                           "(expected [L,%d] or [B,L,%d])",
                           duet_shape_str(pos, sp, sizeof sp), duet_shape_str(x, sx, sizeof sx),
                           spec->n_axes, spec->n_axes, spec->n_axes);
  duet_tensor *y = duet_graph_new_like(g, x);
  if (!y) return NULL;
  be->attention->rope_fwd(x, pos, heads, spec, y);
  /* Positions are data, not parameters: only x is an input of the node, so pos gets no
   * gradient (and a pos that requires one does not make the output require one). */
  duet_node *n = duet_graph_record(g, "rope", rope_backward, y, 1, &x);
  if (n) {
    duet_rope_spec *copy = duet_graph_alloc(g, sizeof *copy);
    if (!copy) return NULL;
    *copy = *spec;
    n->extra = copy;
    n->saved[0] = pos;
    n->i[0] = heads;
  }
  return y;
}
