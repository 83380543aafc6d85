/* Shared checks for the ops layer (private to core/). */
#ifndef DUET_CORE_OPS_UTIL_H
#define DUET_CORE_OPS_UTIL_H

#include "core/backend.h"
#include "core/graph.h"

/* Returns the backend shared by the given tensors, or records why there is none. n counts the
 * tensors; NULL entries are skipped. Fails (NULL) when the graph has already failed. */
const duet_backend *duet_ops_backend(duet_graph *g, const char *op, int n, const duet_tensor *const *ts);

/* 1 when t is a float tensor the ops compute in: f32 or f64 on any device, bf16 on a device
 * other than the CPU (the CUDA kernels take bf16 with f32 accumulation; the CPU kernels do
 * not, and a bf16 CPU tensor fails the graph with a message naming the op). */
int duet_ops_check_float(duet_graph *g, const char *op, const duet_tensor *t, const char *what);
/* The same test without a graph. */
int duet_ops_dtype_ok(const duet_tensor *t);
/* The dtype of what an op keeps for its backward beside a tensor of x's dtype (norm
 * statistics, attention's log-sum-exp): f32 for bf16 inputs, x's dtype otherwise. */
duet_dtype duet_ops_stat_dtype(const duet_tensor *x);
int duet_ops_check_same_dtype(duet_graph *g, const char *op, const duet_tensor *a,
                              const duet_tensor *b);
/* 1 when b's shape equals the trailing dims of a's. */
int duet_ops_is_suffix_shape(const duet_tensor *a, const duet_tensor *b);

/* Gradient of an input when it needs one, else NULL. */
static inline duet_tensor *duet_ops_grad_if(duet_graph *g, duet_tensor *t) {
  return (t && t->requires_grad) ? duet_graph_grad(g, t) : NULL;
}

#endif
