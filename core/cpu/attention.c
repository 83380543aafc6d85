/* CPU kernels for multi-head attention and rotary positions.
 *
 * Attention is flash-style over tiles, with the products done by BLAS: a forward task is one
 * (batch, head, block of Q_BLOCK queries); it walks the keys in tiles, computes the score tile
 * S = scale Q K^T with one gemm (q, k and v are read in place: a head is a column slice with
 * row stride C), runs an online softmax over it, and adds P V into o's rows with a second gemm,
 * rescaling them when a row's running maximum rises. Only the per-row log-sum-exp [B, H, Lq]
 * is kept for backward, so memory stays linear in sequence length, and the tiles live on the
 * task's stack: nothing is allocated, so nothing can fail.
 *
 * Why tiles rather than whole rows of keys: OpenMP runs the tasks, and each gemm must run on
 * the calling thread. OpenBLAS does so by itself for a product of at most GEMM_SERIAL_MNK
 * multiply-adds (and always inside an OpenMP region when it is built with OpenMP); larger
 * products called from two OpenMP threads at once make a pthread OpenBLAS share its one pool
 * between them, which ran 23-57x slower on 2 cores. Its thread count is process-wide, so it is
 * not changed here; and serial tasks with OpenBLAS threading whole-row products instead ran
 * 1.3-2.1x slower than these tasks (experiments/RESULTS-core.md).
 *
 * The backward is one task per (batch, head): it recomputes P = exp(S - lse) tile by tile with
 * the forward's own gemm calls and accumulates dv, dq and dk with gemms straight into the
 * gradients. Each task owns its head's columns of every gradient, and its query blocks and key
 * tiles run in a fixed order, so there are no atomics, the bits do not depend on the number of
 * threads, and q, k and v may be one tensor. */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/cpu/cpu_kernels.h"

#define Q_BLOCK 64
/* One score tile is at most this many bytes (the backward keeps two on the stack). */
#define TILE_BYTES 32768
#define GEMM_SERIAL_MNK ((int64_t)1 << 18)

typedef struct attn_dims {
  int64_t B, Lq, Lk, H, Dh, C;
  int64_t kt; /* keys per tile */
} attn_dims;

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static attn_dims attn_dims_of(const duet_tensor *q, const duet_tensor *k, int heads,
                              size_t elem) {
  attn_dims d;
  d.B = q->shape[0];
  d.Lq = q->shape[1];
  d.Lk = k->shape[1];
  d.C = q->shape[2];
  d.H = heads;
  d.Dh = d.C / heads;
  /* Every gemm here is Q_BLOCK x kt x Dh in some order. kt is a multiple of 8, so that tile
   * rows start on 32-byte boundaries, and at least 8: heads wider than 512 exceed
   * GEMM_SERIAL_MNK, which stays correct but lets OpenBLAS contend for its threads. */
  int64_t kt = GEMM_SERIAL_MNK / (Q_BLOCK * d.Dh);
  kt = min64(kt, (int64_t)(TILE_BYTES / elem) / Q_BLOCK);
  kt = kt / 8 * 8;
  d.kt = kt < 8 ? 8 : kt;
  return d;
}

static void gemm_f32(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                     int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta, c,
              (blasint)ldc);
}

static void gemm_f64(int ta, int tb, int64_t m, int64_t n, int64_t k, double alpha,
                     const double *a, int64_t lda, const double *b, int64_t ldb, double beta,
                     double *c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta, c,
              (blasint)ldc);
}

/* exp for the softmax tiles, written so that the loops calling it vectorise: libm's expf does
 * not without -ffast-math, and it would dominate the f32 kernel. exp(x) = 2^n exp(r) with
 * n = round(x / ln 2) and |r| <= ln(2)/2, where the degree-7 Taylor polynomial is within 1e-8
 * relative; with rounding, a few ulp overall. Below -87 (a masked key's -inf included) the
 * result is exactly 0; above 88 it saturates at exp(88); NaN stays NaN. The range tests are
 * made on the bits as integers and the selects with masks, because a floating-point compare
 * may trap and so keeps GCC from vectorising a select under the default -ftrapping-math. The
 * f64 path keeps libm's exp. */
