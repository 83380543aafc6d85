/* CPU kernels of the fused norm + adaLN modulation (core/kernels_nn.h), f32 and f64 from one
 * macro body. Statistics are reduced in double, as the separate norms do; y is rounded once
 * from the double value of n * (1 + scale) + shift. */
#include <math.h>

#include "core/cpu/cpu_kernels.h"
#include "core/cpu/vec_math.h"

/* Per-(sample, channel) sums (dshift, dscale) are split across threads by sample and block of
 * columns, each summing its rows in order: no atomics, the same bits at any thread count. */
#define NM_COL_BLOCK 64

/* Rows in blocks of at least NM_ROWS_MIN elements per task. The row loops live in functions
 * without an OpenMP region, so that the f32 ones get AVX2 and AVX-512 clones (DUET_VEC_F32):
 * an OpenMP region's outlined body is compiled for the baseline only. The sums are "omp simd"
 * reductions, whose order follows the vector width (at most an ulp on an f32 result). */
#define NM_ROWS_MIN 4096

#define DEFINE_NORM_MODULATE(T, S, VEC)                                                             \
  VEC static void nm_fwd_rows_##S(int rms, const T *px, const T *psh, const T *psc, T *py, T *pm,   \
                                  T *pr, int64_t L, int64_t D, int64_t r0, int64_t r1, double eps) { \
    for (int64_t r = r0; r < r1; r++) {                                                             \
      const T *xr = px + r * D, *sh = psh + (r / L) * D, *sc = psc + (r / L) * D;                   \
      T *yr = py + r * D;                                                                           \
      double mu = 0, var = 0;                                                                       \
      if (!rms) {                                                                                   \
        _Pragma("omp simd reduction(+ : mu)")                                                       \
        for (int64_t j = 0; j < D; j++) mu += xr[j];                                                \
        mu /= (double)D;                                                                            \
      }                                                                                             \
      _Pragma("omp simd reduction(+ : var)")                                                        \
      for (int64_t j = 0; j < D; j++) var += ((double)xr[j] - mu) * ((double)xr[j] - mu);           \
      var /= (double)D;                                                                             \
      double rs = 1.0 / sqrt(var + eps);                                                            \
      for (int64_t j = 0; j < D; j++) {                                                             \
        double n = ((double)xr[j] - mu) * rs;                                                       \
        yr[j] = (T)(n * (1.0 + (double)sc[j]) + (double)sh[j]);                                     \
      }                                                                                             \
      if (pm) pm[r] = (T)mu;                                                                        \
      if (pr) pr[r] = (T)rs;                                                                        \
    }                                                                                               \
  }                                                                                                 \
  /* dn = dy * (1 + scale); dx = rstd * (dn - mean(dn) - n * mean(dn * n)), without the mean(dn)   \
   * term for rmsnorm. */                                                                           \
  VEC static void nm_bwd_rows_##S(int rms, const T *px, const T *psc, const T *pm, const T *pr,     \
                                  const T *pdy, T *pdx, int64_t L, int64_t D, int64_t r0,           \
                                  int64_t r1) {                                                     \
    for (int64_t r = r0; r < r1; r++) {                                                             \
      const T *xr = px + r * D, *gr = pdy + r * D, *sc = psc + (r / L) * D;                         \
      T *dr = pdx + r * D;                                                                          \
      double mu = pm ? (double)pm[r] : 0.0, rs = pr[r], s1 = 0, s2 = 0;                             \
      _Pragma("omp simd reduction(+ : s1, s2)")                                                     \
      for (int64_t j = 0; j < D; j++) {                                                             \
        double g = (double)gr[j] * (1.0 + (double)sc[j]);                                           \
        s1 += g;                                                                                    \
        s2 += g * ((double)xr[j] - mu) * rs;                                                        \
      }                                                                                             \
      s1 = rms ? 0.0 : s1 / (double)D;                                                              \
      s2 /= (double)D;                                                                              \
      for (int64_t j = 0; j < D; j++) {                                                             \
        double g = (double)gr[j] * (1.0 + (double)sc[j]);                                           \
        double n = ((double)xr[j] - mu) * rs;                                                       \
        dr[j] += (T)(rs * (g - s1 - n * s2));                                                       \
      }                                                                                             \
    }                                                                                               \
  }                                                                                                 \
  /* Column sums over one sample's rows for a block of columns, in row order. */                   \
  VEC static void nm_dmod_cols_##S(const T *px, const T *pm, const T *pr, const T *pdy, T *pdsh,    \
                                   T *pdsc, int64_t L, int64_t D, int64_t b, int64_t j0,           \
                                   int64_t nj) {                                                    \
    double ash[NM_COL_BLOCK] = {0}, asc[NM_COL_BLOCK] = {0};                                        \
    for (int64_t l = 0; l < L; l++) {                                                               \
      int64_t r = b * L + l;                                                                        \
      const T *xr = px + r * D + j0, *gr = pdy + r * D + j0;                                        \
      double mu = pm ? (double)pm[r] : 0.0, rs = pr[r];                                             \
      for (int64_t j = 0; j < nj; j++) {                                                            \
        ash[j] += gr[j];                                                                            \
        asc[j] += (double)gr[j] * (((double)xr[j] - mu) * rs);                                      \
      }                                                                                             \
    }                                                                                               \
    for (int64_t j = 0; j < nj; j++) {                                                              \
      if (pdsh) pdsh[b * D + j0 + j] += (T)ash[j];                                                  \
      if (pdsc) pdsc[b * D + j0 + j] += (T)asc[j];                                                  \
    }                                                                                               \
  }                                                                                                 \
  static void nm_fwd_##S(int rms, const duet_tensor *x, const duet_tensor *shift,                   \
                         const duet_tensor *scale, double eps, duet_tensor *y, duet_tensor *mean,   \
                         duet_tensor *rstd) {                                                       \
    const T *px = x->data, *psh = shift->data, *psc = scale->data;                                  \
    T *py = y->data, *pm = mean ? mean->data : NULL, *pr = rstd ? rstd->data : NULL;                \
    int64_t L = x->shape[1], D = x->shape[2], rows = x->shape[0] * L;                               \
    int64_t per = D >= NM_ROWS_MIN ? 1 : NM_ROWS_MIN / (D ? D : 1), nblk = (rows + per - 1) / per;  \
    _Pragma("omp parallel for schedule(static) if (x->numel >= DUET_CPU_PARALLEL_MIN)")             \
    for (int64_t blk = 0; blk < nblk; blk++)                                                        \
      nm_fwd_rows_##S(rms, px, psh, psc, py, pm, pr, L, D, blk * per,                               \
                      (blk + 1) * per < rows ? (blk + 1) * per : rows, eps);                        \
  }                                                                                                 \
  static void nm_bwd_##S(int rms, const duet_tensor *x, const duet_tensor *scale,                   \
                         const duet_tensor *mean, const duet_tensor *rstd, const duet_tensor *dy,   \
                         duet_tensor *dx, duet_tensor *dshift, duet_tensor *dscale) {               \
    const T *px = x->data, *psc = scale->data, *pdy = dy->data, *pr = rstd->data;                   \
    const T *pm = (!rms && mean) ? mean->data : NULL;                                               \
    int64_t B = x->shape[0], L = x->shape[1], D = x->shape[2], rows = B * L;                        \
    if (dx) {                                                                                       \
      T *pdx = dx->data;                                                                            \
      int64_t per = D >= NM_ROWS_MIN ? 1 : NM_ROWS_MIN / (D ? D : 1), nblk = (rows + per - 1) / per; \
      _Pragma("omp parallel for schedule(static) if (x->numel >= DUET_CPU_PARALLEL_MIN)")           \
      for (int64_t blk = 0; blk < nblk; blk++)                                                      \
        nm_bwd_rows_##S(rms, px, psc, pm, pr, pdy, pdx, L, D, blk * per,                            \
                        (blk + 1) * per < rows ? (blk + 1) * per : rows);                           \
    }                                                                                               \
    if (dshift || dscale) {                                                                         \
      T *pdsh = dshift ? dshift->data : NULL, *pdsc = dscale ? dscale->data : NULL;                 \
      int64_t nblk = (D + NM_COL_BLOCK - 1) / NM_COL_BLOCK;                                         \
      _Pragma("omp parallel for schedule(static) if (x->numel >= DUET_CPU_PARALLEL_MIN)")           \
      for (int64_t task = 0; task < B * nblk; task++) {                                             \
        int64_t b = task / nblk, j0 = (task % nblk) * NM_COL_BLOCK;                                 \
        nm_dmod_cols_##S(px, pm, pr, pdy, pdsh, pdsc, L, D, b, j0,                                  \
                         D - j0 < NM_COL_BLOCK ? D - j0 : NM_COL_BLOCK);                            \
      }                                                                                             \
    }                                                                                               \
  }

DEFINE_NORM_MODULATE(float, f32, DUET_VEC_F32)
DEFINE_NORM_MODULATE(double, f64, )

static void nm_fwd(int rms, const duet_tensor *x, const duet_tensor *shift, const duet_tensor *scale, double eps,
                   duet_tensor *y, duet_tensor *mean, duet_tensor *rstd) {
  if (x->dtype == DUET_F64) nm_fwd_f64(rms, x, shift, scale, eps, y, mean, rstd);
  else nm_fwd_f32(rms, x, shift, scale, eps, y, mean, rstd);
}

static void nm_bwd(int rms, const duet_tensor *x, const duet_tensor *scale, const duet_tensor *mean,
                   const duet_tensor *rstd, const duet_tensor *dy, duet_tensor *dx, duet_tensor *dshift,
                   duet_tensor *dscale) {
  if (x->dtype == DUET_F64) nm_bwd_f64(rms, x, scale, mean, rstd, dy, dx, dshift, dscale);
  else nm_bwd_f32(rms, x, scale, mean, rstd, dy, dx, dshift, dscale);
}

const struct duet_kernels_norm_modulate duet_cpu_norm_modulate_kernels = {.fwd = nm_fwd, .bwd = nm_bwd};
