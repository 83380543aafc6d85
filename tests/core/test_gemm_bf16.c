/* bf16 products on the CPU (core/cpu_products.h, core/cpu/gemm_bf16.c), through the backend's
 * gemm_batched as the ops call it:
 * - the rounding to bf16 is to nearest even, keeps NaN and Inf, and overflows to Inf;
 * - every transpose pair, odd sizes, alpha, beta = 0 over a NaN-filled C, beta = 1, a C
 *   wider than n, and a batch with a shared B equal the f64 product of the bf16-rounded
 *   inputs to f32 accuracy, and differ from the f32 product (the inputs really were rounded);
 * - the same call gives the same bits twice; inside a parallel region the product stays f32
 *   (bit-equal to the f32 setting); f64 products are never rounded;
 * - without oneDNN, or where it cannot run, asking for bf16 is one clear error. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/cpu_products.h"
#include "testlib.h"

static float bits_f(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static void test_rounding(void) {
  CHECK(duet_cpu_bf16_round(1.0f) == 1.0f);
  /* 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: to even, 1. 1 + 3 2^-8: to 1 + 2^-6 (even). */
  CHECK(duet_cpu_bf16_round(1.0f + 0x1p-8f) == 1.0f);
  CHECK(duet_cpu_bf16_round(1.0f + 3 * 0x1p-8f) == 1.0f + 0x1p-6f);
  CHECK(duet_cpu_bf16_round(1.0f + 0x1p-8f + 0x1p-20f) == 1.0f + 0x1p-7f); /* above half: up */
  CHECK(duet_cpu_bf16_round(-2.5f) == -2.5f);
  CHECK(isinf(duet_cpu_bf16_round(INFINITY)) && duet_cpu_bf16_round(-INFINITY) < 0);
  CHECK(isnan(duet_cpu_bf16_round(NAN)));
  CHECK(isnan(duet_cpu_bf16_round(bits_f(0x7F800001u)))); /* a NaN whose payload is all low bits */
  CHECK(isinf(duet_cpu_bf16_round(bits_f(0x7F7FFFFFu)))); /* FLT_MAX rounds up to Inf */
  /* Subnormals become zero of their sign, as the hardware conversion makes them. */
  CHECK(duet_cpu_bf16_round(0x1p-130f) == 0.0f && !signbit(duet_cpu_bf16_round(0x1p-130f)));
  CHECK(duet_cpu_bf16_round(-0x1p-140f) == 0.0f && signbit(duet_cpu_bf16_round(-0x1p-140f)));
  CHECK(duet_cpu_bf16_round(0x1p-126f) == 0x1p-126f); /* the smallest normal stays */
}

typedef struct product {
  int ta, tb;
  int64_t m, n, k, ldc, batch, stride_b; /* stride_b = 0: one B for the whole batch */
  double alpha, beta;
} product;

/* Element (i, j) of op(X) for X stored rows x cols with leading dimension ld. */
static double at(const float *x, int t, int64_t ld, int64_t i, int64_t j, int rounded) {
  float v = t ? x[j * ld + i] : x[i * ld + j];
  return rounded ? duet_cpu_bf16_round(v) : v;
}

