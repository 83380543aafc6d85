/* Layout ops: reshape, permute, concat, slice, patchify and the embedding lookup.
 *
 * Reshape and the 1-D (un)patchify are views: their output shares the input's storage (a
 * row-major tensor read in a new shape is the same bytes), and only the gradient is a
 * separate buffer, which the backward adds into the input's gradient. Sharing is safe because
 * no op writes into its inputs; giving the view its own gradient buffer keeps the rule that a
 * gradient is created zeroed and accumulated (core/graph.h) without aliasing two gradients.
 *
 * The other layout ops move elements along a strided map (core/kernels_layout.h), one map per
 * input from that input to the output; their common backward walks the same maps the other
 * way and accumulates. */
#include <stdio.h>
#include <string.h>

#include "core/kernels_elementwise.h"
#include "core/kernels_layout.h"
#include "core/ops.h"
#include "core/ops_util.h"

/* ---- strided maps ---- */

static void contiguous_strides(int ndim, const int64_t *shape, int64_t *strides) {
  int64_t s = 1;
  for (int k = ndim - 1; k >= 0; k--) {
    strides[k] = s;
    s *= shape[k];
  }
}

/* Drops size-1 dims and merges neighbours that are contiguous with each other on both sides,
 * so kernels get long inner runs and few index decompositions. */
static void map_simplify(duet_strided *m) {
  int out = 0;
  for (int k = 0; k < m->ndim; k++) {
    if (m->shape[k] == 1) continue;
    if (out > 0 && m->src_stride[out - 1] == m->src_stride[k] * m->shape[k] &&
        m->dst_stride[out - 1] == m->dst_stride[k] * m->shape[k]) {
      m->shape[out - 1] *= m->shape[k];
      m->src_stride[out - 1] = m->src_stride[k];
      m->dst_stride[out - 1] = m->dst_stride[k];
    } else {
      m->shape[out] = m->shape[k];
      m->src_stride[out] = m->src_stride[k];
      m->dst_stride[out] = m->dst_stride[k];
      out++;
    }
  }
  m->ndim = out;
}

static duet_strided map_swapped(const duet_strided *m) {
  duet_strided s = *m;
  memcpy(s.src_stride, m->dst_stride, sizeof s.src_stride);
  memcpy(s.dst_stride, m->src_stride, sizeof s.dst_stride);
  s.src_offset = m->dst_offset;
  s.dst_offset = m->src_offset;
  return s;
}

/* src read as the contiguous shape vshape, dst its permutation (dst dim i = vshape[perm[i]]),
 * walked in dst order so writes are sequential. */
static void map_permuted(duet_strided *m, int ndim, const int64_t *vshape, const int *perm) {
  int64_t vstride[DUET_STRIDED_MAX_DIMS], oshape[DUET_STRIDED_MAX_DIMS], ostride[DUET_STRIDED_MAX_DIMS];
  contiguous_strides(ndim, vshape, vstride);
  for (int i = 0; i < ndim; i++) oshape[i] = vshape[perm[i]];
  contiguous_strides(ndim, oshape, ostride);
  memset(m, 0, sizeof *m);
  m->ndim = ndim;
  for (int i = 0; i < ndim; i++) {
    m->shape[i] = oshape[i];
    m->src_stride[i] = vstride[perm[i]];
    m->dst_stride[i] = ostride[i];
  }
  map_simplify(m);
}

/* ---- the shared op skeleton for strided ops ---- */

static void mapped_backward(duet_graph *g, duet_node *n) {
  const duet_strided *maps = n->extra;
  duet_tensor *dy = n->out->grad;
  const struct duet_kernels_layout *k = duet_backend_get(dy->device)->layout;
  for (int i = 0; i < n->n_in; i++) {
    if (!n->in[i]->requires_grad) continue;
    int fresh = 0;
    duet_tensor *dx = duet_graph_grad_fresh(g, n->in[i], &fresh);
    if (g->failed) return;
    if (!dx || dx->numel == 0) continue;
    duet_strided back = map_swapped(&maps[i]);
    if (!fresh) {
      k->accumulate(dy, dx, &back);
      continue;
    }
    /* A fresh gradient is stored rather than added to zeros. A map's destinations are distinct,
     * so one with as many elements as dx covers all of it; one with fewer (a slice's) leaves
     * the rest of dx at zero. */
    int64_t count = 1;
    for (int d = 0; d < back.ndim; d++) count *= back.shape[d];
    if (count != dx->numel) duet_backend_get(dx->device)->zero(dx->data, duet_tensor_bytes(dx));
    k->copy(dy, dx, &back);
  }
}

