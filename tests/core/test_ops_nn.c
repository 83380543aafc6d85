/* Norms, activations, softmax and adaLN modulation: gradient checks in f64, forward values
 * against the textbook formulas, f32 against f64, and the ops' error reporting. */
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "gradcheck.h"
#include "testlib.h"


/* Gradient check and f32/f64 consistency on the same inputs. */
static void check_op(const char *name, gc_build_fn build, void *ctx, duet_tensor *const *in, int n) {
  CHECK_MSG(gradcheck(name, build, ctx, in, n, NULL) == 0, "%s", name);
  gc_check_f32_f64(name, build, ctx, in, n);
}

/* Inputs big enough for the threaded kernels: a sampled subset of elements, and a larger step
 * because the loss sums tens of thousands of terms and its rounding noise, divided by 2h,
 * would otherwise swamp the derivative. */
static void check_op_large(const char *name, gc_build_fn build, void *ctx, duet_tensor *const *in,
                           int n) {
  gc_options o = {.h = 1e-4, .max_elements = 12};
  CHECK_MSG(gradcheck(name, build, ctx, in, n, &o) == 0, "%s", name);
  gc_check_f32_f64(name, build, ctx, in, n);
}

/* ---- builders ---- */

static duet_tensor *b_layernorm(duet_graph *g, duet_tensor *const *x, void *c) {
  (void)c;
  return duet_layernorm(g, x[0], x[1], x[2], 1e-5);
}
static duet_tensor *b_rmsnorm(duet_graph *g, duet_tensor *const *x, void *c) {
  (void)c;
  return duet_rmsnorm(g, x[0], x[1], 1e-6);
}
static duet_tensor *b_gelu(duet_graph *g, duet_tensor *const *x, void *c) { (void)c; return duet_gelu(g, x[0]); }
static duet_tensor *b_silu(duet_graph *g, duet_tensor *const *x, void *c) { (void)c; return duet_silu(g, x[0]); }
static duet_tensor *b_softmax(duet_graph *g, duet_tensor *const *x, void *c) { (void)c; return duet_softmax(g, x[0]); }
static duet_tensor *b_modulate(duet_graph *g, duet_tensor *const *x, void *c) {
  (void)c;
  return duet_modulate(g, x[0], x[1], x[2]);
}
static duet_tensor *b_gated(duet_graph *g, duet_tensor *const *x, void *c) {
  (void)c;
  return duet_gated_residual(g, x[0], x[1], x[2]);
}
/* An adaLN-Zero style block: every op once, x reaching the output along two paths, and the
 * rmsnorm weight used twice, so gradients from several uses must add up. */
static duet_tensor *b_block(duet_graph *g, duet_tensor *const *x, void *c) {
  (void)c;
  duet_tensor *h = duet_layernorm(g, x[0], NULL, NULL, 1e-6);
  h = duet_modulate(g, h, x[1], x[2]);
  h = duet_gelu(g, h);
  h = duet_add(g, duet_rmsnorm(g, h, x[4], 1e-6), duet_silu(g, duet_rmsnorm(g, h, x[4], 1e-6)));
  h = duet_softmax(g, h);
  return duet_gated_residual(g, x[0], x[3], h);
}

/* ---- forward values ---- */

static duet_tensor *heap_rand(int ndim, const int64_t *shape, uint64_t seed, double lo, double hi) {
  duet_tensor *t = gc_rand(ndim, shape, seed, lo, hi);
  t->requires_grad = 0;
  return t;
}

