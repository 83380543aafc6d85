/* CPU kernels for norms, activations, softmax and adaLN modulation. */
#include <math.h>

#include "core/cpu/cpu_kernels.h"
#include "core/cpu/vec_math.h"

/* Type-generic math, so that one macro body serves f32 (single-precision libm) and f64. */
#define T_EXP(v) _Generic((v), float: expf, default: exp)(v)

/* Per-input-channel sums over many rows (dw, db, dshift, ...) are split across threads by
 * blocks of columns, each thread summing its rows in order: no atomics, and results that do
 * not depend on the thread count. */
#define COL_BLOCK 64

static int64_t last_dim(const duet_tensor *x) { return x->ndim ? x->shape[x->ndim - 1] : 1; }
static int64_t row_count(const duet_tensor *x) {
  int64_t d = last_dim(x);
  return d ? x->numel / d : 0;
}

/* Reductions are accumulated in double for both dtypes, so f32 matches the f64 reference
 * closely even for long rows. */
#define DEFINE_LAYERNORM(T, S)                                                                     \
  static void layernorm_fwd_##S(const duet_tensor *x, const duet_tensor *w, const duet_tensor *b,  \
                                double eps, duet_tensor *y, duet_tensor *mean,                     \
                                duet_tensor *rstd) {                                               \
    const T *px = x->data, *pw = w ? w->data : NULL, *pb = b ? b->data : NULL;                     \
    T *py = y->data, *pm = mean ? mean->data : NULL, *pr = rstd ? rstd->data : NULL;               \
    int64_t D = last_dim(x), rows = row_count(x);                                                  \
    _Pragma("omp parallel for schedule(static) if (x->numel >= DUET_CPU_PARALLEL_MIN)")            \
    for (int64_t r = 0; r < rows; r++) {                                                           \
      const T *xr = px + r * D;                                                                    \
      T *yr = py + r * D;                                                                          \
      double mu = 0, var = 0;                                                                      \
      for (int64_t j = 0; j < D; j++) mu += xr[j];                                                 \
      mu /= (double)D;                                                                             \
      /* Two passes: the one-pass E[x^2] - E[x]^2 loses digits when |mean| >> std. */              \
      for (int64_t j = 0; j < D; j++) var += ((double)xr[j] - mu) * ((double)xr[j] - mu);          \
      var /= (double)D;                                                                            \
      double rs = 1.0 / sqrt(var + eps);                                                           \
      for (int64_t j = 0; j < D; j++) {                                                            \
        double v = ((double)xr[j] - mu) * rs;                                                      \
        if (pw) v *= pw[j];                                                                        \
        if (pb) v += pb[j];                                                                        \
        yr[j] = (T)v;                                                                              \
      }                                                                                            \
      if (pm) pm[r] = (T)mu;                                                                       \
      if (pr) pr[r] = (T)rs;                                                                       \
    }                                                                                              \
  }                                                                                                \
  static void layernorm_bwd_##S(const duet_tensor *x, const duet_tensor *w,                        \
                                const duet_tensor *mean, const duet_tensor *rstd,                  \
                                const duet_tensor *dy, duet_tensor *dx, duet_tensor *dw,           \
                                duet_tensor *db) {                                                 \
    const T *px = x->data, *pw = w ? w->data : NULL, *pm = mean->data, *pr = rstd->data;           \
    const T *pdy = dy->data;                                                                       \
    int64_t D = last_dim(x), rows = row_count(x);                                                  \
    if (dx) {                                                                                      \
      T *pdx = dx->data;                                                                           \
      _Pragma("omp parallel for schedule(static) if (x->numel >= DUET_CPU_PARALLEL_MIN)")          \
      for (int64_t r = 0; r < rows; r++) {                                                         \
        const T *xr = px + r * D, *gr = pdy + r * D;                                               \
        T *dr = pdx + r * D;                                                                       \
        double mu = pm[r], rs = pr[r], s1 = 0, s2 = 0;                                             \
        for (int64_t j = 0; j < D; j++) {                                                          \
          double g = pw ? (double)gr[j] * pw[j] : (double)gr[j];                                   \
          s1 += g;                                                                                 \
          s2 += g * ((double)xr[j] - mu) * rs;                                                     \
        }                                                                                          \
        s1 /= (double)D;                                                                           \
        s2 /= (double)D;                                                                           \
        for (int64_t j = 0; j < D; j++) {                                                          \
          double g = pw ? (double)gr[j] * pw[j] : (double)gr[j];                                   \
          double xh = ((double)xr[j] - mu) * rs;                                                   \
          dr[j] += (T)(rs * (g - s1 - xh * s2));                                                   \
        }                                                                                          \
      }                                                                                            \
    }                                                                                              \
    if (dw || db) {                                                                                \
      T *pdw = dw ? dw->data : NULL, *pdb = db ? db->data : NULL;                                  \
      int64_t nblk = (D + COL_BLOCK - 1) / COL_BLOCK;                                              \
      _Pragma("omp parallel for schedule(static) if (x->numel >= DUET_CPU_PARALLEL_MIN)")          \
      for (int64_t blk = 0; blk < nblk; blk++) {                                                   \
        int64_t j0 = blk * COL_BLOCK, nj = D - j0 < COL_BLOCK ? D - j0 : COL_BLOCK;                \
        double aw[COL_BLOCK] = {0}, ab[COL_BLOCK] = {0};                                           \
        for (int64_t r = 0; r < rows; r++) {                                                       \
          const T *xr = px + r * D + j0, *gr = pdy + r * D + j0;                                   \
          double mu = pm[r], rs = pr[r];                                                           \
          for (int64_t j = 0; j < nj; j++) {                                                       \
            aw[j] += (double)gr[j] * ((double)xr[j] - mu) * rs;                                    \
            ab[j] += gr[j];                                                                        \
          }                                                                                        \
        }                                                                                          \
        for (int64_t j = 0; j < nj; j++) {                                                         \
          if (pdw) pdw[j0 + j] += (T)aw[j];                                                        \
          if (pdb) pdb[j0 + j] += (T)ab[j];                                                        \
        }                                                                                          \
      }                                                                                            \
    }                                                                                              \
  }

