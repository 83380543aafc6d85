/* CPU kernels for multi-head attention (rotary positions: core/cpu/rope.c). With bf16
 * products (core/cpu_products.h) f32 attention runs its tiles on AMX instead where it can
 * (core/cpu/attention_amx.c); what follows is the f32 and f64 path.
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
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/blas.h"
#include "core/cpu/cpu_kernels.h"
#include "core/cpu/vec_math.h"
#include "core/cpu_products.h"

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
              (duet_blas_int)m, (duet_blas_int)n, (duet_blas_int)k, alpha, a, (duet_blas_int)lda, b,
              (duet_blas_int)ldb, beta, c, (duet_blas_int)ldc);
}

static void gemm_f64(int ta, int tb, int64_t m, int64_t n, int64_t k, double alpha,
                     const double *a, int64_t lda, const double *b, int64_t ldb, double beta,
                     double *c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              (duet_blas_int)m, (duet_blas_int)n, (duet_blas_int)k, alpha, a, (duet_blas_int)lda, b,
              (duet_blas_int)ldb, beta, c, (duet_blas_int)ldc);
}

/* exp for the softmax tiles: the vectorisable one (vec_math.h) in f32, libm in f64. */
#define T_EXP(v) _Generic((v), float: duet_exp_f32, default: exp)(v)

/* The f32 tile loops are mostly exp: they get vector versions for the machine (vec_math.h). */
#define VEC_F32 DUET_VEC_F32