static void test_norm_values(void) {
  duet_graph g;
  duet_graph_init(&g, 0);
  int64_t sx[3] = {2, 3, 11}, sd[1] = {11};
  duet_tensor *x = heap_rand(3, sx, 1, -3, 5), *w = heap_rand(1, sd, 2, 0.5, 2),
              *b = heap_rand(1, sd, 3, -1, 1);
  const double *px = x->data, *pw = w->data, *pb = b->data;

  /* Without affine (and a negligible eps) every row has mean 0 and variance 1. */
  duet_tensor *y = duet_layernorm(&g, x, NULL, NULL, 1e-14);
  CHECK(y != NULL);
  for (int64_t r = 0; y && r < 6; r++) {
    double m = 0, v = 0;
    for (int j = 0; j < 11; j++) m += duet_tensor_get(y, r * 11 + j) / 11;
    for (int j = 0; j < 11; j++) v += pow(duet_tensor_get(y, r * 11 + j) - m, 2) / 11;
    CHECK_NEAR(m, 0, 1e-12);
    CHECK_NEAR(v, 1, 1e-10);
  }
  /* With affine: (x - mean) / sqrt(var + eps) * w + b, computed here directly. */
  y = duet_layernorm(&g, x, w, b, 0.1);
  for (int64_t r = 0; y && r < 6; r++) {
    double m = 0, v = 0;
    for (int j = 0; j < 11; j++) m += px[r * 11 + j] / 11;
    for (int j = 0; j < 11; j++) v += pow(px[r * 11 + j] - m, 2) / 11;
    for (int j = 0; j < 11; j++)
      CHECK_NEAR(duet_tensor_get(y, r * 11 + j), (px[r * 11 + j] - m) / sqrt(v + 0.1) * pw[j] + pb[j], 1e-12);
  }
  /* rmsnorm: unit mean square without weight; x / sqrt(mean(x^2) + eps) * w with it. */
  y = duet_rmsnorm(&g, x, NULL, 1e-14);
  for (int64_t r = 0; y && r < 6; r++) {
    double ms = 0;
    for (int j = 0; j < 11; j++) ms += pow(duet_tensor_get(y, r * 11 + j), 2) / 11;
    CHECK_NEAR(ms, 1, 1e-12);
  }
  y = duet_rmsnorm(&g, x, w, 0.5);
  for (int64_t r = 0; y && r < 6; r++) {
    double ms = 0;
    for (int j = 0; j < 11; j++) ms += px[r * 11 + j] * px[r * 11 + j] / 11;
    for (int j = 0; j < 11; j++)
      CHECK_NEAR(duet_tensor_get(y, r * 11 + j), px[r * 11 + j] / sqrt(ms + 0.5) * pw[j], 1e-12);
  }
  /* No node (and no saved statistics) without gradients; the same values. */
  int64_t nodes = g.n_nodes;
  x->requires_grad = 1;
  duet_graph_set_grad_enabled(&g, 0);
  duet_tensor *y2 = duet_rmsnorm(&g, x, w, 0.5);
  CHECK(g.n_nodes == nodes && y2 && !y2->requires_grad);
  for (int64_t i = 0; y && y2 && i < y->numel; i++) CHECK(duet_tensor_get(y, i) == duet_tensor_get(y2, i));
  CHECK(duet_graph_ok(&g));
  duet_graph_free(&g);
  duet_tensor *all[3] = {x, w, b};
  gc_free(all, 3);
}

