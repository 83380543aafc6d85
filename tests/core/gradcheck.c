#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "testlib.h"

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

/* ---- f32 against f64 ----
 * Inputs that require a gradient are rounded to f32 and the same values run through the op in
 * both dtypes; the other inputs (masks, positions) are shared as they are. The outputs and the
 * gradients of sum(out * R) must agree to 1e-5 of the largest f64 magnitude. */
#define GC_MAX_IN 8

static double rel_diff(const duet_tensor *a, const duet_tensor *ref) {
  double d = 0, m = 0;
  for (int64_t i = 0; i < ref->numel; i++) {
    d = fmax(d, fabs(duet_tensor_get(a, i) - duet_tensor_get(ref, i)));
    m = fmax(m, fabs(duet_tensor_get(ref, i)));
  }
  return d / (m > 0 ? m : 1);
}

static duet_tensor *run_with_grads(duet_graph *g, gc_build_fn build, void *ctx,
                                   duet_tensor *const *in) {
  duet_tensor *out = build(g, in, ctx);
  if (!out) return NULL;
  duet_tensor *r = duet_graph_new_like(g, out);
  if (!r) return NULL;
  duet_rng rng = duet_rng_make(4321, 0x33);
  for (int64_t i = 0; i < r->numel; i++)
    duet_tensor_set(r, i, (float)(duet_rng_uniform_f64(&rng) * 2 - 1));
  duet_tensor *loss = duet_sum(g, duet_mul(g, out, r));
  duet_err err;
  if (!loss || duet_backward(g, loss, &err) != DUET_OK) return NULL;
  return out;
}

void gc_check_f32_f64(const char *name, gc_build_fn build, void *ctx, duet_tensor *const *src, int n) {
  duet_tensor *in32[GC_MAX_IN] = {0}, *in64[GC_MAX_IN] = {0};
  for (int i = 0; i < n; i++) {
    in32[i] = in64[i] = src[i];
    if (!src[i] || !src[i]->requires_grad) continue;
    in32[i] = duet_tensor_new(DUET_F32, src[i]->ndim, src[i]->shape, NULL);
    in64[i] = duet_tensor_new(DUET_F64, src[i]->ndim, src[i]->shape, NULL);
    for (int64_t e = 0; e < src[i]->numel; e++) {
      float v = (float)duet_tensor_get(src[i], e);
      duet_tensor_set(in32[i], e, v);
      duet_tensor_set(in64[i], e, v);
    }
    in32[i]->requires_grad = in64[i]->requires_grad = 1;
    in32[i]->grad = duet_tensor_new(DUET_F32, src[i]->ndim, src[i]->shape, NULL);
    in64[i]->grad = duet_tensor_new(DUET_F64, src[i]->ndim, src[i]->shape, NULL);
  }
  duet_graph g32, g64;
  duet_graph_init(&g32, 0);
  duet_graph_init(&g64, 0);
  duet_tensor *o32 = run_with_grads(&g32, build, ctx, in32);
  duet_tensor *o64 = run_with_grads(&g64, build, ctx, in64);
  CHECK_MSG(o32 && o64, "%s: f32/f64 run failed: %s %s", name, g32.err.msg, g64.err.msg);
  if (o32 && o64) {
    double worst = rel_diff(o32, o64);
    for (int i = 0; i < n; i++)
      if (in64[i] != src[i]) worst = fmax(worst, rel_diff(in32[i]->grad, in64[i]->grad));
    CHECK_MSG(worst < 1e-5, "%s: f32 vs f64 relative difference %.3g", name, worst);
    printf("f32 vs f64 %-29s rel diff %.2e\n", name, worst);
  }
  duet_graph_free(&g32);
  duet_graph_free(&g64);
  for (int i = 0; i < n; i++)
    if (in64[i] != src[i]) {
      gc_free(&in32[i], 1);
      gc_free(&in64[i], 1);
    }
}