/* RMS norm runs mostly on short rows (the QK norm's are one head wide), so the row bodies are
 * functions over a range of rows with vector versions (vec_math.h), called on blocks of rows.
 * The row sums are in double with `omp simd` reductions: lanes are summed in an order that
 * follows the vector width, which moves an f32 result by at most an ulp. */
#define NORM_ROWS_MIN 4096 /* elements per block of rows */
#define DEFINE_RMSNORM(T, S, VEC)                                                                  \
  VEC static void rms_fwd_rows_##S(const T *px, const T *pw, T *py, T *pr, int64_t D, int64_t r0,  \
                                   int64_t r1, double eps) {                                       \
    for (int64_t r = r0; r < r1; r++) {                                                            \
      const T *xr = px + r * D;                                                                    \
      T *yr = py + r * D;                                                                          \
      double ss = 0;                                                                               \
      _Pragma("omp simd reduction(+ : ss)")                                                        \
      for (int64_t j = 0; j < D; j++) ss += (double)xr[j] * xr[j];                                 \
      double rs = 1.0 / sqrt(ss / (double)D + eps);                                                \
      if (pw)                                                                                      \
        for (int64_t j = 0; j < D; j++) yr[j] = (T)(xr[j] * rs * pw[j]);                           \
      else                                                                                         \
        for (int64_t j = 0; j < D; j++) yr[j] = (T)(xr[j] * rs);                                   \
      if (pr) pr[r] = (T)rs;                                                                       \
    }                                                                                              \
  }                                                                                                \
  VEC static void rms_bwd_rows_##S(const T *px, const T *pw, const T *pr, const T *pdy, T *pdx,    \
                                   int64_t D, int64_t r0, int64_t r1) {                            \
    for (int64_t r = r0; r < r1; r++) {                                                            \
      const T *xr = px + r * D, *gr = pdy + r * D;                                                 \
      T *dr = pdx + r * D;                                                                         \
      double rs = pr[r], s = 0;                                                                    \
      _Pragma("omp simd reduction(+ : s)")                                                         \
      for (int64_t j = 0; j < D; j++)                                                              \
        s += (pw ? (double)gr[j] * pw[j] : (double)gr[j]) * xr[j] * rs;                            \
      s /= (double)D;                                                                              \
      for (int64_t j = 0; j < D; j++) {                                                            \
        double g = pw ? (double)gr[j] * pw[j] : (double)gr[j];                                     \
        dr[j] += (T)(rs * (g - (double)xr[j] * rs * s));                                           \
      }                                                                                            \
    }                                                                                              \
  }                                                                                                \
  /* dw over every row, for columns [j0, j0 + nj), nj <= COL_BLOCK, rows in order. */             \
  VEC static void rms_dw_cols_##S(const T *px, const T *pr, const T *pdy, int64_t D, int64_t rows, \
                                  int64_t j0, int64_t nj, T *pdw) {                                \
    double aw[COL_BLOCK] = {0};                                                                    \
    for (int64_t r = 0; r < rows; r++) {                                                           \
      const T *xr = px + r * D + j0, *gr = pdy + r * D + j0;                                       \
      double rs = pr[r];                                                                           \
      for (int64_t j = 0; j < nj; j++) aw[j] += (double)gr[j] * xr[j] * rs;                        \
    }                                                                                              \
    for (int64_t j = 0; j < nj; j++) pdw[j0 + j] += (T)aw[j];                                      \
  }                                                                                                \
  static void rmsnorm_fwd_##S(const duet_tensor *x, const duet_tensor *w, double eps,              \
                              duet_tensor *y, duet_tensor *rstd) {                                 \
    const T *px = x->data, *pw = w ? w->data : NULL;                                               \
    T *py = y->data, *pr = rstd ? rstd->data : NULL;                                               \
    int64_t D = last_dim(x), rows = row_count(x);                                                  \
    int64_t per = D >= NORM_ROWS_MIN ? 1 : NORM_ROWS_MIN / (D ? D : 1);                           \
    int64_t nblk = (rows + per - 1) / per;                                                         \
    _Pragma("omp parallel for schedule(static) if (x->numel >= DUET_CPU_PARALLEL_MIN)")            \
    for (int64_t blk = 0; blk < nblk; blk++)                                                       \
      rms_fwd_rows_##S(px, pw, py, pr, D, blk * per, (blk + 1) * per < rows ? (blk + 1) * per : rows, \
                       eps);                                                                       \
  }                                                                                                \
  static void rmsnorm_bwd_##S(const duet_tensor *x, const duet_tensor *w,                          \
                              const duet_tensor *rstd, const duet_tensor *dy, duet_tensor *dx,     \
                              duet_tensor *dw) {                                                   \
    const T *px = x->data, *pw = w ? w->data : NULL, *pr = rstd->data, *pdy = dy->data;            \
    int64_t D = last_dim(x), rows = row_count(x);                                                  \
    if (dx) {                                                                                      \
      T *pdx = dx->data;                                                                           \
      int64_t per = D >= NORM_ROWS_MIN ? 1 : NORM_ROWS_MIN / (D ? D : 1);                         \
      int64_t nblk = (rows + per - 1) / per;                                                       \
      _Pragma("omp parallel for schedule(static) if (x->numel >= DUET_CPU_PARALLEL_MIN)")          \
      for (int64_t blk = 0; blk < nblk; blk++)                                                     \
        rms_bwd_rows_##S(px, pw, pr, pdy, pdx, D, blk * per,                                       \
                         (blk + 1) * per < rows ? (blk + 1) * per : rows);                         \
    }                                                                                              \
    if (dw) {                                                                                      \
      T *pdw = dw->data;                                                                           \
      int64_t nblk = (D + COL_BLOCK - 1) / COL_BLOCK;                                              \
      _Pragma("omp parallel for schedule(static) if (x->numel >= DUET_CPU_PARALLEL_MIN)")          \
      for (int64_t blk = 0; blk < nblk; blk++) {                                                   \
        int64_t j0 = blk * COL_BLOCK, nj = D - j0 < COL_BLOCK ? D - j0 : COL_BLOCK;                \
        rms_dw_cols_##S(px, pr, pdy, D, rows, j0, nj, pdw);                                        \
      }                                                                                            \
    }                                                                                              \
  }