static void test_activation_softmax_values(void) {
  duet_graph g;
  duet_graph_init(&g, 0);
  int64_t sx[2] = {4, 9};
  duet_tensor *x = heap_rand(2, sx, 5, -5, 5);
  const double *px = x->data;
  duet_tensor *ge = duet_gelu(&g, x), *si = duet_silu(&g, x), *sm = duet_softmax(&g, x);
  CHECK(ge && si && sm);
  for (int64_t i = 0; ge && si && i < x->numel; i++) {
    double v = px[i];
    double ref = 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
    CHECK_NEAR(duet_tensor_get(ge, i), ref, 1e-14);
    /* The tanh form stays within 1e-3 of the exact, erf-based GELU. */
    CHECK_NEAR(duet_tensor_get(ge, i), 0.5 * v * (1 + erf(v / sqrt(2))), 1e-3);
    CHECK_NEAR(duet_tensor_get(si, i), v / (1 + exp(-v)), 1e-14);
  }
  for (int64_t r = 0; sm && r < 4; r++) {
    double sum = 0, z = 0;
    for (int j = 0; j < 9; j++) z += exp(px[r * 9 + j]);
    for (int j = 0; j < 9; j++) {
      sum += duet_tensor_get(sm, r * 9 + j);
      CHECK_NEAR(duet_tensor_get(sm, r * 9 + j), exp(px[r * 9 + j]) / z, 1e-15);
    }
    CHECK_NEAR(sum, 1, 1e-14);
  }
  /* Stable for large inputs (naive exp overflows), and a row of -inf gives zeros, not NaN. */
  int64_t s2[2] = {2, 3};
  double big[6] = {1000, 1001, 999, -INFINITY, -INFINITY, -INFINITY};
  duet_tensor *tb = duet_graph_from_host(&g, DUET_F64, DUET_CPU, 2, s2, big);
  duet_tensor *sb = duet_softmax(&g, tb);
  CHECK(sb != NULL);
  if (sb) {
    double z = 1 + exp(1) + exp(-1);
    CHECK_NEAR(duet_tensor_get(sb, 0), 1 / z, 1e-15);
    CHECK_NEAR(duet_tensor_get(sb, 1), exp(1) / z, 1e-15);
    for (int j = 3; j < 6; j++) CHECK(duet_tensor_get(sb, j) == 0);
  }
  CHECK(duet_graph_ok(&g));
  duet_graph_free(&g);
  gc_free(&x, 1);
}

/* f32 activations far out in their tails: the gradient stays finite and matches the f64
 * derivative. The GELU derivative once multiplied the cubic polynomial by exp(80) before the
 * sigmoid that cancels it, overflowing to inf (then NaN) for inputs below about -31: a training
 * run whose video branch had no loss of its own (task t2a) reached such inputs. */
static double gelu_tanh_d(double v) {
  double c = sqrt(2 / M_PI), k = 0.044715, t = tanh(c * (v + k * v * v * v));
  return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * k * v * v);
}

static void test_activation_extremes(void) {
  const float xs[] = {-1e12f, -1e6f, -3000, -100, -40, -31.5f, -20, -8, -1, 0, 1, 8, 20, 40, 100, 3000, 1e6f, 1e12f};
  const int n = (int)(sizeof xs / sizeof xs[0]);
  for (int act = 0; act < 2; act++) {
    duet_graph g;
    duet_graph_init(&g, 0);
    int64_t shape[1] = {n};
    duet_tensor *x = duet_graph_from_host(&g, DUET_F32, DUET_CPU, 1, shape, xs);
    CHECK(x != NULL);
    if (!x) {
      duet_graph_free(&g);
      continue;
    }
    x->requires_grad = 1;
    duet_tensor *y = act ? duet_silu(&g, x) : duet_gelu(&g, x);
    duet_err err;
    CHECK(y && duet_backward(&g, duet_sum(&g, y), &err) == DUET_OK);
    for (int i = 0; y && x->grad && i < n; i++) {
      double v = xs[i], fy = duet_tensor_get(y, i), d = duet_tensor_get(x->grad, i);
      double s = 1 / (1 + exp(-v));
      double want_y = act ? v * s : 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
      double want_d = act ? s * (1 + v * (1 - s)) : gelu_tanh_d(v);
      CHECK(isfinite(fy) && isfinite(d));
      CHECK_NEAR(fy, want_y, 1e-6 * (1 + fabs(want_y)));
      CHECK_NEAR(d, want_d, 1e-5);
    }
    CHECK(duet_graph_ok(&g));
    duet_graph_free(&g);
  }
}

