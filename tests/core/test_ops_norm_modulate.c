/* The fused norm + modulation and the dtype cast: f64 finite-difference gradient checks, f32
 * against f64, the fused op against layernorm/rmsnorm followed by modulate (values and
 * gradients), and the ops' error reporting (bf16 on the CPU among them). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "testlib.h"

typedef struct nm_ctx {
  int rms;
} nm_ctx;

static duet_tensor *b_fused(duet_graph *g, duet_tensor *const *x, void *c) {
  const nm_ctx *k = c;
  return duet_norm_modulate(g, x[0], x[1], x[2], k->rms, 1e-6);
}
static duet_tensor *b_separate(duet_graph *g, duet_tensor *const *x, void *c) {
  const nm_ctx *k = c;
  duet_tensor *h = k->rms ? duet_rmsnorm(g, x[0], NULL, 1e-6) : duet_layernorm(g, x[0], NULL, NULL, 1e-6);
  return duet_modulate(g, h, x[1], x[2]);
}
/* x reaching the output twice (through the norm and the residual) and shift used twice. */
static duet_tensor *b_reuse(duet_graph *g, duet_tensor *const *x, void *c) {
  const nm_ctx *k = c;
  duet_tensor *h = duet_norm_modulate(g, x[0], x[1], x[2], k->rms, 1e-6);
  h = duet_norm_modulate(g, duet_gelu(g, h), x[1], x[1], !k->rms, 1e-5);
  return duet_gated_residual(g, x[0], x[2], h);
}
static duet_tensor *b_cast_roundtrip(duet_graph *g, duet_tensor *const *x, void *c) {
  (void)c;
  /* f64 -> f64 is the identity; through f32 the gradient must come back converted. */
  return duet_mul(g, duet_cast(g, x[0], DUET_F64), x[0]);
}

static void check_op(const char *name, gc_build_fn build, void *ctx, duet_tensor *const *in, int n, int large) {
  gc_options o = {.h = 1e-4, .max_elements = 12};
  CHECK_MSG(gradcheck(name, build, ctx, in, n, large ? &o : NULL) == 0, "%s", name);
  gc_check_f32_f64(name, build, ctx, in, n);
}

/* The fused op equals norm then modulate: outputs and every gradient, in f64. */
static void check_against_separate(int rms, int64_t B, int64_t L, int64_t D, uint64_t seed) {
  int64_t sx[3] = {B, L, D}, sv[2] = {B, D};
  duet_tensor *in[3] = {gc_rand(3, sx, seed, -3, 4), gc_rand(2, sv, seed + 1, -1, 1), gc_rand(2, sv, seed + 2, -1, 1)};
  nm_ctx k = {rms};
  double *out[2] = {0}, *grads[2][3] = {{0}};
  for (int pass = 0; pass < 2; pass++) {
    duet_graph g;
    duet_graph_init(&g, 0);
    duet_tensor *y = (pass ? b_separate : b_fused)(&g, in, &k);
    CHECK(y != NULL);
    if (!y) {
      duet_graph_free(&g);
      continue;
    }
    duet_tensor *loss = duet_sum(&g, duet_mul(&g, y, y));
    duet_err err;
    CHECK(duet_backward(&g, loss, &err) == DUET_OK);
    out[pass] = malloc(sizeof(double) * (size_t)y->numel);
    memcpy(out[pass], y->data, sizeof(double) * (size_t)y->numel);
    for (int i = 0; i < 3; i++) {
      grads[pass][i] = malloc(sizeof(double) * (size_t)in[i]->numel);
      memcpy(grads[pass][i], in[i]->grad->data, sizeof(double) * (size_t)in[i]->numel);
    }
    duet_graph_free(&g);
    for (int i = 0; i < 3; i++) in[i]->grad = NULL; /* step gradients: freed with the graph */
  }
  double worst = 0;
  for (int64_t j = 0; out[0] && out[1] && j < in[0]->numel; j++)
    worst = fmax(worst, fabs(out[0][j] - out[1][j]) / (1 + fabs(out[1][j])));
  for (int i = 0; i < 3; i++)
    for (int64_t j = 0; grads[0][i] && grads[1][i] && j < in[i]->numel; j++)
      worst = fmax(worst, fabs(grads[0][i][j] - grads[1][i][j]) / (1 + fabs(grads[1][i][j])));
  CHECK_MSG(worst < 1e-12, "%s fused vs separate [%lld,%lld,%lld]: worst relative difference %.3g",
            rms ? "rmsnorm" : "layernorm", (long long)B, (long long)L, (long long)D, worst);
  for (int p = 0; p < 2; p++) {
    free(out[p]);
    for (int i = 0; i < 3; i++) free(grads[p][i]);
  }
  gc_free(in, 3);
}