/* GELU-tanh as x sigmoid(2u), u = c (x + k x^3): the same function as 0.5 x (1 + tanh u),
 * since 1 + tanh u = 2 sigmoid(2u), but with one exp and no cancellation where tanh u nears -1.
 * SiLU is x sigmoid(x). With s = 1 / (1 + e), e = exp(-z), the derivative's 1 - s is e s, again
 * without cancellation. The exponent is capped at 80: past it s is below 2e-35 either way, and
 * the cap keeps e finite in f64, where e s would otherwise be inf * 0. e s (= 1 - s <= 1) is
 * formed before it meets the polynomial in x, whose product with e alone overflows f32 from
 * x of about -31 on (a NaN gradient); where the exponent reached the cap the derivative, below
 * 1e-30, is taken as 0, so no finite input gives a non-finite gradient. In f32 the exp is the
 * vectorisable one (vec_math.h), so these loops run 4-16 lanes wide instead of one libm call
 * per element; the f64 variant, for gradient checks, keeps libm's. */
#define ACT_EXP(v) _Generic((v), float: duet_exp_f32, default: exp)(v)
#define ACT_CHUNK 4096
#define DEFINE_ACTIVATION(T, S, VEC)                                                               \
  VEC static void act_fwd_range_##S(duet_activation act, const T *px, T *py, int64_t n) {          \
    const T c2 = (T)(2 * 0.7978845608028654), k3 = (T)0.044715, one = 1, cap = 80;                 \
    if (act == DUET_ACT_GELU_TANH) {                                                               \
      for (int64_t i = 0; i < n; i++) {                                                            \
        T v = px[i], z = -c2 * (v + k3 * v * v * v);                                               \
        z = z < cap ? z : cap;                                                                     \
        py[i] = v / (one + ACT_EXP(z));                                                            \
      }                                                                                            \
    } else {                                                                                       \
      for (int64_t i = 0; i < n; i++) {                                                            \
        T v = px[i], z = -v;                                                                       \
        z = z < cap ? z : cap;                                                                     \
        py[i] = v / (one + ACT_EXP(z));                                                            \
      }                                                                                            \
    }                                                                                              \
  }                                                                                                \
  VEC static void act_bwd_range_##S(duet_activation act, const T *px, const T *pdy, T *pdx,        \
                                    int64_t n) {                                                   \
    const T c2 = (T)(2 * 0.7978845608028654), k3 = (T)0.044715, one = 1, cap = 80;                 \
    if (act == DUET_ACT_GELU_TANH) {                                                               \
      /* d/dx x sigmoid(2u) = s + x (2u)' s (1 - s), (2u)' = 2c (1 + 3k x^2). */                   \
      for (int64_t i = 0; i < n; i++) {                                                            \
        T v = px[i], z = -c2 * (v + k3 * v * v * v);                                               \
        z = z < cap ? z : cap;                                                                     \
        T e = ACT_EXP(z), s = one / (one + e), es = e * s;                                         \
        T d = s * (one + v * c2 * (one + 3 * k3 * v * v) * es);                                    \
        pdx[i] += pdy[i] * (z < cap ? d : 0);                                                      \
      }                                                                                            \
    } else {                                                                                       \
      for (int64_t i = 0; i < n; i++) {                                                            \
        T v = px[i], z = -v;                                                                       \
        z = z < cap ? z : cap;                                                                     \
        T e = ACT_EXP(z), s = one / (one + e), es = e * s;                                         \
        T d = s * (one + v * es);                                                                  \
        pdx[i] += pdy[i] * (z < cap ? d : 0);                                                      \
      }                                                                                            \
    }                                                                                              \
  }                                                                                                \
  static void activation_fwd_##S(duet_activation act, const duet_tensor *x, duet_tensor *y) {      \
    const T *px = x->data;                                                                         \
    T *py = y->data;                                                                               \
    int64_t n = x->numel, nchunk = (n + ACT_CHUNK - 1) / ACT_CHUNK;                                \
    _Pragma("omp parallel for schedule(static) if (n >= DUET_CPU_PARALLEL_MIN)")                   \
    for (int64_t ch = 0; ch < nchunk; ch++) {                                                      \
      int64_t i0 = ch * ACT_CHUNK, m = n - i0 < ACT_CHUNK ? n - i0 : ACT_CHUNK;                    \
      act_fwd_range_##S(act, px + i0, py + i0, m);                                                 \
    }                                                                                              \
  }                                                                                                \
  static void activation_bwd_##S(duet_activation act, const duet_tensor *x,                        \
                                 const duet_tensor *dy, duet_tensor *dx) {                         \
    const T *px = x->data, *pdy = dy->data;                                                        \
    T *pdx = dx->data;                                                                             \
    int64_t n = x->numel, nchunk = (n + ACT_CHUNK - 1) / ACT_CHUNK;                                \
    _Pragma("omp parallel for schedule(static) if (n >= DUET_CPU_PARALLEL_MIN)")                   \
    for (int64_t ch = 0; ch < nchunk; ch++) {                                                      \
      int64_t i0 = ch * ACT_CHUNK, m = n - i0 < ACT_CHUNK ? n - i0 : ACT_CHUNK;                    \
      act_bwd_range_##S(act, px + i0, pdy + i0, pdx + i0, m);                                      \
    }                                                                                              \
  }

