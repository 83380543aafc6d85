/* Multi-head attention and rotary positions: gradient checks in f64, forward values against a
 * naive per-head softmax(q k^T / sqrt(Dh)) v, masking, memory kept for backward, the rotary
 * contract (norms, relative positions, time alignment of 3D and 1D streams), f32 against
 * f64, and error reporting. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "gradcheck.h"
#include "testlib.h"


static void check_op(const char *name, gc_build_fn build, void *ctx, duet_tensor *const *in, int n,
                     const gc_options *o) {
  CHECK_MSG(gradcheck(name, build, ctx, in, n, o) == 0, "%s", name);
  gc_check_f32_f64(name, build, ctx, in, n);
}

/* ---- attention ---- */

typedef struct attn_ctx {
  int heads;
  duet_tensor *mask;
} attn_ctx;

static duet_tensor *b_attention(duet_graph *g, duet_tensor *const *x, void *c) {
  attn_ctx *a = c;
  return duet_attention(g, x[0], x[1], x[2], a->mask, a->heads);
}
/* One tensor as q, k and v: the three gradient contributions land in one buffer. */
static duet_tensor *b_attention_shared(duet_graph *g, duet_tensor *const *x, void *c) {
  attn_ctx *a = c;
  return duet_attention(g, x[0], x[0], x[0], a->mask, a->heads);
}

/* softmax(q k^T / sqrt(Dh)) v per batch and head, written out loop by loop. */
static void naive_attention(const duet_tensor *q, const duet_tensor *k, const duet_tensor *v,
                            const duet_tensor *mask, int H, double *o) {
  int64_t B = q->shape[0], Lq = q->shape[1], Lk = k->shape[1], C = q->shape[2], Dh = C / H;
  const double *pq = q->data, *pk = k->data, *pv = v->data;
  double *s = malloc(sizeof *s * (size_t)(Lk ? Lk : 1));
  for (int64_t b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int64_t i = 0; i < Lq; i++) {
        double mx = -INFINITY, z = 0;
        for (int64_t j = 0; j < Lk; j++) {
          s[j] = -INFINITY;
          if (mask && !((const uint8_t *)mask->data)[b * Lk + j]) continue;
          double d = 0;
          for (int64_t c = 0; c < Dh; c++) d += pq[(b * Lq + i) * C + h * Dh + c] * pk[(b * Lk + j) * C + h * Dh + c];
          s[j] = d / sqrt((double)Dh);
          mx = fmax(mx, s[j]);
        }
        for (int64_t j = 0; j < Lk; j++) z += s[j] == -INFINITY ? 0 : exp(s[j] - mx);
        for (int64_t c = 0; c < Dh; c++) {
          double acc = 0;
          for (int64_t j = 0; j < Lk; j++)
            if (s[j] != -INFINITY) acc += exp(s[j] - mx) / z * pv[(b * Lk + j) * C + h * Dh + c];
          o[(b * Lq + i) * C + h * Dh + c] = z > 0 ? acc : 0;
        }
      }
  free(s);
}

/* u8 [B, Lk]: batch 0 drops every third key, batch 1 keeps all, batch 2 (when present) none,
 * so all of batch 2's query rows are fully masked. */
static duet_tensor *make_mask(int64_t B, int64_t Lk) {
  int64_t shape[2] = {B, Lk};
  duet_tensor *m = duet_tensor_new(DUET_U8, 2, shape, NULL);
  uint8_t *p = m->data;
  for (int64_t b = 0; b < B; b++)
    for (int64_t j = 0; j < Lk; j++) p[b * Lk + j] = b == 0 ? (j % 3 != 1) : b == 1;
  return m;
}

typedef struct attn_case {
  const char *name;
  int64_t B, Lq, Lk;
  int H, Dh, masked;
} attn_case;

