#include "core/graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void duet_graph_init(duet_graph *g, size_t arena_bytes) {
  memset(g, 0, sizeof *g);
  duet_arena_init(&g->arena, arena_bytes);
  g->grad_enabled = 1;
}

void duet_graph_reset(duet_graph *g) {
  duet_arena_reset(&g->arena);
  g->tail = NULL;
  g->n_nodes = 0;
  g->failed = 0;
  duet_err_clear(&g->err);
}

void duet_graph_free(duet_graph *g) {
  duet_arena_free(&g->arena);
  memset(g, 0, sizeof *g);
}

int duet_graph_status(const duet_graph *g, duet_err *err) {
  if (!g->failed) return DUET_OK;
  if (err) *err = g->err;
  return g->err.code;
}

void *duet_graph_fail(duet_graph *g, int code, const char *fmt, ...) {
  if (!g->failed) {
    g->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    duet_err_vset(&g->err, code, fmt, ap);
    va_end(ap);
  }
  return NULL;
}

int duet_graph_set_grad_enabled(duet_graph *g, int enabled) {
  int prev = g->grad_enabled;
  g->grad_enabled = enabled;
  return prev;
}

void *duet_graph_alloc(duet_graph *g, size_t bytes) {
  void *p = duet_arena_alloc(&g->arena, bytes);
  if (!p) duet_graph_fail(g, DUET_ENOMEM, "out of memory: the step arena could not grow by %zu bytes", bytes);
  return p;
}

duet_tensor *duet_graph_new(duet_graph *g, duet_dtype dt, duet_device dev, int ndim,
                            const int64_t *shape) {
  if (g->failed) return NULL;
  duet_tensor *t = duet_graph_alloc(g, sizeof *t);
  if (!t) return NULL;
  duet_err err;
  if (duet_tensor_init_header(t, dt, dev, ndim, shape, &err) != DUET_OK)
    return duet_graph_fail(g, err.code, "%s", err.msg);
  const duet_backend *be = duet_backend_get(dev);
  if (!be) return duet_graph_fail(g, DUET_ENOTSUP, "device %d has no backend in this build", (int)dev);
  /* Arena memory is host memory; a device backend keeps its own step arena (core/cuda/). */
  if (dev != DUET_CPU)
    return duet_graph_fail(g, DUET_ENOTSUP, "step tensors on device %d need that backend's arena", (int)dev);
  t->data = duet_graph_alloc(g, duet_tensor_bytes(t));
  if (!t->data) return NULL;
  return t;
}

duet_tensor *duet_graph_zeros(duet_graph *g, duet_dtype dt, duet_device dev, int ndim,
                              const int64_t *shape) {
  duet_tensor *t = duet_graph_new(g, dt, dev, ndim, shape);
  if (t) memset(t->data, 0, duet_tensor_bytes(t));
  return t;
}

duet_tensor *duet_graph_new_like(duet_graph *g, const duet_tensor *like) {
  if (!like) return NULL;
  return duet_graph_new(g, like->dtype, like->device, like->ndim, like->shape);
}

duet_tensor *duet_graph_from_host(duet_graph *g, duet_dtype dt, duet_device dev, int ndim,
                                  const int64_t *shape, const void *host) {
  duet_tensor *t = duet_graph_new(g, dt, dev, ndim, shape);
  if (t) duet_backend_get(dev)->copy_from_host(t->data, host, duet_tensor_bytes(t));
  return t;
}

duet_node *duet_graph_record(duet_graph *g, const char *op, duet_backward_fn backward,
                             duet_tensor *out, int n_in, duet_tensor *const *inputs) {
  if (g->failed || !g->grad_enabled || !out) return NULL;
  int any = 0;
  for (int i = 0; i < n_in; i++)
    if (inputs[i] && inputs[i]->requires_grad) any = 1;
  if (!any) return NULL;
  duet_node *n = duet_graph_alloc(g, sizeof *n);
  duet_tensor **in = duet_graph_alloc(g, sizeof *in * (size_t)(n_in ? n_in : 1));
  if (!n || !in) return NULL;
  memset(n, 0, sizeof *n);
  for (int i = 0; i < n_in; i++) in[i] = inputs[i];
  n->op = op;
  n->backward = backward;
  n->out = out;
  n->in = in;
  n->n_in = n_in;
  n->prev = g->tail;
  g->tail = n;
  g->n_nodes++;
  out->requires_grad = 1;
  return n;
}

duet_tensor *duet_graph_grad(duet_graph *g, duet_tensor *t) {
  if (t->grad) return t->grad;
  /* Parameters get their gradient buffers when created (core/params.c); anything else that
   * reaches here is a step tensor, so its gradient belongs to the step. */
  t->grad = duet_graph_zeros(g, t->dtype, t->device, t->ndim, t->shape);
  return t->grad;
}

int duet_backward(duet_graph *g, duet_tensor *loss, duet_err *err) {
  if (g->failed) return duet_graph_status(g, err);
  if (!loss) return duet_err_set(err, DUET_EINVAL, "backward: no loss tensor");
  if (loss->numel != 1)
    return duet_err_set(err, DUET_EINVAL, "backward: loss has %lld elements, expected 1",
                        (long long)loss->numel);
  if (!loss->requires_grad)
    return duet_err_set(err, DUET_EINVAL, "backward: loss does not depend on anything that requires a gradient");
  duet_tensor *seed = duet_graph_grad(g, loss);
  if (!seed) return duet_graph_status(g, err);
  duet_tensor_set(seed, 0, duet_tensor_get(seed, 0) + 1.0);
  for (duet_node *n = g->tail; n; n = n->prev) {
    if (!n->out->grad) continue; /* nothing downstream of this node reached the loss */
    n->backward(g, n);
    if (g->failed) return duet_graph_status(g, err);
  }
  return DUET_OK;
}