static void check_product(const product *p) {
  const duet_backend *be = duet_backend_get(DUET_CPU);
  int64_t lda = p->ta ? p->m : p->k, ldb = p->tb ? p->k : p->n;
  int64_t sa = p->m * p->k, sb = p->stride_b, sc = p->m * p->ldc;
  int64_t na = sa * p->batch, nb = p->k * p->n * (p->stride_b ? p->batch : 1), nc = sc * p->batch;
  float *a = malloc(sizeof(float) * (size_t)na), *b = malloc(sizeof(float) * (size_t)nb);
  float *c0 = malloc(sizeof(float) * (size_t)nc), *c = malloc(sizeof(float) * (size_t)nc);
  float *c2 = malloc(sizeof(float) * (size_t)nc);
  for (int64_t i = 0; i < na; i++) a[i] = (float)sin(0.731 * (double)i + 0.2) * (1.0f + 1e-3f * (float)(i % 7));
  for (int64_t i = 0; i < nb; i++) b[i] = (float)cos(0.417 * (double)i + 0.9);
  for (int64_t i = 0; i < nc; i++) c0[i] = p->beta == 0 ? NAN : (float)(0.01 * (double)(i % 13));
  memcpy(c, c0, sizeof(float) * (size_t)nc);
  be->gemm_batched(DUET_F32, p->ta, p->tb, p->m, p->n, p->k, p->alpha, a, lda, sa, b, ldb, sb, p->beta, c, p->ldc,
                   sc, p->batch);
  memcpy(c2, c0, sizeof(float) * (size_t)nc);
  be->gemm_batched(DUET_F32, p->ta, p->tb, p->m, p->n, p->k, p->alpha, a, lda, sa, b, ldb, sb, p->beta, c2, p->ldc,
                   sc, p->batch);
  CHECK_MSG(memcmp(c, c2, sizeof(float) * (size_t)nc) == 0, "m %lld n %lld k %lld: two calls differ", (long long)p->m,
            (long long)p->n, (long long)p->k);
  double worst = 0, gap_to_f32 = 0;
  int untouched_ok = 1;
  for (int64_t q = 0; q < p->batch; q++)
    for (int64_t i = 0; i < p->m; i++) {
      for (int64_t j = 0; j < p->n; j++) {
        double r16 = 0, r32 = 0, mag = 0;
        for (int64_t l = 0; l < p->k; l++) {
          double x16 = at(a + q * sa, p->ta, lda, i, l, 1), y16 = at(b + q * sb, p->tb, ldb, l, j, 1);
          r16 += x16 * y16;
          r32 += at(a + q * sa, p->ta, lda, i, l, 0) * at(b + q * sb, p->tb, ldb, l, j, 0);
          mag += fabs(x16 * y16);
        }
        double prior = p->beta == 0 ? 0 : p->beta * c0[q * sc + i * p->ldc + j];
        double got = c[q * sc + i * p->ldc + j];
        /* f32 sums of k products: a few units of f32 rounding of the magnitudes summed. */
        double err = fabs(got - (p->alpha * r16 + prior)) / (fabs(p->alpha) * mag + fabs(prior) + 1e-30);
        if (err > worst) worst = err;
        double gap = fabs(got - (p->alpha * r32 + prior));
        if (gap > gap_to_f32) gap_to_f32 = gap;
      }
      for (int64_t j = p->n; j < p->ldc; j++) /* past n, C is not written */
        if (memcmp(&c[q * sc + i * p->ldc + j], &c0[q * sc + i * p->ldc + j], sizeof(float))) untouched_ok = 0;
    }
  CHECK_MSG(worst < 4e-6, "ta %d tb %d m %lld n %lld k %lld: relative error %.3g against the rounded inputs' product",
            p->ta, p->tb, (long long)p->m, (long long)p->n, (long long)p->k, worst);
  CHECK_MSG(gap_to_f32 > 1e-4, "m %lld n %lld k %lld: equals the f32 product (largest gap %.3g): inputs not rounded",
            (long long)p->m, (long long)p->n, (long long)p->k, gap_to_f32);
  CHECK(untouched_ok);
  free(a);
  free(b);
  free(c0);
  free(c);
  free(c2);
}