static void attention_case(const attn_case *tc, uint64_t seed) {
  int64_t sq[3] = {tc->B, tc->Lq, (int64_t)tc->H * tc->Dh}, sk[3] = {tc->B, tc->Lk, sq[2]};
  duet_tensor *in[3] = {gc_rand(3, sq, seed, -1.5, 1.5), gc_rand(3, sk, seed + 1, -1.5, 1.5),
                        gc_rand(3, sk, seed + 2, -1, 1)};
  attn_ctx ctx = {tc->H, tc->masked ? make_mask(tc->B, tc->Lk) : NULL};

  /* Forward against the naive formula. */
  duet_graph g;
  duet_graph_init(&g, 0);
  duet_tensor *o = duet_attention(&g, in[0], in[1], in[2], ctx.mask, tc->H);
  CHECK_MSG(o != NULL, "%s: %s", tc->name, g.err.msg);
  if (o) {
    double *ref = malloc(sizeof *ref * (size_t)o->numel), worst = 0;
    naive_attention(in[0], in[1], in[2], ctx.mask, tc->H, ref);
    for (int64_t i = 0; i < o->numel; i++) worst = fmax(worst, fabs(duet_tensor_get(o, i) - ref[i]));
    CHECK_MSG(worst < 1e-12, "%s: forward differs from naive attention by %.3g", tc->name, worst);
    free(ref);
  }
  duet_graph_free(&g);

  gc_options opt = {.max_elements = 120};
  check_op(tc->name, b_attention, &ctx, in, 3, &opt);
  duet_tensor_free(ctx.mask);
  gc_free(in, 3);
}

/* Fully masked rows give exact zeros and send exactly zero gradient anywhere; masked keys
 * receive none either. */
static void test_masked_gradients(void) {
  int64_t B = 3, Lq = 4, Lk = 5, H = 2, Dh = 3, C = H * Dh;
  int64_t sq[3] = {B, Lq, C}, sk[3] = {B, Lk, C};
  duet_tensor *q = gc_rand(3, sq, 70, -1, 1), *k = gc_rand(3, sk, 71, -1, 1), *v = gc_rand(3, sk, 72, -1, 1);
  duet_tensor *mask = make_mask(B, Lk);
  duet_tensor *ts[3] = {q, k, v};
  for (int i = 0; i < 3; i++) ts[i]->grad = duet_tensor_new(DUET_F64, 3, ts[i]->shape, NULL);
  duet_graph g;
  duet_graph_init(&g, 0);
  duet_tensor *o = duet_attention(&g, q, k, v, mask, (int)H);
  duet_tensor *r = o ? duet_graph_new_like(&g, o) : NULL;
  for (int64_t i = 0; r && i < r->numel; i++) duet_tensor_set(r, i, 0.5 + (double)(i % 7));
  duet_tensor *loss = duet_sum(&g, duet_mul(&g, o, r));
  duet_err err;
  CHECK(loss && duet_backward(&g, loss, &err) == DUET_OK);
  const uint8_t *pm = mask->data;
  double nonzero_masked = 0, nonzero_kept = 0;
  for (int64_t i = 0; o && i < Lq * C; i++) {
    CHECK(duet_tensor_get(o, 2 * Lq * C + i) == 0);
    CHECK(duet_tensor_get(q->grad, 2 * Lq * C + i) == 0);
  }
  for (int64_t b = 0; b < B; b++)
    for (int64_t j = 0; j < Lk; j++)
      for (int64_t c = 0; c < C; c++) {
        int64_t e = (b * Lk + j) * C + c;
        double gk = fabs(duet_tensor_get(k->grad, e)) + fabs(duet_tensor_get(v->grad, e));
        if (pm[b * Lk + j]) nonzero_kept += gk;
        else nonzero_masked += gk;
      }
  CHECK(nonzero_masked == 0);
  CHECK(nonzero_kept > 0);
  duet_graph_free(&g);
  duet_tensor_free(mask);
  gc_free(ts, 3);
}

/* The backward keeps one log-sum-exp per (batch, head, query), not the probabilities: the
 * arena grows by that and the node only. */
static void test_attention_memory(void) {
  int64_t B = 2, L = 96, H = 2, C = 16;
  int64_t s[3] = {B, L, C};
  duet_tensor *q = gc_rand(3, s, 80, -1, 1);
  duet_graph g;
  duet_graph_init(&g, 0);
  duet_graph_set_grad_enabled(&g, 0);
  size_t before = g.arena.used;
  CHECK(duet_attention(&g, q, q, q, NULL, (int)H) != NULL);
  size_t no_grad = g.arena.used - before;
  duet_graph_set_grad_enabled(&g, 1);
  before = g.arena.used;
  int64_t nodes = g.n_nodes;
  CHECK(duet_attention(&g, q, q, q, NULL, (int)H) != NULL);
  size_t with_grad = g.arena.used - before;
  size_t lse_bytes = (size_t)(B * H * L) * sizeof(double);
  CHECK(g.n_nodes == nodes + 1);
  CHECK_MSG(with_grad - no_grad <= lse_bytes + 1024, "backward keeps %zu bytes, lse is %zu",
            with_grad - no_grad, lse_bytes);
  CHECK(with_grad - no_grad < (size_t)(B * H * L * L) * sizeof(double) / 8);
  duet_graph_free(&g);
  gc_free(&q, 1);
}

