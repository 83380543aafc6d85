/* Counter-based random numbers (Philox-4x32-10): the numbers are a pure function of
 * (seed, stream, offset), so any device, thread or rank that knows those three gets the same
 * values without sharing state. A stream names one use (a parameter's init, the noise of
 * one step, a loader's shuffle); offset counts 4-word blocks within it. */
#ifndef DUET_CORE_RNG_H
#define DUET_CORE_RNG_H

#include <stdint.h>

typedef struct duet_rng {
  uint64_t seed;
  uint64_t stream;
  uint64_t offset; /* next 128-bit block */
} duet_rng;

/* One Philox-4x32-10 block: counter (offset, stream) under key seed. */
void duet_philox4x32(uint64_t seed, uint64_t stream, uint64_t offset, uint32_t out[4]);

duet_rng duet_rng_make(uint64_t seed, uint64_t stream);
/* Mixes several words into one stream id (e.g. hash of (purpose, epoch, clip index)). */
uint64_t duet_rng_stream_id(uint64_t a, uint64_t b, uint64_t c);

uint32_t duet_rng_u32(duet_rng *r);
uint64_t duet_rng_u64(duet_rng *r);
/* Uniform in [0, 1) with 24 (float) or 53 (double) random bits. */
float duet_rng_uniform(duet_rng *r);
double duet_rng_uniform_f64(duet_rng *r);
/* Uniform integer in [0, n). */
uint64_t duet_rng_below(duet_rng *r, uint64_t n);
/* Standard normal (Box-Muller on one block). */
double duet_rng_normal_f64(duet_rng *r);

/* Fills with the value at index i a pure function of (seed, stream, first + i), so a fill split
 * across threads or devices gives the same numbers as one fill. */
void duet_rng_fill_uniform_f32(uint64_t seed, uint64_t stream, uint64_t first, float *x,
                               int64_t n, float lo, float hi);
void duet_rng_fill_normal_f32(uint64_t seed, uint64_t stream, uint64_t first, float *x,
                              int64_t n, float mean, float std);
void duet_rng_fill_normal_f64(uint64_t seed, uint64_t stream, uint64_t first, double *x,
                              int64_t n, double mean, double std);

/* Fisher-Yates permutation of [0, n) from (seed, stream). */
void duet_rng_permutation(uint64_t seed, uint64_t stream, int64_t *perm, int64_t n);

#endif