#define DEFINE_ATTENTION(T, S, VEC)                                                                \
  static inline T dot_##S(const T *a, const T *b, int64_t n) {                                     \
    T acc = 0;                                                                                     \
    _Pragma("omp simd reduction(+ : acc)")                                                         \
    for (int64_t i = 0; i < n; i++) acc += a[i] * b[i];                                            \
    return acc;                                                                                    \
  }                                                                                                \
  /* 0 for a key to attend, -inf for a masked one, added to the scores of a tile. Returns the    \
   * bias, or NULL when the tile has no masked key (most tiles), which saves the additions. */     \
  static const T *key_bias_##S(const uint8_t *mask, int64_t nk, T *bias) {                         \
    int any = 0;                                                                                   \
    for (int64_t j = 0; j < nk; j++) {                                                             \
      bias[j] = !mask || mask[j] ? (T)0 : -(T)INFINITY;                                            \
      any |= mask && !mask[j];                                                                     \
    }                                                                                              \
    return any ? bias : NULL;                                                                      \
  }                                                                                                \
  /* The rows [0, nq) of a head's columns of x (row stride C) as a Dh x nq block, or NULL when   \
   * the block would not fit in xt. */                                                             \
  static const T *head_rows_t_##S(const attn_dims *d, const T *x, int64_t nq, T *xt) {             \
    if (nq * d->Dh > (int64_t)(TILE_BYTES / sizeof(T))) return NULL;                               \
    for (int64_t i = 0; i < nq; i++)                                                               \
      for (int64_t c = 0; c < d->Dh; c++) xt[c * nq + i] = x[i * d->C + c];                        \
    return xt;                                                                                     \
  }                                                                                                \
  /* s = scale a b^T for rows [0, nq) of a (or of at, its transposed block from head_rows_t, when  \
   * there is one) and rows [0, nk) of b. With at the product is one with both operands           \
   * transposed, which OpenBLAS runs about 1.5x faster at these sizes than a b^T (k = Dh = 32,    \
   * experiments/RESULTS-train.md). Forward and backward both compute scores through here with    \
   * the same tiles, so the recomputed scores are the forward's bits. */                          \
  static void abt_tile_##S(const attn_dims *d, const T *a, const T *at, const T *b, int64_t nq,    \
                           int64_t nk, T scale, T *s) {                                            \
    if (at)                                                                                        \
      gemm_##S(1, 1, nq, nk, d->Dh, scale, at, nq, b, d->C, 0, s, nk);                             \
    else                                                                                           \
      gemm_##S(0, 1, nq, nk, d->Dh, scale, a, d->C, b, d->C, 0, s, nk);                            \
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
      if (bias) {                                                                                  \
        _Pragma("omp simd reduction(max : mx)")                                                    \
        for (int64_t j = 0; j < nk; j++) {                                                         \
          row[j] += bias[j];                                                                       \
          mx = row[j] > mx ? row[j] : mx;                                                          \
        }                                                                                          \
      } else {                                                                                     \
        _Pragma("omp simd reduction(max : mx)")                                                    \
        for (int64_t j = 0; j < nk; j++) mx = row[j] > mx ? row[j] : mx;                           \
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
      if (bias) {                                                                                  \
        _Pragma("omp simd")                                                                        \
        for (int64_t j = 0; j < nk; j++) row[j] = T_EXP(row[j] + bias[j] - li);                    \
      } else {                                                                                     \
        _Pragma("omp simd")                                                                        \
        for (int64_t j = 0; j < nk; j++) row[j] = T_EXP(row[j] - li);                              \
      }                                                                                            \
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
    _Alignas(64) T qt_buf[TILE_BYTES / sizeof(T)];                                                 \
    T bias[TILE_BYTES / sizeof(T) / Q_BLOCK];                                                      \
    T m[Q_BLOCK], l[Q_BLOCK], alpha[Q_BLOCK];                                                      \
    const T *qt = head_rows_t_##S(d, qb, nq, qt_buf);                                              \
    for (int64_t i = 0; i < nq; i++) {                                                             \
      memset(ob + i * C, 0, sizeof(T) * (size_t)Dh);                                               \
      m[i] = -(T)INFINITY;                                                                         \
      l[i] = 0;                                                                                    \
    }                                                                                              \
    for (int64_t k0 = 0; k0 < d->Lk; k0 += d->kt) {                                                \
      int64_t nk = min64(d->kt, d->Lk - k0);                                                       \
      const T *kb = pk + (b * d->Lk + k0) * C + h * Dh, *vb = pv + (b * d->Lk + k0) * C + h * Dh;  \
      const T *tb = key_bias_##S(pm ? pm + b * d->Lk + k0 : NULL, nk, bias);                       \
      abt_tile_##S(d, qb, qt, kb, nq, nk, sc, s);                                                  \
      if (!softmax_tile_##S(s, tb, nq, nk, m, l, alpha)) continue;                                 \
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
    _Alignas(64) T qt_buf[TILE_BYTES / sizeof(T)];                                                 \
    _Alignas(64) T dot_buf[TILE_BYTES / sizeof(T)];                                                \
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
      const T *qt = head_rows_t_##S(d, pq + row0, nq, qt_buf);                                     \
      const T *dot = pdq || pdk ? head_rows_t_##S(d, pdo + row0, nq, dot_buf) : NULL;              \
      for (int64_t k0 = 0; k0 < d->Lk; k0 += d->kt) {                                              \
        int64_t nk = min64(d->kt, d->Lk - k0), krow0 = (b * d->Lk + k0) * C + h * Dh;              \
        const T *tb = key_bias_##S(pm ? pm + b * d->Lk + k0 : NULL, nk, bias);                     \
        abt_tile_##S(d, pq + row0, qt, pk + krow0, nq, nk, sc, p);                                 \
        probs_tile_##S(p, tb, li, nq, nk);                                                         \
        if (pdv) gemm_##S(1, 0, nk, Dh, nq, 1, p, nk, pdo + row0, C, 1, pdv + krow0, C);           \
        if (!pdq && !pdk) continue;                                                                \
        abt_tile_##S(d, pdo + row0, dot, pv + krow0, nq, nk, 1, dp);                               \
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

#define DISPATCH(name, t, ...)                                                                     \
  do { if ((t)->dtype == DUET_F64) name##_f64(__VA_ARGS__); else name##_f32(__VA_ARGS__); } while (0)

/* With bf16 products, f32 attention runs its tiles on AMX where it can (attention_amx.c). */
static int bf16_tiles(const duet_tensor *q) {
  return q->dtype == DUET_F32 && duet_cpu_matmul_precision() == DUET_MATMUL_BF16;
}

static void attention_fwd(const duet_tensor *q, const duet_tensor *k, const duet_tensor *v,
                          const duet_tensor *key_mask, int heads, double scale, duet_tensor *o,
                          duet_tensor *lse) {
  if (bf16_tiles(q) &&
      duet_cpu_attention_fwd_bf16(q->shape[0], q->shape[1], k->shape[1], q->shape[2], heads,
                                  q->data, k->data, v->data, key_mask ? key_mask->data : NULL,
                                  (float)scale, o->data, lse ? lse->data : NULL) == 0)
    return;
  DISPATCH(attention_fwd, q, q, k, v, key_mask, heads, scale, o, lse);
}

static void attention_bwd(const duet_tensor *q, const duet_tensor *k, const duet_tensor *v,
                          const duet_tensor *key_mask, int heads, double scale,
                          const duet_tensor *o, const duet_tensor *lse, const duet_tensor *dout,
                          duet_tensor *dq, duet_tensor *dk, duet_tensor *dv) {
  if (bf16_tiles(q) &&
      duet_cpu_attention_bwd_bf16(q->shape[0], q->shape[1], k->shape[1], q->shape[2], heads,
                                  q->data, k->data, v->data, key_mask ? key_mask->data : NULL,
                                  (float)scale, o->data, lse->data, dout->data,
                                  dq ? dq->data : NULL, dk ? dk->data : NULL,
                                  dv ? dv->data : NULL) == 0)
    return;
  DISPATCH(attention_bwd, q, q, k, v, key_mask, heads, scale, o, lse, dout, dq, dk, dv);
}

static void rope_fwd(const duet_tensor *x, const duet_tensor *pos, int heads,
                     const duet_rope_spec *spec, duet_tensor *y) {
  duet_cpu_rope_apply(x, pos, heads, spec, 0, y);
}

static void rope_bwd(const duet_tensor *dy, const duet_tensor *pos, int heads,
                     const duet_rope_spec *spec, duet_tensor *dx) {
  duet_cpu_rope_apply(dy, pos, heads, spec, 1, dx);
}

const struct duet_kernels_attention duet_cpu_attention_kernels = {
    .attention_fwd = attention_fwd,
    .attention_bwd = attention_bwd,
    .rope_fwd = rope_fwd,
    .rope_bwd = rope_bwd,
};