/* Forward and gradients of loss = sum(o * r), written out loop by loop in double:
 * P = softmax(s), dv_j = sum_i P_ij r_i, dP_ij = r_i . v_j, D_i = sum_j P_ij dP_ij,
 * dS = P (dP - D), dq_i = sum_j dS_ij k_j / sqrt(Dh), dk_j = sum_i dS_ij q_i / sqrt(Dh). */
typedef struct attn_ref_dims {
  int64_t B, Lq, Lk, H, Dh;
} attn_ref_dims;

static void naive_attention_grads(const attn_ref_dims *d, const double *q, const double *k,
                                  const double *v, const uint8_t *mask, const double *r,
                                  double *o, double *dq, double *dk, double *dv) {
  int64_t C = d->H * d->Dh, Lk = d->Lk;
  double sc = 1 / sqrt((double)d->Dh);
  size_t row = sizeof(double) * (size_t)(Lk ? Lk : 1);
  double *p = malloc(row), *ds = malloc(row);
  memset(dq, 0, sizeof *dq * (size_t)(d->B * d->Lq * C));
  memset(dk, 0, sizeof *dk * (size_t)(d->B * Lk * C));
  memset(dv, 0, sizeof *dv * (size_t)(d->B * Lk * C));
  for (int64_t b = 0; b < d->B; b++)
    for (int64_t h = 0; h < d->H; h++)
      for (int64_t i = 0; i < d->Lq; i++) {
        int64_t qi0 = (b * d->Lq + i) * C + h * d->Dh;
        const double *qi = q + qi0, *ri = r + qi0;
        double mx = -INFINITY, z = 0;
        for (int64_t j = 0; j < Lk; j++) {
          p[j] = -INFINITY;
          if (mask && !mask[b * Lk + j]) continue;
          double dot = 0;
          for (int64_t c = 0; c < d->Dh; c++) dot += qi[c] * k[(b * Lk + j) * C + h * d->Dh + c];
          p[j] = dot * sc;
          mx = fmax(mx, p[j]);
        }
        for (int64_t j = 0; j < Lk; j++) z += p[j] == -INFINITY ? 0 : exp(p[j] - mx);
        for (int64_t j = 0; j < Lk; j++) p[j] = p[j] == -INFINITY ? 0 : exp(p[j] - mx) / z;
        double D = 0;
        for (int64_t j = 0; j < Lk; j++) {
          double dp = 0;
          for (int64_t c = 0; c < d->Dh; c++) dp += ri[c] * v[(b * Lk + j) * C + h * d->Dh + c];
          ds[j] = dp;
          D += p[j] * dp;
        }
        for (int64_t c = 0; c < d->Dh; c++) {
          double acc = 0;
          for (int64_t j = 0; j < Lk; j++) acc += p[j] * v[(b * Lk + j) * C + h * d->Dh + c];
          o[(b * d->Lq + i) * C + h * d->Dh + c] = acc;
        }
        for (int64_t j = 0; j < Lk; j++) {
          double s = p[j] * (ds[j] - D) * sc;
          int64_t kj = (b * Lk + j) * C + h * d->Dh;
          for (int64_t c = 0; c < d->Dh; c++) {
            dq[qi0 + c] += s * k[kj + c];
            dk[kj + c] += s * q[qi0 + c];
            dv[kj + c] += p[j] * ri[c];
          }
        }
      }
  free(p);
  free(ds);
}

/* Runs attention in dtype dt on the values of src (q, k, v) and backward of sum(o * r);
 * out receives o, dq, dk, dv as doubles (numel of q, k, v, v). Returns 0 on failure. */
