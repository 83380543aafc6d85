/* Attention with bf16 operands on AMX (core/cpu/attention_amx.c), through the CPU backend's
 * attention kernels as the ops call them while the matmul precision is bf16:
 * - forward (o, lse) and backward (dq, dk, dv) against an f64 reference computed here on the
 *   bf16-rounded q, k, v and dout, within what rounding the probabilities to bf16 allows,
 *   for several tiles of keys and blocks of queries with partial last ones, head sizes 32
 *   and 64, masked keys and fully masked rows;
 * - the AMX path really ran (its call counter), and gradients are added to what is there;
 * - q = k = v as one tensor, with one gradient tensor for all three;
 * - the same bits with one thread and with two; a NULL gradient is skipped;
 * - a head size that is not a multiple of 32 runs the f32 tiles (same bits as f32 precision);
 * - bf16 products through oneDNN before and after the tile kernels give the same bits (each
 *   configures the tiles for itself). */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/kernels_attention.h"
#include "core/cpu_products.h"
#include "testlib.h"

typedef struct attn_case {
  int64_t B, Lq, Lk, H, Dh;
  int masked; /* batch 0 random keys off, batch 1 every key off, others all on */
} attn_case;

static duet_tensor *tensor3(int64_t a, int64_t b, int64_t c, unsigned seed, double amp) {
  duet_err err;
  int64_t shape[3] = {a, b, c};
  duet_tensor *t = duet_tensor_new(DUET_F32, 3, shape, &err);
  float *p = t->data;
  uint64_t state = 0x9E3779B97F4A7C15ull * (seed + 1);
  for (int64_t i = 0; i < a * b * c; i++) { /* uniform in [-amp, amp) */
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    p[i] = (float)(amp * ((double)(state >> 11) * 0x1p-52 - 1));
  }
  return t;
}

static duet_tensor *zeros_like(const duet_tensor *x, float fill) {
  duet_err err;
  duet_tensor *t = duet_tensor_new(x->dtype, x->ndim, x->shape, &err);
  for (int64_t i = 0; i < x->numel; i++) ((float *)t->data)[i] = fill;
  return t;
}

static duet_tensor *make_mask(int64_t B, int64_t Lk) {
  duet_err err;
  int64_t shape[2] = {B, Lk};
  duet_tensor *m = duet_tensor_new(DUET_U8, 2, shape, &err);
  uint8_t *p = m->data;
  for (int64_t b = 0; b < B; b++)
    for (int64_t j = 0; j < Lk; j++) p[b * Lk + j] = b == 1 ? 0 : b == 0 ? (j * 7 + 3) % 4 != 0 : 1;
  return m;
}

static double r16(float x) { return duet_cpu_bf16_round(x); }

/* The f64 attention of the rounded inputs, forward and backward, for every (b, h). */
typedef struct reference {
  double *o, *lse, *dq, *dk, *dv;
  /* o with each exp(s - row max) rounded to bf16 before it weighs v: what the kernel computes
   * when one tile holds every key (its running maximum is then the row's). */
  double *o_rounded_p;
} reference;

static reference reference_of(const attn_case *tc, const float *q, const float *k, const float *v,
                              const uint8_t *mask, const float *dout, double scale) {
  int64_t B = tc->B, Lq = tc->Lq, Lk = tc->Lk, H = tc->H, Dh = tc->Dh, C = H * Dh;
  reference r;
  r.o = calloc((size_t)(B * Lq * C), sizeof(double));
  r.o_rounded_p = calloc((size_t)(B * Lq * C), sizeof(double));
  r.lse = calloc((size_t)(B * H * Lq), sizeof(double));
  r.dq = calloc((size_t)(B * Lq * C), sizeof(double));
  r.dk = calloc((size_t)(B * Lk * C), sizeof(double));
  r.dv = calloc((size_t)(B * Lk * C), sizeof(double));
  double *p = malloc(sizeof(double) * (size_t)Lk), *dp = malloc(sizeof(double) * (size_t)Lk);
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < Lq; i++) {
        const float *qi = q + (b * Lq + i) * C + h * Dh, *doi = dout + (b * Lq + i) * C + h * Dh;
        double mx = -INFINITY;
        for (int64_t j = 0; j < Lk; j++) {
          p[j] = -INFINITY;
          if (mask && !mask[b * Lk + j]) continue;
          double s = 0;
          for (int64_t c = 0; c < Dh; c++) s += r16(qi[c]) * r16(k[(b * Lk + j) * C + h * Dh + c]);
          p[j] = s * scale;
          if (p[j] > mx) mx = p[j];
        }
        double *lse = &r.lse[(b * H + h) * Lq + i];
        if (mx == -INFINITY) {
          *lse = -INFINITY;
          continue;
        }
        double sum = 0;
        for (int64_t j = 0; j < Lk; j++) sum += p[j] == -INFINITY ? 0 : exp(p[j] - mx);
        *lse = mx + log(sum);
        double D = 0;
        for (int64_t j = 0; j < Lk; j++) p[j] = p[j] == -INFINITY ? 0 : exp(p[j] - *lse);
        for (int64_t c = 0; c < Dh; c++) {
          double acc = 0, acc_rounded = 0;
          for (int64_t j = 0; j < Lk; j++) {
            double vj = r16(v[(b * Lk + j) * C + h * Dh + c]);
            acc += p[j] * vj;
            acc_rounded += r16((float)(p[j] * exp(*lse - mx))) * exp(mx - *lse) * vj;
          }
          r.o[(b * Lq + i) * C + h * Dh + c] = acc;
          r.o_rounded_p[(b * Lq + i) * C + h * Dh + c] = acc_rounded;
          D += doi[c] * acc;
        }
        for (int64_t j = 0; j < Lk; j++) {
          double d = 0;
          for (int64_t c = 0; c < Dh; c++) d += r16(doi[c]) * r16(v[(b * Lk + j) * C + h * Dh + c]);
          dp[j] = scale * p[j] * (d - D);
        }
        for (int64_t j = 0; j < Lk; j++)
          for (int64_t c = 0; c < Dh; c++) {
            int64_t kj = (b * Lk + j) * C + h * Dh + c;
            r.dq[(b * Lq + i) * C + h * Dh + c] += dp[j] * r16(k[kj]);
            r.dk[kj] += dp[j] * r16(qi[c]);
            r.dv[kj] += p[j] * r16(doi[c]);
          }
      }
  free(p);
  free(dp);
  return r;
}

