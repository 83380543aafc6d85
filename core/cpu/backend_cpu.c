/* The CPU backend's table: host memory, OpenBLAS for matrix products, OpenMP kernels. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/cpu/cpu_kernels.h"

/* core/cpu/norm_modulate.c */
extern const struct duet_kernels_norm_modulate duet_cpu_norm_modulate_kernels;

static void *cpu_alloc(size_t bytes) {
  size_t rounded = (bytes + 63) & ~(size_t)63;
  void *p = aligned_alloc(64, rounded ? rounded : 64);
  if (p) memset(p, 0, rounded ? rounded : 64);
  return p;
}

static void cpu_free(void *p) { free(p); }
static void cpu_zero(void *p, size_t bytes) { memset(p, 0, bytes); }
static void cpu_copy(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }

static void cpu_gemm_batched(duet_dtype dt, int trans_a, int trans_b, int64_t m, int64_t n,
                             int64_t k, double alpha, const void *a, int64_t lda,
                             int64_t stride_a, const void *b, int64_t ldb, int64_t stride_b,
                             double beta, void *c, int64_t ldc, int64_t stride_c,
                             int64_t batch) {
  enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
  enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
  /* Each product is large enough for OpenBLAS's own threads; looping keeps them busy. */
  for (int64_t i = 0; i < batch; i++) {
    if (dt == DUET_F64) {
      cblas_dgemm(CblasRowMajor, ta, tb, (blasint)m, (blasint)n, (blasint)k, alpha,
                  (const double *)a + i * stride_a, (blasint)lda,
                  (const double *)b + i * stride_b, (blasint)ldb, beta,
                  (double *)c + i * stride_c, (blasint)ldc);
    } else {
      cblas_sgemm(CblasRowMajor, ta, tb, (blasint)m, (blasint)n, (blasint)k, (float)alpha,
                  (const float *)a + i * stride_a, (blasint)lda,
                  (const float *)b + i * stride_b, (blasint)ldb, (float)beta,
                  (float *)c + i * stride_c, (blasint)ldc);
    }
  }
}

const duet_backend duet_cpu_backend = {
    .name = "cpu",
    .device = DUET_CPU,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .zero = cpu_zero,
    .copy_from_host = cpu_copy,
    .copy_to_host = cpu_copy,
    .gemm_batched = cpu_gemm_batched,
    .elementwise = &duet_cpu_elementwise_kernels,
    .nn = &duet_cpu_nn_kernels,
    .attention = &duet_cpu_attention_kernels,
    .layout = &duet_cpu_layout_kernels,
    .loss = &duet_cpu_loss_kernels,
    .norm_modulate = &duet_cpu_norm_modulate_kernels,
};
