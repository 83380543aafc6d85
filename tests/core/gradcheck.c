#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

duet_tensor *gc_rand(int ndim, const int64_t *shape, uint64_t seed, double lo, double hi) {
  duet_tensor *t = duet_tensor_new(DUET_F64, ndim, shape, NULL);
  if (!t) return NULL;
  duet_rng r = duet_rng_make(seed, 0x9c);
  for (int64_t i = 0; i < t->numel; i++)
    ((double *)t->data)[i] = lo + (hi - lo) * duet_rng_uniform_f64(&r);
  t->requires_grad = 1;
  return t;
}

void gc_free(duet_tensor *const *ts, int n) {
  for (int i = 0; i < n; i++) {
    if (!ts[i]) continue;
    duet_tensor_free(ts[i]->grad);
    duet_tensor_free(ts[i]);
  }
}

/* loss = sum(out * R); R is regenerated identically on every call from the output's size. */
static double eval_loss(duet_graph *g, gc_build_fn build, void *ctx, duet_tensor *const *inputs,
                        int with_grad, duet_tensor **loss_out) {
  duet_graph_reset(g);
  duet_graph_set_grad_enabled(g, with_grad);
  duet_tensor *out = build(g, inputs, ctx);
  if (!out) return NAN;
  duet_tensor *r = duet_graph_new_like(g, out);
  if (!r) return NAN;
  duet_rng rng = duet_rng_make(1234, 0x77);
  for (int64_t i = 0; i < r->numel; i++) duet_tensor_set(r, i, duet_rng_uniform_f64(&rng) * 2 - 1);
  duet_tensor *loss = duet_sum(g, duet_mul(g, out, r));
  if (!loss) return NAN;
  if (loss_out) *loss_out = loss;
  return duet_tensor_get(loss, 0);
}

int gradcheck(const char *name, gc_build_fn build, void *ctx, duet_tensor *const *inputs, int n,
              const gc_options *opts) {
  gc_options o = {1e-6, 1e-5, 1e-7, 200};
  if (opts) {
    if (opts->h > 0) o.h = opts->h;
    if (opts->rtol > 0) o.rtol = opts->rtol;
    if (opts->atol > 0) o.atol = opts->atol;
    if (opts->max_elements > 0) o.max_elements = opts->max_elements;
  }
  duet_graph g;
  duet_graph_init(&g, 1 << 20);
  for (int i = 0; i < n; i++) {
    if (!inputs[i] || !inputs[i]->requires_grad) continue;
    if (!inputs[i]->grad)
      inputs[i]->grad = duet_tensor_new(inputs[i]->dtype, inputs[i]->ndim, inputs[i]->shape, NULL);
    else
      memset(inputs[i]->grad->data, 0, duet_tensor_bytes(inputs[i]->grad));
  }
  duet_tensor *loss = NULL;
  double l0 = eval_loss(&g, build, ctx, inputs, 1, &loss);
  duet_err err;
  if (isnan(l0) || duet_backward(&g, loss, &err) != DUET_OK) {
    duet_err e2;
    duet_graph_status(&g, &e2);
    fprintf(stderr, "gradcheck %s: forward/backward failed: %s\n", name,
            g.failed ? e2.msg : err.msg);
    duet_graph_free(&g);
    return 1;
  }
  int bad = 0;
  double worst = 0;
  for (int i = 0; i < n; i++) {
    duet_tensor *x = inputs[i];
    if (!x || !x->requires_grad) continue;
    duet_rng pick = duet_rng_make(99, (uint64_t)i);
    int64_t count = x->numel < o.max_elements ? x->numel : o.max_elements;
    for (int64_t c = 0; c < count; c++) {
      int64_t e = x->numel <= o.max_elements ? c : (int64_t)duet_rng_below(&pick, (uint64_t)x->numel);
      double *px = (double *)x->data + e;
      double saved = *px;
      *px = saved + o.h;
      double lp = eval_loss(&g, build, ctx, inputs, 0, NULL);
      *px = saved - o.h;
      double lm = eval_loss(&g, build, ctx, inputs, 0, NULL);
      *px = saved;
      double numeric = (lp - lm) / (2 * o.h);
      double analytic = ((double *)x->grad->data)[e];
      double diff = fabs(numeric - analytic);
      double allowed = o.atol + o.rtol * fmax(fabs(numeric), fabs(analytic));
      if (!(diff <= allowed)) {
        if (bad < 5)
          fprintf(stderr, "gradcheck %s: input %d element %lld: analytic %.10g numeric %.10g\n",
                  name, i, (long long)e, analytic, numeric);
        bad++;
      }
      if (diff > worst) worst = diff;
    }
  }
  printf("gradcheck %-28s %s (worst abs diff %.2e)\n", name, bad ? "FAIL" : "ok", worst);
  duet_graph_free(&g);
  return bad;
}