static void test_modulation_values(void) {
  duet_graph g;
  duet_graph_init(&g, 0);
  int64_t sx[3] = {2, 3, 5}, sv[2] = {2, 5};
  duet_tensor *x = heap_rand(3, sx, 7, -1, 1), *y = heap_rand(3, sx, 8, -1, 1);
  duet_tensor *sh = heap_rand(2, sv, 9, -1, 1), *sc = heap_rand(2, sv, 10, -1, 1),
              *gt = heap_rand(2, sv, 11, -1, 1);
  duet_tensor *m = duet_modulate(&g, x, sh, sc), *r = duet_gated_residual(&g, x, gt, y);
  CHECK(m && r);
  for (int b = 0; m && r && b < 2; b++)
    for (int l = 0; l < 3; l++)
      for (int d = 0; d < 5; d++) {
        int64_t i = (b * 3 + l) * 5 + d, v = b * 5 + d;
        double xv = duet_tensor_get(x, i);
        CHECK_NEAR(duet_tensor_get(m, i), xv * (1 + duet_tensor_get(sc, v)) + duet_tensor_get(sh, v), 1e-15);
        CHECK_NEAR(duet_tensor_get(r, i), xv + duet_tensor_get(gt, v) * duet_tensor_get(y, i), 1e-15);
      }
  CHECK(duet_graph_ok(&g));
  duet_graph_free(&g);
  duet_tensor *all[5] = {x, y, sh, sc, gt};
  gc_free(all, 5);
}

static void test_errors(void) {
  duet_graph g;
  duet_graph_init(&g, 0);
  int64_t sx[3] = {2, 3, 5}, s4[1] = {4}, sv[2] = {3, 5};
  duet_tensor *x = duet_tensor_new(DUET_F64, 3, sx, NULL), *x32 = duet_tensor_new(DUET_F32, 3, sx, NULL);
  duet_tensor *w4 = duet_tensor_new(DUET_F64, 1, s4, NULL), *v35 = duet_tensor_new(DUET_F64, 2, sv, NULL);
  CHECK(duet_layernorm(&g, x, w4, NULL, 1e-5) == NULL);
  CHECK(strstr(g.err.msg, "layernorm") && strstr(g.err.msg, "[4]") && strstr(g.err.msg, "[2,3,5]"));
  CHECK(duet_gelu(&g, x) == NULL); /* sticky */
  duet_graph_reset(&g);
  CHECK(duet_modulate(&g, x, v35, v35) == NULL);
  CHECK(strstr(g.err.msg, "modulate") && strstr(g.err.msg, "[3,5]"));
  duet_graph_reset(&g);
  CHECK(duet_gated_residual(&g, x, NULL, x) == NULL && strstr(g.err.msg, "gated_residual"));
  duet_graph_reset(&g);
  CHECK(duet_rmsnorm(&g, x, NULL, -1) == NULL && strstr(g.err.msg, "rmsnorm") && strstr(g.err.msg, "eps"));
  duet_graph_reset(&g);
  CHECK(duet_gated_residual(&g, x, v35, x32) == NULL && strstr(g.err.msg, "dtypes differ"));
  duet_graph_reset(&g);
  CHECK(duet_softmax(&g, NULL) == NULL && strstr(g.err.msg, "softmax"));
  duet_graph_free(&g);
  duet_tensor *all[4] = {x, x32, w4, v35};
  gc_free(all, 4);
}

