/* LD_PRELOAD shim that records every cblas_sgemm call of a program, one line per call:
 *   trans_a trans_b m n k beta lda ldb ldc
 * (row-major, as duet calls it), then hands the call on to the real BLAS. With it, the
 * products of one tiny.ini training pass were listed for bench_gemm_pass (tiny_pass.txt):
 *
 *   gcc -O2 -shared -fPIC experiments/gemm_pass/log_shim.c -o /tmp/gemm_log.so -ldl
 *   GEMM_LOG=/tmp/gemm.log LD_PRELOAD=/tmp/gemm_log.so OMP_NUM_THREADS=1 \
 *     build-twin/bin/duet_twin_dump <tiny.ini's [model] as --set args> --batch 4 --bench 1
 *
 * duet_twin_dump runs the pass twice (the dumped one, then the timed one): the second half of
 * the log is one pass. Not built with the project: it is a measuring aid. */
#define _GNU_SOURCE
#include <cblas.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

typedef void (*sgemm_fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE,
                         const enum CBLAS_TRANSPOSE, const blasint, const blasint, const blasint,
                         const float, const float *, const blasint, const float *, const blasint,
                         const float, float *, const blasint);

void cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta,
                 const enum CBLAS_TRANSPOSE tb, const blasint m, const blasint n, const blasint k,
                 const float alpha, const float *a, const blasint lda, const float *b,
                 const blasint ldb, const float beta, float *c, const blasint ldc) {
  static sgemm_fn real;
  static FILE *log;
  if (!real) real = (sgemm_fn)dlsym(RTLD_NEXT, "cblas_sgemm");
  if (!log && getenv("GEMM_LOG")) log = fopen(getenv("GEMM_LOG"), "w");
  if (log)
    fprintf(log, "%d %d %d %d %d %g %d %d %d\n", ta == CblasTrans, tb == CblasTrans, (int)m,
            (int)n, (int)k, beta, (int)lda, (int)ldb, (int)ldc);
  real(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
