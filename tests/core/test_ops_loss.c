/* Timestep embedding and masked MSE: values against their formulas, what a mask hides, the
 * target getting no gradient, errors, thread-count independence, and f64 gradient checks. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/rng.h"
#include "gradcheck.h"
#include "testlib.h"

static duet_tensor *rand_step(duet_graph *g, duet_dtype dt, int ndim, const int64_t *shape, uint64_t seed) {
  duet_tensor *t = duet_graph_new(g, dt, DUET_CPU, ndim, shape);
  if (!t) return NULL;
  duet_rng r = duet_rng_make(seed, 5);
  for (int64_t i = 0; i < t->numel; i++) duet_tensor_set(t, i, duet_rng_uniform_f64(&r) * 2 - 1);
  return t;
}

static void check_error(duet_graph *g, const duet_tensor *result, const char *a, const char *b) {
  CHECK(result == NULL);
  CHECK(!duet_graph_ok(g));
  CHECK_MSG(strstr(g->err.msg, a) != NULL, "message '%s' lacks '%s'", g->err.msg, a);
  if (b) CHECK_MSG(strstr(g->err.msg, b) != NULL, "message '%s' lacks '%s'", g->err.msg, b);
  duet_graph_reset(g);
}

/* weight * sum(mask * (p - t)^2) / (sum(mask) * D), straight from the contract. */
static double mse_reference(const duet_tensor *p, const duet_tensor *t, const duet_tensor *mask, double weight) {
  int64_t rows = mask ? mask->numel : p->numel, dim = p->numel / rows;
  double sq = 0, msum = 0;
  for (int64_t i = 0; i < p->numel; i++) {
    double m = mask ? duet_tensor_get(mask, i / dim) : 1.0, d = duet_tensor_get(p, i) - duet_tensor_get(t, i);
    sq += m * d * d;
  }
  for (int64_t r = 0; r < rows; r++) msum += mask ? duet_tensor_get(mask, r) : 1.0;
  return msum == 0 ? 0 : weight * sq / (msum * (double)dim);
}

/* ---- timestep embedding ---- */

typedef struct {
  int dim;
  double max_period, scale;
} ts_ctx;

static duet_tensor *build_timestep(duet_graph *g, duet_tensor *const *x, void *c) {
  ts_ctx *k = c;
  return duet_timestep_embedding(g, x[0], k->dim, k->max_period, k->scale);
}

static void test_timestep(void) {
  duet_graph g;
  duet_graph_init(&g, 0);
  int64_t b3[1] = {3};
  double tv[3] = {0.0, 0.25, 0.9};
  for (int dti = 0; dti < 2; dti++) {
    duet_dtype dt = dti ? DUET_F32 : DUET_F64;
    duet_tensor *t = duet_graph_new(&g, dt, DUET_CPU, 1, b3);
    for (int i = 0; i < 3; i++) duet_tensor_set(t, i, tv[i]);
    const int dim = 10, half = 5;
    duet_tensor *e = duet_timestep_embedding(&g, t, dim, 10000.0, 1000.0);
    CHECK(e && e->ndim == 2 && e->shape[0] == 3 && e->shape[1] == dim);
    if (!e) continue;
    /* t = 0: cosines all 1, sines all 0, exactly. */
    int ok = 1;
    for (int k = 0; k < dim; k++) ok &= duet_tensor_get(e, k) == (k < half ? 1.0 : 0.0);
    CHECK_MSG(ok, "timestep embedding at t=0 is not [1..1, 0..0] (%s)", duet_dtype_name(dt));
    double tol = dt == DUET_F64 ? 1e-12 : 1e-6;
    for (int b = 1; b < 3; b++)
      for (int k = 0; k < half; k++) {
        double f = pow(10000.0, -(double)k / half), a = 1000.0 * (double)(float)tv[b] * f;
        if (dt == DUET_F64) a = 1000.0 * tv[b] * f;
        CHECK_NEAR(duet_tensor_get(e, b * dim + k), cos(a), tol);
        CHECK_NEAR(duet_tensor_get(e, b * dim + half + k), sin(a), tol);
      }
  }
  int64_t b2[2] = {3, 1};
  check_error(&g, duet_timestep_embedding(&g, rand_step(&g, DUET_F64, 1, b3, 1), 7, 10000, 1), "timestep_embedding",
              "dim 7");
  check_error(&g, duet_timestep_embedding(&g, rand_step(&g, DUET_F64, 2, b2, 1), 8, 10000, 1), "timestep_embedding",
              "[3,1]");
  check_error(&g, duet_timestep_embedding(&g, rand_step(&g, DUET_F64, 1, b3, 1), 8, 0, 1), "timestep_embedding",
              "max_period 0");
  duet_graph_free(&g);

  /* Gradient with respect to t, at the flow-time scale and at a plain one. */
  int64_t b4[1] = {4};
  duet_tensor *in[1] = {gc_rand(1, b4, 7, 0, 1)};
  ts_ctx c1 = {16, 10000.0, 1000.0};
  /* Third derivatives grow as scale^3: a smaller step keeps the central difference's own
   * error (h^2 f'''/6) well under the tolerance. */
  gc_options fine = {.h = 1e-7};
  CHECK(gradcheck("timestep_embedding d16 s1000", build_timestep, &c1, in, 1, &fine) == 0);
  ts_ctx c2 = {6, 100.0, 1.0};
  CHECK(gradcheck("timestep_embedding d6 s1", build_timestep, &c2, in, 1, NULL) == 0);
  gc_free(in, 1);
  int64_t b5[1] = {5};
  duet_tensor *wide[1] = {gc_rand(1, b5, 8, -3, 3)};
  ts_ctx c3 = {2, 10.0, 2.5};
  CHECK(gradcheck("timestep_embedding d2 t in [-3,3)", build_timestep, &c3, wide, 1, NULL) == 0);
  gc_free(wide, 1);
}

