/* The CPU backend's table: host memory, CBLAS (core/blas.h) for matrix products, OpenMP kernels. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/blas.h"
#include "core/cpu/cpu_kernels.h"
#include "core/cpu_products.h"

/* core/cpu/norm_modulate.c */
extern const struct duet_kernels_norm_modulate duet_cpu_norm_modulate_kernels;

static void *cpu_alloc(size_t bytes) {
  size_t rounded = (bytes + 63) & ~(size_t)63;
  void *p = aligned_alloc(64, rounded ? rounded : 64);
  if (p) memset(p, 0, rounded ? rounded : 64);
  return p;
}

static void cpu_free(void *p) { free(p); }
/* Below this a memset is cheaper than waking the other threads. */
#define ZERO_PARALLEL_MIN ((size_t)256 << 10)

/* A large buffer is cleared by every thread, one page-aligned share each. Gradient buffers
 * are cleared on the main thread between parallel kernels, and with two threads a serial
 * memset left the other waiting: the largest part of the serial time in a tiny.ini step
 * (experiments/RESULTS-train.md, "Serial time at two threads"). */
static void cpu_zero(void *p, size_t bytes) {
  int threads = omp_get_max_threads();
  if (bytes < ZERO_PARALLEL_MIN || threads < 2 || omp_in_parallel()) {
    memset(p, 0, bytes);
    return;
  }
  size_t share = (bytes / (size_t)threads + 4095) & ~(size_t)4095;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int i = 0; i < threads; i++) {
    size_t lo = (size_t)i * share;
    if (lo < bytes) memset((char *)p + lo, 0, bytes - lo < share ? bytes - lo : share);
  }
}
static void cpu_copy(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }

/* One product on the calling thread. */
static void gemm_one(duet_dtype dt, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int64_t m,
                     int64_t n, int64_t k, double alpha, const void *a, int64_t lda, const void *b,
                     int64_t ldb, double beta, void *c, int64_t ldc) {
  typedef duet_blas_int bi;
  if (dt == DUET_F64)
    cblas_dgemm(CblasRowMajor, ta, tb, (bi)m, (bi)n, (bi)k, alpha, a, (bi)lda, b, (bi)ldb, beta, c, (bi)ldc);
  else
    cblas_sgemm(CblasRowMajor, ta, tb, (bi)m, (bi)n, (bi)k, (float)alpha, a, (bi)lda, b, (bi)ldb, (float)beta, c,
                (bi)ldc);
}

/* Below this many multiply-adds per thread a product runs on one thread: OpenBLAS also takes
 * its small-matrix kernel under 1e6 (a different summation order for long k), so keeping
 * every part above that keeps each element's bits those of the whole product. */
#define GEMM_SPLIT_MIN 2000000.0

/* Products are threaded here, with OpenMP, not by OpenBLAS: on a machine with as many cores
 * as threads OpenBLAS's pthread pool and OpenMP's team take turns on the same cores, and
 * OpenBLAS's idle workers spin in sched_yield for a long time after every call (measured on
 * the tiny config at 2 threads: a third of the step's CPU time in the kernel; see
 * experiments/RESULTS-train.md). OpenBLAS is held at one thread during the call. A product
 * is cut along the rows of C (or its columns when it has fewer rows) into one part per
 * thread; a part computes each of its elements exactly as the whole product would (same k
 * order, same kernel), so the result is the same bits at any thread count. */
static void cpu_gemm_batched(duet_dtype dt, int trans_a, int trans_b, int64_t m, int64_t n,
                             int64_t k, double alpha, const void *a, int64_t lda,
                             int64_t stride_a, const void *b, int64_t ldb, int64_t stride_b,
                             double beta, void *c, int64_t ldc, int64_t stride_c,
                             int64_t batch) {
  enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
  enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
  size_t es = dt == DUET_F64 ? sizeof(double) : sizeof(float);
  const char *pa = a, *pb = b;
  char *pc = c;
  /* bf16 products (core/cpu_products.h): oneDNN threads each one itself. */
  if (dt == DUET_F32 && duet_cpu_matmul_precision() == DUET_MATMUL_BF16 && !omp_in_parallel()) {
    int64_t left = 0; /* the first product oneDNN did not make */
    while (left < batch &&
           duet_cpu_gemm_bf16(trans_a, trans_b, m, n, k, (float)alpha, (const float *)(pa + (size_t)(left * stride_a) * es),
                              lda, (const float *)(pb + (size_t)(left * stride_b) * es), ldb, (float)beta,
                              (float *)(pc + (size_t)(left * stride_c) * es), ldc) == 0)
      left++;
    if (left == batch) return;
    pa += (size_t)(left * stride_a) * es;
    pb += (size_t)(left * stride_b) * es;
    pc += (size_t)(left * stride_c) * es;
    batch -= left;
  }
  /* Inside a parallel region the caller owns the threads: one product per call, and OpenBLAS's
   * thread count is left alone (changing that global from several threads at once would race). */
  int nested = omp_in_parallel();
  int blas_threads = nested ? 1 : duet_blas_threads();
  if (blas_threads != 1) duet_blas_set_threads(1);
  double work = (double)m * (double)n * (double)k;
  int threads = nested ? 1 : omp_get_max_threads();
  if (threads > 1 && batch >= threads && work * (double)batch >= GEMM_SPLIT_MIN * threads) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < batch; i++)
      gemm_one(dt, ta, tb, m, n, k, alpha, pa + (size_t)(i * stride_a) * es, lda,
               pb + (size_t)(i * stride_b) * es, ldb, beta, pc + (size_t)(i * stride_c) * es, ldc);
  } else {
    /* Parts: as many as threads, each at least GEMM_SPLIT_MIN multiply-adds, rounded to
     * 32 rows or columns so that no part ends in a narrow kernel edge. */
    int64_t along_m = m >= n, len = along_m ? m : n;
    int64_t parts = threads > 1 ? (int64_t)(work / GEMM_SPLIT_MIN) : 1;
    if (parts > threads) parts = threads;
    if (parts > len / 32) parts = len / 32;
    if (parts < 1) parts = 1;
    int64_t step = ((len + parts - 1) / parts + 31) / 32 * 32;
    for (int64_t i = 0; i < batch; i++) {
      const char *ai = pa + (size_t)(i * stride_a) * es, *bi = pb + (size_t)(i * stride_b) * es;
      char *ci = pc + (size_t)(i * stride_c) * es;
      if (parts == 1) {
        gemm_one(dt, ta, tb, m, n, k, alpha, ai, lda, bi, ldb, beta, ci, ldc);
        continue;
      }
#pragma omp parallel for schedule(static) num_threads((int)parts)
      for (int64_t p = 0; p < parts; p++) {
        int64_t lo = p * step, hi = lo + step < len ? lo + step : len;
        if (lo >= hi) continue;
        if (along_m) /* rows lo..hi of op(A) and of C */
          gemm_one(dt, ta, tb, hi - lo, n, k, alpha, ai + (size_t)(trans_a ? lo : lo * lda) * es, lda,
                   bi, ldb, beta, ci + (size_t)(lo * ldc) * es, ldc);
        else /* columns lo..hi of op(B) and of C */
          gemm_one(dt, ta, tb, m, hi - lo, k, alpha, ai, lda,
                   bi + (size_t)(trans_b ? lo * ldb : lo) * es, ldb, beta, ci + (size_t)lo * es, ldc);
      }
    }
  }
  if (blas_threads != 1) duet_blas_set_threads(blas_threads);
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