int main(void) {
  test_norm_values();
  test_activation_softmax_values();
  test_activation_extremes();
  test_modulation_values();
  test_errors();

  {
    int64_t sx[3] = {2, 3, 7}, sd[1] = {7};
    duet_tensor *in[3] = {gc_rand(3, sx, 20, -2, 2), gc_rand(1, sd, 21, 0.5, 1.5), gc_rand(1, sd, 22, -1, 1)};
    check_op("layernorm affine", b_layernorm, NULL, in, 3);
    duet_tensor *wo[3] = {in[0], in[1], NULL}, *bo[3] = {in[0], NULL, in[2]}, *no[3] = {in[0], NULL, NULL};
    check_op("layernorm weight only", b_layernorm, NULL, wo, 3);
    check_op("layernorm bias only", b_layernorm, NULL, bo, 3);
    check_op("layernorm no affine", b_layernorm, NULL, no, 3);
    gc_free(in, 3);
  }
  { /* Wider than a column block of the weight-gradient pass, and large enough to run threaded. */
    int64_t sx[3] = {2, 131, 130}, sd[1] = {130};
    duet_tensor *in[3] = {gc_rand(3, sx, 23, -2, 2), gc_rand(1, sd, 24, 0.5, 1.5), gc_rand(1, sd, 25, -1, 1)};
    check_op_large("layernorm D=130 threaded", b_layernorm, NULL, in, 3);
    check_op_large("rmsnorm D=130 threaded", b_rmsnorm, NULL, in, 2);
    gc_free(in, 3);
  }
  { /* QK-norm: per head over Dh, as [B, L, H, Dh]. */
    int64_t sx[4] = {2, 3, 2, 5}, sd[1] = {5}, s2[2] = {4, 11};
    duet_tensor *in[2] = {gc_rand(4, sx, 30, -2, 2), gc_rand(1, sd, 31, 0.5, 1.5)};
    check_op("rmsnorm weight (qk-norm)", b_rmsnorm, NULL, in, 2);
    duet_tensor *nw[2] = {gc_rand(2, s2, 32, -2, 2), NULL};
    check_op("rmsnorm no weight", b_rmsnorm, NULL, nw, 2);
    gc_free(in, 2);
    gc_free(nw, 1);
  }
  {
    int64_t sx[2] = {3, 17}, ss[3] = {3, 4, 13}, sl[2] = {3, 12000};
    duet_tensor *a[1] = {gc_rand(2, sx, 40, -4, 4)}, *s[1] = {gc_rand(3, ss, 41, -3, 3)},
                *l[1] = {gc_rand(2, sl, 42, -4, 4)};
    check_op("gelu", b_gelu, NULL, a, 1);
    check_op("silu", b_silu, NULL, a, 1);
    check_op("softmax", b_softmax, NULL, s, 1);
    check_op_large("gelu threaded", b_gelu, NULL, l, 1);
    check_op_large("silu threaded", b_silu, NULL, l, 1);
    gc_free(a, 1);
    gc_free(s, 1);
    gc_free(l, 1);
  }
  {
    int64_t sx[3] = {2, 5, 7}, sv[2] = {2, 7};
    duet_tensor *in[3] = {gc_rand(3, sx, 50, -1, 1), gc_rand(2, sv, 51, -1, 1), gc_rand(2, sv, 52, -1, 1)};
    check_op("modulate", b_modulate, NULL, in, 3);
    duet_tensor *gr[3] = {in[0], in[1], gc_rand(3, sx, 53, -1, 1)};
    check_op("gated_residual", b_gated, NULL, gr, 3);
    gc_free(in, 3);
    gc_free(gr + 2, 1);
  }
  {
    int64_t sx[3] = {2, 130, 131}, sv[2] = {2, 131};
    duet_tensor *in[3] = {gc_rand(3, sx, 54, -1, 1), gc_rand(2, sv, 55, -1, 1), gc_rand(2, sv, 56, -1, 1)};
    check_op_large("modulate D=131 threaded", b_modulate, NULL, in, 3);
    duet_tensor *gr[3] = {in[0], in[1], gc_rand(3, sx, 57, -1, 1)};
    check_op_large("gated_residual D=131 threaded", b_gated, NULL, gr, 3);
    gc_free(in, 3);
    gc_free(gr + 2, 1);
  }
  {
    int64_t sx[3] = {2, 4, 6}, sv[2] = {2, 6}, sd[1] = {6};
    duet_tensor *in[5] = {gc_rand(3, sx, 60, -1, 1), gc_rand(2, sv, 61, -0.5, 0.5), gc_rand(2, sv, 62, -0.5, 0.5),
                          gc_rand(2, sv, 63, -1, 1), gc_rand(1, sd, 64, 0.5, 1.5)};
    check_op("adaLN block composite", b_block, NULL, in, 5);
    gc_free(in, 5);
  }
  return test_finish("core_ops_nn");
}