static void test_errors(void) {
  duet_graph g;
  duet_graph_init(&g, 0);
  int64_t sx[3] = {2, 3, 5}, sv[2] = {2, 5}, sbad[2] = {3, 5};
  duet_tensor *x = duet_graph_zeros(&g, DUET_F32, DUET_CPU, 3, sx);
  duet_tensor *v = duet_graph_zeros(&g, DUET_F32, DUET_CPU, 2, sv);
  duet_tensor *bad = duet_graph_zeros(&g, DUET_F32, DUET_CPU, 2, sbad);
  CHECK(duet_norm_modulate(&g, x, v, bad, 0, 1e-6) == NULL);
  CHECK(strstr(g.err.msg, "norm_modulate") && strstr(g.err.msg, "[3,5]"));
  duet_graph_reset(&g);
  x = duet_graph_zeros(&g, DUET_F32, DUET_CPU, 3, sx);
  CHECK(duet_norm_modulate(&g, x, NULL, NULL, 0, 1e-6) == NULL);
  CHECK(strstr(g.err.msg, "NULL shift or scale") != NULL);
  duet_graph_reset(&g);
  x = duet_graph_zeros(&g, DUET_F32, DUET_CPU, 3, sx);
  v = duet_graph_zeros(&g, DUET_F32, DUET_CPU, 2, sv);
  CHECK(duet_norm_modulate(&g, x, v, v, 1, -1) == NULL);
  CHECK(strstr(g.err.msg, "eps") != NULL);
  /* bf16 on the CPU: a clear refusal naming the op, not a wrong answer. */
  duet_graph_reset(&g);
  duet_tensor *xb = duet_graph_zeros(&g, DUET_BF16, DUET_CPU, 3, sx);
  duet_tensor *vb = duet_graph_zeros(&g, DUET_BF16, DUET_CPU, 2, sv);
  CHECK(duet_norm_modulate(&g, xb, vb, vb, 0, 1e-6) == NULL);
  CHECK(strstr(g.err.msg, "norm_modulate") && strstr(g.err.msg, "bf16") && strstr(g.err.msg, "CUDA"));
  duet_graph_reset(&g);
  xb = duet_graph_zeros(&g, DUET_BF16, DUET_CPU, 3, sx);
  CHECK(duet_gelu(&g, xb) == NULL);
  CHECK(strstr(g.err.msg, "gelu") && strstr(g.err.msg, "bf16"));
  /* A cast to bf16 works on the CPU (storage), and rounds to nearest even. */
  duet_graph_reset(&g);
  x = duet_graph_new(&g, DUET_F32, DUET_CPU, 3, sx);
  for (int64_t i = 0; i < x->numel; i++) ((float *)x->data)[i] = 1.0f + (float)i / 3.0f;
  xb = duet_cast(&g, x, DUET_BF16);
  CHECK(xb && xb->dtype == DUET_BF16);
  for (int64_t i = 0; xb && i < x->numel; i++)
    CHECK(((uint16_t *)xb->data)[i] == duet_f32_to_bf16(((float *)x->data)[i]));
  CHECK(duet_cast(&g, x, DUET_F32) == x);
  duet_graph_reset(&g);
  x = duet_graph_zeros(&g, DUET_I32, DUET_CPU, 3, sx);
  CHECK(duet_cast(&g, x, DUET_F32) == NULL);
  CHECK(strstr(g.err.msg, "cast") != NULL);
  duet_graph_free(&g);
}

/* The backward of an f64 -> f32 cast converts dy to f64 and adds it. */
static void test_cast_backward(void) {
  duet_graph g;
  duet_graph_init(&g, 0);
  int64_t s[1] = {7};
  duet_tensor *x = gc_rand(1, s, 50, -2, 2);
  duet_tensor *y = duet_cast(&g, x, DUET_F32);
  CHECK(y && y->dtype == DUET_F32 && y->requires_grad);
  duet_tensor *w = duet_graph_new(&g, DUET_F32, DUET_CPU, 1, s);
  for (int i = 0; i < 7; i++) ((float *)w->data)[i] = 0.25f * (float)(i + 1);
  duet_err err;
  CHECK(duet_backward(&g, duet_sum(&g, duet_mul(&g, y, w)), &err) == DUET_OK);
  for (int i = 0; x->grad && i < 7; i++) CHECK(((double *)x->grad->data)[i] == 0.25 * (i + 1));
  duet_graph_free(&g);
  x->grad = NULL;
  gc_free(&x, 1);
}

int main(void) {
  test_errors();
  test_cast_backward();
  for (int rms = 0; rms < 2; rms++) {
    nm_ctx k = {rms};
    const char *name = rms ? "rmsnorm+modulate" : "layernorm+modulate";
    {
      int64_t sx[3] = {2, 3, 7}, sv[2] = {2, 7};
      duet_tensor *in[3] = {gc_rand(3, sx, 10 + rms, -2, 2), gc_rand(2, sv, 20 + rms, -1, 1),
                            gc_rand(2, sv, 30 + rms, -1, 1)};
      check_op(name, b_fused, &k, in, 3, 0);
      check_op(rms ? "rms fused reused" : "ln fused reused", b_reuse, &k, in, 3, 0);
      /* Only some inputs requiring a gradient. */
      in[1]->requires_grad = 0;
      CHECK(gradcheck(rms ? "rms fused, shift constant" : "ln fused, shift constant", b_fused, &k, in, 3, NULL) == 0);
      gc_free(in, 3);
    }
    { /* Wider than a column block and above the threading threshold. */
      int64_t sx[3] = {3, 97, 130}, sv[2] = {3, 130};
      duet_tensor *in[3] = {gc_rand(3, sx, 40 + rms, -2, 2), gc_rand(2, sv, 42 + rms, -1, 1),
                            gc_rand(2, sv, 44 + rms, -1, 1)};
      check_op(rms ? "rms fused D=130 threaded" : "ln fused D=130 threaded", b_fused, &k, in, 3, 1);
      gc_free(in, 3);
    }
    check_against_separate(rms, 2, 5, 9, 60 + (uint64_t)rms);
    check_against_separate(rms, 3, 97, 130, 70 + (uint64_t)rms);
  }
  {
    int64_t s[2] = {3, 4};
    duet_tensor *in[1] = {gc_rand(2, s, 80, -2, 2)};
    CHECK(gradcheck("cast f64 -> f64", b_cast_roundtrip, NULL, in, 1, NULL) == 0);
    gc_free(in, 1);
  }
  return test_finish("core_ops_norm_modulate");
}