typedef union f32_bits {
  float f;
  int32_t i;
} f32_bits;

static inline float exp_f32(float x) {
  const f32_bits lo = {.f = -87.0f}, hi = {.f = 88.0f};
  f32_bits u = {.f = x};
  int32_t mag = u.i & 0x7fffffff;
  /* All ones where x < -87 (a negative float's bits grow with its magnitude), x > 88, NaN. */
  int32_t below = -(int32_t)((u.i < 0) & (mag > (lo.i & 0x7fffffff)) & (mag <= 0x7f800000));
  int32_t above = -(int32_t)((u.i > hi.i) & (u.i <= 0x7f800000));
  int32_t nan = -(int32_t)(mag > 0x7f800000);
  f32_bits xc = {.i = (u.i & ~(below | above | nan)) | (lo.i & below) | (hi.i & above)};
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
  f32_bits two_n = {.i = ((int32_t)n + 127) * (1 << 23)};
  f32_bits y = {.f = p * two_n.f};
  y.i = (y.i & ~(below | nan)) | (u.i & nan);
  return y.f;
}

#define T_EXP(v) _Generic((v), float: exp_f32, default: exp)(v)

/* The f32 tile loops are mostly exp, and the build targets baseline x86-64 (4 floats a
 * vector); where the compiler can, they also get AVX2 and AVX-512 versions, picked at load time
 * for the machine as OpenBLAS picks its kernels. The versions round the same operations, but a
 * row sum's order follows the vector width: bits may differ between machines (as OpenBLAS's
 * do), never between thread counts. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define VEC_F32 __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef VEC_F32
#define VEC_F32
#endif

#define DEFINE_ATTENTION(T, S, VEC)                                                                \
  static inline T dot_##S(const T *a, const T *b, int64_t n) {                                     \
    T acc = 0;                                                                                     \
    _Pragma("omp simd reduction(+ : acc)")                                                         \
    for (int64_t i = 0; i < n; i++) acc += a[i] * b[i];                                            \
    return acc;                                                                                    \
  }                                                                                                \
  /* 0 for a key to attend, -inf for a masked one, added to the scores of a tile. */               \
  static void key_bias_##S(const uint8_t *mask, int64_t nk, T *bias) {                             \
    for (int64_t j = 0; j < nk; j++) bias[j] = !mask || mask[j] ? (T)0 : -(T)INFINITY;             \
  }                                                                                                \
  /* s = scale q k^T for queries [0, nq) of qb and keys [0, nk) of kb: forward and backward both   \
   * come through here with the same tiles, so the recomputed scores are the forward's bits. */    \
  static void scores_##S(const attn_dims *d, const T *qb, const T *kb, int64_t nq, int64_t nk,     \
                         T scale, T *s) {                                                          \
    gemm_##S(0, 1, nq, nk, d->Dh, scale, qb, d->C, kb, d->C, 0, s, nk);                            \
  }                                                                                                \
  /* One online-softmax step over a score tile (rows of nk): adds the key bias, raises each       \
   * row's running maximum m, replaces the scores by exp(s - m) and updates the running sum l;     \
   * alpha receives the factor by which the row's earlier output must shrink. A row whose keys    \
   * have all been masked so far becomes zeros. Returns whether any row has a key. */              \
  VEC static int softmax_tile_##S(T *s, const T *bias, int64_t nq, int64_t nk, T *m, T *l,         \
                                  T *alpha) {                                                      \
    int live = 0;                                                                                  \
    for (int64_t i = 0; i < nq; i++) {                                                             \
      T *row = s + i * nk, mx = m[i];                                                              \
      _Pragma("omp simd reduction(max : mx)")                                                      \
      for (int64_t j = 0; j < nk; j++) {                                                           \
        row[j] += bias[j];                                                                         \
        mx = row[j] > mx ? row[j] : mx;                                                            \
      }                                                                                            \
      alpha[i] = 1;                                                                                \
      if (mx == -(T)INFINITY) {                                                                    \
        memset(row, 0, sizeof(T) * (size_t)nk);                                                    \
        continue;                                                                                  \
      }                                                                                            \
      live = 1;                                                                                    \
      T sum = 0;                                                                                   \
      _Pragma("omp simd reduction(+ : sum)")                                                       \
      for (int64_t j = 0; j < nk; j++) {                                                           \
        row[j] = T_EXP(row[j] - mx);                                                               \
        sum += row[j];                                                                             \
      }                                                                                            \
      alpha[i] = T_EXP(m[i] - mx);                                                                 \
      l[i] = l[i] * alpha[i] + sum;                                                                \
      m[i] = mx;                                                                                   \
    }                                                                                              \
    return live;                                                                                   \
  }                                                                                                \
  /* Scores to probabilities exp(s + bias - lse); rows with lse = -inf (no key) become zeros. */   \
  VEC static void probs_tile_##S(T *s, const T *bias, const T *lse, int64_t nq, int64_t nk) {      \
    for (int64_t i = 0; i < nq; i++) {                                                             \
      T *row = s + i * nk, li = lse[i];                                                            \
      if (li == -(T)INFINITY) {                                                                    \
        memset(row, 0, sizeof(T) * (size_t)nk);                                                    \
        continue;                                                                                  \
      }                                                                                            \
      _Pragma("omp simd")                                                                          \
      for (int64_t j = 0; j < nk; j++) row[j] = T_EXP(row[j] + bias[j] - li);                      \
    }                                                                                              \
  }                                                                                                \
  /* dP (in dp) to dS = scale P (dP - D), D per row. */                                            \
  VEC static void dscores_tile_##S(T *dp, const T *p, const T *D, T sc, int64_t nq, int64_t nk) {  \
    for (int64_t i = 0; i < nq; i++) {                                                             \
      T *dr = dp + i * nk, Di = D[i];                                                              \
      const T *pr = p + i * nk;                                                                    \
      _Pragma("omp simd")                                                                          \
      for (int64_t j = 0; j < nk; j++) dr[j] = sc * pr[j] * (dr[j] - Di);                          \
    }                                                                                              \
  }                                                                                                \
  static void fwd_task_##S(const attn_dims *d, const T *pq, const T *pk, const T *pv,              \
                           const uint8_t *pm, T sc, int64_t b, int64_t h, int64_t q0, T *po,       \
                           T *pl) {                                                                \
    int64_t nq = min64(Q_BLOCK, d->Lq - q0), C = d->C, Dh = d->Dh;                                 \
    const T *qb = pq + (b * d->Lq + q0) * C + h * Dh;                                              \
    T *ob = po + (b * d->Lq + q0) * C + h * Dh;                                                    \
    _Alignas(64) T s[TILE_BYTES / sizeof(T)];                                                      \
    T bias[TILE_BYTES / sizeof(T) / Q_BLOCK];                                                      \
    T m[Q_BLOCK], l[Q_BLOCK], alpha[Q_BLOCK];                                                      \
    for (int64_t i = 0; i < nq; i++) {                                                             \
      memset(ob + i * C, 0, sizeof(T) * (size_t)Dh);                                               \
      m[i] = -(T)INFINITY;                                                                         \
      l[i] = 0;                                                                                    \
    }                                                                                              \
    for (int64_t k0 = 0; k0 < d->Lk; k0 += d->kt) {                                                \
      int64_t nk = min64(d->kt, d->Lk - k0);                                                       \
      const T *kb = pk + (b * d->Lk + k0) * C + h * Dh, *vb = pv + (b * d->Lk + k0) * C + h * Dh;  \
      key_bias_##S(pm ? pm + b * d->Lk + k0 : NULL, nk, bias);                                     \
      scores_##S(d, qb, kb, nq, nk, sc, s);                                                        \
      if (!softmax_tile_##S(s, bias, nq, nk, m, l, alpha)) continue;                               \
      for (int64_t i = 0; i < nq; i++)                                                             \
        if (alpha[i] != 1)                                                                         \
          for (int64_t c = 0; c < Dh; c++) ob[i * C + c] *= alpha[i];                              \
      gemm_##S(0, 0, nq, Dh, nk, 1, s, nk, vb, C, 1, ob, C);                                       \
    }                                                                                              \
    for (int64_t i = 0; i < nq; i++) {                                                             \
      if (l[i] > 0) {                                                                              \
        T inv = 1 / l[i];                                                                          \
        for (int64_t c = 0; c < Dh; c++) ob[i * C + c] *= inv;                                     \
      }                                                                                            \
      if (pl) pl[(b * d->H + h) * d->Lq + q0 + i] = l[i] > 0 ? m[i] + log(l[i]) : -(T)INFINITY;    \
    }                                                                                              \
  }                                                                                                \
  static void attention_fwd_##S(const duet_tensor *q, const duet_tensor *k, const duet_tensor *v,  \
                                const duet_tensor *key_mask, int heads, double scale,              \
                                duet_tensor *o, duet_tensor *lse) {                                \
    attn_dims d = attn_dims_of(q, k, heads, sizeof(T));                                            \
    const T *pq = q->data, *pk = k->data, *pv = v->data;                                           \
    const uint8_t *pm = key_mask ? key_mask->data : NULL;                                          \
    T *po = o->data, *pl = lse ? lse->data : NULL;                                                 \
    T sc = (T)scale;                                                                               \
    int64_t nqb = (d.Lq + Q_BLOCK - 1) / Q_BLOCK, ntask = d.B * d.H * nqb;                         \
    int64_t work = d.B * d.H * d.Lq * d.Lk * d.Dh;                                                 \
    _Pragma("omp parallel for schedule(dynamic, 1) if (work >= DUET_CPU_PARALLEL_MIN)")            \
    for (int64_t task = 0; task < ntask; task++) {                                                 \
      int64_t bh = task / nqb;                                                                     \
      fwd_task_##S(&d, pq, pk, pv, pm, sc, bh / d.H, bh % d.H, (task % nqb) * Q_BLOCK, po, pl);    \
    }                                                                                              \
  }                                                                                                \
  /* With P = exp(S - lse) and D_i = dout_i . o_i (= sum_j P_ij dP_ij), per tile:                  \
   * dv += P^T dout; dP = dout v^T; dS = scale P (dP - D); dq += dS k; dk += dS^T q.               \
   * A row with lse = -inf had no keys: its P row is zero and it contributes nothing. */           \
  static void bwd_task_##S(const attn_dims *d, const T *pq, const T *pk, const T *pv,              \
                           const uint8_t *pm, T sc, int64_t b, int64_t h, const T *po,             \
                           const T *pl, const T *pdo, T *pdq, T *pdk, T *pdv) {                    \
    int64_t C = d->C, Dh = d->Dh;                                                                  \
    _Alignas(64) T p[TILE_BYTES / sizeof(T)];                                                      \
    _Alignas(64) T dp[TILE_BYTES / sizeof(T)];                                                     \
    T bias[TILE_BYTES / sizeof(T) / Q_BLOCK], li[Q_BLOCK], Di[Q_BLOCK];                            \
    for (int64_t q0 = 0; q0 < d->Lq; q0 += Q_BLOCK) {                                              \
      int64_t nq = min64(Q_BLOCK, d->Lq - q0), row0 = (b * d->Lq + q0) * C + h * Dh;               \
      int live = 0;                                                                                \
      for (int64_t i = 0; i < nq; i++) {                                                           \
        li[i] = pl[(b * d->H + h) * d->Lq + q0 + i];                                               \
        live |= li[i] != -(T)INFINITY;                                                             \
        Di[i] = li[i] == -(T)INFINITY ? 0 : dot_##S(pdo + row0 + i * C, po + row0 + i * C, Dh);    \
      }                                                                                            \
      if (!live) continue;                                                                         \
      for (int64_t k0 = 0; k0 < d->Lk; k0 += d->kt) {                                              \
        int64_t nk = min64(d->kt, d->Lk - k0), krow0 = (b * d->Lk + k0) * C + h * Dh;              \
        key_bias_##S(pm ? pm + b * d->Lk + k0 : NULL, nk, bias);                                   \
        scores_##S(d, pq + row0, pk + krow0, nq, nk, sc, p);                                       \
        probs_tile_##S(p, bias, li, nq, nk);                                                       \
        if (pdv) gemm_##S(1, 0, nk, Dh, nq, 1, p, nk, pdo + row0, C, 1, pdv + krow0, C);           \
        if (!pdq && !pdk) continue;                                                                \
        gemm_##S(0, 1, nq, nk, Dh, 1, pdo + row0, C, pv + krow0, C, 0, dp, nk);                    \
        dscores_tile_##S(dp, p, Di, sc, nq, nk);                                                   \
        if (pdq) gemm_##S(0, 0, nq, Dh, nk, 1, dp, nk, pk + krow0, C, 1, pdq + row0, C);           \
        if (pdk) gemm_##S(1, 0, nk, Dh, nq, 1, dp, nk, pq + row0, C, 1, pdk + krow0, C);           \
      }                                                                                            \
    }                                                                                              \
  }                                                                                                \
  static void attention_bwd_##S(const duet_tensor *q, const duet_tensor *k, const duet_tensor *v,  \
                                const duet_tensor *key_mask, int heads, double scale,              \
                                const duet_tensor *o, const duet_tensor *lse,                      \
                                const duet_tensor *dout, duet_tensor *dq, duet_tensor *dk,         \
                                duet_tensor *dv) {                                                 \
    attn_dims d = attn_dims_of(q, k, heads, sizeof(T));                                            \
    const T *pq = q->data, *pk = k->data, *pv = v->data, *po = o->data, *pl = lse->data;           \
    const T *pdo = dout->data;                                                                     \
    const uint8_t *pm = key_mask ? key_mask->data : NULL;                                          \
    T *pdq = dq ? dq->data : NULL, *pdk = dk ? dk->data : NULL, *pdv = dv ? dv->data : NULL;       \
    T sc = (T)scale;                                                                               \
    if (!pdq && !pdk && !pdv) return;                                                              \
    int64_t ntask = d.B * d.H, work = d.B * d.H * d.Lq * d.Lk * d.Dh;                              \
    _Pragma("omp parallel for schedule(dynamic, 1) if (work >= DUET_CPU_PARALLEL_MIN)")            \
    for (int64_t task = 0; task < ntask; task++)                                                   \
      bwd_task_##S(&d, pq, pk, pv, pm, sc, task / d.H, task % d.H, po, pl, pdo, pdq, pdk, pdv);    \
  }