static void reference_free(reference *r) {
  free(r->o), free(r->o_rounded_p), free(r->lse), free(r->dq), free(r->dk), free(r->dv);
}

/* max |got - (base + want)| / max |want|: the error relative to the result's scale. */
static double rel_err(const float *got, const double *want, int64_t n, float base) {
  double err = 0, scale = 1e-30;
  for (int64_t i = 0; i < n; i++) {
    err = fmax(err, fabs(got[i] - base - want[i]));
    scale = fmax(scale, fabs(want[i]));
  }
  return err / scale;
}

static int same_bits(const duet_tensor *a, const duet_tensor *b) {
  return memcmp(a->data, b->data, sizeof(float) * (size_t)a->numel) == 0;
}

typedef struct run {
  duet_tensor *o, *lse, *dq, *dk, *dv;
} run;

static run run_attention(const attn_case *tc, duet_tensor *q, duet_tensor *k, duet_tensor *v,
                         duet_tensor *mask, duet_tensor *dout, float grad_fill) {
  const duet_backend *be = duet_backend_get(DUET_CPU);
  duet_err err;
  run r;
  int64_t lse_shape[3] = {tc->B, tc->H, tc->Lq};
  r.o = zeros_like(q, 0);
  r.lse = duet_tensor_new(DUET_F32, 3, lse_shape, &err);
  r.dq = zeros_like(q, grad_fill);
  r.dk = zeros_like(k, grad_fill);
  r.dv = zeros_like(v, grad_fill);
  double scale = 1 / sqrt((double)tc->Dh);
  be->attention->attention_fwd(q, k, v, mask, (int)tc->H, scale, r.o, r.lse);
  be->attention->attention_bwd(q, k, v, mask, (int)tc->H, scale, r.o, r.lse, dout, r.dq, r.dk,
                               r.dv);
  return r;
}

static void run_free(run *r) {
  duet_tensor_free(r->o), duet_tensor_free(r->lse), duet_tensor_free(r->dq),
      duet_tensor_free(r->dk), duet_tensor_free(r->dv);
}