static int attention_run(duet_dtype dt, duet_tensor *const *src, duet_tensor *mask, int H,
                         const double *r, double *const *out) {
  duet_tensor *in[3];
  for (int i = 0; i < 3; i++) {
    in[i] = duet_tensor_new(dt, 3, src[i]->shape, NULL);
    for (int64_t e = 0; e < src[i]->numel; e++)
      duet_tensor_set(in[i], e, duet_tensor_get(src[i], e));
    in[i]->requires_grad = 1;
    in[i]->grad = duet_tensor_new(dt, 3, src[i]->shape, NULL);
  }
  duet_graph g;
  duet_graph_init(&g, 0);
  duet_tensor *o = duet_attention(&g, in[0], in[1], in[2], mask, H);
  duet_tensor *R = o ? duet_graph_new_like(&g, o) : NULL;
  for (int64_t e = 0; R && e < R->numel; e++) duet_tensor_set(R, e, r[e]);
  duet_err err;
  duet_tensor *loss = R ? duet_sum(&g, duet_mul(&g, o, R)) : NULL;
  int ok = loss && duet_backward(&g, loss, &err) == DUET_OK;
  CHECK_MSG(ok, "attention run (%s) failed: %s", duet_dtype_name(dt), g.err.msg);
  if (ok) {
    for (int64_t e = 0; e < o->numel; e++) out[0][e] = duet_tensor_get(o, e);
    for (int i = 0; i < 3; i++)
      for (int64_t e = 0; e < in[i]->numel; e++) out[1 + i][e] = duet_tensor_get(in[i]->grad, e);
  }
  duet_graph_free(&g);
  gc_free(in, 3);
  return ok;
}

static double rel_err(const double *a, const double *ref, int64_t n) {
  double d = 0, m = 0;
  for (int64_t i = 0; i < n; i++) {
    d = fmax(d, fabs(a[i] - ref[i]));
    m = fmax(m, fabs(ref[i]));
  }
  return d / (m > 0 ? m : 1);
}

/* A cousin of the bench shapes, large enough for several query blocks and key tiles (none of
 * them full at L = 300), the threaded path and a mask: output and the three gradients against
 * the loop-by-loop reference, in f64 and f32; then the f32 run repeated at 1, 2 and 3 threads
 * must give the bits of the first. Inputs are rounded to f32 first, so both dtypes see one
 * problem. */
static void test_attention_reference(void) {
  attn_ref_dims d = {2, 300, 300, 3, 32};
  int64_t C = d.H * d.Dh, n = d.B * d.Lq * C, shape[3] = {d.B, d.Lq, C};
  duet_tensor *src[3] = {gc_rand(3, shape, 200, -1.5, 1.5), gc_rand(3, shape, 201, -1.5, 1.5),
                         gc_rand(3, shape, 202, -1, 1)};
  duet_tensor *mask = make_mask(d.B, d.Lk);
  /* x: q, k, v; ref; run: f64, f32, f32 at 1, 2, 3 threads; r: 28 arrays of n. */
  double *buf = malloc(sizeof *buf * (size_t)(28 * n));
  double *x[3], *ref[4], *run[5][4], *r = buf + 27 * n;
  for (int i = 0; i < 3; i++) {
    x[i] = buf + i * n;
    for (int64_t e = 0; e < n; e++) {
      double v = (float)duet_tensor_get(src[i], e);
      duet_tensor_set(src[i], e, v);
      x[i][e] = v;
    }
  }
  for (int i = 0; i < 4; i++) ref[i] = buf + (3 + i) * n;
  for (int j = 0; j < 5; j++)
    for (int i = 0; i < 4; i++) run[j][i] = buf + (7 + 4 * j + i) * n;
  duet_rng rng = duet_rng_make(203, 0x44);
  for (int64_t e = 0; e < n; e++) r[e] = (float)(duet_rng_uniform_f64(&rng) * 2 - 1);
  naive_attention_grads(&d, x[0], x[1], x[2], mask->data, r, ref[0], ref[1], ref[2], ref[3]);

  static const char *const what[4] = {"output", "dq", "dk", "dv"};
  int threads = omp_get_max_threads();
  const duet_dtype dts[2] = {DUET_F64, DUET_F32};
  for (int t = 0; t < 2; t++) {
    if (!attention_run(dts[t], src, mask, (int)d.H, r, run[t])) continue;
    double tol = dts[t] == DUET_F64 ? 1e-12 : 1e-5;
    for (int i = 0; i < 4; i++) {
      double e = rel_err(run[t][i], ref[i], n);
      CHECK_MSG(e < tol, "attention %s %s vs reference: relative error %.3g",
                duet_dtype_name(dts[t]), what[i], e);
      printf("attention reference %s %-6s rel err %.2e\n", duet_dtype_name(dts[t]), what[i], e);
    }
  }
  for (int nt = 1; nt <= 3; nt++) {
    omp_set_num_threads(nt);
    if (!attention_run(DUET_F32, src, mask, (int)d.H, r, run[1 + nt])) continue;
    for (int i = 0; i < 4; i++)
      CHECK_MSG(memcmp(run[1 + nt][i], run[1][i], sizeof(double) * (size_t)n) == 0,
                "attention f32 %s at %d threads differs from %d threads", what[i], nt, threads);
  }
  omp_set_num_threads(threads);
  free(buf);
  duet_tensor_free(mask);
  gc_free(src, 3);
}