/* ---- mse ---- */

typedef struct {
  duet_tensor *target, *mask; /* constants of the loss: not gradient-checked */
  double weight;
} mse_ctx;

static duet_tensor *build_mse(duet_graph *g, duet_tensor *const *x, void *c) {
  mse_ctx *k = c;
  return duet_mse(g, x[0], k->target, k->mask, k->weight);
}
/* pred reaches the loss twice, through a scale: both contributions must add. */
static duet_tensor *build_mse_chain(duet_graph *g, duet_tensor *const *x, void *c) {
  mse_ctx *k = c;
  return duet_add(g, duet_mse(g, duet_mul(g, x[0], x[0]), k->target, k->mask, k->weight),
                  duet_mse(g, x[0], k->target, NULL, 0.5));
}

static void test_mse_values(void) {
  duet_graph g;
  duet_graph_init(&g, 0);
  int64_t s[3] = {2, 5, 3}, ms[2] = {2, 5}, bs[1] = {2};
  for (int dti = 0; dti < 2; dti++) {
    duet_dtype dt = dti ? DUET_F32 : DUET_F64;
    double tol = dt == DUET_F64 ? 1e-13 : 1e-6;
    duet_tensor *p = rand_step(&g, dt, 3, s, 1), *t = rand_step(&g, dt, 3, s, 2);
    duet_tensor *wmask = rand_step(&g, dt, 2, ms, 3); /* weights in [0, 1) */
    for (int64_t i = 0; i < wmask->numel; i++) duet_tensor_set(wmask, i, fabs(duet_tensor_get(wmask, i)));
    uint8_t u8[10] = {1, 0, 1, 1, 0, 0, 1, 1, 1, 0};
    duet_tensor *umask = duet_graph_from_host(&g, DUET_U8, DUET_CPU, 2, ms, u8);
    duet_tensor *full = rand_step(&g, dt, 3, s, 4);
    for (int64_t i = 0; i < full->numel; i++) duet_tensor_set(full, i, fabs(duet_tensor_get(full, i)));
    duet_tensor *per_sample = duet_graph_from_host(&g, DUET_U8, DUET_CPU, 1, bs, (uint8_t[2]){0, 1});
    duet_tensor *masks[5] = {NULL, wmask, umask, full, per_sample};
    for (int mi = 0; mi < 5; mi++) {
      duet_tensor *l = duet_mse(&g, p, t, masks[mi], 0.7);
      CHECK(l && l->ndim == 1 && l->shape[0] == 1 && l->dtype == dt);
      if (l) CHECK_NEAR(duet_tensor_get(l, 0), mse_reference(p, t, masks[mi], 0.7), tol);
    }
    /* Hand-computed: pred [1, 2, 3, 4], target 0, mask on the last two rows of [2, 2]: (9 + 16) / 2. */
    int64_t s22[2] = {2, 2};
    double pv[4] = {1, 2, 3, 4}, zero[4] = {0};
    duet_tensor *hp = duet_graph_new(&g, dt, DUET_CPU, 2, s22), *ht = duet_graph_new(&g, dt, DUET_CPU, 2, s22);
    for (int i = 0; i < 4; i++) {
      duet_tensor_set(hp, i, pv[i]);
      duet_tensor_set(ht, i, zero[i]);
    }
    duet_tensor *hm = duet_graph_from_host(&g, DUET_U8, DUET_CPU, 1, (int64_t[1]){2}, (uint8_t[2]){0, 1});
    duet_tensor *hl = duet_mse(&g, hp, ht, hm, 1.0);
    CHECK(hl && duet_tensor_get(hl, 0) == 12.5);
  }
  CHECK(duet_graph_ok(&g));

  /* Errors name the op and the shapes. */
  int64_t other[3] = {2, 5, 4}, badm[2] = {5, 2};
  check_error(&g, duet_mse(&g, rand_step(&g, DUET_F64, 3, s, 1), rand_step(&g, DUET_F64, 3, other, 1), NULL, 1),
              "mse", "[2,5,4]");
  check_error(&g, duet_mse(&g, rand_step(&g, DUET_F64, 3, s, 1), rand_step(&g, DUET_F64, 3, s, 1),
                           rand_step(&g, DUET_F64, 2, badm, 1), 1),
              "mse", "[5,2]");
  check_error(&g, duet_mse(&g, rand_step(&g, DUET_F64, 3, s, 1), rand_step(&g, DUET_F32, 3, s, 1), NULL, 1), "mse",
              "f32");
  check_error(&g, duet_mse(&g, rand_step(&g, DUET_F64, 3, s, 1), rand_step(&g, DUET_F64, 3, s, 1),
                           rand_step(&g, DUET_F32, 2, ms, 1), 1),
              "mse", "mask has dtype f32");
  duet_graph_free(&g);
}