static void check_case(const attn_case *tc) {
  int64_t C = tc->H * tc->Dh;
  duet_tensor *q = tensor3(tc->B, tc->Lq, C, 1, 3.0), *k = tensor3(tc->B, tc->Lk, C, 2, 1.0);
  duet_tensor *v = tensor3(tc->B, tc->Lk, C, 3, 1.0), *dout = tensor3(tc->B, tc->Lq, C, 4, 1.0);
  duet_tensor *mask = tc->masked ? make_mask(tc->B, tc->Lk) : NULL;
  long calls = duet_cpu_bf16_attention_calls();
  run r = run_attention(tc, q, k, v, mask, dout, 0.25f);
  CHECK_EQ_INT(duet_cpu_bf16_attention_calls() - calls, 2);
  reference ref = reference_of(tc, q->data, k->data, v->data, mask ? mask->data : NULL, dout->data,
                               1 / sqrt((double)tc->Dh));
  double eo = rel_err(r.o->data, ref.o, r.o->numel, 0), edq = rel_err(r.dq->data, ref.dq, r.dq->numel, 0.25f),
         edk = rel_err(r.dk->data, ref.dk, r.dk->numel, 0.25f), edv = rel_err(r.dv->data, ref.dv, r.dv->numel, 0.25f);
  double e_lse = 0;
  int lse_inf_ok = 1;
  for (int64_t i = 0; i < r.lse->numel; i++) {
    float l = ((float *)r.lse->data)[i];
    if (isinf(ref.lse[i])) lse_inf_ok &= isinf(l) && l < 0;
    else e_lse = fmax(e_lse, fabs(l - ref.lse[i]) / (1 + fabs(ref.lse[i])));
  }
  printf("B %lld Lq %lld Lk %lld H %lld Dh %lld%s: relative error o %.2e dq %.2e dk %.2e dv %.2e lse %.2e\n",
         (long long)tc->B, (long long)tc->Lq, (long long)tc->Lk, (long long)tc->H, (long long)tc->Dh,
         tc->masked ? " masked" : "", eo, edq, edk, edv, e_lse);
  /* Probabilities rounded to bf16 carry up to 2^-9 relative error each: about 1e-3 of the
   * result's scale here (measured 1.0e-3 to 3.1e-3); a wrong layout or tile gives O(1). */
  CHECK_MSG(eo < 6e-3, "o %.3g", eo);
  CHECK_MSG(edq < 1e-2 && edk < 1e-2 && edv < 1e-2, "dq %.3g dk %.3g dv %.3g", edq, edk, edv);
  if (tc->Lk <= 32) { /* one tile of keys: the kernel's rounding exactly */
    double er = rel_err(r.o->data, ref.o_rounded_p, r.o->numel, 0);
    CHECK_MSG(er < 1e-6, "o against the rounded probabilities %.3g", er);
  }
  CHECK_MSG(e_lse < 1e-5, "lse %.3g", e_lse);
  CHECK(lse_inf_ok);
  if (tc->masked) { /* batch 1 has no key: zero output, gradients left as they were */
    const float *o = r.o->data, *dq = r.dq->data, *dk = r.dk->data;
    int zero = 1;
    for (int64_t i = 0; i < tc->Lq * C; i++) zero &= o[tc->Lq * C + i] == 0 && dq[tc->Lq * C + i] == 0.25f;
    for (int64_t i = 0; i < tc->Lk * C; i++) zero &= dk[tc->Lk * C + i] == 0.25f;
    CHECK(zero);
  }

  /* One thread: the same bits. */
  int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  run one = run_attention(tc, q, k, v, mask, dout, 0.25f);
  omp_set_num_threads(threads);
  CHECK(same_bits(one.o, r.o) && same_bits(one.lse, r.lse) && same_bits(one.dq, r.dq) &&
        same_bits(one.dk, r.dk) && same_bits(one.dv, r.dv));
  run_free(&one);

  /* No dq wanted: dk and dv as before. */
  const duet_backend *be = duet_backend_get(DUET_CPU);
  duet_tensor *dk2 = zeros_like(k, 0.25f), *dv2 = zeros_like(v, 0.25f);
  be->attention->attention_bwd(q, k, v, mask, (int)tc->H, 1 / sqrt((double)tc->Dh), r.o, r.lse, dout,
                               NULL, dk2, dv2);
  CHECK(same_bits(dk2, r.dk) && same_bits(dv2, r.dv));
  duet_tensor_free(dk2), duet_tensor_free(dv2);

  reference_free(&ref);
  run_free(&r);
  duet_tensor_free(q), duet_tensor_free(k), duet_tensor_free(v), duet_tensor_free(dout);
  if (mask) duet_tensor_free(mask);
}

/* Self-attention on one tensor with one gradient for q, k and v: the sum of the three
 * gradients of separate copies. */
static void check_shared_tensor(void) {
  attn_case tc = {2, 75, 75, 2, 32, 0};
  int64_t C = tc.H * tc.Dh;
  duet_tensor *x = tensor3(tc.B, tc.Lq, C, 5, 1.5), *dout = tensor3(tc.B, tc.Lq, C, 6, 1.0);
  const duet_backend *be = duet_backend_get(DUET_CPU);
  duet_err err;
  int64_t lse_shape[3] = {tc.B, tc.H, tc.Lq};
  duet_tensor *o = zeros_like(x, 0), *lse = duet_tensor_new(DUET_F32, 3, lse_shape, &err);
  duet_tensor *dx = zeros_like(x, 0);
  double scale = 1 / sqrt((double)tc.Dh);
  be->attention->attention_fwd(x, x, x, NULL, (int)tc.H, scale, o, lse);
  be->attention->attention_bwd(x, x, x, NULL, (int)tc.H, scale, o, lse, dout, dx, dx, dx);
  run sep = run_attention(&tc, x, x, x, NULL, dout, 0);
  const float *a = dx->data, *q = sep.dq->data, *k = sep.dk->data, *v = sep.dv->data;
  double worst = 0;
  for (int64_t i = 0; i < dx->numel; i++) worst = fmax(worst, fabs(a[i] - (q[i] + k[i] + v[i])));
  CHECK_MSG(worst < 1e-5, "shared gradient off by %.3g", worst);
  CHECK(same_bits(o, sep.o));
  run_free(&sep);
  duet_tensor_free(x), duet_tensor_free(dout), duet_tensor_free(o), duet_tensor_free(lse),
      duet_tensor_free(dx);
}

