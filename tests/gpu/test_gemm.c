/* cuBLASLt products against OpenBLAS: every transpose combination, batched and shared-B
 * strides, padded leading dimensions, beta 0 (output poisoned first) and 1, k = 0, a shared C;
 * the extended entry's bf16 -> f32 output and bias epilogue.
 * Tolerances (relative Frobenius): f32 1e-5 (TF32 is off), f64 1e-12, bf16 output 1e-2
 * (bf16 rounding of the result), bf16 inputs into f32 output 1e-5. */
#include <stdlib.h>
#include <string.h>

#include "gpu_test.h"

typedef struct gemm_case {
  int ta, tb;
  int64_t m, n, k, batch, pad;
  int share_b;
  double alpha, beta;
} gemm_case;

/* The m x n results of every batch entry, packed (padding columns dropped). */
static duet_tensor *packed(const duet_tensor *c, const gemm_case *g, int64_t ldc, int64_t sc) {
  int64_t shape[3] = {g->batch, g->m, g->n};
  duet_tensor *out = gt_host(c->dtype == DUET_BF16 ? DUET_F32 : c->dtype, 3, shape);
  for (int64_t b = 0; b < g->batch; b++)
    for (int64_t i = 0; i < g->m; i++)
      for (int64_t j = 0; j < g->n; j++)
        duet_tensor_set(out, (b * g->m + i) * g->n + j, duet_tensor_get(c, b * sc + i * ldc + j));
  return out;
}

static void run_case(duet_dtype dt, const gemm_case *g, uint64_t seed) {
  const int64_t lda = (g->ta ? g->m : g->k) + g->pad, ldb = (g->tb ? g->k : g->n) + g->pad, ldc = g->n + g->pad;
  const int64_t arows = g->ta ? g->k : g->m, brows = g->tb ? g->n : g->k;
  const int64_t sa = arows * lda, sb = g->share_b ? 0 : brows * ldb, sc = g->m * ldc;
  const int64_t na = g->batch * sa, nb = g->share_b ? brows * ldb : g->batch * sb, nc = g->batch * sc;
  duet_tensor *A = gt_input(dt, 1, &na, seed, -1, 1), *B = gt_input(dt, 1, &nb, seed + 1, -1, 1);
  duet_tensor *C = gt_input(dt, 1, &nc, seed + 2, -1, 1);
  duet_tensor *dA = gt_up(A, dt), *dB = gt_up(B, dt);
  duet_tensor *dC = g->beta == 0 ? gt_poison(dt, 1, &nc) : gt_up(C, dt);
  gt_cpu()->gemm_batched(gt_ref_dtype(dt), g->ta, g->tb, g->m, g->n, g->k, g->alpha, A->data, lda, sa, B->data, ldb, sb,
                         g->beta, C->data, ldc, sc, g->batch);
  gt_gpu()->gemm_batched(dt, g->ta, g->tb, g->m, g->n, g->k, g->alpha, dA->data, lda, sa, dB->data, ldb, sb, g->beta,
                         dC->data, ldc, sc, g->batch);
  char what[160];
  snprintf(what, sizeof what, "gemm %s ta %d tb %d %lldx%lldx%lld batch %lld pad %lld shared_b %d beta %g",
           duet_dtype_name(dt), g->ta, g->tb, (long long)g->m, (long long)g->n, (long long)g->k, (long long)g->batch,
           (long long)g->pad, g->share_b, g->beta);
  gt_expect_no_cuda_error(what);
  duet_tensor *hC = gt_down(dC);
  duet_tensor *got = packed(hC, g, ldc, sc), *want = packed(C, g, ldc, sc);
  gt_expect_close(what, got, want, gt_tol(dt, 1e-2));
  gt_free(got);
  gt_free(want);
  gt_free(hC);
  gt_free(A);
  gt_free(B);
  gt_free(C);
  gt_free(dA);
  gt_free(dB);
  gt_free(dC);
}

/* bf16 operands, f32 output accumulated with beta = 1, optionally with a bias (of the
 * output's dtype) through the epilogue. */
