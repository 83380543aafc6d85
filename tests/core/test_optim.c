/* AdamW against a double-precision reference, gradient clipping, LR schedules and EMA. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ema.h"
#include "core/optim.h"
#include "core/schedule.h"
#include "testlib.h"

static duet_tensor *add(duet_param_set *ps, const char *name, int ndim, const int64_t *shape, int trainable) {
  duet_err err = {0};
  duet_tensor *t = duet_params_add(ps, name, DUET_F32, ndim, shape, trainable, &err);
  CHECK_MSG(t != NULL, "%s", err.msg);
  return t;
}

static float *fdata(duet_tensor *t) { return (float *)t->data; }

/* The reference update, in double, as torch.optim.AdamW defines it. */
typedef struct ref_state {
  double p, m, v;
} ref_state;

static void ref_step(ref_state *s, double g, double lr, double b1, double b2, double eps, double wd, int t) {
  s->p *= 1.0 - lr * wd;
  s->m = b1 * s->m + (1 - b1) * g;
  s->v = b2 * s->v + (1 - b2) * g * g;
  double mhat = s->m / (1 - pow(b1, t)), vhat = s->v / (1 - pow(b2, t));
  s->p -= lr * mhat / (sqrt(vhat) + eps);
}

static double grad_at(int param, int64_t i, int step) { return sin(1.7 * (double)i + 0.3 * param + 1.1 * step) * (param + 1); }