#define DEFINE_SOFTMAX(T, S)                                                                       \
  static void softmax_fwd_##S(const duet_tensor *x, duet_tensor *y) {                              \
    const T *px = x->data;                                                                         \
    T *py = y->data;                                                                               \
    int64_t D = last_dim(x), rows = row_count(x);                                                  \
    _Pragma("omp parallel for schedule(static) if (x->numel >= DUET_CPU_PARALLEL_MIN)")            \
    for (int64_t r = 0; r < rows; r++) {                                                           \
      const T *xr = px + r * D;                                                                    \
      T *yr = py + r * D;                                                                          \
      T mx = -(T)INFINITY;                                                                         \
      for (int64_t j = 0; j < D; j++) mx = xr[j] > mx ? xr[j] : mx;                                \
      if (mx == -(T)INFINITY) { /* nothing to attend: exp(-inf - -inf) would be NaN */             \
        for (int64_t j = 0; j < D; j++) yr[j] = 0;                                                 \
        continue;                                                                                  \
      }                                                                                            \
      double sum = 0;                                                                              \
      for (int64_t j = 0; j < D; j++) {                                                            \
        yr[j] = T_EXP(xr[j] - mx);                                                                 \
        sum += yr[j];                                                                              \
      }                                                                                            \
      T inv = (T)(1.0 / sum);                                                                      \
      for (int64_t j = 0; j < D; j++) yr[j] *= inv;                                                \
    }                                                                                              \
  }                                                                                                \
  static void softmax_bwd_##S(const duet_tensor *y, const duet_tensor *dy, duet_tensor *dx) {      \
    const T *py = y->data, *pdy = dy->data;                                                        \
    T *pdx = dx->data;                                                                             \
    int64_t D = last_dim(y), rows = row_count(y);                                                  \
    _Pragma("omp parallel for schedule(static) if (y->numel >= DUET_CPU_PARALLEL_MIN)")            \
    for (int64_t r = 0; r < rows; r++) {                                                           \
      const T *yr = py + r * D, *gr = pdy + r * D;                                                 \
      T *dr = pdx + r * D;                                                                         \
      double dot = 0;                                                                              \
      for (int64_t j = 0; j < D; j++) dot += (double)yr[j] * gr[j];                                \
      for (int64_t j = 0; j < D; j++) dr[j] += (T)(yr[j] * (gr[j] - dot));                         \
    }                                                                                              \
  }