/* Score gaps far beyond the range of f32 exp (down to -195 from a row's maximum, where exp
 * underflows): the f32 kernel must give the reference's near-one-hot rows, with nothing but
 * zeros from the tail. */
static void test_attention_f32_wide_scores(void) {
  attn_ref_dims d = {1, 3, 40, 1, 4};
  int64_t sq[3] = {1, 3, 4}, sk[3] = {1, 40, 4}, n = 40 * 4;
  duet_tensor *src[3] = {duet_tensor_new(DUET_F64, 3, sq, NULL),
                         duet_tensor_new(DUET_F64, 3, sk, NULL), gc_rand(3, sk, 210, -1, 1)};
  const double qv[3] = {20, -20, 0.5};
  for (int i = 0; i < 3; i++) duet_tensor_set(src[0], i * 4, qv[i]);
  for (int j = 0; j < 40; j++) {
    duet_tensor_set(src[1], j * 4, (j - 20) * 0.5);
    duet_tensor_set(src[1], j * 4 + 1, 0.25 * (j % 3));
  }
  for (int64_t e = 0; e < n; e++) duet_tensor_set(src[2], e, (float)duet_tensor_get(src[2], e));
  double *buf = malloc(sizeof *buf * (size_t)(12 * n)), *x[3], *ref[4], *got[4], r[12];
  for (int i = 0; i < 3; i++) {
    x[i] = buf + i * n;
    for (int64_t e = 0; e < src[i]->numel; e++) x[i][e] = duet_tensor_get(src[i], e);
  }
  for (int i = 0; i < 4; i++) {
    ref[i] = buf + (3 + i) * n;
    got[i] = buf + (7 + i) * n;
  }
  for (int e = 0; e < 12; e++) r[e] = (e % 5) * 0.25 - 0.5;
  naive_attention_grads(&d, x[0], x[1], x[2], NULL, r, ref[0], ref[1], ref[2], ref[3]);
  if (attention_run(DUET_F32, src, NULL, 1, r, got)) {
    /* The gradients go through dP - D, which nearly cancels in a near-one-hot row: f32 keeps
     * about 5 digits of them there (the earlier scalar kernel kept the same). */
    const int64_t len[4] = {12, 12, n, n};
    static const char *const what[4] = {"output", "dq", "dk", "dv"};
    for (int i = 0; i < 4; i++) {
      double e = rel_err(got[i], ref[i], len[i]), tol = i == 0 ? 1e-6 : 1e-4;
      CHECK_MSG(e < tol, "attention f32 %s with wide score gaps: relative error %.3g", what[i], e);
    }
  }
  free(buf);
  gc_free(src, 3);
}

/* ---- rotary positions ---- */

typedef struct rope_ctx {
  int heads;
  duet_tensor *pos;
  duet_rope_spec spec;
} rope_ctx;

static duet_tensor *b_rope(duet_graph *g, duet_tensor *const *x, void *c) {
  rope_ctx *r = c;
  return duet_rope(g, x[0], r->pos, r->heads, &r->spec);
}