static void test_default_decay_rule(void) {
  duet_tensor t;
  memset(&t, 0, sizeof t);
  struct {
    const char *name;
    int ndim, want;
  } cases[] = {
      {"blocks.0.attn.qkv.weight", 2, 1}, {"blocks.0.attn.qkv.bias", 1, 0}, {"norm.weight", 1, 0},
      {"text.tok_emb.weight", 2, 0},      {"pos_embed", 3, 0},              {"t_embedder.mlp.0.weight", 2, 1},
      {"video.patch_embedding.weight", 2, 0}, {"scale", 0, 0},             {"embeddings.w", 2, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    t.name = cases[i].name;
    t.ndim = cases[i].ndim;
    CHECK_MSG(duet_decay_default(&t, NULL) == cases[i].want, "%s", cases[i].name);
  }
}

static void test_first_step_by_hand(void) {
  duet_param_set ps;
  duet_params_init(&ps);
  int64_t s23[2] = {2, 3}, s3[1] = {3}, s42[2] = {4, 2}, s2[1] = {2};
  duet_tensor *w = add(&ps, "w", 2, s23, 1), *b = add(&ps, "b", 1, s3, 1), *e = add(&ps, "tok_emb", 2, s42, 1);
  duet_tensor *fz = add(&ps, "frozen", 1, s2, 0);
  for (int i = 0; i < ps.count; i++)
    for (int64_t k = 0; k < ps.items[i]->numel; k++) {
      fdata(ps.items[i])[k] = 1.0f;
      if (ps.items[i]->grad) fdata(ps.items[i]->grad)[k] = k % 2 ? -0.5f : 0.5f;
    }
  duet_adamw opt;
  duet_err err = {0};
  duet_adamw_config cfg = duet_adamw_defaults();
  cfg.weight_decay = 0.1;
  CHECK(duet_adamw_init(&opt, &ps, &cfg, NULL, NULL, &err) == 0);
  CHECK(opt.decay[0] == 1 && opt.decay[1] == 0 && opt.decay[2] == 0);
  CHECK(opt.m[3] == NULL && opt.v[3] == NULL);
  CHECK(duet_adamw_step(&opt, 0.01, &err) == 0);
  CHECK_EQ_INT(opt.step, 1);
  /* Step 1: m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps). */
  double upd = 0.01 * 0.5 / (0.5 + 1e-8);
  /* Tolerances: two ulps of f32 near 1. */
  CHECK_NEAR(fdata(w)[0], 1.0 * (1 - 0.01 * 0.1) - upd, 2.4e-7);
  CHECK_NEAR(fdata(w)[1], 1.0 * (1 - 0.01 * 0.1) + upd, 2.4e-7);
  CHECK_NEAR(fdata(b)[0], 1.0 - upd, 2.4e-7);
  CHECK_NEAR(fdata(e)[1], 1.0 + upd, 2.4e-7);
  CHECK(fdata(fz)[0] == 1.0f && fdata(fz)[1] == 1.0f);
  CHECK_NEAR(fdata(opt.m[0])[0], 0.05, 0.05 * 1.2e-7);
  CHECK_NEAR(fdata(opt.v[0])[0], 0.00025, 0.00025 * 1.2e-7);
  /* A per-name override turns decay on for the embedding. */
  CHECK(duet_adamw_set_decay(&opt, "tok_emb", 1, &err) == 0 && opt.decay[2] == 1);
  CHECK(duet_adamw_set_decay(&opt, "nope", 1, &err) == DUET_EINVAL && strstr(err.msg, "nope"));
  /* A learning rate that is not finite is refused. */
  CHECK(duet_adamw_step(&opt, NAN, &err) == DUET_ENUMERIC);
  duet_adamw_free(&opt);
  duet_params_free(&ps);
}

/* A custom rule: decay only what the context names. */
static int only_named(const duet_tensor *p, void *ctx) { return strcmp(p->name, (const char *)ctx) == 0; }

static void test_several_steps(void) {
  duet_param_set ps;
  duet_params_init(&ps);
  int64_t s1[2] = {5, 7}, s2[1] = {7}, s3[3] = {2, 3, 4};
  add(&ps, "a.weight", 2, s1, 1);
  add(&ps, "a.bias", 1, s2, 1);
  add(&ps, "c.kernel", 3, s3, 1);
  for (int i = 0; i < ps.count; i++)
    for (int64_t k = 0; k < ps.items[i]->numel; k++) fdata(ps.items[i])[k] = (float)(0.1 * k - 0.5 * i);
  duet_adamw_config cfg = {0.8, 0.95, 1e-6, 0.05};
  duet_adamw opt;
  duet_err err = {0};
  CHECK(duet_adamw_init(&opt, &ps, &cfg, only_named, "c.kernel", &err) == 0);
  CHECK(opt.decay[0] == 0 && opt.decay[1] == 0 && opt.decay[2] == 1);
  ref_state ref[3][40];
  for (int i = 0; i < ps.count; i++)
    for (int64_t k = 0; k < ps.items[i]->numel; k++) ref[i][k] = (ref_state){fdata(ps.items[i])[k], 0, 0};
  duet_lr_schedule sched = {DUET_LR_COSINE, 3e-2, 1e-3, 2, 6};
  for (int step = 0; step < 6; step++) {
    double lr = duet_lr_at(&sched, step);
    for (int i = 0; i < ps.count; i++)
      for (int64_t k = 0; k < ps.items[i]->numel; k++) {
        double g = grad_at(i, k, step);
        fdata(ps.items[i]->grad)[k] = (float)g;
        ref_step(&ref[i][k], (float)g, lr, cfg.beta1, cfg.beta2, cfg.eps, opt.decay[i] ? cfg.weight_decay : 0, step + 1);
      }
    CHECK(duet_adamw_step(&opt, lr, &err) == 0);
  }
  double worst = 0;
  for (int i = 0; i < ps.count; i++)
    for (int64_t k = 0; k < ps.items[i]->numel; k++) {
      double d = fabs(fdata(ps.items[i])[k] - ref[i][k].p) / fmax(1.0, fabs(ref[i][k].p));
      d = fmax(d, fabs(fdata(opt.m[i])[k] - ref[i][k].m));
      d = fmax(d, fabs(fdata(opt.v[i])[k] - ref[i][k].v));
      if (d > worst) worst = d;
    }
  CHECK_MSG(worst < 2e-6, "worst difference from the double reference %g", worst);
  CHECK_EQ_INT(opt.step, 6);
  duet_adamw_free(&opt);
  duet_params_free(&ps);
}

/* Updating a parameter in two ranges (as two optimizer shards would) gives the same bits as
 * one update over the whole. */
static void test_update_range_shards(void) {
  enum { N = 1000 };
  static float p1[N], p2[N], g[N], m1[N], m2[N], v1[N], v2[N];
  for (int i = 0; i < N; i++) {
    p1[i] = p2[i] = (float)cos(i);
    g[i] = (float)sin(3 * i);
    m1[i] = m2[i] = 0.01f * (float)(i % 7);
    v1[i] = v2[i] = 0.001f * (float)(i % 5);
  }
  duet_adamw_config cfg = duet_adamw_defaults();
  cfg.weight_decay = 0.01;
  duet_adamw_hparams h = duet_adamw_hparams_make(&cfg, 1e-3, 7, 1);
  duet_adamw_update_range(p1, g, m1, v1, 0, N, &h);
  duet_adamw_update_range(p2, g, m2, v2, 0, 377, &h);
  duet_adamw_update_range(p2, g, m2, v2, 377, N, &h);
  CHECK(memcmp(p1, p2, sizeof p1) == 0 && memcmp(m1, m2, sizeof m1) == 0 && memcmp(v1, v2, sizeof v1) == 0);
}

/* The range update (vector clones, blocks, threads) gives duet_adamw_update_elem's bits, which
 * the CUDA kernel matches too: over several blocks and a ragged end, odd start included. */
static void test_update_range_is_elementwise(void) {
  enum { N = 70001 };
  static float p1[N], p2[N], g[N], m1[N], m2[N], v1[N], v2[N];
  for (int i = 0; i < N; i++) {
    p1[i] = p2[i] = (float)cos(0.37 * i);
    g[i] = (float)(sin(3.1 * i) * exp(-(double)(i % 11)));
    m1[i] = m2[i] = 0.01f * (float)(i % 7 - 3);
    v1[i] = v2[i] = 0.001f * (float)(i % 5);
  }
  duet_adamw_config cfg = duet_adamw_defaults();
  cfg.weight_decay = 0.01;
  duet_adamw_hparams h = duet_adamw_hparams_make(&cfg, 3e-3, 5, 1);
  for (int i = 0; i < 3; i++) duet_adamw_update_elem(&p1[i], g[i], &m1[i], &v1[i], &h); /* untouched by the range */
  for (int i = 3; i < N; i++) duet_adamw_update_elem(&p1[i], g[i], &m1[i], &v1[i], &h);
  for (int i = 0; i < 3; i++) duet_adamw_update_elem(&p2[i], g[i], &m2[i], &v2[i], &h);
  duet_adamw_update_range(p2, g, m2, v2, 3, N, &h);
  CHECK(memcmp(p1, p2, sizeof p1) == 0 && memcmp(m1, m2, sizeof m1) == 0 && memcmp(v1, v2, sizeof v1) == 0);
}

static void test_refusals(void) {
  duet_param_set ps;
  duet_params_init(&ps);
  int64_t s[1] = {3};
  duet_err err = {0};
  CHECK(duet_params_add(&ps, "h", DUET_F64, 1, s, 1, &err) != NULL);
  duet_adamw opt;
  duet_adamw_config cfg = duet_adamw_defaults();
  CHECK(duet_adamw_init(&opt, &ps, &cfg, NULL, NULL, &err) == DUET_ENOTSUP && strstr(err.msg, "'h'"));
  duet_params_free(&ps);
  duet_params_init(&ps);
  add(&ps, "x", 1, s, 1);
  cfg.beta1 = 1.0;
  CHECK(duet_adamw_init(&opt, &ps, &cfg, NULL, NULL, &err) == DUET_EINVAL && strstr(err.msg, "beta1"));
  cfg = duet_adamw_defaults();
  CHECK(duet_adamw_init(&opt, &ps, &cfg, NULL, NULL, &err) == 0);
  add(&ps, "y", 1, s, 1);
  CHECK(duet_adamw_step(&opt, 1e-3, &err) == DUET_EINVAL && strstr(err.msg, "changed"));
  duet_adamw_free(&opt);
  duet_params_free(&ps);
}

static void test_clip(void) {
  duet_param_set ps;
  duet_params_init(&ps);
  int64_t s1[2] = {3, 4}, s2[1] = {5}, big[1] = {100003};
  duet_tensor *a = add(&ps, "a", 2, s1, 1), *b = add(&ps, "b", 1, s2, 1), *c = add(&ps, "c", 1, big, 1);
  add(&ps, "frozen", 1, s2, 0);
  double sumsq = 0;
  for (int i = 0; i < 3; i++)
    for (int64_t k = 0; k < ps.items[i]->numel; k++) {
      float g = (float)(0.01 * cos(0.1 * (double)k + i));
      fdata(ps.items[i]->grad)[k] = g;
      sumsq += (double)g * g;
    }
  double norm = -1;
  duet_err err = {0};
  /* Within the limit: nothing changes. */
  float before = fdata(c->grad)[12345];
  CHECK(duet_grad_clip(&ps, 1e6, &norm, &err) == 0);
  CHECK_NEAR(norm, sqrt(sumsq), 1e-12 * sqrt(sumsq));
  CHECK(fdata(c->grad)[12345] == before);
  /* The sum does not depend on the number of threads. */
  omp_set_num_threads(1);
  double s1t = duet_grad_sumsq(&ps);
  omp_set_num_threads(2);
  double s2t = duet_grad_sumsq(&ps);
  CHECK(s1t == s2t);
  /* Above the limit: scaled to exactly max_norm, directions kept. */
  float a0 = fdata(a->grad)[5], b0 = fdata(b->grad)[2];
  double max_norm = 0.25 * sqrt(sumsq);
  CHECK(duet_grad_clip(&ps, max_norm, &norm, &err) == 0);
  CHECK_NEAR(norm, sqrt(sumsq), 1e-12 * sqrt(sumsq));
  CHECK_NEAR(sqrt(duet_grad_sumsq(&ps)), max_norm, 1e-6 * max_norm);
  CHECK_NEAR(fdata(a->grad)[5], a0 * 0.25, 1e-7 * fabs(a0));
  CHECK_NEAR(fdata(b->grad)[2], b0 * 0.25, 1e-7 * fabs(b0));
  /* max_norm <= 0: measure only. */
  double n2 = 0;
  CHECK(duet_grad_clip(&ps, 0, &n2, &err) == 0 && fabs(n2 - max_norm) < 1e-6 * max_norm);
  /* Scaling helper. */
  duet_grad_scale(&ps, 0.5);
  CHECK_NEAR(fdata(a->grad)[5], a0 * 0.125, 1e-7 * fabs(a0));
  /* A NaN is reported with the parameter it is in, and nothing is scaled. */
  fdata(b->grad)[3] = NAN;
  float c0 = fdata(c->grad)[7];
  CHECK(duet_grad_clip(&ps, 1e-3, &norm, &err) == DUET_ENUMERIC);
  CHECK(isnan(norm));
  CHECK_MSG(strstr(err.msg, "NaN") && strstr(err.msg, "'b'"), "%s", err.msg);
  CHECK(fdata(c->grad)[7] == c0);
  fdata(b->grad)[3] = INFINITY;
  CHECK(duet_grad_clip(&ps, 1e-3, &norm, &err) == DUET_ENUMERIC && isinf(norm));
  CHECK_MSG(strstr(err.msg, "Inf") && strstr(err.msg, "'b'"), "%s", err.msg);
  duet_params_free(&ps);
}

static void test_schedules(void) {
  duet_err err = {0};
  duet_lr_schedule c = {DUET_LR_CONSTANT, 2e-4, 0, 4, 0};
  CHECK(duet_lr_schedule_check(&c, &err) == 0);
  CHECK(duet_lr_at(&c, 0) == 2e-4 * 1 / 4);
  CHECK(duet_lr_at(&c, 2) == 2e-4 * 3 / 4);
  CHECK(duet_lr_at(&c, 3) == 2e-4);
  CHECK(duet_lr_at(&c, 1000000) == 2e-4);
  duet_lr_schedule nw = {DUET_LR_CONSTANT, 1e-3, 0, 0, 0};
  CHECK(duet_lr_at(&nw, 0) == 1e-3);

  duet_lr_schedule s = {DUET_LR_COSINE, 1e-3, 1e-5, 10, 110};
  CHECK(duet_lr_schedule_check(&s, &err) == 0);
  CHECK_NEAR(duet_lr_at(&s, 0), 1e-4, 1e-18);
  CHECK_NEAR(duet_lr_at(&s, 4), 5e-4, 1e-18);
  CHECK_NEAR(duet_lr_at(&s, 9), 1e-3, 1e-18);
  CHECK_NEAR(duet_lr_at(&s, 10), 1e-3, 1e-18);
  CHECK_NEAR(duet_lr_at(&s, 35), 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + cos(M_PI / 4)), 1e-18);
  CHECK_NEAR(duet_lr_at(&s, 60), 1e-5 + (1e-3 - 1e-5) * 0.5, 1e-18);
  CHECK_NEAR(duet_lr_at(&s, 85), 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 - cos(M_PI / 4)), 1e-18);
  CHECK(duet_lr_at(&s, 110) == 1e-5);
  CHECK(duet_lr_at(&s, 5000) == 1e-5);
  CHECK(duet_lr_at(&s, -3) == duet_lr_at(&s, 0));
  /* Monotone after warmup. */
  int mono = 1;
  for (int k = 10; k < 120; k++) mono &= duet_lr_at(&s, k + 1) <= duet_lr_at(&s, k);
  CHECK(mono);

  duet_lr_schedule bad = {DUET_LR_COSINE, 1e-3, 1e-2, 0, 10};
  CHECK(duet_lr_schedule_check(&bad, &err) == DUET_EINVAL && strstr(err.msg, "min lr"));
  bad = (duet_lr_schedule){DUET_LR_COSINE, 1e-3, 0, 20, 10};
  CHECK(duet_lr_schedule_check(&bad, &err) == DUET_EINVAL && strstr(err.msg, "warmup"));
  bad = (duet_lr_schedule){DUET_LR_CONSTANT, -1, 0, 0, 0};
  CHECK(duet_lr_schedule_check(&bad, &err) == DUET_EINVAL);
  duet_lr_kind k;
  CHECK(duet_lr_kind_parse("cosine", &k, &err) == 0 && k == DUET_LR_COSINE);
  CHECK(duet_lr_kind_parse("linear", &k, &err) == DUET_EINVAL && strstr(err.msg, "linear"));
  CHECK(strcmp(duet_lr_kind_name(DUET_LR_CONSTANT), "constant") == 0);
}

