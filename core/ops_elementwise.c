#include <math.h>

#include "core/kernels_elementwise.h"
#include "core/ops.h"
#include "core/ops_util.h"

static const struct duet_kernels_elementwise *ew(const duet_tensor *t) {
  return duet_backend_get(t->device)->elementwise;
}

static void binary_backward(duet_graph *g, duet_node *n) {
  duet_binary_op op = (duet_binary_op)n->i[0];
  duet_tensor *a = n->in[0], *b = n->in[1], *dy = n->out->grad;
  const struct duet_kernels_elementwise *k = ew(dy);
  /* a + b and a - b pass dy on to a unchanged: a takes dy's storage when it has no gradient
   * yet (and is not b, whose gradient is then formed from dy). */
  int passed = op != DUET_BINARY_MUL && a->requires_grad && a != b && duet_graph_grad_pass(g, a, dy);
  duet_tensor *da = passed ? NULL : duet_ops_grad_if(g, a), *db = duet_ops_grad_if(g, b);
  if (g->failed) return;
  switch (op) {
    case DUET_BINARY_ADD:
    case DUET_BINARY_SUB:
      if (da) k->axpy(1.0, dy, da);
      if (db) k->reduce_rows(op == DUET_BINARY_ADD ? 1.0 : -1.0, dy, NULL, db);
      break;
    case DUET_BINARY_MUL:
      if (da) k->bcast_acc(1.0, b, dy, da);
      if (db) k->reduce_rows(1.0, dy, a, db);
      break;
  }
}

static duet_tensor *binary(duet_graph *g, const char *name, duet_binary_op op, duet_tensor *a,
                           duet_tensor *b) {
  if (g->failed) return NULL;
  if (!a || !b) return duet_graph_fail(g, DUET_EINVAL, "%s: NULL input", name);
  const duet_tensor *ts[2] = {a, b};
  const duet_backend *be = duet_ops_backend(g, name, 2, ts);
  if (!be || !duet_ops_check_float(g, name, a, "a") || !duet_ops_check_same_dtype(g, name, a, b))
    return NULL;
  if (!duet_ops_is_suffix_shape(a, b) || b->numel == 0) {
    char sa[96], sb[96];
    return duet_graph_fail(g, DUET_EINVAL, "%s: shape %s does not broadcast onto %s", name,
                           duet_shape_str(b, sb, sizeof sb), duet_shape_str(a, sa, sizeof sa));
  }
  duet_tensor *y = duet_graph_new_like(g, a);
  if (!y) return NULL;
  be->elementwise->binary(op, a, b, y);
  duet_tensor *in[2] = {a, b};
  duet_node *n = duet_graph_record(g, name, binary_backward, y, 2, in);
  if (n) n->i[0] = op;
  return y;
}

duet_tensor *duet_add(duet_graph *g, duet_tensor *a, duet_tensor *b) {
  return binary(g, "add", DUET_BINARY_ADD, a, b);
}
duet_tensor *duet_sub(duet_graph *g, duet_tensor *a, duet_tensor *b) {
  return binary(g, "sub", DUET_BINARY_SUB, a, b);
}
duet_tensor *duet_mul(duet_graph *g, duet_tensor *a, duet_tensor *b) {
  return binary(g, "mul", DUET_BINARY_MUL, a, b);
}

static void scale_backward(duet_graph *g, duet_node *n) {
  duet_tensor *dx = duet_ops_grad_if(g, n->in[0]);
  if (dx) ew(dx)->axpy(n->f[0], n->out->grad, dx);
}

duet_tensor *duet_scale(duet_graph *g, duet_tensor *x, double s) {
  if (g->failed) return NULL;
  if (!x) return duet_graph_fail(g, DUET_EINVAL, "scale: NULL input");
  const duet_backend *be = duet_ops_backend(g, "scale", 1, (const duet_tensor *const *)&x);
  if (!be || !duet_ops_check_float(g, "scale", x, "x")) return NULL;
  duet_tensor *y = duet_graph_new_like(g, x);
  if (!y) return NULL;
  be->elementwise->scale(s, x, y);
  duet_node *n = duet_graph_record(g, "scale", scale_backward, y, 1, &x);
  if (n) n->f[0] = s;
  return y;
}

/* sum and mean share one node: d/dx_i = factor * dy. */
static void sum_backward(duet_graph *g, duet_node *n) {
  duet_tensor *dx = duet_ops_grad_if(g, n->in[0]);
  if (dx) ew(dx)->bcast_acc(n->f[0], n->out->grad, NULL, dx);
}

static duet_tensor *reduce_all(duet_graph *g, const char *name, duet_tensor *x, int mean) {
  if (g->failed) return NULL;
  if (!x) return duet_graph_fail(g, DUET_EINVAL, "%s: NULL input", name);
  const duet_backend *be = duet_ops_backend(g, name, 1, (const duet_tensor *const *)&x);
  if (!be || !duet_ops_check_float(g, name, x, "x")) return NULL;
  if (x->numel == 0) return duet_graph_fail(g, DUET_EINVAL, "%s: empty tensor", name);
  int64_t one = 1;
  duet_tensor *y = duet_graph_new(g, x->dtype, x->device, 1, &one);
  if (!y) return NULL;
  double factor = mean ? 1.0 / (double)x->numel : 1.0;
  be->elementwise->fill(y, 0.0);
  be->elementwise->reduce_rows(factor, x, NULL, y);
  duet_node *n = duet_graph_record(g, name, sum_backward, y, 1, &x);
  if (n) n->f[0] = factor;
  return y;
}

duet_tensor *duet_sum(duet_graph *g, duet_tensor *x) { return reduce_all(g, "sum", x, 0); }
duet_tensor *duet_mean(duet_graph *g, duet_tensor *x) { return reduce_all(g, "mean", x, 1); }