/* A gradient flows only through the float dtypes the ops compute in (f32, f64; bf16 on the
 * GPU); other dtypes (u8 masks, i32 ids) move freely. */
static int grad_dtype_ok(duet_graph *g, const char *op, const duet_tensor *x) {
  if (!g->grad_enabled || !x->requires_grad || duet_ops_dtype_ok(x))
    return 1;
  duet_graph_fail(g, DUET_EINVAL, "%s: input requires a gradient but has dtype %s (gradients are f32 or f64)",
                  op, duet_dtype_name(x->dtype));
  return 0;
}

/* Copies every input into y along its map (inputs without elements are skipped) and records
 * the node, keeping the maps for the backward. */
static duet_tensor *mapped_run(duet_graph *g, const duet_backend *be, const char *op, duet_tensor *y,
                               int n, duet_tensor *const *xs, const duet_strided *maps) {
  for (int i = 0; i < n; i++)
    if (xs[i]->numel > 0) be->layout->copy(xs[i], y, &maps[i]);
  duet_node *node = duet_graph_record(g, op, mapped_backward, y, n, xs);
  if (node) {
    duet_strided *saved = duet_graph_alloc(g, sizeof *saved * (size_t)n);
    if (!saved) return NULL;
    memcpy(saved, maps, sizeof *saved * (size_t)n);
    node->extra = saved;
  }
  return y;
}

/* The checks every layout op starts with: a graph that has not failed, an input, a backend. */
static const duet_backend *layout_begin(duet_graph *g, const char *op, const duet_tensor *x) {
  if (g->failed) return NULL;
  if (!x) return duet_graph_fail(g, DUET_EINVAL, "%s: NULL input", op);
  const duet_backend *be = duet_ops_backend(g, op, 1, &x);
  if (!be || !grad_dtype_ok(g, op, x)) return NULL;
  if (!be->layout) return duet_graph_fail(g, DUET_ENOTSUP, "%s: backend %s has no layout kernels", op, be->name);
  return be;
}

static int norm_axis(int axis, int ndim) { return axis < 0 ? axis + ndim : axis; }

/* ---- views ---- */

static void view_backward(duet_graph *g, duet_node *n) {
  duet_tensor *x = n->in[0];
  if (!x->requires_grad || duet_graph_grad_pass(g, x, n->out->grad)) return;
  duet_tensor *dx = duet_graph_grad(g, x);
  if (dx && dx->numel > 0) duet_backend_get(dx->device)->elementwise->axpy(1.0, n->out->grad, dx);
}

static duet_tensor *view_as(duet_graph *g, const char *op, duet_tensor *x, int ndim, const int64_t *shape) {
  duet_tensor *y = duet_graph_alloc(g, sizeof *y);
  if (!y) return NULL;
  duet_err err;
  if (duet_tensor_init_header(y, x->dtype, x->device, ndim, shape, &err) != DUET_OK)
    return duet_graph_fail(g, err.code, "%s: %s", op, err.msg);
  y->data = x->data;
  duet_graph_record(g, op, view_backward, y, 1, &x);
  return y;
}