DEFINE_ATTENTION(float, f32, VEC_F32)
DEFINE_ATTENTION(double, f64, )

static double pos_at(const duet_tensor *pos, int64_t i) {
  return pos->dtype == DUET_F64 ? ((const double *)pos->data)[i] : ((const float *)pos->data)[i];
}

/* One body for both directions: the inverse of a rotation by a is the rotation by -a, so the
 * backward is the forward with the sine negated, accumulating into the gradient. Angles and
 * their sines are computed in double whatever x's dtype, because positions (seconds, frame or
 * patch indices) times the fastest frequency can be large and f32 would lose the phase. */
#define DEFINE_ROPE(T, S)                                                                          \
  static void rope_apply_##S(const duet_tensor *x, const duet_tensor *pos, int heads,              \
                             const duet_rope_spec *spec, int inverse, duet_tensor *y) {            \
    const T *px = x->data;                                                                         \
    T *py = y->data;                                                                               \
    int64_t B = x->shape[0], L = x->shape[1], C = x->shape[2], Dh = C / heads;                     \
    int na = spec->n_axes;                                                                         \
    int per_sample = pos->ndim == 3;                                                               \
    _Pragma("omp parallel for schedule(static) if (x->numel >= DUET_CPU_PARALLEL_MIN)")            \
    for (int64_t t = 0; t < B * L; t++) {                                                          \
      const T *xr = px + t * C;                                                                    \
      T *yr = py + t * C;                                                                          \
      int64_t off = (per_sample ? t : t % L) * na;                                                 \
      int64_t pair = 0;                                                                            \
      for (int a = 0; a < na; a++) {                                                               \
        double p = pos_at(pos, off + a);                                                           \
        int P = spec->pairs_per_axis[a];                                                           \
        for (int j = 0; j < P; j++, pair++) {                                                      \
          double ang = p * pow(spec->theta, -(double)j / (double)P);                               \
          T c = (T)cos(ang), s = (T)(inverse ? -sin(ang) : sin(ang));                              \
          for (int64_t h = 0; h < heads; h++) {                                                    \
            int64_t i0 = h * Dh + 2 * pair;                                                        \
            T x0 = xr[i0], x1 = xr[i0 + 1];                                                        \
            if (inverse) {                                                                         \
              yr[i0] += x0 * c - x1 * s;                                                           \
              yr[i0 + 1] += x0 * s + x1 * c;                                                       \
            } else {                                                                               \
              yr[i0] = x0 * c - x1 * s;                                                            \
              yr[i0 + 1] = x0 * s + x1 * c;                                                        \
            }                                                                                      \
          }                                                                                        \
        }                                                                                          \
      }                                                                                            \
    }                                                                                              \
  }

