#include "core/ops_util.h"

const duet_backend *duet_ops_backend(duet_graph *g, const char *op, int n, const duet_tensor *const *ts) {
  if (g->failed) return NULL;
  const duet_tensor *first = NULL;
  for (int i = 0; i < n; i++) {
    if (!ts[i]) continue;
    if (!first) first = ts[i];
    else if (ts[i]->device != first->device)
      return duet_graph_fail(g, DUET_EINVAL, "%s: inputs on different devices", op);
  }
  if (!first) return duet_graph_fail(g, DUET_EINVAL, "%s: no input", op);
  const duet_backend *be = duet_backend_get(first->device);
  if (!be) return duet_graph_fail(g, DUET_ENOTSUP, "%s: no backend for device %d", op, (int)first->device);
  return be;
}

int duet_ops_dtype_ok(const duet_tensor *t) {
  if (t->dtype == DUET_F32 || t->dtype == DUET_F64) return 1;
  /* The CUDA kernels take bf16 (f32 accumulation); the CPU kernels compute in f32 and f64. */
  return t->dtype == DUET_BF16 && t->device != DUET_CPU;
}

int duet_ops_check_float(duet_graph *g, const char *op, const duet_tensor *t, const char *what) {
  if (duet_ops_dtype_ok(t)) return 1;
  if (t->dtype == DUET_BF16)
    duet_graph_fail(g, DUET_ENOTSUP,
                    "%s: %s is bf16 on the CPU; the CPU backend computes in f32 and f64 only (bf16 runs on the "
                    "CUDA backend)",
                    op, what);
  else
    duet_graph_fail(g, DUET_EINVAL, "%s: %s has dtype %s, expected f32 or f64%s", op, what,
                    duet_dtype_name(t->dtype), t->device != DUET_CPU ? " or bf16" : "");
  return 0;
}

duet_dtype duet_ops_stat_dtype(const duet_tensor *x) {
  return x->dtype == DUET_BF16 ? DUET_F32 : x->dtype;
}

int duet_ops_check_same_dtype(duet_graph *g, const char *op, const duet_tensor *a,
                              const duet_tensor *b) {
  if (a->dtype == b->dtype) return 1;
  duet_graph_fail(g, DUET_EINVAL, "%s: dtypes differ (%s and %s)", op, duet_dtype_name(a->dtype),
                  duet_dtype_name(b->dtype));
  return 0;
}

int duet_ops_is_suffix_shape(const duet_tensor *a, const duet_tensor *b) {
  if (b->ndim > a->ndim) return 0;
  for (int i = 0; i < b->ndim; i++)
    if (b->shape[b->ndim - 1 - i] != a->shape[a->ndim - 1 - i]) return 0;
  return 1;
}
