/* Math for the CPU kernels' f32 hot loops, written so that the loops calling it vectorise.
 *
 * libm's expf and tanhf are calls the compiler cannot vectorise without -ffast-math, and per
 * element they dominated the f32 softmax tiles and GELU. The f64 kernels keep libm: they are
 * what the gradient checks run, and only need to compute the same function. */
#ifndef DUET_CORE_CPU_VEC_MATH_H
#define DUET_CORE_CPU_VEC_MATH_H

#include <stdint.h>

typedef union duet_f32_bits {
  float f;
  int32_t i;
} duet_f32_bits;

/* exp(x) = 2^n exp(r) with n = round(x / ln 2) and |r| <= ln(2)/2, where the degree-7 Taylor
 * polynomial is within 1e-8 relative; with rounding, within 1.3 ulp of the exact value over
 * [-87, 88] (1.22 ulp, 1.03e-7 relative, at worst over every float in that range, measured
 * against libm's double exp). Below -87 (-inf included) the result is exactly 0; above 88 (+inf included) it
 * saturates at exp(88); NaN stays NaN. The range tests are made on the bits as integers and
 * the selects with masks, because a floating-point compare may trap and so keeps GCC from
 * vectorising a select under the default -ftrapping-math. */
static inline float duet_exp_f32(float x) {
  const duet_f32_bits lo = {.f = -87.0f}, hi = {.f = 88.0f};
  duet_f32_bits u = {.f = x};
  int32_t mag = u.i & 0x7fffffff;
  /* All ones where x < -87 (a negative float's bits grow with its magnitude), x > 88, NaN. */
  int32_t below = -(int32_t)((u.i < 0) & (mag > (lo.i & 0x7fffffff)) & (mag <= 0x7f800000));
  int32_t above = -(int32_t)((u.i > hi.i) & (u.i <= 0x7f800000));
  int32_t nan = -(int32_t)(mag > 0x7f800000);
  duet_f32_bits xc = {.i = (u.i & ~(below | above | nan)) | (lo.i & below) | (hi.i & above)};
  const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
  float n = (xc.f * 1.44269504f + shifter) - shifter;
  float r = xc.f - n * 0.693145752f; /* ln 2 in two parts, so n * ln2_hi is exact */
  r = r - n * 1.42860677e-06f;
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  duet_f32_bits two_n = {.i = ((int32_t)n + 127) * (1 << 23)};
  duet_f32_bits y = {.f = p * two_n.f};
  y.i = (y.i & ~(below | nan)) | (u.i & nan);
  return y.f;
}

/* The build targets baseline x86-64 (4 floats a vector); where the compiler can, a function
 * marked DUET_VEC_F32 also gets AVX2 and AVX-512 versions, picked at load time for the
 * machine as OpenBLAS picks its kernels. The versions round the same operations; only a
 * reduction's order follows the vector width, so bits may differ between machines (as
 * OpenBLAS's do), never between thread counts. Such a function must not contain an OpenMP
 * region: the outlined region would be compiled for the baseline only. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define DUET_VEC_F32 __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef DUET_VEC_F32
#define DUET_VEC_F32
#endif

#endif