/* x, y [B, L, D] with per-sample vectors [B, D]. Element-wise parts run over the B*L rows; the
 * per-sample vectors' gradients sum over L, split by (sample, column block). */
#define DEFINE_MODULATE(T, S, VEC)                                                                 \
  static void modulate_fwd_##S(const duet_tensor *x, const duet_tensor *shift,                     \
                               const duet_tensor *scale, duet_tensor *y) {                         \
    const T *px = x->data, *psh = shift->data, *psc = scale->data;                                 \
    T *py = y->data;                                                                               \
    int64_t B = x->shape[0], L = x->shape[1], D = x->shape[2];                                     \
    _Pragma("omp parallel for schedule(static) if (x->numel >= DUET_CPU_PARALLEL_MIN)")            \
    for (int64_t r = 0; r < B * L; r++) {                                                          \
      const T *xr = px + r * D, *sh = psh + (r / L) * D, *sc = psc + (r / L) * D;                  \
      T *yr = py + r * D;                                                                          \
      for (int64_t j = 0; j < D; j++) yr[j] = xr[j] * (1 + sc[j]) + sh[j];                         \
    }                                                                                              \
  }                                                                                                \
  static void modulate_bwd_##S(const duet_tensor *x, const duet_tensor *scale,                     \
                               const duet_tensor *dy, duet_tensor *dx, duet_tensor *dshift,        \
                               duet_tensor *dscale) {                                              \
    const T *px = x->data, *psc = scale->data, *pdy = dy->data;                                    \
    int64_t B = x->shape[0], L = x->shape[1], D = x->shape[2];                                     \
    if (dx) {                                                                                      \
      T *pdx = dx->data;                                                                           \
      _Pragma("omp parallel for schedule(static) if (x->numel >= DUET_CPU_PARALLEL_MIN)")          \
      for (int64_t r = 0; r < B * L; r++) {                                                        \
        const T *gr = pdy + r * D, *sc = psc + (r / L) * D;                                        \
        T *dr = pdx + r * D;                                                                       \
        for (int64_t j = 0; j < D; j++) dr[j] += gr[j] * (1 + sc[j]);                              \
      }                                                                                            \
    }                                                                                              \
    if (dshift || dscale) {                                                                        \
      T *pdsh = dshift ? dshift->data : NULL, *pdsc = dscale ? dscale->data : NULL;                \
      int64_t nblk = (D + COL_BLOCK - 1) / COL_BLOCK;                                              \
      _Pragma("omp parallel for schedule(static) if (x->numel >= DUET_CPU_PARALLEL_MIN)")          \
      for (int64_t task = 0; task < B * nblk; task++) {                                            \
        int64_t b = task / nblk, j0 = (task % nblk) * COL_BLOCK;                                   \
        int64_t nj = D - j0 < COL_BLOCK ? D - j0 : COL_BLOCK;                                      \
        double ash[COL_BLOCK] = {0}, asc[COL_BLOCK] = {0};                                         \
        for (int64_t l = 0; l < L; l++) {                                                          \
          const T *xr = px + (b * L + l) * D + j0, *gr = pdy + (b * L + l) * D + j0;               \
          for (int64_t j = 0; j < nj; j++) {                                                       \
            ash[j] += gr[j];                                                                       \
            asc[j] += (double)gr[j] * xr[j];                                                       \
          }                                                                                        \
        }                                                                                          \
        for (int64_t j = 0; j < nj; j++) {                                                         \
          if (pdsh) pdsh[b * D + j0 + j] += (T)ash[j];                                             \
          if (pdsc) pdsc[b * D + j0 + j] += (T)asc[j];                                             \
        }                                                                                          \
      }                                                                                            \
    }                                                                                              \
  }                                                                                                \
  /* The gated residual's row loops, in functions of their own so that they get the vector         \
   * clones (VEC): the OpenMP regions that call them are compiled for baseline x86-64. */          \
  VEC static void gres_fwd_row_##S(const T *xr, const T *gt, const T *yr, T *orow, int64_t D) {    \
    for (int64_t j = 0; j < D; j++) orow[j] = xr[j] + gt[j] * yr[j];                               \
  }                                                                                                \
  VEC static void gres_bwd_row_##S(const T *gr, const T *gt, T *dxr, T *dyr, int64_t D) {          \
    if (dxr)                                                                                       \
      for (int64_t j = 0; j < D; j++) dxr[j] += gr[j];                                             \
    if (dyr)                                                                                       \
      for (int64_t j = 0; j < D; j++) dyr[j] += gt[j] * gr[j];                                     \
  }                                                                                                \
  /* Columns [j0, j0 + nj) of one sample's gate gradient, summed over its L rows in order. */      \
  VEC static void gres_dgate_cols_##S(const T *py, const T *pdo, int64_t L, int64_t D, int64_t nj, \
                                      double *acc) {                                               \
    for (int64_t l = 0; l < L; l++) {                                                              \
      const T *yr = py + l * D, *gr = pdo + l * D;                                                 \
      for (int64_t j = 0; j < nj; j++) acc[j] += (double)gr[j] * yr[j];                            \
    }                                                                                              \
  }                                                                                                \
  static void gated_residual_fwd_##S(const duet_tensor *x, const duet_tensor *gate,                \
                                     const duet_tensor *y, duet_tensor *out) {                     \
    const T *px = x->data, *pg = gate->data, *py = y->data;                                        \
    T *po = out->data;                                                                             \
    int64_t B = x->shape[0], L = x->shape[1], D = x->shape[2];                                     \
    _Pragma("omp parallel for schedule(static) if (x->numel >= DUET_CPU_PARALLEL_MIN)")            \
    for (int64_t r = 0; r < B * L; r++)                                                            \
      gres_fwd_row_##S(px + r * D, pg + (r / L) * D, py + r * D, po + r * D, D);                   \
  }                                                                                                \
  static void gated_residual_bwd_##S(const duet_tensor *gate, const duet_tensor *y,                \
                                     const duet_tensor *dout, duet_tensor *dx,                     \
                                     duet_tensor *dgate, duet_tensor *dy) {                        \
    const T *pg = gate->data, *py = y->data, *pdo = dout->data;                                    \
    int64_t B = y->shape[0], L = y->shape[1], D = y->shape[2];                                     \
    if (dx || dy) {                                                                                \
      T *pdx = dx ? dx->data : NULL, *pdy = dy ? dy->data : NULL;                                  \
      _Pragma("omp parallel for schedule(static) if (y->numel >= DUET_CPU_PARALLEL_MIN)")          \
      for (int64_t r = 0; r < B * L; r++)                                                          \
        gres_bwd_row_##S(pdo + r * D, pg + (r / L) * D, pdx ? pdx + r * D : NULL,                  \
                         pdy ? pdy + r * D : NULL, D);                                             \
    }                                                                                              \
    if (dgate) {                                                                                   \
      T *pdg = dgate->data;                                                                        \
      int64_t nblk = (D + COL_BLOCK - 1) / COL_BLOCK;                                              \
      _Pragma("omp parallel for schedule(static) if (y->numel >= DUET_CPU_PARALLEL_MIN)")          \
      for (int64_t task = 0; task < B * nblk; task++) {                                            \
        int64_t b = task / nblk, j0 = (task % nblk) * COL_BLOCK;                                   \
        int64_t nj = D - j0 < COL_BLOCK ? D - j0 : COL_BLOCK;                                      \
        double acc[COL_BLOCK] = {0};                                                               \
        gres_dgate_cols_##S(py + b * L * D + j0, pdo + b * L * D + j0, L, D, nj, acc);             \
        for (int64_t j = 0; j < nj; j++) pdg[b * D + j0 + j] += (T)acc[j];                         \
      }                                                                                            \
    }                                                                                              \
  }