static void test_ema(void) {
  duet_param_set ps;
  duet_params_init(&ps);
  int64_t s[1] = {4};
  duet_tensor *w = add(&ps, "w", 1, s, 1), *fz = add(&ps, "frozen", 1, s, 0);
  for (int k = 0; k < 4; k++) {
    fdata(w)[k] = (float)k;
    fdata(fz)[k] = 9.0f;
  }
  duet_ema ema;
  duet_err err = {0};
  const double d = 0.9;
  CHECK(duet_ema_init(&ema, &ps, d, &err) == 0);
  CHECK(ema.shadow[1] == NULL && duet_ema_weights(&ema, 1) == fz);
  /* Constant weights p after k updates from shadow s0: s = d^k s0 + (1 - d^k) p. */
  for (int k = 0; k < 4; k++) fdata(w)[k] = 10.0f + (float)k;
  for (int i = 0; i < 5; i++) CHECK(duet_ema_update(&ema, &err) == 0);
  for (int k = 0; k < 4; k++)
    CHECK_NEAR(fdata(ema.shadow[0])[k], pow(d, 5) * k + (1 - pow(d, 5)) * (10.0 + k), 1e-5);
  /* Changing weights p_j (j = 1..K): s = d^K s0 + sum_j (1 - d) d^(K - j) p_j. */
  double want[4];
  for (int k = 0; k < 4; k++) want[k] = fdata(ema.shadow[0])[k];
  for (int j = 1; j <= 6; j++) {
    for (int k = 0; k < 4; k++) fdata(w)[k] = (float)(j * j - k);
    CHECK(duet_ema_update(&ema, &err) == 0);
  }
  for (int k = 0; k < 4; k++) {
    double x = pow(d, 6) * want[k];
    for (int j = 1; j <= 6; j++) x += (1 - d) * pow(d, 6 - j) * (j * j - k);
    CHECK_NEAR(fdata(ema.shadow[0])[k], x, 1e-4);
  }
  CHECK_EQ_INT(ema.updates, 11);
  /* Swap in for evaluation and back: exact values both ways. */
  float train[4], avg[4];
  memcpy(train, w->data, sizeof train);
  memcpy(avg, ema.shadow[0]->data, sizeof avg);
  duet_ema_swap(&ema);
  CHECK(memcmp(w->data, avg, sizeof avg) == 0 && memcmp(ema.shadow[0]->data, train, sizeof train) == 0);
  CHECK(duet_ema_weights(&ema, 0) == w);
  CHECK(duet_ema_update(&ema, &err) == DUET_EINVAL && strstr(err.msg, "swapped"));
  duet_ema_swap(&ema);
  CHECK(memcmp(w->data, train, sizeof train) == 0 && memcmp(ema.shadow[0]->data, avg, sizeof avg) == 0);
  CHECK(duet_ema_index(&ema, "frozen") == 1 && duet_ema_index(&ema, "x") == -1);
  /* Copy out into another model: shadows for trainable weights, frozen ones as they are. */
  duet_param_set other;
  duet_params_init(&other);
  add(&other, "frozen", 1, s, 0);
  CHECK(duet_ema_copy_to(&ema, &other, &err) == DUET_EINVAL && strstr(err.msg, "'w'"));
  add(&other, "w", 1, s, 0);
  CHECK(duet_ema_copy_to(&ema, &other, &err) == 0);
  CHECK(memcmp(duet_params_find(&other, "w")->data, avg, sizeof avg) == 0);
  CHECK(fdata(duet_params_find(&other, "frozen"))[3] == 9.0f);
  duet_params_free(&other);
  duet_ema_free(&ema);
  CHECK(duet_ema_init(&ema, &ps, 1.5, &err) == DUET_EINVAL);
  duet_params_free(&ps);
}

