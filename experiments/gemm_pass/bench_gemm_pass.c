/* Time a list of matrix products, such as the products of one training pass recorded by
 * log_shim.c, with whatever cblas_sgemm the program is linked to. Prints a Markdown table of
 * the shapes that take at least 1 % of the multiply-adds, and the total.
 *
 *   build/bin/bench_gemm_pass experiments/gemm_pass/tiny_pass.txt          (OpenBLAS, as built)
 *
 * The same source against MKL (pip install mkl; its libmkl_rt.so.3 in $MKL_LIB):
 *   gcc -O2 experiments/gemm_pass/bench_gemm_pass.c -o /tmp/bench_gemm_pass_mkl \
 *       -I/usr/include/x86_64-linux-gnu -L$MKL_LIB -l:libmkl_rt.so.3 -Wl,-rpath,$MKL_LIB
 *   MKL_THREADING_LAYER=SEQUENTIAL /tmp/bench_gemm_pass_mkl experiments/gemm_pass/tiny_pass.txt
 *
 * Each shape runs on the same buffers (random values), repeated for about 1e8 multiply-adds,
 * best of 3 repeats; the total is the sum over the list of best time x calls. One thread:
 * run OpenBLAS with OPENBLAS_NUM_THREADS=1. Operands stay in cache between repeats, as the
 * pass's mostly do at these sizes. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define MAX_SHAPES 4096
#define BUF_FLOATS ((size_t)1 << 22)

typedef struct shape {
  int ta, tb, m, n, k, lda, ldb, ldc, calls;
  float beta;
  double best_s;
} shape;

int main(int argc, char **argv) {
  if (argc != 2 || argv[1][0] == '-') {
    fprintf(stderr, "usage: bench_gemm_pass SHAPES.txt  (lines: ta tb m n k beta lda ldb ldc calls)\n");
    return argc == 2 ? 0 : 1;
  }
  FILE *f = fopen(argv[1], "r");
  if (!f) {
    fprintf(stderr, "bench_gemm_pass: cannot open %s\n", argv[1]);
    return 1;
  }
  static shape sh[MAX_SHAPES];
  int ns = 0, line = 0;
  char buf[256];
  while (fgets(buf, sizeof buf, f)) {
    line++;
    if (buf[0] == '#' || buf[0] == '\n') continue;
    shape s;
    if (sscanf(buf, "%d %d %d %d %d %f %d %d %d %d", &s.ta, &s.tb, &s.m, &s.n, &s.k, &s.beta, &s.lda,
               &s.ldb, &s.ldc, &s.calls) != 10 || ns == MAX_SHAPES ||
        (size_t)(s.ta ? s.k : s.m) * (size_t)s.lda > BUF_FLOATS ||
        (size_t)(s.tb ? s.n : s.k) * (size_t)s.ldb > BUF_FLOATS || (size_t)s.m * (size_t)s.ldc > BUF_FLOATS) {
      fprintf(stderr, "bench_gemm_pass: %s:%d: not a shape line this program can run\n", argv[1], line);
      fclose(f);
      return 1;
    }
    sh[ns++] = s;
  }
  fclose(f);
  float *a = malloc(BUF_FLOATS * sizeof *a), *b = malloc(BUF_FLOATS * sizeof *b),
        *c = malloc(BUF_FLOATS * sizeof *c);
  if (!a || !b || !c) {
    fprintf(stderr, "bench_gemm_pass: out of memory\n");
    return 1;
  }
  srand(1);
  for (size_t i = 0; i < BUF_FLOATS; i++) {
    a[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    b[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    c[i] = 0;
  }
  double total_s = 0, total_mac = 0;
  for (int i = 0; i < ns; i++) {
    shape *s = &sh[i];
    double mac = (double)s->m * s->n * s->k;
    int reps = (int)(1e8 / mac) + 3;
    s->best_s = 1e30;
    for (int r = 0; r < 3; r++) {
      double t0 = now_s();
      for (int j = 0; j < reps; j++)
        cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans,
                    s->m, s->n, s->k, 1.0f, a, s->lda, b, s->ldb, s->beta, c, s->ldc);
      double t = (now_s() - t0) / reps;
      if (t < s->best_s) s->best_s = t;
    }
    total_s += s->best_s * s->calls;
    total_mac += mac * s->calls;
  }
  printf("| op(A) | op(B) | m | n | k | beta | calls | GFLOP/s | ms in all calls |\n");
  printf("|---|---|--:|--:|--:|--:|--:|--:|--:|\n");
  for (int i = 0; i < ns; i++) {
    const shape *s = &sh[i];
    double mac = (double)s->m * s->n * s->k;
    if (mac * s->calls < 0.01 * total_mac) continue;
    printf("| %s | %s | %d | %d | %d | %g | %d | %.1f | %.2f |\n", s->ta ? "A^T" : "A", s->tb ? "B^T" : "B",
           s->m, s->n, s->k, s->beta, s->calls, 2 * mac / s->best_s / 1e9, 1e3 * s->best_s * s->calls);
  }
  printf("\ntotal: %d shapes, %.3f G multiply-adds, %.2f ms, %.1f GFLOP/s\n", ns, total_mac / 1e9,
         1e3 * total_s, 2 * total_mac / total_s / 1e9);
  free(a);
  free(b);
  free(c);
  return 0;
}
