/* The data-parallel seam: sums across ranks through the launcher's all-reduce, nothing at all
 * for a single process. */
#include "train/trainer_internal.h"

int duet_dist_world(const duet_train_dist *d) { return d->world > 1 ? d->world : 1; }

int duet_dist_sum(const duet_train_dist *d, double *v, int64_t n, duet_err *err) {
  if (duet_dist_world(d) == 1) return DUET_OK;
  if (!d->allreduce_sum) return duet_err_set(err, DUET_EINVAL, "train: world size %d but no all-reduce", d->world);
  return d->allreduce_sum(d->ctx, v, n, err);
}

int duet_dist_average_grads(const duet_train_dist *d, duet_param_set *ps, duet_err *err) {
  int world = duet_dist_world(d);
  if (world == 1) return DUET_OK;
  if (d->allreduce_grads) {
    int rc = d->allreduce_grads(d->ctx, ps, err);
    if (rc) return rc;
    duet_grad_scale(ps, 1.0 / world);
    return DUET_OK;
  }
  if (!d->allreduce_sum_f32)
    return duet_err_set(err, DUET_EINVAL, "train: world size %d but no gradient all-reduce", world);
  /* One call per parameter keeps the seam simple; bucketing belongs to the launcher. */
  for (int i = 0; i < ps->count; i++) {
    duet_tensor *p = ps->items[i];
    if (!p->requires_grad || !p->grad) continue;
    int rc = d->allreduce_sum_f32(d->ctx, p->grad->data, p->grad->numel, err);
    if (rc) return rc;
  }
  duet_grad_scale(ps, 1.0 / world);
  return DUET_OK;
}

int duet_dist_opt_step(const duet_train_dist *d, duet_adamw *opt, double lr, duet_err *err) {
  return d->opt_step ? d->opt_step(d->ctx, opt, lr, err) : duet_adamw_step(opt, lr, err);
}

int duet_dist_opt_gather(const duet_train_dist *d, duet_adamw *opt, int gather, duet_err *err) {
  return d->opt_gather ? d->opt_gather(d->ctx, opt, gather, err) : DUET_OK;
}

/* Rank 0's values reach every rank through the sum (the others add zeros); then the mismatches
 * are summed too, so that every rank reaches the same verdict and none is left waiting. */
int duet_dist_check_same(const duet_train_dist *d, const int64_t *v, int n, const char *what, duet_err *err) {
  if (duet_dist_world(d) == 1) return DUET_OK;
  double x[8], bad = 0;
  if (n < 1 || n > 8) return duet_err_set(err, DUET_EINVAL, "train: %d values to compare across ranks", n);
  for (int i = 0; i < n; i++) x[i] = d->rank == 0 ? (double)v[i] : 0;
  int rc = duet_dist_sum(d, x, n, err);
  if (rc) return rc;
  for (int i = 0; i < n; i++) bad += x[i] != (double)v[i];
  bad = bad > 0;
  if ((rc = duet_dist_sum(d, &bad, 1, err))) return rc;
  if (bad > 0)
    return duet_err_set(err, DUET_EINVAL, "train: %.0f of %d ranks disagree with rank 0 on %s", bad,
                        duet_dist_world(d), what);
  return DUET_OK;
}
