/* Dtype conversion as an op: the seam between f32 data (latents, targets, timesteps) and a
 * network that computes in bf16 on the GPU, and back to f32 for the loss.
 *
 * Forward converts element by element (bf16 rounds to nearest even, as duet_f32_to_bf16());
 * the backward converts the output's gradient back into x's dtype and adds it. On the CPU any
 * float dtype converts into any other (duet_tensor_convert); on the GPU f32 <-> bf16 (the
 * kernels of core/cuda/cuda_optim.h). A cast to x's own dtype is x itself. */
#include <string.h>

#include "core/kernels_elementwise.h"
#include "core/ops.h"
#include "core/ops_util.h"
#include "core/params.h"

/* dst <- src (equal numel, same device); records a graph error when it cannot. */
static int convert_on_device(duet_graph *g, duet_tensor *dst, const duet_tensor *src) {
  duet_err err = {0};
  int rc = duet_tensor_convert_any(dst, src, &err);
  if (rc) duet_graph_fail(g, rc, "cast: %s -> %s: %s", duet_dtype_name(src->dtype), duet_dtype_name(dst->dtype), err.msg);
  return rc == DUET_OK;
}

static void cast_backward(duet_graph *g, duet_node *n) {
  duet_tensor *x = n->in[0], *dy = n->out->grad;
  duet_tensor *dx = duet_ops_grad_if(g, x);
  if (!dx || g->failed) return;
  duet_tensor *tmp = duet_graph_new_like(g, x);
  if (!tmp || !convert_on_device(g, tmp, dy)) return;
  duet_backend_get(dx->device)->elementwise->axpy(1.0, tmp, dx);
}

duet_tensor *duet_cast(duet_graph *g, duet_tensor *x, duet_dtype dtype) {
  if (g->failed) return NULL;
  if (!x) return duet_graph_fail(g, DUET_EINVAL, "cast: NULL input");
  const duet_backend *be = duet_ops_backend(g, "cast", 1, (const duet_tensor *const *)&x);
  if (!be) return NULL;
  if (!duet_dtype_is_float(x->dtype) || !duet_dtype_is_float(dtype))
    return duet_graph_fail(g, DUET_EINVAL, "cast: %s -> %s (float dtypes only)", duet_dtype_name(x->dtype),
                           duet_dtype_name(dtype));
  if (x->dtype == dtype) return x;
  duet_tensor *y = duet_graph_new(g, dtype, x->device, x->ndim, x->shape);
  if (!y || !convert_on_device(g, y, x)) return NULL;
  duet_graph_record(g, "cast", cast_backward, y, 1, &x);
  return y;
}