DEFINE_LAYERNORM(float, f32)
DEFINE_LAYERNORM(double, f64)
DEFINE_RMSNORM(float, f32, DUET_VEC_F32)
DEFINE_RMSNORM(double, f64, )
DEFINE_ACTIVATION(float, f32, DUET_VEC_F32)
DEFINE_ACTIVATION(double, f64, )
DEFINE_SOFTMAX(float, f32)
DEFINE_SOFTMAX(double, f64)
DEFINE_MODULATE(float, f32, DUET_VEC_F32)
DEFINE_MODULATE(double, f64, )

#define DISPATCH(name, t, ...)                                                                     \
  do { if ((t)->dtype == DUET_F64) name##_f64(__VA_ARGS__); else name##_f32(__VA_ARGS__); } while (0)

static void layernorm_fwd(const duet_tensor *x, const duet_tensor *w, const duet_tensor *b,
                          double eps, duet_tensor *y, duet_tensor *mean, duet_tensor *rstd) {
  DISPATCH(layernorm_fwd, x, x, w, b, eps, y, mean, rstd);
}
static void layernorm_bwd(const duet_tensor *x, const duet_tensor *w, const duet_tensor *mean,
                          const duet_tensor *rstd, const duet_tensor *dy, duet_tensor *dx,
                          duet_tensor *dw, duet_tensor *db) {
  DISPATCH(layernorm_bwd, x, x, w, mean, rstd, dy, dx, dw, db);
}
static void rmsnorm_fwd(const duet_tensor *x, const duet_tensor *w, double eps, duet_tensor *y,
                        duet_tensor *rstd) {
  DISPATCH(rmsnorm_fwd, x, x, w, eps, y, rstd);
}
static void rmsnorm_bwd(const duet_tensor *x, const duet_tensor *w, const duet_tensor *rstd,
                        const duet_tensor *dy, duet_tensor *dx, duet_tensor *dw) {
  DISPATCH(rmsnorm_bwd, x, x, w, rstd, dy, dx, dw);
}
static void activation_fwd(duet_activation act, const duet_tensor *x, duet_tensor *y) {
  DISPATCH(activation_fwd, x, act, x, y);
}
static void activation_bwd(duet_activation act, const duet_tensor *x, const duet_tensor *dy,
                           duet_tensor *dx) {
  DISPATCH(activation_bwd, x, act, x, dy, dx);
}
static void softmax_fwd(const duet_tensor *x, duet_tensor *y) { DISPATCH(softmax_fwd, x, x, y); }
static void softmax_bwd(const duet_tensor *y, const duet_tensor *dy, duet_tensor *dx) {
  DISPATCH(softmax_bwd, y, y, dy, dx);
}
static void modulate_fwd(const duet_tensor *x, const duet_tensor *shift, const duet_tensor *scale,
                         duet_tensor *y) {
  DISPATCH(modulate_fwd, x, x, shift, scale, y);
}
static void modulate_bwd(const duet_tensor *x, const duet_tensor *scale, const duet_tensor *dy,
                         duet_tensor *dx, duet_tensor *dshift, duet_tensor *dscale) {
  DISPATCH(modulate_bwd, x, x, scale, dy, dx, dshift, dscale);
}
static void gated_residual_fwd(const duet_tensor *x, const duet_tensor *gate,
                               const duet_tensor *y, duet_tensor *out) {
  DISPATCH(gated_residual_fwd, x, x, gate, y, out);
}
static void gated_residual_bwd(const duet_tensor *gate, const duet_tensor *y,
                               const duet_tensor *dout, duet_tensor *dx, duet_tensor *dgate,
                               duet_tensor *dy) {
  DISPATCH(gated_residual_bwd, y, gate, y, dout, dx, dgate, dy);
}

const struct duet_kernels_nn duet_cpu_nn_kernels = {
    .layernorm_fwd = layernorm_fwd,
    .layernorm_bwd = layernorm_bwd,
    .rmsnorm_fwd = rmsnorm_fwd,
    .rmsnorm_bwd = rmsnorm_bwd,
    .activation_fwd = activation_fwd,
    .activation_bwd = activation_bwd,
    .softmax_fwd = softmax_fwd,
    .softmax_bwd = softmax_bwd,
    .modulate_fwd = modulate_fwd,
    .modulate_bwd = modulate_bwd,
    .gated_residual_fwd = gated_residual_fwd,
    .gated_residual_bwd = gated_residual_bwd,
};