/* Head size 48: the f32 tiles, bit for bit the f32 setting's. */
static void check_f32_fallback(void) {
  attn_case tc = {1, 40, 50, 2, 48, 0};
  int64_t C = tc.H * tc.Dh;
  duet_tensor *q = tensor3(1, tc.Lq, C, 1, 1), *k = tensor3(1, tc.Lk, C, 2, 1),
              *v = tensor3(1, tc.Lk, C, 3, 1), *dout = tensor3(1, tc.Lq, C, 4, 1);
  long calls = duet_cpu_bf16_attention_calls();
  run bf = run_attention(&tc, q, k, v, NULL, dout, 0);
  CHECK_EQ_INT(duet_cpu_bf16_attention_calls(), calls);
  duet_err err;
  CHECK(duet_cpu_set_matmul_precision(DUET_MATMUL_F32, &err) == DUET_OK);
  run f32 = run_attention(&tc, q, k, v, NULL, dout, 0);
  CHECK(same_bits(bf.o, f32.o) && same_bits(bf.dq, f32.dq) && same_bits(bf.dk, f32.dk));
  CHECK(duet_cpu_set_matmul_precision(DUET_MATMUL_BF16, &err) == DUET_OK);
  run_free(&bf), run_free(&f32);
  duet_tensor_free(q), duet_tensor_free(k), duet_tensor_free(v), duet_tensor_free(dout);
}

/* A oneDNN product, the tile kernels, the product again: the same bits. */
static void check_products_around(void) {
  enum { M = 96, N = 80, K = 160 };
  const duet_backend *be = duet_backend_get(DUET_CPU);
  static float a[M * K], b[K * N], c1[M * N], c2[M * N];
  for (int i = 0; i < M * K; i++) a[i] = (float)sin(0.37 * i);
  for (int i = 0; i < K * N; i++) b[i] = (float)cos(0.11 * i);
  be->gemm_batched(DUET_F32, 0, 0, M, N, K, 1.0, a, K, 0, b, N, 0, 0.0, c1, N, 0, 1);
  attn_case tc = {1, 70, 90, 2, 64, 0};
  duet_tensor *q = tensor3(1, tc.Lq, 128, 1, 1), *k = tensor3(1, tc.Lk, 128, 2, 1),
              *v = tensor3(1, tc.Lk, 128, 3, 1), *dout = tensor3(1, tc.Lq, 128, 4, 1);
  run r = run_attention(&tc, q, k, v, NULL, dout, 0);
  be->gemm_batched(DUET_F32, 0, 0, M, N, K, 1.0, a, K, 0, b, N, 0, 0.0, c2, N, 0, 1);
  CHECK(memcmp(c1, c2, sizeof c1) == 0);
  run again = run_attention(&tc, q, k, v, NULL, dout, 0);
  CHECK(same_bits(r.o, again.o) && same_bits(r.dk, again.dk));
  run_free(&r), run_free(&again);
  duet_tensor_free(q), duet_tensor_free(k), duet_tensor_free(v), duet_tensor_free(dout);
}

int main(void) {
  duet_err err;
  if (duet_cpu_set_matmul_precision(DUET_MATMUL_BF16, &err) != DUET_OK) {
    printf("bf16 products not available here (%s): nothing to check\n", err.msg);
    return test_finish("attention_bf16");
  }
  if (!duet_cpu_bf16_attention_available()) {
    printf("no AMX here: attention keeps its f32 tiles, nothing to check\n");
    return test_finish("attention_bf16");
  }
  const attn_case cases[] = {
      {1, 130, 200, 3, 64, 0}, /* three query blocks, four key tiles, partial last ones */
      {3, 37, 70, 2, 32, 1},   /* masked keys, a batch without keys */
      {2, 64, 64, 1, 32, 0},   /* exact tiles */
      {1, 5, 3, 2, 64, 0},     /* tiny */
      {2, 100, 32, 2, 64, 0},  /* one tile of keys, two blocks of queries */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(&cases[i]);
  check_shared_tensor();
  check_f32_fallback();
  check_products_around();
  CHECK(duet_cpu_set_matmul_precision(DUET_MATMUL_F32, &err) == DUET_OK);
  return test_finish("attention_bf16");
}