static void run_ex(duet_dtype ab, duet_dtype ct, int with_bias, uint64_t seed) {
  const int64_t m = 77, n = 96, k = 128;
  const int64_t na = m * k, nb = n * k, nc = m * n;
  duet_tensor *A = gt_input(ab, 1, &na, seed, -1, 1), *B = gt_input(ab, 1, &nb, seed + 1, -1, 1);
  duet_tensor *C = gt_input(ct, 1, &nc, seed + 2, -1, 1), *bias = gt_input(ct, 1, &n, seed + 3, -1, 1);
  duet_tensor *dA = gt_up(A, ab), *dB = gt_up(B, ab), *dC = gt_up(C, ct), *dbias = gt_up(bias, ct);
  /* y [m, n] = x [m, k] w [n, k]^T + beta y + bias: a linear layer. */
  gt_cpu()->gemm_batched(DUET_F32, 0, 1, m, n, k, 1.0, A->data, k, 0, B->data, k, 0, 1.0, C->data, n, 0, 1);
  if (with_bias)
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++)
        duet_tensor_set(C, i * n + j, duet_tensor_get(C, i * n + j) + duet_tensor_get(bias, j));
  duet_cuda_gemm g = {.ab_type = ab, .c_type = ct, .trans_a = 0, .trans_b = 1, .m = m, .n = n, .k = k, .batch = 1,
                      .a = dA->data, .lda = k, .b = dB->data, .ldb = k, .c = dC->data, .ldc = n,
                      .alpha = 1.0, .beta = 1.0, .bias = with_bias ? dbias->data : NULL};
  duet_err err;
  int rc = duet_cuda_gemm_run(&g, &err);
  CHECK_MSG(rc == DUET_OK, "gemm_run: %s", rc ? err.msg : "");
  char what[120];
  snprintf(what, sizeof what, "gemm_run %s -> %s%s", duet_dtype_name(ab), duet_dtype_name(ct), with_bias ? " + bias" : "");
  gt_expect_no_cuda_error(what);
  gt_expect_close(what, dC, C, ct == DUET_BF16 ? 1e-2 : 1e-5);
  gt_free(A);
  gt_free(B);
  gt_free(C);
  gt_free(bias);
  gt_free(dA);
  gt_free(dB);
  gt_free(dC);
  gt_free(dbias);
}

int main(void) {
  gt_require_gpu("gpu_gemm");
  const duet_dtype dts[3] = {DUET_F32, DUET_BF16, DUET_F64};
  uint64_t seed = 1;
  for (int d = 0; d < 3; d++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++)
        for (int beta = 0; beta < 2; beta++) {
          gemm_case one = {ta, tb, 37, 29, 53, 1, 0, 0, 1.0, beta};
          gemm_case many = {ta, tb, 64, 48, 96, 3, 3, 0, 0.5, beta};
          gemm_case shared = {ta, tb, 40, 24, 32, 4, 0, 1, 1.0, beta};
          run_case(dts[d], &one, seed += 10);
          run_case(dts[d], &many, seed += 10);
          run_case(dts[d], &shared, seed += 10);
        }
  /* k = 0: C = beta C. A shared C: the products are added one after another. */
  gemm_case empty = {0, 0, 9, 7, 0, 2, 1, 0, 1.0, 0.5};
  run_case(DUET_F32, &empty, seed += 10);
  for (int d = 0; d < 3; d++) {
    const int64_t m = 20, n = 12, k = 16, batch = 3;
    const int64_t na = batch * m * k, nb = batch * k * n, nc = m * n;
    duet_tensor *A = gt_input(dts[d], 1, &na, seed += 10, -1, 1), *B = gt_input(dts[d], 1, &nb, seed + 1, -1, 1);
    duet_tensor *C = gt_input(dts[d], 1, &nc, seed + 2, -1, 1);
    duet_tensor *dA = gt_up(A, dts[d]), *dB = gt_up(B, dts[d]), *dC = gt_up(C, dts[d]);
    gt_cpu()->gemm_batched(gt_ref_dtype(dts[d]), 0, 0, m, n, k, 1.0, A->data, k, m * k, B->data, n, k * n, 1.0, C->data,
                           n, 0, batch);
    gt_gpu()->gemm_batched(dts[d], 0, 0, m, n, k, 1.0, dA->data, k, m * k, dB->data, n, k * n, 1.0, dC->data, n, 0, batch);
    gt_expect_no_cuda_error("gemm with a shared C");
    gt_expect_close("gemm with a shared C", dC, C, gt_tol(dts[d], 1e-2));
    gt_free(A);
    gt_free(B);
    gt_free(C);
    gt_free(dA);
    gt_free(dB);
    gt_free(dC);
  }
  run_ex(DUET_BF16, DUET_F32, 0, seed += 10);
  run_ex(DUET_BF16, DUET_F32, 1, seed += 10);
  run_ex(DUET_BF16, DUET_BF16, 1, seed += 10);
  run_ex(DUET_F32, DUET_F32, 1, seed += 10);
  return test_finish("gpu_gemm");
}
