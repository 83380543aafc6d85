/* Philox-4x32-10 against the published known-answer vectors, the normal fill against its
 * definition element by element, and the fills' invariance to how a range is split. */
#include <math.h>
#include <stdlib.h>

#include "core/rng.h"
#include "testlib.h"

/* The normal fill's definition, one element at a time: element idx of a stream is the first
 * (idx even) or second (idx odd) Box-Muller output of Philox block idx / 2. */
static double normal_at(uint64_t seed, uint64_t stream, uint64_t idx) {
  uint32_t w[4];
  duet_philox4x32(seed, stream, idx >> 1, w);
  double u1 = ((double)((((uint64_t)w[0] << 32) | w[1]) >> 11) + 1.0) * 0x1.0p-53;
  double u2 = ((double)((((uint64_t)w[2] << 32) | w[3]) >> 11) + 1.0) * 0x1.0p-53;
  double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
  return (idx & 1) ? rad * sin(th) : rad * cos(th);
}

int main(void) {
  uint32_t out[4];
  /* Counter 0, key 0. */
  duet_philox4x32(0, 0, 0, out);
  CHECK(out[0] == 0x6627e8d5u && out[1] == 0xe169c58du && out[2] == 0xbc57ac4cu && out[3] == 0x9b00dbd8u);
  /* All-ones counter and key. */
  duet_philox4x32(~0ull, ~0ull, ~0ull, out);
  CHECK(out[0] == 0x408f276du && out[1] == 0x41c83b0eu && out[2] == 0xa20bc7c6u && out[3] == 0x6d5451fdu);
  /* Counter (243f6a88 85a308d3 13198a2e 03707344), key (a4093822 299f31d0). */
  duet_philox4x32(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull, out);
  CHECK(out[0] == 0xd16cfe09u && out[1] == 0x94fdccebu && out[2] == 0x5001e420u && out[3] == 0x24126ea1u);

  /* A fill split in two pieces equals one fill. */
  enum { N = 1001 };
  float whole[N], part[N];
  duet_rng_fill_normal_f32(7, 3, 100, whole, N, 0, 1);
  duet_rng_fill_normal_f32(7, 3, 100, part, 333, 0, 1);
  duet_rng_fill_normal_f32(7, 3, 433, part + 333, N - 333, 0, 1);
  int same = 1;
  for (int i = 0; i < N; i++) same &= whole[i] == part[i];
  CHECK(same);

  /* Every element equals its definition, for odd and even starts and lengths, one element
   * and a range long enough to be split over threads. */
  const struct { uint64_t first; int64_t n; } ranges[] = {{0, 1}, {1, 1}, {5, 2}, {6, 3}, {99, 70001}, {100, 70000}};
  double *d = malloc(sizeof *d * 70001);
  int defined = 1;
  for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
    for (int64_t i = 0; i < ranges[r].n + 1 && i < 70001; i++) d[i] = -99; /* poison */
    duet_rng_fill_normal_f64(11, 4, ranges[r].first, d, ranges[r].n, 0.5, 2.0);
    for (int64_t i = 0; i < ranges[r].n; i++)
      defined &= d[i] == 0.5 + 2.0 * normal_at(11, 4, ranges[r].first + (uint64_t)i);
    if (ranges[r].n < 70001) defined &= d[ranges[r].n] == -99; /* nothing past the end */
  }
  free(d);
  CHECK(defined);

  /* Moments of a large normal fill. */
  int64_t n = 200000;
  double *x = malloc(sizeof *x * (size_t)n);
  duet_rng_fill_normal_f64(42, 1, 0, x, n, 0, 1);
  double m = 0, v = 0;
  for (int64_t i = 0; i < n; i++) m += x[i];
  m /= (double)n;
  for (int64_t i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
  v /= (double)n;
  CHECK_NEAR(m, 0.0, 0.01);
  CHECK_NEAR(v, 1.0, 0.02);
  free(x);

  /* Uniform in range; permutation is a permutation and depends on the stream. */
  float u[1000];
  duet_rng_fill_uniform_f32(1, 2, 0, u, 1000, -3, 5);
  int in_range = 1;
  for (int i = 0; i < 1000; i++) in_range &= u[i] >= -3 && u[i] < 5;
  CHECK(in_range);
  int64_t p[50], q[50], seen[50] = {0};
  duet_rng_permutation(9, 1, p, 50);
  duet_rng_permutation(9, 2, q, 50);
  int differs = 0;
  for (int i = 0; i < 50; i++) { seen[p[i]]++; differs |= p[i] != q[i]; }
  int perm_ok = 1;
  for (int i = 0; i < 50; i++) perm_ok &= seen[i] == 1;
  CHECK(perm_ok);
  CHECK(differs);
  return test_finish("core_rng");
}