/* y = rope(x) for one token of one head of dh channels at position p. */
static void rope_one(const double *x, int dh, const double *p, const duet_rope_spec *spec,
                     double *y) {
  duet_graph g;
  duet_graph_init(&g, 0);
  int64_t sx[3] = {1, 1, dh}, sp[2] = {1, spec->n_axes};
  duet_tensor *tx = duet_graph_from_host(&g, DUET_F64, DUET_CPU, 3, sx, x);
  duet_tensor *tp = duet_graph_from_host(&g, DUET_F64, DUET_CPU, 2, sp, p);
  duet_tensor *ty = duet_rope(&g, tx, tp, 1, spec);
  CHECK_MSG(ty != NULL, "rope_one: %s", g.err.msg);
  for (int i = 0; i < dh; i++) y[i] = ty ? duet_tensor_get(ty, i) : NAN;
  duet_graph_free(&g);
}

static double dot(const double *a, const double *b, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

static void rand_vec(double *x, int n, uint64_t seed) {
  duet_rng r = duet_rng_make(seed, 5);
  for (int i = 0; i < n; i++) x[i] = duet_rng_uniform_f64(&r) * 2 - 1;
}

static void test_rope_values(void) {
  const duet_rope_spec s3 = {3, {2, 3, 3}, 10000.0};
  enum { DH = 16 };
  double q[DH], k[DH], yq[DH], yk[DH];
  rand_vec(q, DH, 1);
  rand_vec(k, DH, 2);

  /* The contract written out: pair j of axis a rotates by pos[a] * theta^(-j / pairs_a). */
  double p[3] = {1.37, -2.5, 40.25};
  rope_one(q, DH, p, &s3, yq);
  for (int a = 0, pair = 0; a < 3; a++)
    for (int j = 0; j < s3.pairs_per_axis[a]; j++, pair++) {
      double ang = p[a] * pow(s3.theta, -(double)j / s3.pairs_per_axis[a]);
      double x0 = q[2 * pair], x1 = q[2 * pair + 1];
      CHECK_NEAR(yq[2 * pair], x0 * cos(ang) - x1 * sin(ang), 1e-14);
      CHECK_NEAR(yq[2 * pair + 1], x0 * sin(ang) + x1 * cos(ang), 1e-14);
      /* A rotation keeps each pair's length. */
      CHECK_NEAR(hypot(yq[2 * pair], yq[2 * pair + 1]), hypot(x0, x1), 1e-14);
    }
  /* The CPU kernel keeps the sines and cosines of recent positions and finds them by value:
   * more distinct positions than it keeps, each (at the same arena address, one graph after
   * another) rotated by its own angles, then the first ones again after they were replaced. */
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < 12; i++) {
      double pi[3] = {0.7 * i, -1.0 * i, 3.0 + i};
      rope_one(q, DH, pi, &s3, yq);
      double ang = pi[0], x0 = q[0], x1 = q[1];
      CHECK_NEAR(yq[0], x0 * cos(ang) - x1 * sin(ang), 1e-14);
      ang = pi[2]; /* axis 2's first pair: pair 5 */
      CHECK_NEAR(yq[11], q[10] * sin(ang) + q[11] * cos(ang), 1e-14);
    }
  double zero[3] = {0, 0, 0};
  rope_one(q, DH, zero, &s3, yq);
  for (int i = 0; i < DH; i++) CHECK(yq[i] == q[i]);

  /* <rope(q, p1), rope(k, p2)> depends on p1 - p2 only, per axis and jointly, for
   * non-integer shifts; and it does depend on p1 - p2. */
  double p1[3] = {0.3, 7.1, -1.9}, p2[3] = {2.45, -0.6, 3.3};
  rope_one(q, DH, p1, &s3, yq);
  rope_one(k, DH, p2, &s3, yk);
  double base = dot(yq, yk, DH);
  for (int a = 0; a <= 3; a++) { /* a == 3: every axis shifted at once */
    double s1[3], s2[3];
    for (int i = 0; i < 3; i++) {
      double d = (a == 3 || a == i) ? 2.718 + i : 0;
      s1[i] = p1[i] + d;
      s2[i] = p2[i] + d;
    }
    rope_one(q, DH, s1, &s3, yq);
    rope_one(k, DH, s2, &s3, yk);
    CHECK_NEAR(dot(yq, yk, DH), base, 1e-12);
    s1[a % 3] += 0.5; /* now p1 - p2 changed on one axis */
    rope_one(q, DH, s1, &s3, yq);
    CHECK(fabs(dot(yq, yk, DH) - base) > 1e-4);
  }

  /* Time alignment: a video token (3D, time pairs first) and an audio token (1D) at the same
   * time get the same rotation on their time pairs when the time axis has the same pairs and
   * theta, even though their heads have different widths; at different times they do not. */
  const duet_rope_spec s1d = {1, {2}, 10000.0};
  double audio[4], ya[4], t[1] = {1.37}, pv[3] = {1.37, 2.5, 0.25};
  memcpy(audio, q, sizeof audio);
  rope_one(q, DH, pv, &s3, yq);
  rope_one(audio, 4, t, &s1d, ya);
  for (int i = 0; i < 4; i++) CHECK_NEAR(yq[i], ya[i], 1e-15);
  t[0] = 1.37 + 1.0 / 16;
  rope_one(audio, 4, t, &s1d, ya);
  CHECK(fabs(yq[0] - ya[0]) + fabs(yq[1] - ya[1]) > 1e-3);
}