/* A mask that hides half the tokens: those tokens neither change the loss nor get a gradient;
 * the target gets no gradient even when it asks for one. */
static void test_mse_masking(void) {
  duet_graph g;
  duet_graph_init(&g, 0);
  int64_t s[3] = {2, 6, 4}, ms[2] = {2, 6};
  uint8_t m[12] = {1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 1};
  double loss_before = 0;
  for (int pass = 0; pass < 2; pass++) {
    duet_graph_reset(&g);
    duet_tensor *p = rand_step(&g, DUET_F64, 3, s, 11), *t = rand_step(&g, DUET_F64, 3, s, 12);
    duet_tensor *mask = duet_graph_from_host(&g, DUET_U8, DUET_CPU, 2, ms, m);
    if (pass == 1) /* change pred, even to NaN and Inf, where the mask is 0 */
      for (int64_t i = 0; i < p->numel; i++)
        if (!m[i / 4]) duet_tensor_set(p, i, i % 3 == 0 ? NAN : i % 3 == 1 ? INFINITY : 50.0 + (double)i);
    p->requires_grad = 1;
    t->requires_grad = 1;
    duet_tensor *l = duet_mse(&g, p, t, mask, 2.0);
    duet_err err;
    CHECK(l && duet_backward(&g, l, &err) == DUET_OK);
    if (!l || !p->grad) continue;
    if (pass == 0) loss_before = duet_tensor_get(l, 0);
    else CHECK(duet_tensor_get(l, 0) == loss_before);
    CHECK(loss_before > 0);
    int zero_hidden = 1, live_shown = 1;
    for (int64_t i = 0; i < p->numel; i++) {
      double gi = duet_tensor_get(p->grad, i);
      if (!m[i / 4]) zero_hidden &= gi == 0.0;
      else live_shown &= gi != 0.0 && isfinite(gi);
    }
    CHECK_MSG(zero_hidden, "masked tokens got a gradient (pass %d)", pass);
    CHECK_MSG(live_shown, "unmasked tokens got no gradient (pass %d)", pass);
    CHECK_MSG(t->grad == NULL, "the target got a gradient");
  }

  /* An all-zero mask: loss 0 and zero gradients, f64 and f32. */
  for (int dti = 0; dti < 2; dti++) {
    duet_graph_reset(&g);
    duet_dtype dt = dti ? DUET_F32 : DUET_F64;
    duet_tensor *p = rand_step(&g, dt, 3, s, 13), *t = rand_step(&g, dt, 3, s, 14);
    duet_tensor *mask = duet_graph_zeros(&g, dt, DUET_CPU, 2, ms);
    p->requires_grad = 1;
    duet_tensor *l = duet_mse(&g, p, t, mask, 1.0);
    duet_err err;
    CHECK(l && duet_tensor_get(l, 0) == 0.0);
    CHECK(l && duet_backward(&g, l, &err) == DUET_OK);
    int zero = p->grad != NULL;
    for (int64_t i = 0; zero && i < p->numel; i++) zero &= duet_tensor_get(p->grad, i) == 0.0;
    CHECK_MSG(zero, "all-zero mask gave a gradient (%s)", duet_dtype_name(dt));
  }
  duet_graph_free(&g);
}