DEFINE_ROPE(float, f32)
DEFINE_ROPE(double, f64)

#define DISPATCH(name, t, ...)                                                                     \
  do { if ((t)->dtype == DUET_F64) name##_f64(__VA_ARGS__); else name##_f32(__VA_ARGS__); } while (0)

static void attention_fwd(const duet_tensor *q, const duet_tensor *k, const duet_tensor *v,
                          const duet_tensor *key_mask, int heads, double scale, duet_tensor *o,
                          duet_tensor *lse) {
  DISPATCH(attention_fwd, q, q, k, v, key_mask, heads, scale, o, lse);
}

static void attention_bwd(const duet_tensor *q, const duet_tensor *k, const duet_tensor *v,
                          const duet_tensor *key_mask, int heads, double scale,
                          const duet_tensor *o, const duet_tensor *lse, const duet_tensor *dout,
                          duet_tensor *dq, duet_tensor *dk, duet_tensor *dv) {
  DISPATCH(attention_bwd, q, q, k, v, key_mask, heads, scale, o, lse, dout, dq, dk, dv);
}

static void rope_fwd(const duet_tensor *x, const duet_tensor *pos, int heads,
                     const duet_rope_spec *spec, duet_tensor *y) {
  DISPATCH(rope_apply, x, x, pos, heads, spec, 0, y);
}

static void rope_bwd(const duet_tensor *dy, const duet_tensor *pos, int heads,
                     const duet_rope_spec *spec, duet_tensor *dx) {
  DISPATCH(rope_apply, dy, dy, pos, heads, spec, 1, dx);
}

const struct duet_kernels_attention duet_cpu_attention_kernels = {
    .attention_fwd = attention_fwd,
    .attention_bwd = attention_bwd,
    .rope_fwd = rope_fwd,
    .rope_bwd = rope_bwd,
};
