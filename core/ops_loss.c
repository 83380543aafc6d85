/* The sinusoidal timestep embedding and the masked, weighted MSE of flow matching. */
#include <math.h>

#include "core/kernels_loss.h"
#include "core/ops.h"
#include "core/ops_util.h"

static const duet_backend *loss_backend(duet_graph *g, const char *op, int n, const duet_tensor *const *ts) {
  const duet_backend *be = duet_ops_backend(g, op, n, ts);
  if (be && !be->loss) return duet_graph_fail(g, DUET_ENOTSUP, "%s: backend %s has no loss kernels", op, be->name);
  return be;
}

static void timestep_backward(duet_graph *g, duet_node *n) {
  duet_tensor *dt = duet_ops_grad_if(g, n->in[0]);
  if (!dt || dt->numel == 0) return;
  duet_backend_get(dt->device)->loss->timestep_backward(n->in[0], n->out->grad, n->f[0], n->f[1], dt);
}

duet_tensor *duet_timestep_embedding(duet_graph *g, duet_tensor *t, int dim, double max_period,
                                     double scale) {
  if (g->failed) return NULL;
  if (!t) return duet_graph_fail(g, DUET_EINVAL, "timestep_embedding: NULL input");
  const duet_backend *be = loss_backend(g, "timestep_embedding", 1, (const duet_tensor *const *)&t);
  if (!be || !duet_ops_check_float(g, "timestep_embedding", t, "t")) return NULL;
  char st[96];
  if (t->ndim != 1 || dim < 2 || dim % 2 != 0 || !(max_period > 0) || !isfinite(max_period) || !isfinite(scale))
    return duet_graph_fail(g, DUET_EINVAL, "timestep_embedding: t %s, dim %d, max_period %g, scale %g "
                           "(expected t [B], an even dim >= 2, a finite max_period > 0 and a finite scale)",
                           duet_shape_str(t, st, sizeof st), dim, max_period, scale);
  int64_t shape[2] = {t->shape[0], dim};
  duet_tensor *y = duet_graph_new(g, t->dtype, t->device, 2, shape);
  if (!y) return NULL;
  if (y->numel > 0) be->loss->timestep_forward(t, max_period, scale, y);
  duet_node *n = duet_graph_record(g, "timestep_embedding", timestep_backward, y, 1, &t);
  if (n) {
    n->f[0] = max_period;
    n->f[1] = scale;
  }
  return y;
}

/* Only pred is an input of the node: target and mask are constants of the loss, so no
 * gradient reaches them even when they require one. */
static void mse_backward(duet_graph *g, duet_node *n) {
  duet_tensor *dpred = duet_ops_grad_if(g, n->in[0]);
  if (!dpred) return;
  duet_backend_get(dpred->device)->loss->mse_backward(n->out->grad, n->saved[2], n->in[0], n->saved[0],
                                                      n->saved[1], dpred);
}

duet_tensor *duet_mse(duet_graph *g, duet_tensor *pred, duet_tensor *target, duet_tensor *mask,
                      double weight) {
  if (g->failed) return NULL;
  if (!pred || !target) return duet_graph_fail(g, DUET_EINVAL, "mse: NULL %s", pred ? "target" : "pred");
  const duet_tensor *ts[3] = {pred, target, mask};
  const duet_backend *be = loss_backend(g, "mse", 3, ts);
  if (!be || !duet_ops_check_float(g, "mse", pred, "pred") || !duet_ops_check_same_dtype(g, "mse", pred, target))
    return NULL;
  char sp[96], sq[96];
  if (!duet_shape_equal(pred, target) || pred->numel == 0)
    return duet_graph_fail(g, DUET_EINVAL, "mse: pred %s and target %s must have one, non-empty shape",
                           duet_shape_str(pred, sp, sizeof sp), duet_shape_str(target, sq, sizeof sq));
  if (mask) {
    int prefix = mask->ndim >= 1 && mask->ndim <= pred->ndim;
    for (int i = 0; prefix && i < mask->ndim; i++) prefix = mask->shape[i] == pred->shape[i];
    if (!prefix)
      return duet_graph_fail(g, DUET_EINVAL, "mse: mask %s must cover the leading dims of pred %s",
                             duet_shape_str(mask, sq, sizeof sq), duet_shape_str(pred, sp, sizeof sp));
    if (mask->dtype != DUET_U8 && mask->dtype != pred->dtype)
      return duet_graph_fail(g, DUET_EINVAL, "mse: mask has dtype %s, expected u8 or pred's %s",
                             duet_dtype_name(mask->dtype), duet_dtype_name(pred->dtype));
  }
  if (!isfinite(weight)) return duet_graph_fail(g, DUET_EINVAL, "mse: weight %g is not finite", weight);
  int64_t one = 1;
  duet_tensor *loss = duet_graph_new(g, pred->dtype, pred->device, 1, &one);
  duet_tensor *coef = duet_graph_new(g, pred->dtype, pred->device, 1, &one);
  if (!loss || !coef) return NULL;
  be->loss->mse_forward(pred, target, mask, weight, loss, coef);
  duet_node *n = duet_graph_record(g, "mse", mse_backward, loss, 1, &pred);
  if (n) {
    n->saved[0] = target;
    n->saved[1] = mask;
    n->saved[2] = coef;
  }
  return loss;
}