static void test_rope_norms(void) {
  /* Per-head norms are kept for every token of a multi-head, per-sample-position input. */
  int64_t sx[3] = {2, 5, 3 * 8}, sp[3] = {2, 5, 3};
  duet_tensor *x = gc_rand(3, sx, 90, -1, 1), *pos = gc_rand(3, sp, 91, -20, 20);
  duet_rope_spec spec = {3, {2, 1, 1}, 100.0};
  duet_graph g;
  duet_graph_init(&g, 0);
  duet_tensor *y = duet_rope(&g, x, pos, 3, &spec);
  CHECK(y != NULL);
  for (int64_t t = 0; y && t < 10; t++)
    for (int h = 0; h < 3; h++) {
      double nx = 0, ny = 0;
      for (int c = 0; c < 8; c++) {
        nx += pow(duet_tensor_get(x, t * 24 + h * 8 + c), 2);
        ny += pow(duet_tensor_get(y, t * 24 + h * 8 + c), 2);
      }
      CHECK_NEAR(ny, nx, 1e-13);
    }
  /* Positions get no gradient and do not make the output require one. */
  x->requires_grad = 0;
  y = duet_rope(&g, x, pos, 3, &spec);
  CHECK(y && !y->requires_grad);
  duet_graph_free(&g);
  duet_tensor *all[2] = {x, pos};
  gc_free(all, 2);
}

static void test_errors(void) {
  duet_graph g;
  duet_graph_init(&g, 0);
  int64_t s[3] = {1, 3, 10}, sk[3] = {2, 3, 10}, sm[2] = {1, 3}, sp[2] = {3, 1};
  duet_tensor *x = duet_tensor_new(DUET_F64, 3, s, NULL), *x2 = duet_tensor_new(DUET_F64, 3, sk, NULL);
  duet_tensor *m = duet_tensor_new(DUET_F64, 2, sm, NULL), *p = duet_tensor_new(DUET_F64, 2, sp, NULL);
  CHECK(duet_attention(&g, x, x, x, NULL, 3) == NULL);
  CHECK(strstr(g.err.msg, "attention") && strstr(g.err.msg, "[1,3,10]") && strstr(g.err.msg, "3 heads"));
  duet_graph_reset(&g);
  CHECK(duet_attention(&g, x, x2, x2, NULL, 2) == NULL && strstr(g.err.msg, "[2,3,10]"));
  duet_graph_reset(&g);
  CHECK(duet_attention(&g, x, x, x, m, 2) == NULL && strstr(g.err.msg, "key mask"));
  duet_graph_reset(&g);
  /* x8 [1, 3, 8] in 2 heads: Dh = 4, two pairs. */
  int64_t s8[3] = {1, 3, 8};
  duet_tensor *x8 = duet_tensor_new(DUET_F64, 3, s8, NULL);
  duet_rope_spec bad = {1, {4}, 10000}, two = {2, {1, 1}, 10000}, one = {1, {2}, 10000};
  CHECK(duet_rope(&g, x8, p, 2, &bad) == NULL && strstr(g.err.msg, "rope") && strstr(g.err.msg, "pairs"));
  duet_graph_reset(&g);
  CHECK(duet_rope(&g, x, p, 2, &one) == NULL && strstr(g.err.msg, "even")); /* Dh = 5 */
  duet_graph_reset(&g);
  CHECK(duet_rope(&g, x8, p, 2, &two) == NULL && strstr(g.err.msg, "positions") && strstr(g.err.msg, "[3,1]"));
  CHECK(duet_attention(&g, x, x, x, NULL, 1) == NULL); /* sticky */
  duet_graph_reset(&g);
  CHECK(duet_rope(&g, x8, p, 2, &one) != NULL && duet_graph_ok(&g));
  /* An axis may own no pair: its positions are read and ignored. */
  int64_t sp2[2] = {3, 2};
  duet_tensor *p2 = duet_graph_zeros(&g, DUET_F64, DUET_CPU, 2, sp2);
  duet_rope_spec idle = {2, {2, 0}, 10000};
  CHECK(duet_rope(&g, x8, p2, 2, &idle) != NULL && duet_graph_ok(&g));
  /* No keys at all: every query row is fully masked. */
  int64_t s0[3] = {1, 0, 10};
  duet_tensor *k0 = duet_graph_zeros(&g, DUET_F64, DUET_CPU, 3, s0);
  duet_tensor *o0 = duet_attention(&g, x, k0, k0, NULL, 2);
  CHECK(o0 != NULL);
  for (int64_t i = 0; o0 && i < o0->numel; i++) CHECK(duet_tensor_get(o0, i) == 0);
  duet_graph_free(&g);
  duet_tensor *all[5] = {x, x2, m, p, x8};
  gc_free(all, 5);
}

