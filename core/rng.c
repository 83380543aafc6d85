#include "core/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
  uint64_t p = (uint64_t)a * b;
  *hi = (uint32_t)(p >> 32);
  *lo = (uint32_t)p;
}

void duet_philox4x32(uint64_t seed, uint64_t stream, uint64_t offset, uint32_t out[4]) {
  uint32_t c0 = (uint32_t)offset, c1 = (uint32_t)(offset >> 32);
  uint32_t c2 = (uint32_t)stream, c3 = (uint32_t)(stream >> 32);
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int round = 0; round < 10; round++) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(PHILOX_M0, c0, &hi0, &lo0);
    mulhilo(PHILOX_M1, c2, &hi1, &lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += PHILOX_W0;
    k1 += PHILOX_W1;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

duet_rng duet_rng_make(uint64_t seed, uint64_t stream) {
  duet_rng r = {seed, stream, 0};
  return r;
}

/* splitmix64 finaliser: a cheap bijective mix so nearby inputs give unrelated streams. */
static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t duet_rng_stream_id(uint64_t a, uint64_t b, uint64_t c) {
  return mix64(mix64(mix64(a) ^ b) ^ c);
}

uint32_t duet_rng_u32(duet_rng *r) {
  uint32_t out[4];
  duet_philox4x32(r->seed, r->stream, r->offset++, out);
  return out[0];
}

uint64_t duet_rng_u64(duet_rng *r) {
  uint32_t out[4];
  duet_philox4x32(r->seed, r->stream, r->offset++, out);
  return ((uint64_t)out[1] << 32) | out[0];
}

float duet_rng_uniform(duet_rng *r) { return (float)(duet_rng_u32(r) >> 8) * 0x1.0p-24f; }

double duet_rng_uniform_f64(duet_rng *r) { return (double)(duet_rng_u64(r) >> 11) * 0x1.0p-53; }

uint64_t duet_rng_below(duet_rng *r, uint64_t n) {
  if (n <= 1) return 0;
  /* Rejection keeps the result exactly uniform. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  for (;;) {
    uint64_t v = duet_rng_u64(r);
    if (v < limit) return v % n;
  }
}

static inline double u32_to_open01(uint32_t a, uint32_t b) {
  /* (0, 1]: never 0, so log() is finite. */
  uint64_t v = (((uint64_t)a << 32) | b) >> 11;
  return ((double)v + 1.0) * 0x1.0p-53;
}

static inline void box_muller(const uint32_t w[4], double *z0, double *z1) {
  double u1 = u32_to_open01(w[0], w[1]);
  double u2 = u32_to_open01(w[2], w[3]);
  double rad = sqrt(-2.0 * log(u1));
  double th = 6.283185307179586 * u2;
  *z0 = rad * cos(th);
  *z1 = rad * sin(th);
}

double duet_rng_normal_f64(duet_rng *r) {
  uint32_t w[4];
  duet_philox4x32(r->seed, r->stream, r->offset++, w);
  double z0, z1;
  box_muller(w, &z0, &z1);
  return z0;
}

/* Elements from which the fills below use every thread. A normal costs a Philox block, a log
 * and a sine and cosine in double (about 50 ns), so a few thousand are worth splitting: the
 * noise of a tiny.ini batch (49,152 video values) ran on one thread at the old 65,536. Any split
 * gives the same values. */
#define RNG_PARALLEL_MIN 8192

void duet_rng_fill_uniform_f32(uint64_t seed, uint64_t stream, uint64_t first, float *x,
                               int64_t n, float lo, float hi) {
#pragma omp parallel for schedule(static) if (n > RNG_PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) {
    uint32_t w[4];
    duet_philox4x32(seed, stream, first + (uint64_t)i, w);
    x[i] = lo + (hi - lo) * ((float)(w[0] >> 8) * 0x1.0p-24f);
  }
}

/* Element i uses block (first + i) / 2 and takes the first or second Box-Muller output, so
 * one block serves two neighbours and any split of the range reproduces the same values. The
 * loop runs over blocks, so that each block's Philox rounds and Box-Muller transform are
 * computed once for both of its elements (the first and last blocks may serve only one). */
#define DEFINE_NORMAL_FILL(T, NAME)                                                       \
  void NAME(uint64_t seed, uint64_t stream, uint64_t first, T *x, int64_t n, T mean,    \
            T std) {                                                                     \
    if (n <= 0) return;                                                                  \
    const uint64_t b0 = first >> 1, b1 = (first + (uint64_t)n - 1) >> 1;                \
    const int64_t blocks = (int64_t)(b1 - b0) + 1;                                       \
    _Pragma("omp parallel for schedule(static) if (n > RNG_PARALLEL_MIN)")               \
    for (int64_t j = 0; j < blocks; j++) {                                               \
      uint64_t blk = b0 + (uint64_t)j;                                                   \
      uint32_t w[4];                                                                     \
      duet_philox4x32(seed, stream, blk, w);                                             \
      double z0, z1;                                                                     \
      box_muller(w, &z0, &z1);                                                           \
      uint64_t idx0 = blk << 1;                                                          \
      if (idx0 >= first) x[idx0 - first] = (T)(mean + std * z0);                         \
      if (idx0 + 1 < first + (uint64_t)n) x[idx0 + 1 - first] = (T)(mean + std * z1);    \
    }                                                                                    \
  }
DEFINE_NORMAL_FILL(float, duet_rng_fill_normal_f32)
DEFINE_NORMAL_FILL(double, duet_rng_fill_normal_f64)

void duet_rng_permutation(uint64_t seed, uint64_t stream, int64_t *perm, int64_t n) {
  for (int64_t i = 0; i < n; i++) perm[i] = i;
  duet_rng r = duet_rng_make(seed, stream);
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)duet_rng_below(&r, (uint64_t)i + 1);
    int64_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}
