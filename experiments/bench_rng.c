/* Speed of the normal fill that draws the flow-matching noise: one base.ini batch of 4 clips
 * (32 frames of 256x256x3, 25.2 M values) per repeat, at the OpenMP thread count of the
 * environment. Prints a Markdown row: threads, best and median ms per batch, M values/s.
 *
 *   OMP_NUM_THREADS=2 build/bin/bench_rng [repeats] */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/rng.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 5;
  if (reps < 1 || reps > 1000) reps = 5;
  const int clips = 4;
  const int64_t per_clip = 32LL * 256 * 256 * 3;
  float *x = malloc(sizeof(float) * (size_t)per_clip);
  double *ms = malloc(sizeof(double) * (size_t)reps);
  if (!x || !ms) {
    fprintf(stderr, "bench_rng: out of memory\n");
    return 1;
  }
  duet_rng_fill_normal_f32(1, 1, 0, x, per_clip, 0, 1); /* warm-up: pages, thread pool */
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    for (int c = 0; c < clips; c++) duet_rng_fill_normal_f32(1, (uint64_t)c, 0, x, per_clip, 0, 1);
    ms[r] = (now() - t0) * 1e3;
  }
  qsort(ms, (size_t)reps, sizeof *ms, cmp_double);
  printf("| threads | ms per batch (best) | ms (median) | M values/s (best) |\n| ---: | ---: | ---: | ---: |\n");
  printf("| %d | %.1f | %.1f | %.1f |\n", omp_get_max_threads(), ms[0], ms[reps / 2],
         (double)clips * (double)per_clip / (ms[0] * 1e3));
  free(x);
  free(ms);
  return 0;
}