/* Blocks over tensors of assorted sizes: every element is visited exactly once, by a block
 * of its own tensor of at most the block size, and tensors without elements are skipped; at
 * two threads and on one (below the threshold). */
typedef struct block_visits {
  int hits[4][9];
  int bad;
} block_visits;

static void count_block(void *ctx, int i, int64_t lo, int64_t len) {
  block_visits *v = ctx;
  if (len < 1 || len > 4 || lo % 4 != 0) {
#pragma omp atomic
    v->bad++;
  }
  for (int64_t k = lo; k < lo + len; k++) {
#pragma omp atomic
    v->hits[i][k]++;
  }
}

static void test_blocks_parallel(void) {
  int threads = omp_get_max_threads();
  omp_set_num_threads(2);
  duet_tensor a = {0}, b = {0}, d = {0};
  a.numel = 5, b.numel = 0, d.numel = 9;
  duet_tensor *ts[4] = {&a, NULL, &b, &d};
  for (int min = 0; min <= 100; min += 100) {
    block_visits v = {0};
    duet_blocks_parallel(ts, 4, 4, min, count_block, &v);
    CHECK(v.bad == 0);
    int ok = 1;
    for (int k = 0; k < 9; k++)
      ok &= v.hits[0][k] == (k < 5) && v.hits[1][k] == 0 && v.hits[2][k] == 0 && v.hits[3][k] == 1;
    CHECK_MSG(ok, "each element once (min_elems %d)", min);
  }
  omp_set_num_threads(threads);
}