duet_tensor *duet_reshape(duet_graph *g, duet_tensor *x, int ndim, const int64_t *shape) {
  const duet_backend *be = layout_begin(g, "reshape", x);
  if (!be) return NULL;
  char sx[96];
  if (ndim < 0 || ndim > DUET_MAX_DIMS || (ndim > 0 && !shape))
    return duet_graph_fail(g, DUET_EINVAL, "reshape: rank %d outside 0..%d for x %s", ndim,
                           DUET_MAX_DIMS, duet_shape_str(x, sx, sizeof sx));
  /* One dim may be -1: whatever makes the element counts agree. */
  int64_t s[DUET_MAX_DIMS], known = 1;
  int infer = -1, bad = 0;
  for (int i = 0; i < ndim; i++) {
    s[i] = shape[i];
    if (s[i] == -1 && infer < 0) infer = i;
    else if (s[i] < 0) bad = 1;
    else known *= s[i];
  }
  if (!bad && infer >= 0) {
    if (known == 0 || x->numel % known != 0) bad = 1;
    else s[infer] = x->numel / known;
  }
  if (bad || duet_shape_numel(ndim, s) != x->numel) {
    char want[128];
    size_t len = (size_t)snprintf(want, sizeof want, "[");
    for (int i = 0; i < ndim && len < sizeof want; i++)
      len += (size_t)snprintf(want + len, sizeof want - len, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (len < sizeof want) snprintf(want + len, sizeof want - len, "]");
    return duet_graph_fail(g, DUET_EINVAL, "reshape: cannot view x %s (%lld elements) as %s",
                           duet_shape_str(x, sx, sizeof sx), (long long)x->numel, want);
  }
  return view_as(g, "reshape", x, ndim, s);
}

duet_tensor *duet_patchify1d(duet_graph *g, duet_tensor *x, int p) {
  const duet_backend *be = layout_begin(g, "patchify1d", x);
  if (!be) return NULL;
  char sx[96];
  if (x->ndim != 3 || p < 1 || x->shape[1] % p != 0)
    return duet_graph_fail(g, DUET_EINVAL, "patchify1d: patch %d does not divide the time axis of audio %s (expected [B, T, C])",
                           p, duet_shape_str(x, sx, sizeof sx));
  /* [B, T, C] row-major is [B, T/p, p, C] is [B, T/p, p*C]: the same bytes. */
  int64_t s[3] = {x->shape[0], x->shape[1] / p, p * x->shape[2]};
  return view_as(g, "patchify1d", x, 3, s);
}

duet_tensor *duet_unpatchify1d(duet_graph *g, duet_tensor *tokens, int T, int C, int p) {
  const duet_backend *be = layout_begin(g, "unpatchify1d", tokens);
  if (!be) return NULL;
  char sx[96];
  if (tokens->ndim != 3 || p < 1 || T < 0 || C < 0 || T % p != 0 || tokens->shape[1] != T / p ||
      tokens->shape[2] != (int64_t)p * C)
    return duet_graph_fail(g, DUET_EINVAL, "unpatchify1d: tokens %s do not hold audio of T=%d C=%d with patch %d (expected [B, %d, %lld])",
                           duet_shape_str(tokens, sx, sizeof sx), T, C, p, p >= 1 ? T / p : 0,
                           (long long)p * C);
  int64_t s[3] = {tokens->shape[0], T, C};
  return view_as(g, "unpatchify1d", tokens, 3, s);
}

/* ---- strided ops ---- */

static duet_tensor *new_out(duet_graph *g, const duet_tensor *like, int ndim, const int64_t *shape) {
  return duet_graph_new(g, like->dtype, like->device, ndim, shape);
}

duet_tensor *duet_permute(duet_graph *g, duet_tensor *x, const int *perm) {
  const duet_backend *be = layout_begin(g, "permute", x);
  if (!be) return NULL;
  char sx[96];
  int seen[DUET_MAX_DIMS] = {0}, ok = perm != NULL || x->ndim == 0;
  for (int i = 0; ok && i < x->ndim; i++) {
    if (perm[i] < 0 || perm[i] >= x->ndim || seen[perm[i]]) ok = 0;
    else seen[perm[i]] = 1;
  }
  if (!ok) {
    char sp[64] = "NULL";
    if (perm) {
      size_t len = (size_t)snprintf(sp, sizeof sp, "(");
      for (int i = 0; i < x->ndim && len < sizeof sp; i++)
        len += (size_t)snprintf(sp + len, sizeof sp - len, i ? ",%d" : "%d", perm[i]);
      if (len < sizeof sp) snprintf(sp + len, sizeof sp - len, ")");
    }
    return duet_graph_fail(g, DUET_EINVAL, "permute: %s is not a permutation of the %d axes of x %s",
                           sp, x->ndim, duet_shape_str(x, sx, sizeof sx));
  }
  int64_t shape[DUET_MAX_DIMS];
  for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[perm[i]];
  duet_tensor *y = new_out(g, x, x->ndim, shape);
  if (!y) return NULL;
  duet_strided m;
  map_permuted(&m, x->ndim, x->shape, perm);
  return mapped_run(g, be, "permute", y, 1, &x, &m);
}

duet_tensor *duet_concat(duet_graph *g, duet_tensor *const *xs, int n, int axis) {
  if (g->failed) return NULL;
  if (!xs || n < 1) return duet_graph_fail(g, DUET_EINVAL, "concat: %d inputs, expected at least 1", n);
  for (int i = 0; i < n; i++)
    if (!xs[i]) return duet_graph_fail(g, DUET_EINVAL, "concat: input %d is NULL", i);
  const duet_backend *be = layout_begin(g, "concat", xs[0]);
  if (!be || !duet_ops_backend(g, "concat", n, (const duet_tensor *const *)xs)) return NULL;
  const duet_tensor *x0 = xs[0];
  int ax = norm_axis(axis, x0->ndim);
  char s0[96], si[96];
  if (ax < 0 || ax >= x0->ndim)
    return duet_graph_fail(g, DUET_EINVAL, "concat: axis %d outside the %d axes of input 0 %s", axis,
                           x0->ndim, duet_shape_str(x0, s0, sizeof s0));
  int64_t shape[DUET_MAX_DIMS];
  memcpy(shape, x0->shape, sizeof shape);
  shape[ax] = 0;
  for (int i = 0; i < n; i++) {
    const duet_tensor *x = xs[i];
    if (!grad_dtype_ok(g, "concat", x) || !duet_ops_check_same_dtype(g, "concat", x0, x)) return NULL;
    int same = x->ndim == x0->ndim;
    for (int k = 0; same && k < x0->ndim; k++) same = k == ax || x->shape[k] == x0->shape[k];
    if (!same)
      return duet_graph_fail(g, DUET_EINVAL, "concat: input %d %s does not match input 0 %s outside axis %d", i,
                             duet_shape_str(x, si, sizeof si), duet_shape_str(x0, s0, sizeof s0), ax);
    shape[ax] += x->shape[ax];
  }
  duet_tensor *y = new_out(g, x0, x0->ndim, shape);
  duet_strided *maps = duet_graph_alloc(g, sizeof *maps * (size_t)n);
  if (!y || !maps) return NULL;
  int64_t ystride[DUET_MAX_DIMS];
  contiguous_strides(y->ndim, y->shape, ystride);
  int64_t at = 0;
  for (int i = 0; i < n; i++) {
    duet_strided *m = &maps[i];
    memset(m, 0, sizeof *m);
    m->ndim = x0->ndim;
    memcpy(m->shape, xs[i]->shape, sizeof(int64_t) * (size_t)x0->ndim);
    contiguous_strides(m->ndim, m->shape, m->src_stride);
    memcpy(m->dst_stride, ystride, sizeof(int64_t) * (size_t)x0->ndim);
    m->dst_offset = at * ystride[ax];
    at += xs[i]->shape[ax];
    map_simplify(m);
  }
  return mapped_run(g, be, "concat", y, n, xs, maps);
}

duet_tensor *duet_slice(duet_graph *g, duet_tensor *x, int axis, int64_t start, int64_t len) {
  const duet_backend *be = layout_begin(g, "slice", x);
  if (!be) return NULL;
  int ax = norm_axis(axis, x->ndim);
  char sx[96];
  if (ax < 0 || ax >= x->ndim || start < 0 || len < 0 || start > x->shape[ax] - len)
    return duet_graph_fail(g, DUET_EINVAL, "slice: [%lld, %lld) along axis %d is outside x %s", (long long)start,
                           (long long)(start + len), axis, duet_shape_str(x, sx, sizeof sx));
  int64_t shape[DUET_MAX_DIMS];
  memcpy(shape, x->shape, sizeof shape);
  shape[ax] = len;
  duet_tensor *y = new_out(g, x, x->ndim, shape);
  if (!y) return NULL;
  duet_strided m;
  memset(&m, 0, sizeof m);
  m.ndim = x->ndim;
  memcpy(m.shape, shape, sizeof(int64_t) * (size_t)x->ndim);
  contiguous_strides(x->ndim, x->shape, m.src_stride);
  contiguous_strides(x->ndim, shape, m.dst_stride);
  m.src_offset = start * m.src_stride[ax];
  map_simplify(&m);
  return mapped_run(g, be, "slice", y, 1, &x, &m);
}

/* Video [B, T, H, W, C] read as [B, nt, pt, nh, ph, nw, pw, C] and permuted to
 * [B, nt, nh, nw, pt, ph, pw, C], which row-major is [B, nt*nh*nw, pt*ph*pw*C]. */
static void map_patchify3d(duet_strided *m, const int64_t *video, int pt, int ph, int pw) {
  static const int perm[8] = {0, 1, 3, 5, 2, 4, 6, 7};
  int64_t v[8] = {video[0], video[1] / pt, pt, video[2] / ph, ph, video[3] / pw, pw, video[4]};
  map_permuted(m, 8, v, perm);
}

duet_tensor *duet_patchify3d(duet_graph *g, duet_tensor *x, int pt, int ph, int pw) {
  const duet_backend *be = layout_begin(g, "patchify3d", x);
  if (!be) return NULL;
  char sx[96];
  if (x->ndim != 5 || pt < 1 || ph < 1 || pw < 1 || x->shape[1] % pt || x->shape[2] % ph || x->shape[3] % pw)
    return duet_graph_fail(g, DUET_EINVAL, "patchify3d: patch (%d,%d,%d) does not divide (T,H,W) of video %s (expected [B, T, H, W, C])",
                           pt, ph, pw, duet_shape_str(x, sx, sizeof sx));
  int64_t shape[3] = {x->shape[0], (x->shape[1] / pt) * (x->shape[2] / ph) * (x->shape[3] / pw),
                      (int64_t)pt * ph * pw * x->shape[4]};
  duet_tensor *y = new_out(g, x, 3, shape);
  if (!y) return NULL;
  duet_strided m;
  map_patchify3d(&m, x->shape, pt, ph, pw);
  return mapped_run(g, be, "patchify3d", y, 1, &x, &m);
}

duet_tensor *duet_unpatchify3d(duet_graph *g, duet_tensor *tokens, int T, int H, int W, int C,
                               int pt, int ph, int pw) {
  const duet_backend *be = layout_begin(g, "unpatchify3d", tokens);
  if (!be) return NULL;
  char sx[96];
  int ok = tokens->ndim == 3 && pt >= 1 && ph >= 1 && pw >= 1 && T >= 0 && H >= 0 && W >= 0 && C >= 0 &&
           T % pt == 0 && H % ph == 0 && W % pw == 0;
  int64_t L = ok ? (int64_t)(T / pt) * (H / ph) * (W / pw) : 0, F = (int64_t)pt * ph * pw * C;
  if (!ok || tokens->shape[1] != L || tokens->shape[2] != F)
    return duet_graph_fail(g, DUET_EINVAL, "unpatchify3d: tokens %s do not hold video (T,H,W,C) = (%d,%d,%d,%d) in patches (%d,%d,%d) (expected [B, %lld, %lld])",
                           duet_shape_str(tokens, sx, sizeof sx), T, H, W, C, pt, ph, pw, (long long)L,
                           (long long)F);
  int64_t shape[5] = {tokens->shape[0], T, H, W, C};
  duet_tensor *y = new_out(g, tokens, 5, shape);
  if (!y) return NULL;
  /* The exact inverse of patchify3d: its map, read the other way. */
  duet_strided m;
  map_patchify3d(&m, shape, pt, ph, pw);
  m = map_swapped(&m);
  return mapped_run(g, be, "unpatchify3d", y, 1, &tokens, &m);
}

/* ---- embedding ---- */

static void embedding_backward(duet_graph *g, duet_node *n) {
  duet_tensor *dtable = duet_ops_grad_if(g, n->in[0]);
  if (!dtable || dtable->numel == 0 || n->out->numel == 0) return;
  duet_backend_get(dtable->device)->layout->embedding_backward(n->out->grad, n->in[1], dtable);
}

duet_tensor *duet_embedding(duet_graph *g, duet_tensor *table, duet_tensor *ids) {
  if (g->failed) return NULL;
  if (!table || !ids) return duet_graph_fail(g, DUET_EINVAL, "embedding: NULL input");
  const duet_tensor *ts[2] = {table, ids};
  const duet_backend *be = layout_begin(g, "embedding", table);
  if (!be || !duet_ops_backend(g, "embedding", 2, ts) || !duet_ops_check_float(g, "embedding", table, "table"))
    return NULL;
  char st[96], si[96];
  if (table->ndim != 2 || ids->dtype != DUET_I32 || ids->ndim + 1 > DUET_MAX_DIMS)
    return duet_graph_fail(g, DUET_EINVAL, "embedding: table %s and ids %s %s, expected a [V, D] table and i32 ids of rank < %d",
                           duet_shape_str(table, st, sizeof st), duet_dtype_name(ids->dtype),
                           duet_shape_str(ids, si, sizeof si), DUET_MAX_DIMS);
  int64_t bad = ids->numel > 0 ? be->layout->find_bad_id(ids, table->shape[0]) : -1;
  if (bad >= 0) {
    int32_t id = 0;
    be->copy_to_host(&id, (const int32_t *)ids->data + bad, sizeof id);
    return duet_graph_fail(g, DUET_EINVAL, "embedding: id %d at position %lld of ids %s is outside the table %s",
                           (int)id, (long long)bad, duet_shape_str(ids, si, sizeof si),
                           duet_shape_str(table, st, sizeof st));
  }
  int64_t shape[DUET_MAX_DIMS];
  memcpy(shape, ids->shape, sizeof(int64_t) * (size_t)ids->ndim);
  shape[ids->ndim] = table->shape[1];
  duet_tensor *y = new_out(g, table, ids->ndim + 1, shape);
  if (!y) return NULL;
  if (y->numel > 0) be->layout->embedding_forward(table, ids, y);
  duet_tensor *in[2] = {table, ids};
  duet_graph_record(g, "embedding", embedding_backward, y, 2, in);
  return y;
}
