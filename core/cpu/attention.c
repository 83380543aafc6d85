/* CPU kernels for multi-head attention and rotary positions.
 *
 * Attention is computed flash-style: a task is one (batch, head, block of queries); it walks
 * the keys in blocks with an online softmax, accumulating the unnormalised output directly in
 * o's rows and rescaling them when the running maximum grows. Only the per-row log-sum-exp
 * [B, H, Lq] is kept for backward, never the [Lq, Lk] probabilities, so memory stays linear in
 * sequence length. The backward recomputes scores tile by tile in two passes: one task per
 * (batch, head, key block) for dk and dv, one per (batch, head, query block) for dq. Every
 * output row is owned by exactly one task, so there are no atomics and the result does not
 * depend on the number of threads. */
#include <math.h>
#include <stdint.h>

#include "core/cpu/cpu_kernels.h"

#define T_EXP(v) _Generic((v), float: expf, default: exp)(v)

/* A score tile is Q_BLOCK x K_BLOCK values on the task's stack (8 KiB in f64). */
#define Q_BLOCK 16
#define K_BLOCK 64

typedef struct attn_dims {
  int64_t B, Lq, Lk, H, Dh, C;
} attn_dims;

static attn_dims attn_dims_of(const duet_tensor *q, const duet_tensor *k, int heads) {
  attn_dims d;
  d.B = q->shape[0];
  d.Lq = q->shape[1];
  d.Lk = k->shape[1];
  d.C = q->shape[2];
  d.H = heads;
  d.Dh = d.C / heads;
  return d;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

#define DEFINE_ATTENTION(T, S)                                                                     \
  static inline T dot_##S(const T *a, const T *b, int64_t n) {                                     \
    T acc = 0;                                                                                     \
    _Pragma("omp simd reduction(+ : acc)")                                                         \
    for (int64_t i = 0; i < n; i++) acc += a[i] * b[i];                                            \
    return acc;                                                                                    \
  }                                                                                                \
  static inline void axpy_##S(T a, const T *x, T *y, int64_t n) {                                  \
    _Pragma("omp simd")                                                                            \
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];                                              \
  }                                                                                                \
  /* Scaled scores of queries [q0, q0+nq) against keys [k0, k0+nk) of one (b, h); keys that        \
   * are masked off score -inf, so exp() turns them into exact zeros. Forward and backward         \
   * both come through here, so the recomputed scores are bit-identical to the forward's. */       \
  static void scores_##S(const attn_dims *d, const T *q, const T *k, const uint8_t *mask,          \
                         int64_t b, int64_t h, int64_t q0, int64_t nq, int64_t k0, int64_t nk,     \
                         T scale, T s[Q_BLOCK][K_BLOCK]) {                                         \
    for (int64_t i = 0; i < nq; i++) {                                                             \
      const T *qi = q + (b * d->Lq + q0 + i) * d->C + h * d->Dh;                                   \
      for (int64_t j = 0; j < nk; j++) {                                                           \
        if (mask && !mask[b * d->Lk + k0 + j])                                                     \
          s[i][j] = -(T)INFINITY;                                                                  \
        else                                                                                       \
          s[i][j] = scale * dot_##S(qi, k + (b * d->Lk + k0 + j) * d->C + h * d->Dh, d->Dh);       \
      }                                                                                            \
    }                                                                                              \
  }                                                                                                \
  static void attention_fwd_##S(const duet_tensor *q, const duet_tensor *k, const duet_tensor *v,  \
                                const duet_tensor *key_mask, int heads, double scale,              \
                                duet_tensor *o, duet_tensor *lse) {                                \
    attn_dims d = attn_dims_of(q, k, heads);                                                       \
    const T *pq = q->data, *pk = k->data, *pv = v->data;                                           \
    const uint8_t *pm = key_mask ? key_mask->data : NULL;                                          \
    T *po = o->data, *pl = lse ? lse->data : NULL;                                                 \
    T sc = (T)scale;                                                                               \
    int64_t nqb = (d.Lq + Q_BLOCK - 1) / Q_BLOCK, ntask = d.B * d.H * nqb;                         \
    int64_t work = d.B * d.H * d.Lq * d.Lk * d.Dh;                                                 \
    _Pragma("omp parallel for schedule(dynamic, 1) if (work >= DUET_CPU_PARALLEL_MIN)")            \
    for (int64_t task = 0; task < ntask; task++) {                                                 \
      int64_t bh = task / nqb, b = bh / d.H, h = bh % d.H;                                         \
      int64_t q0 = (task % nqb) * Q_BLOCK, nq = min64(Q_BLOCK, d.Lq - q0);                         \
      T s[Q_BLOCK][K_BLOCK], m[Q_BLOCK], l[Q_BLOCK];                                               \
      for (int64_t i = 0; i < nq; i++) {                                                           \
        T *oi = po + (b * d.Lq + q0 + i) * d.C + h * d.Dh;                                         \
        for (int64_t c = 0; c < d.Dh; c++) oi[c] = 0;                                              \
        m[i] = -(T)INFINITY;                                                                       \
        l[i] = 0;                                                                                  \
      }                                                                                            \
      for (int64_t k0 = 0; k0 < d.Lk; k0 += K_BLOCK) {                                             \
        int64_t nk = min64(K_BLOCK, d.Lk - k0);                                                    \
        scores_##S(&d, pq, pk, pm, b, h, q0, nq, k0, nk, sc, s);                                   \
        for (int64_t i = 0; i < nq; i++) {                                                         \
          T mx = m[i];                                                                             \
          for (int64_t j = 0; j < nk; j++) mx = s[i][j] > mx ? s[i][j] : mx;                       \
          if (mx == -(T)INFINITY) continue; /* every key so far masked */                          \
          T *oi = po + (b * d.Lq + q0 + i) * d.C + h * d.Dh;                                       \
          T alpha = T_EXP(m[i] - mx), sum = 0;                                                     \
          for (int64_t j = 0; j < nk; j++) {                                                       \
            s[i][j] = T_EXP(s[i][j] - mx);                                                         \
            sum += s[i][j];                                                                        \
          }                                                                                        \
          if (alpha != 1)                                                                          \
            for (int64_t c = 0; c < d.Dh; c++) oi[c] *= alpha;                                     \
          l[i] = l[i] * alpha + sum;                                                               \
          m[i] = mx;                                                                               \
          for (int64_t j = 0; j < nk; j++)                                                         \
            if (s[i][j] != 0)                                                                      \
              axpy_##S(s[i][j], pv + (b * d.Lk + k0 + j) * d.C + h * d.Dh, oi, d.Dh);              \
        }                                                                                          \
      }                                                                                            \
      for (int64_t i = 0; i < nq; i++) {                                                           \
        T *oi = po + (b * d.Lq + q0 + i) * d.C + h * d.Dh;                                         \
        if (l[i] > 0) {                                                                            \
          T inv = 1 / l[i];                                                                        \
          for (int64_t c = 0; c < d.Dh; c++) oi[c] *= inv;                                         \
        }                                                                                          \
        if (pl) pl[(b * d.H + h) * d.Lq + q0 + i] = l[i] > 0 ? m[i] + log(l[i]) : -(T)INFINITY;    \
      }                                                                                            \
    }                                                                                              \
  }                                                                                                \
  /* With P = exp(S - lse) and D_i = dout_i . o_i (= sum_j P_ij dP_ij):                            \
   * dv_j += sum_i P_ij dout_i; dS_ij = P_ij (dout_i . v_j - D_i); dq_i += scale sum_j dS_ij k_j;  \
   * dk_j += scale sum_i dS_ij q_i. A row with lse = -inf had no keys and contributes nothing. */  \
  static void attention_bwd_##S(const duet_tensor *q, const duet_tensor *k, const duet_tensor *v,  \
                                const duet_tensor *key_mask, int heads, double scale,              \
                                const duet_tensor *o, const duet_tensor *lse,                      \
                                const duet_tensor *dout, duet_tensor *dq, duet_tensor *dk,         \
                                duet_tensor *dv) {                                                 \
    attn_dims d = attn_dims_of(q, k, heads);                                                       \
    const T *pq = q->data, *pk = k->data, *pv = v->data, *po = o->data, *pl = lse->data;           \
    const T *pdo = dout->data;                                                                     \
    const uint8_t *pm = key_mask ? key_mask->data : NULL;                                          \
    T sc = (T)scale;                                                                               \
    int64_t work = d.B * d.H * d.Lq * d.Lk * d.Dh;                                                 \
    if (dk || dv) {                                                                                \
      T *pdk = dk ? dk->data : NULL, *pdv = dv ? dv->data : NULL;                                  \
      int64_t nkb = (d.Lk + K_BLOCK - 1) / K_BLOCK, ntask = d.B * d.H * nkb;                       \
      _Pragma("omp parallel for schedule(dynamic, 1) if (work >= DUET_CPU_PARALLEL_MIN)")          \
      for (int64_t task = 0; task < ntask; task++) {                                               \
        int64_t bh = task / nkb, b = bh / d.H, h = bh % d.H;                                       \
        int64_t k0 = (task % nkb) * K_BLOCK, nk = min64(K_BLOCK, d.Lk - k0);                       \
        T s[Q_BLOCK][K_BLOCK];                                                                     \
        for (int64_t q0 = 0; q0 < d.Lq; q0 += Q_BLOCK) {                                           \
          int64_t nq = min64(Q_BLOCK, d.Lq - q0);                                                  \
          scores_##S(&d, pq, pk, pm, b, h, q0, nq, k0, nk, sc, s);                                 \
          for (int64_t i = 0; i < nq; i++) {                                                       \
            T li = pl[(b * d.H + h) * d.Lq + q0 + i];                                              \
            if (li == -(T)INFINITY) continue;                                                      \
            int64_t row = (b * d.Lq + q0 + i) * d.C + h * d.Dh;                                    \
            T Di = dot_##S(pdo + row, po + row, d.Dh);                                             \
            for (int64_t j = 0; j < nk; j++) {                                                     \
              T p = T_EXP(s[i][j] - li);                                                           \
              if (p == 0) continue;                                                                \
              int64_t krow = (b * d.Lk + k0 + j) * d.C + h * d.Dh;                                 \
              if (pdv) axpy_##S(p, pdo + row, pdv + krow, d.Dh);                                   \
              if (pdk) {                                                                           \
                T ds = p * (dot_##S(pdo + row, pv + krow, d.Dh) - Di);                             \
                axpy_##S(sc * ds, pq + row, pdk + krow, d.Dh);                                     \
              }                                                                                    \
            }                                                                                      \
          }                                                                                        \
        }                                                                                          \
      }                                                                                            \
    }                                                                                              \
    if (dq) {                                                                                      \
      T *pdq = dq->data;                                                                           \
      int64_t nqb = (d.Lq + Q_BLOCK - 1) / Q_BLOCK, ntask = d.B * d.H * nqb;                       \
      _Pragma("omp parallel for schedule(dynamic, 1) if (work >= DUET_CPU_PARALLEL_MIN)")          \
      for (int64_t task = 0; task < ntask; task++) {                                               \
        int64_t bh = task / nqb, b = bh / d.H, h = bh % d.H;                                       \
        int64_t q0 = (task % nqb) * Q_BLOCK, nq = min64(Q_BLOCK, d.Lq - q0);                       \
        T s[Q_BLOCK][K_BLOCK], Di[Q_BLOCK], li[Q_BLOCK];                                           \
        for (int64_t i = 0; i < nq; i++) {                                                         \
          int64_t row = (b * d.Lq + q0 + i) * d.C + h * d.Dh;                                      \
          li[i] = pl[(b * d.H + h) * d.Lq + q0 + i];                                               \
          Di[i] = dot_##S(pdo + row, po + row, d.Dh);                                              \
        }                                                                                          \
        for (int64_t k0 = 0; k0 < d.Lk; k0 += K_BLOCK) {                                           \
          int64_t nk = min64(K_BLOCK, d.Lk - k0);                                                  \
          scores_##S(&d, pq, pk, pm, b, h, q0, nq, k0, nk, sc, s);                                 \
          for (int64_t i = 0; i < nq; i++) {                                                       \
            if (li[i] == -(T)INFINITY) continue;                                                   \
            int64_t row = (b * d.Lq + q0 + i) * d.C + h * d.Dh;                                    \
            for (int64_t j = 0; j < nk; j++) {                                                     \
              T p = T_EXP(s[i][j] - li[i]);                                                        \
              if (p == 0) continue;                                                                \
              int64_t krow = (b * d.Lk + k0 + j) * d.C + h * d.Dh;                                 \
              T ds = p * (dot_##S(pdo + row, pv + krow, d.Dh) - Di[i]);                            \
              axpy_##S(sc * ds, pk + krow, pdq + row, d.Dh);                                       \
            }                                                                                      \
          }                                                                                        \
        }                                                                                          \
      }                                                                                            \
    }                                                                                              \
  }

DEFINE_ATTENTION(float, f32)
DEFINE_ATTENTION(double, f64)

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