/* The step over every parameter at once (one parallel loop over blocks) gives each element the
 * bits of duet_adamw_update_range on its own tensor, EMA the bits of its formula, and
 * zero_grad clears every gradient: tensors around the block sizes, a frozen one between,
 * at two threads. */
static void test_step_over_blocks(void) {
  int threads = omp_get_max_threads();
  omp_set_num_threads(2);
  duet_param_set ps;
  duet_params_init(&ps);
  const int64_t sizes[6] = {1, 8191, 8192, 3, 8193, 40000};
  const int trainable[6] = {1, 1, 1, 0, 1, 1};
  char name[16];
  for (int i = 0; i < 6; i++) {
    snprintf(name, sizeof name, "p%d", i);
    add(&ps, name, 1, &sizes[i], trainable[i]);
  }
  /* The same values in a second set, updated tensor by tensor. */
  float *p0[6], *m0[6], *v0[6], *e0[6];
  for (int i = 0; i < 6; i++) {
    duet_tensor *t = ps.items[i];
    size_t n = (size_t)t->numel;
    p0[i] = calloc(n, 4), m0[i] = calloc(n, 4), v0[i] = calloc(n, 4), e0[i] = calloc(n, 4);
    for (int64_t k = 0; k < t->numel; k++) {
      e0[i][k] = p0[i][k] = fdata(t)[k] = (float)(0.01 * (double)k - 0.3 * i);
      if (t->grad) fdata(t->grad)[k] = (float)grad_at(i, k, 0);
    }
  }
  duet_adamw_config cfg = duet_adamw_defaults();
  cfg.weight_decay = 0.1;
  duet_adamw opt;
  duet_ema ema;
  duet_err err = {0};
  CHECK(duet_adamw_init(&opt, &ps, &cfg, only_named, "p4", &err) == 0);
  CHECK(duet_ema_init(&ema, &ps, 0.75, &err) == 0);
  for (int step = 1; step <= 2; step++) {
    CHECK(duet_adamw_step(&opt, 1e-2, &err) == 0);
    CHECK(duet_ema_update(&ema, &err) == 0);
    for (int i = 0; i < 6; i++) {
      if (!trainable[i]) continue;
      duet_adamw_hparams h = duet_adamw_hparams_make(&cfg, 1e-2, step, i == 4);
      duet_adamw_update_range(p0[i], fdata(ps.items[i]->grad), m0[i], v0[i], 0, sizes[i], &h);
      for (int64_t k = 0; k < sizes[i]; k++) e0[i][k] = 0.75f * e0[i][k] + 0.25f * p0[i][k];
    }
  }
  for (int i = 0; i < 6; i++) {
    duet_tensor *t = ps.items[i];
    size_t bytes = (size_t)t->numel * 4;
    CHECK_MSG(memcmp(t->data, p0[i], bytes) == 0, "p%d", i);
    if (!trainable[i]) continue;
    CHECK_MSG(memcmp(opt.m[i]->data, m0[i], bytes) == 0 && memcmp(opt.v[i]->data, v0[i], bytes) == 0, "p%d", i);
    CHECK_MSG(memcmp(ema.shadow[i]->data, e0[i], bytes) == 0, "p%d: EMA", i);
  }
  duet_params_zero_grad(&ps);
  for (int i = 0; i < 6; i++) {
    duet_tensor *g = ps.items[i]->grad;
    if (!g) continue;
    int nonzero = 0;
    for (int64_t k = 0; k < g->numel; k++) nonzero += fdata(g)[k] != 0.0f;
    CHECK_MSG(nonzero == 0, "p%d: %d gradient values left", i, nonzero);
  }
  for (int i = 0; i < 6; i++) free(p0[i]), free(m0[i]), free(v0[i]), free(e0[i]);
  duet_ema_free(&ema);
  duet_adamw_free(&opt);
  duet_params_free(&ps);
  omp_set_num_threads(threads);
}

int main(void) {
  test_default_decay_rule();
  test_first_step_by_hand();
  test_several_steps();
  test_update_range_shards();
  test_update_range_is_elementwise();
  test_refusals();
  test_clip();
  test_schedules();
  test_ema();
  test_blocks_parallel();
  test_step_over_blocks();
  return test_finish("core_optim");
}