/* Large f32 loss: close to a double reference, and the same bits at 1 and 4 threads. */
static void test_mse_threads(void) {
  duet_graph g;
  duet_graph_init(&g, 0);
  int64_t s[3] = {3, 1000, 37}, ms[2] = {3, 1000};
  int threads = omp_get_max_threads();
  float loss[2], grad_probe[2][3];
  for (int run = 0; run < 2; run++) {
    duet_graph_reset(&g);
    omp_set_num_threads(run ? 4 : 1);
    duet_tensor *p = rand_step(&g, DUET_F32, 3, s, 21), *t = rand_step(&g, DUET_F32, 3, s, 22);
    duet_tensor *mask = rand_step(&g, DUET_F32, 2, ms, 23);
    for (int64_t i = 0; i < mask->numel; i++) duet_tensor_set(mask, i, duet_tensor_get(mask, i) > 0 ? 1.0 : 0.25);
    p->requires_grad = 1;
    duet_tensor *l = duet_mse(&g, p, t, mask, 1.5);
    duet_err err;
    CHECK(l && duet_backward(&g, l, &err) == DUET_OK);
    if (!l || !p->grad) return;
    loss[run] = ((float *)l->data)[0];
    CHECK_NEAR(loss[run], mse_reference(p, t, mask, 1.5), 1e-6 * mse_reference(p, t, mask, 1.5));
    for (int k = 0; k < 3; k++) grad_probe[run][k] = ((float *)p->grad->data)[k * 40000 + 17];
  }
  omp_set_num_threads(threads);
  CHECK(memcmp(&loss[0], &loss[1], sizeof loss[0]) == 0);
  CHECK(memcmp(grad_probe[0], grad_probe[1], sizeof grad_probe[0]) == 0);
  duet_graph_free(&g);
}

static void test_mse_grads(void) {
  int64_t s[3] = {3, 5, 7}, ms[2] = {3, 5}, bs[1] = {3};
  duet_tensor *pred[1] = {gc_rand(3, s, 31, -1, 1)};
  duet_tensor *target = gc_rand(3, s, 32, -1, 1);
  target->requires_grad = 0;
  duet_tensor *wmask = gc_rand(2, ms, 33, 0, 1), *full = gc_rand(3, s, 34, 0, 2), *bmask = gc_rand(1, bs, 35, 0, 1);
  duet_tensor *umask = duet_tensor_new(DUET_U8, 2, ms, NULL);
  for (int64_t i = 0; i < umask->numel; i++) ((uint8_t *)umask->data)[i] = (uint8_t)(i % 3 != 1);
  struct {
    const char *name;
    duet_tensor *mask;
    double weight;
  } cases[5] = {{"mse no mask", NULL, 1.0},
                {"mse token weights [3,5]", wmask, 0.8},
                {"mse u8 token mask", umask, 2.0},
                {"mse full mask [3,5,7]", full, 1.0},
                {"mse per-sample mask [3]", bmask, 3.0}};
  for (int i = 0; i < 5; i++) {
    mse_ctx c = {target, cases[i].mask, cases[i].weight};
    CHECK_MSG(gradcheck(cases[i].name, build_mse, &c, pred, 1, NULL) == 0, "%s", cases[i].name);
  }
  mse_ctx c = {target, wmask, 1.3};
  CHECK(gradcheck("mse pred used twice", build_mse_chain, &c, pred, 1, NULL) == 0);
  duet_tensor *all[6] = {pred[0], target, wmask, full, bmask, umask};
  gc_free(all, 6);
}

int main(void) {
  test_timestep();
  test_mse_values();
  test_mse_masking();
  test_mse_threads();
  test_mse_grads();
  return test_finish("core_ops_loss");
}