/* Inside a parallel region the product is CBLAS's f32 one, bit for bit. */
static void test_nested_stays_f32(void) {
  const duet_backend *be = duet_backend_get(DUET_CPU);
  enum { M = 33, N = 47, K = 65 };
  static float a[M * K], b[K * N], c_bf16_nested[M * N], c_f32[M * N];
  for (int i = 0; i < M * K; i++) a[i] = (float)sin(0.1 * i);
  for (int i = 0; i < K * N; i++) b[i] = (float)cos(0.3 * i);
#pragma omp parallel num_threads(2)
  {
#pragma omp single
    be->gemm_batched(DUET_F32, 0, 0, M, N, K, 1.0, a, K, 0, b, N, 0, 0.0, c_bf16_nested, N, 0, 1);
  }
  duet_err err;
  CHECK(duet_cpu_set_matmul_precision(DUET_MATMUL_F32, &err) == DUET_OK);
  be->gemm_batched(DUET_F32, 0, 0, M, N, K, 1.0, a, K, 0, b, N, 0, 0.0, c_f32, N, 0, 1);
  CHECK(memcmp(c_bf16_nested, c_f32, sizeof c_f32) == 0);
  CHECK(duet_cpu_set_matmul_precision(DUET_MATMUL_BF16, &err) == DUET_OK);
}

/* f64 products (the gradient checks') are never rounded. */
static void test_f64_untouched(void) {
  const duet_backend *be = duet_backend_get(DUET_CPU);
  double a[3] = {1.0 + 1e-9, 2.0, 3.0}, b[3] = {1.0, 1.0 + 1e-9, 1.0}, c = 0;
  be->gemm_batched(DUET_F64, 0, 0, 1, 1, 3, 1.0, a, 3, 0, b, 1, 0, 0.0, &c, 1, 0, 1);
  CHECK_NEAR(c, (1.0 + 1e-9) + 2.0 * (1.0 + 1e-9) + 3.0, 1e-15);
}

int main(void) {
  test_rounding();
  duet_err err;
  CHECK(duet_cpu_matmul_precision() == DUET_MATMUL_F32);
  int rc = duet_cpu_set_matmul_precision(DUET_MATMUL_BF16, &err);
#ifndef DUET_HAVE_ONEDNN
  CHECK(rc == DUET_ENOTSUP && strstr(err.msg, "oneDNN") && !strchr(err.msg, '\n'));
  CHECK(duet_cpu_matmul_precision() == DUET_MATMUL_F32);
  printf("built without oneDNN: only the refusal was checked\n");
  return test_finish("gemm_bf16");
#endif
  if (rc == DUET_ENOTSUP) { /* oneDNN present, but this processor has no bf16 matmul for it */
    CHECK(!strchr(err.msg, '\n'));
    printf("bf16 products not available here (%s): only the refusal was checked\n", err.msg);
    return test_finish("gemm_bf16");
  }
  CHECK_MSG(rc == DUET_OK, "%s", err.msg);
  printf("bf16 products: %s\n", duet_cpu_bf16_engine());
  CHECK(strncmp(duet_cpu_bf16_engine(), "oneDNN ", 7) == 0);

  const product cases[] = {
      {0, 0, 37, 53, 29, 53, 1, 0, 1.0, 0.0},   {0, 1, 64, 48, 96, 48, 1, 0, 1.0, 0.0},
      {1, 0, 40, 33, 70, 33, 1, 0, 1.0, 1.0},   {1, 1, 17, 80, 45, 80, 1, 0, 0.5, 0.0},
      {0, 0, 31, 20, 128, 27, 1, 0, 1.0, 1.0},  /* C wider than n: columns 20..26 untouched */
      {0, 1, 12, 24, 40, 24, 3, 0, 1.0, 0.0},   /* batch of 3 with one shared B */
      {0, 0, 300, 260, 384, 260, 1, 0, 1.0, 0.0}, /* large enough for oneDNN to thread */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_product(&cases[i]);
  test_nested_stays_f32();
  test_f64_untouched();
  CHECK_EQ_INT((int)duet_cpu_bf16_fallbacks(), 0);
  CHECK(duet_cpu_set_matmul_precision(DUET_MATMUL_F32, &err) == DUET_OK);
  CHECK(duet_cpu_matmul_precision() == DUET_MATMUL_F32);
  return test_finish("gemm_bf16");
}