int main(void) {
  const attn_case cases[] = {
      {"attention self H=3", 2, 5, 5, 3, 4, 0},
      {"attention cross Lq!=Lk masked", 3, 7, 4, 2, 3, 1},
      {"attention multi-block threaded", 2, 37, 70, 2, 5, 1},
      {"attention one key", 1, 3, 1, 2, 2, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) attention_case(&cases[i], 100 + 10 * i);
  {
    int64_t s[3] = {2, 6, 2 * 3};
    duet_tensor *x[1] = {gc_rand(3, s, 150, -1.5, 1.5)};
    attn_ctx ctx = {2, make_mask(2, 6)};
    check_op("attention q=k=v shared", b_attention_shared, &ctx, x, 1, NULL);
    duet_tensor_free(ctx.mask);
    gc_free(x, 1);
  }
  test_masked_gradients();
  test_attention_memory();
  test_attention_reference();
  test_attention_f32_wide_scores();

  test_rope_values();
  test_rope_norms();
  {
    int64_t sx[3] = {2, 5, 2 * 6}, sp[2] = {5, 1};
    duet_tensor *x[1] = {gc_rand(3, sx, 160, -1, 1)};
    rope_ctx ctx = {2, gc_rand(2, sp, 161, 0, 10), {1, {3}, 10000.0}};
    ctx.pos->requires_grad = 0;
    check_op("rope 1D shared positions", b_rope, &ctx, x, 1, NULL);
    gc_free(x, 1);
    gc_free(&ctx.pos, 1);
  }
  {
    int64_t sx[3] = {2, 6, 3 * 8}, sp[3] = {2, 6, 3};
    duet_tensor *x[1] = {gc_rand(3, sx, 170, -1, 1)};
    /* f32 positions under an f64 x: the position dtype is independent. */
    duet_tensor *p64 = gc_rand(3, sp, 171, -5, 5);
    rope_ctx ctx = {3, duet_tensor_new(DUET_F32, 3, sp, NULL), {3, {2, 1, 1}, 100.0}};
    for (int64_t i = 0; i < p64->numel; i++) duet_tensor_set(ctx.pos, i, duet_tensor_get(p64, i));
    check_op("rope 3D per-sample f32 positions", b_rope, &ctx, x, 1, NULL);
    gc_free(x, 1);
    gc_free(&p64, 1);
    duet_tensor_free(ctx.pos);
  }
  {
    int64_t sx[3] = {1, 700, 4 * 16}, sp[2] = {700, 3};
    duet_tensor *x[1] = {gc_rand(3, sx, 180, -1, 1)};
    rope_ctx ctx = {4, gc_rand(2, sp, 181, 0, 30), {3, {4, 2, 2}, 10000.0}};
    ctx.pos->requires_grad = 0;
    gc_options opt = {.h = 1e-4, .max_elements = 60};
    check_op("rope 3D threaded", b_rope, &ctx, x, 1, &opt);
    gc_free(x, 1);
    gc_free(&ctx.pos, 1);
  }
  test_errors();
  return test_finish("core_ops_attention");
}
