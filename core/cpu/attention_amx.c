/* Attention with bf16 operands on Intel AMX, the attention half of bf16 products on the CPU
 * (core/cpu_products.h). core/cpu/attention.c calls it for f32 tensors while the precision is
 * bf16 and runs its f32 tiles whenever this returns -1 (no AMX, a head size that is not a
 * multiple of 32, a call from inside a parallel region, no memory).
 *
 * The walk is the one of attention.c: a forward task per (batch, head, block of 64 queries)
 * with an online softmax over tiles of keys, a backward task per (batch, head) that recomputes
 * the probabilities. What changes is that every tile product runs on AMX tiles: bf16 operands,
 * products summed in f32. The score tile, the softmax, the running maximum and sum, the
 * log-sum-exp, D = dout . o and every accumulator stay f32; the probabilities and score
 * gradients are rounded to bf16 only as operands of the next product, as FlashAttention does
 * on a GPU.
 *
 * The tile instruction reads its right operand in "pairs" (VNNI): row p of it holds, for each
 * column, the elements of rows 2p and 2p + 1 side by side. q, k, v and dout are converted once
 * per call, per (batch, head), into the layouts their products read (below, `packed`); only the
 * probability and score-gradient tiles are converted per tile. Every dimension is padded with
 * zeros to a multiple of 32 (padded keys are masked, padded queries dropped), so a single
 * kernel shape does every product: blocks of 32 x 32 of C in four tiles, fed 32 deep.
 *
 * Backward keeps dK and dV transposed ([Dh, keys], f32, per task) so that their products,
 * dV^T += dout^T P and dK^T += q^T dS, take the per-tile operand as the paired right side;
 * they are added into dk and dv at the end of the task. Each task owns its head's columns of
 * every gradient and runs its tiles in a fixed order: the bits do not depend on the number
 * of threads, and the gradients may be one tensor, as in attention.c. */
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu/cpu_kernels.h"
#include "core/cpu/vec_math.h"
#include "core/cpu_products.h"

static long g_calls;

long duet_cpu_bf16_attention_calls(void) {
  long n;
#pragma omp atomic read
  n = g_calls;
  return n;
}

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define DUET_AMX 1
#endif

#ifdef DUET_AMX
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define Q_BLOCK 64 /* queries per task or block, as attention.c */
#define K_TILE 64  /* keys per tile */
#define MAX_DH 256 /* larger heads take attention.c's tiles */

/* ---- can this process use the tiles? (compiled for the baseline: runs on any x86-64) ---- */

static int g_amx_ok;
static pthread_once_t g_amx_once = PTHREAD_ONCE_INIT;

static void amx_probe(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(1, 0, &a, &b, &c, &d) || !((c >> 27) & 1)) return; /* OSXSAVE */
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
  int avx512 = ((b >> 16) & 1) && ((b >> 17) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1); /* F DQ BW VL */
  int amx = ((d >> 22) & 1) && ((d >> 24) & 1); /* AMX-BF16, AMX-TILE */
  if (!avx512 || !amx || !__get_cpuid_count(7, 1, &a, &b, &c, &d) || !((a >> 5) & 1)) return; /* AVX512-BF16 */
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  uint64_t xcr0 = ((uint64_t)hi << 32) | lo;
  const uint64_t need = 0x6 | 0xE0 | 0x60000; /* SSE/AVX, AVX-512 and tile state */
  if ((xcr0 & need) != need) return;
  /* Linux gives a process the tile data state only when asked (ARCH_REQ_XCOMP_PERM for
   * XFEATURE_XTILEDATA); without it the first tile instruction faults. */
  g_amx_ok = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
}

int duet_cpu_bf16_attention_available(void) {
  pthread_once(&g_amx_once, amx_probe);
  return g_amx_ok;
}

typedef struct geom {
  int64_t B, Lq, Lk, H, Dh, C;
  int64_t Lqp, Lkp; /* lengths padded to multiples of 32 */
} geom;

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t pad32(int64_t n) { return (n + 31) & ~(int64_t)31; }

/* ---- scratch: one grow-only buffer, held for the length of a call ---- */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static char *g_buf;
static size_t g_cap;

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static char *scratch(size_t bytes) {
  if (bytes > g_cap) {
    free(g_buf);
    g_buf = aligned_alloc(64, align64(bytes));
    g_cap = g_buf ? bytes : 0;
  }
  return g_buf;
}

/* Carves n bytes off *p. */
static void *take(char **p, size_t n) {
  void *r = *p;
  *p += align64(n);
  return r;
}

/* ---- the kernels: compiled for AVX-512 and AMX, called only once the probe passed ---- */

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16,fma")

/* The tile configuration: palette 1, eight tiles of 16 rows of 64 bytes. Tiles 0-3 hold a
 * 32 x 32 block of C (f32), 4-5 two 16 x 32 blocks of A (bf16), 6-7 two 16-row blocks of
 * B in pairs (16 pairs deep, 16 columns). */
typedef struct __attribute__((packed, aligned(64))) tile_config {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} tile_config;

static void tiles_start(void) {
  tile_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 8; t++) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
}

/* C (M x N, f32, row stride ldc) = or += A B, with A M x K bf16 (row stride lda) and B in
 * pairs: K/2 rows of N pairs (row stride ldb pairs). M, N, K multiples of 32. */
static void tile_gemm(int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda,
                      const uint32_t *B, int64_t ldb, float *Cm, int64_t ldc, int accumulate) {
  const size_t sa = (size_t)lda * 2, sb = (size_t)ldb * 4, sc = (size_t)ldc * 4;
  for (int64_t i = 0; i < M; i += 32)
    for (int64_t j = 0; j < N; j += 32) {
      float *c00 = Cm + i * ldc + j, *c01 = c00 + 16, *c10 = c00 + 16 * ldc, *c11 = c10 + 16;
      if (accumulate) {
        _tile_loadd(0, c00, sc);
        _tile_loadd(1, c01, sc);
        _tile_loadd(2, c10, sc);
        _tile_loadd(3, c11, sc);
      } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
      }
      for (int64_t k = 0; k < K; k += 32) {
        _tile_loadd(4, A + i * lda + k, sa);
        _tile_loadd(5, A + (i + 16) * lda + k, sa);
        _tile_loadd(6, B + (k / 2) * ldb + j, sb);
        _tile_loadd(7, B + (k / 2) * ldb + j + 16, sb);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
      _tile_stored(0, c00, sc);
      _tile_stored(1, c01, sc);
      _tile_stored(2, c10, sc);
      _tile_stored(3, c11, sc);
    }
}

/* ---- conversions (round to nearest even; the instruction takes subnormals as zero) ---- */

static inline __m256i bf16x16(const float *src) {
  return (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src));
}

/* rows x cols of src (row stride lds) to bf16 rows (stride ldd); rows from `live` on are
 * zeros. cols is a multiple of 16. */
static void to_rows(uint16_t *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows,
                    int64_t live, int64_t cols) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c += 16)
      _mm256_storeu_si256((__m256i *)(dst + r * ldd + c),
                          r < live ? bf16x16(src + r * lds + c) : _mm256_setzero_si256());
}

/* rows x cols of src to pairs of rows: dst row p (stride ldd pairs) holds, for each column c,
 * (src[2p][c], src[2p + 1][c]). rows is even, cols a multiple of 16; rows from `live` on are
 * zeros. */
static void to_row_pairs(uint32_t *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows,
                         int64_t live, int64_t cols) {
  for (int64_t p = 0; p < rows / 2; p++)
    for (int64_t c = 0; c < cols; c += 16) {
      __m256i lo = 2 * p < live ? bf16x16(src + 2 * p * lds + c) : _mm256_setzero_si256();
      __m256i hi = 2 * p + 1 < live ? bf16x16(src + (2 * p + 1) * lds + c) : _mm256_setzero_si256();
      __m512i pair = _mm512_or_si512(_mm512_cvtepu16_epi32(lo),
                                     _mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16));
      _mm512_storeu_si512(dst + p * ldd + c, pair);
    }
}

/* dst = the transpose of a 16 x 16 block of 32-bit elements (row strides lds, ldd). */
static void transpose16(const uint32_t *src, int64_t lds, uint32_t *dst, int64_t ldd) {
  __m512i r[16], t[16];
  for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_si512(src + i * lds);
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 16; i += 8)
    for (int j = 0; j < 4; j++) {
      t[i + j] = _mm512_shuffle_i32x4(r[i + j], r[i + j + 4], 0x88);
      t[i + j + 4] = _mm512_shuffle_i32x4(r[i + j], r[i + j + 4], 0xdd);
    }
  for (int j = 0; j < 8; j++) {
    r[j] = _mm512_shuffle_i32x4(t[j], t[j + 8], 0x88);
    r[j + 8] = _mm512_shuffle_i32x4(t[j], t[j + 8], 0xdd);
  }
  for (int i = 0; i < 16; i++) _mm512_storeu_si512(dst + i * ldd, r[i]);
}

/* rows x cols of src to pairs of columns, i.e. the transpose in pairs: dst row p (stride ldd)
 * holds, for each row r, (src[r][2p], src[r][2p + 1]); columns r from `live` to `rows` are
 * zeros. rows is a multiple of 16, cols of 32: 16 rows are converted, then transposed as
 * 16 x 16 blocks of pairs. */
static void to_col_pairs(uint32_t *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows,
                         int64_t live, int64_t cols) {
  uint32_t blk[16 * (MAX_DH / 2)];
  for (int64_t r0 = 0; r0 < rows; r0 += 16) {
    to_rows((uint16_t *)blk, MAX_DH, r0 < live ? src + r0 * lds : src, lds, 16, live - r0, cols);
    for (int64_t p0 = 0; p0 < cols / 2; p0 += 16) transpose16(blk + p0, MAX_DH / 2, dst + p0 * ldd + r0, ldd);
  }
}

/* rows x cols of src to its transpose in bf16: dst row c (stride ldd, even) holds column c
 * of src; entries from `live` to `rows` are zeros. rows is a multiple of 32, cols of 16. Two
 * neighbouring entries of a dst row are a pair of src rows, so this is to_row_pairs followed
 * by 16 x 16 transposes of pairs. */
static void to_transposed(uint16_t *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows,
                          int64_t live, int64_t cols) {
  uint32_t blk[16 * MAX_DH], *dst_pairs = (uint32_t *)dst;
  for (int64_t r0 = 0; r0 < rows; r0 += 32) {
    to_row_pairs(blk, MAX_DH, r0 < live ? src + r0 * lds : src, lds, 32, live - r0, cols);
    for (int64_t c0 = 0; c0 < cols; c0 += 16)
      transpose16(blk + c0, MAX_DH, dst_pairs + c0 * (ldd / 2) + r0 / 2, ldd / 2);
  }
}

/* y[j][c] += xt[c][j] for j < n (rows of y with stride ldy), c < cols: xt is f32 [cols, ldx],
 * cols a multiple of 16, ldx of 16 and at least n rounded up to 16. */
static void add_transposed(float *y, int64_t ldy, const float *xt, int64_t ldx, int64_t n,
                           int64_t cols) {
  float blk[16 * 16];
  for (int64_t j0 = 0; j0 < n; j0 += 16)
    for (int64_t c0 = 0; c0 < cols; c0 += 16) {
      transpose16((const uint32_t *)(xt + c0 * ldx + j0), ldx, (uint32_t *)blk, 16);
      for (int64_t j = 0; j < min64(16, n - j0); j++) {
        float *row = y + (j0 + j) * ldy + c0;
        _mm512_storeu_ps(row, _mm512_add_ps(_mm512_loadu_ps(row), _mm512_loadu_ps(blk + j * 16)));
      }
    }
}

/* ---- per (batch, head) operands, converted once per call ---- */

typedef struct packed {
  uint16_t *q_rows;    /* [Lqp, Dh]: A of S = q k^T */
  uint32_t *k_cols;    /* [Dh/2, Lkp] pairs: B of S */
  uint32_t *v_rows;    /* [Lkp/2, Dh] pairs: B of o += P v (forward) */
  uint16_t *q_t;       /* [Dh, Lqp]: A of dK^T += q^T dS */
  uint32_t *k_rows;    /* [Lkp/2, Dh] pairs: B of dq += dS k */
  uint32_t *v_cols;    /* [Dh/2, Lkp] pairs: B of dP = dout v^T */
  uint16_t *do_rows;   /* [Lqp, Dh]: A of dP */
  uint16_t *do_t;      /* [Dh, Lqp]: A of dV^T += dout^T P */
} packed;

static size_t q_elems(const geom *g) { return (size_t)(g->Lqp * g->Dh); }
static size_t k_elems(const geom *g) { return (size_t)(g->Lkp * g->Dh); }
static size_t k_pairs(const geom *g) { return k_elems(g) / 2; } /* a head of a paired layout */

/* 0 for a key to attend, -inf for a masked or padded one: bias[0, nkp). */
static void key_bias(const uint8_t *mask, int64_t nk, int64_t nkp, float *bias) {
  for (int64_t j = 0; j < nkp; j++) bias[j] = j < nk && (!mask || mask[j]) ? 0.0f : -INFINITY;
}

/* ---- forward ---- */

typedef struct fwd_scratch {
  float *s, *o_acc, *bias;
  uint16_t *p;
} fwd_scratch;

static size_t fwd_scratch_bytes(const geom *g) {
  return align64(sizeof(float) * Q_BLOCK * K_TILE) * 2 + align64(sizeof(float) * Q_BLOCK * (size_t)g->Dh) +
         align64(sizeof(float) * K_TILE);
}

static fwd_scratch fwd_scratch_at(const geom *g, char *p) {
  fwd_scratch s;
  s.s = take(&p, sizeof(float) * Q_BLOCK * K_TILE);
  s.p = take(&p, sizeof(float) * Q_BLOCK * K_TILE);
  s.o_acc = take(&p, sizeof(float) * Q_BLOCK * (size_t)g->Dh);
  s.bias = take(&p, sizeof(float) * K_TILE);
  return s;
}

/* exp(x), 16 at a time: 2^n e^r with n = round(x / ln 2), |r| <= ln(2) / 2, e^r by its
 * degree-6 Taylor polynomial (within 1.2e-7 relative) and 2^n applied by vscalefps, which
 * also gives 0 below the range and keeps NaN (the clamp at -110 returns x when x is NaN). */
static inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-110.0f), x);
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x); /* ln 2 in two parts */
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

/* One online-softmax step over a tile of raw scores s (nqp x nkp): scales them, adds the key
 * bias, raises each row's running maximum m, updates the running sum l, and writes the
 * probabilities exp(scale s + bias - m) as bf16 rows into p (the left operand of P v); alpha
 * receives the factor by which a row's earlier output must shrink. A row whose keys have all
 * been masked so far, and the padded rows from nq on, become zeros. */
static void softmax_tile(const float *s, const float *bias, float scale, int64_t nq, int64_t nqp,
                         int64_t nkp, float *m, float *l, float *alpha, uint16_t *p) {
  const __m512 vscale = _mm512_set1_ps(scale);
  for (int64_t i = 0; i < nq; i++) {
    const float *row = s + i * nkp;
    uint16_t *prow = p + i * nkp;
    __m512 vmx = _mm512_set1_ps(m[i]);
    for (int64_t j = 0; j < nkp; j += 16)
      vmx = _mm512_max_ps(vmx, _mm512_fmadd_ps(_mm512_loadu_ps(row + j), vscale, _mm512_loadu_ps(bias + j)));
    float mx = _mm512_reduce_max_ps(vmx);
    alpha[i] = 1;
    if (mx == -INFINITY) {
      memset(prow, 0, sizeof(uint16_t) * (size_t)nkp);
      continue;
    }
    __m512 vsum = _mm512_setzero_ps(), vm = _mm512_set1_ps(mx);
    for (int64_t j = 0; j < nkp; j += 16) {
      __m512 x = _mm512_fmadd_ps(_mm512_loadu_ps(row + j), vscale, _mm512_loadu_ps(bias + j));
      __m512 e = exp16(_mm512_sub_ps(x, vm));
      vsum = _mm512_add_ps(vsum, e);
      _mm256_storeu_si256((__m256i *)(prow + j), (__m256i)_mm512_cvtneps_pbh(e));
    }
    alpha[i] = duet_exp_f32(m[i] - mx);
    l[i] = l[i] * alpha[i] + _mm512_reduce_add_ps(vsum);
    m[i] = mx;
  }
  memset(p + nq * nkp, 0, sizeof(uint16_t) * (size_t)((nqp - nq) * nkp));
}

static void fwd_task(const geom *g, const packed *pk, const uint8_t *mask, float scale, int64_t b,
                     int64_t h, int64_t q0, float *o, float *lse, const fwd_scratch *ts) {
  int64_t nq = min64(Q_BLOCK, g->Lq - q0), nqp = pad32(nq), Dh = g->Dh, bh = b * g->H + h;
  const uint16_t *qa = pk->q_rows + bh * q_elems(g) + q0 * Dh;
  const uint32_t *kb = pk->k_cols + bh * k_pairs(g), *vb = pk->v_rows + bh * k_pairs(g);
  float m[Q_BLOCK], l[Q_BLOCK], alpha[Q_BLOCK];
  for (int64_t i = 0; i < nq; i++) {
    m[i] = -INFINITY;
    l[i] = 0;
  }
  memset(ts->o_acc, 0, sizeof(float) * (size_t)(nqp * Dh));
  tiles_start();
  for (int64_t k0 = 0; k0 < g->Lk; k0 += K_TILE) {
    int64_t nk = min64(K_TILE, g->Lk - k0), nkp = pad32(nk);
    key_bias(mask ? mask + b * g->Lk + k0 : NULL, nk, nkp, ts->bias);
    tile_gemm(nqp, nkp, Dh, qa, Dh, kb + k0, g->Lkp, ts->s, nkp, 0);
    softmax_tile(ts->s, ts->bias, scale, nq, nqp, nkp, m, l, alpha, ts->p);
    for (int64_t i = 0; i < nq; i++)
      if (alpha[i] != 1)
        for (int64_t c = 0; c < Dh; c++) ts->o_acc[i * Dh + c] *= alpha[i];
    tile_gemm(nqp, Dh, nkp, ts->p, nkp, vb + (k0 / 2) * Dh, Dh, ts->o_acc, Dh, 1);
  }
  _tile_release();
  for (int64_t i = 0; i < nq; i++) {
    float *orow = o + (b * g->Lq + q0 + i) * g->C + h * Dh, inv = l[i] > 0 ? 1 / l[i] : 0;
    for (int64_t c = 0; c < Dh; c++) orow[c] = ts->o_acc[i * Dh + c] * inv;
    if (lse) lse[bh * g->Lq + q0 + i] = l[i] > 0 ? m[i] + logf(l[i]) : -INFINITY;
  }
}

static void pack_fwd_head(const geom *g, const packed *pk, const float *q, const float *k,
                          const float *v, int64_t bh) {
  int64_t b = bh / g->H, h = bh % g->H, Dh = g->Dh, C = g->C;
  const float *qh = q + b * g->Lq * C + h * Dh, *kh = k + b * g->Lk * C + h * Dh,
              *vh = v + b * g->Lk * C + h * Dh;
  to_rows(pk->q_rows + bh * q_elems(g), Dh, qh, C, g->Lqp, g->Lq, Dh);
  to_col_pairs(pk->k_cols + bh * k_pairs(g), g->Lkp, kh, C, g->Lkp, g->Lk, Dh);
  to_row_pairs(pk->v_rows + bh * k_pairs(g), Dh, vh, C, g->Lkp, g->Lk, Dh);
}

/* ---- backward ---- */

typedef struct bwd_scratch {
  float *p, *dp, *dq_acc, *dk_t, *dv_t, *bias;
  uint32_t *p_pairs, *ds_pairs;
  uint16_t *ds_rows;
} bwd_scratch;

static size_t bwd_scratch_bytes(const geom *g) {
  size_t tile = align64(sizeof(float) * Q_BLOCK * K_TILE);
  return tile * 5 + align64(sizeof(float) * Q_BLOCK * (size_t)g->Dh) +
         2 * align64(sizeof(float) * (size_t)(g->Dh * g->Lkp)) + align64(sizeof(float) * K_TILE);
}

static bwd_scratch bwd_scratch_at(const geom *g, char *p) {
  bwd_scratch s;
  size_t tile = sizeof(float) * Q_BLOCK * K_TILE;
  s.p = take(&p, tile);
  s.dp = take(&p, tile);
  s.p_pairs = take(&p, tile);
  s.ds_pairs = take(&p, tile);
  s.ds_rows = take(&p, tile);
  s.dq_acc = take(&p, sizeof(float) * Q_BLOCK * (size_t)g->Dh);
  s.dk_t = take(&p, sizeof(float) * (size_t)(g->Dh * g->Lkp));
  s.dv_t = take(&p, sizeof(float) * (size_t)(g->Dh * g->Lkp));
  s.bias = take(&p, sizeof(float) * K_TILE);
  return s;
}

static void pack_bwd_head(const geom *g, const packed *pk, const float *q, const float *k,
                          const float *v, const float *dout, int64_t bh) {
  int64_t b = bh / g->H, h = bh % g->H, Dh = g->Dh, C = g->C;
  const float *qh = q + b * g->Lq * C + h * Dh, *kh = k + b * g->Lk * C + h * Dh,
              *vh = v + b * g->Lk * C + h * Dh, *doh = dout + b * g->Lq * C + h * Dh;
  to_rows(pk->q_rows + bh * q_elems(g), Dh, qh, C, g->Lqp, g->Lq, Dh);
  to_col_pairs(pk->k_cols + bh * k_pairs(g), g->Lkp, kh, C, g->Lkp, g->Lk, Dh);
  to_transposed(pk->q_t + bh * q_elems(g), g->Lqp, qh, C, g->Lqp, g->Lq, Dh);
  to_row_pairs(pk->k_rows + bh * k_pairs(g), Dh, kh, C, g->Lkp, g->Lk, Dh);
  to_col_pairs(pk->v_cols + bh * k_pairs(g), g->Lkp, vh, C, g->Lkp, g->Lk, Dh);
  to_rows(pk->do_rows + bh * q_elems(g), Dh, doh, C, g->Lqp, g->Lq, Dh);
  to_transposed(pk->do_t + bh * q_elems(g), g->Lqp, doh, C, g->Lqp, g->Lq, Dh);
}

/* P = exp(scale s + bias - lse) for rows [0, nq) with a key (the forward's arithmetic),
 * zeros elsewhere. */
static void probs_tile(float *s, const float *bias, float scale, const float *lse, int64_t nq,
                       int64_t nqp, int64_t nkp) {
  for (int64_t i = 0; i < nq; i++) {
    float *row = s + i * nkp, li = lse[i];
    if (li == -INFINITY) {
      memset(row, 0, sizeof(float) * (size_t)nkp);
      continue;
    }
    const __m512 vscale = _mm512_set1_ps(scale), vl = _mm512_set1_ps(li);
    for (int64_t j = 0; j < nkp; j += 16) {
      __m512 x = _mm512_fmadd_ps(_mm512_loadu_ps(row + j), vscale, _mm512_loadu_ps(bias + j));
      _mm512_storeu_ps(row + j, exp16(_mm512_sub_ps(x, vl)));
    }
  }
  memset(s + nq * nkp, 0, sizeof(float) * (size_t)((nqp - nq) * nkp));
}

/* dP (in dp) to dS = scale P (dP - D); rows of P that are zero give zeros. */
static void dscores_tile(float *dp, const float *p, const float *D, float scale, int64_t nqp,
                         int64_t nkp) {
  for (int64_t i = 0; i < nqp; i++) {
    float *dr = dp + i * nkp, Di = D[i];
    const float *pr = p + i * nkp;
#pragma omp simd
    for (int64_t j = 0; j < nkp; j++) dr[j] = scale * pr[j] * (dr[j] - Di);
  }
}

static void bwd_task(const geom *g, const packed *pk, const uint8_t *mask, float scale, int64_t b,
                     int64_t h, const float *o, const float *lse, const float *dout, float *dq,
                     float *dk, float *dv, const bwd_scratch *ts) {
  int64_t Dh = g->Dh, C = g->C, bh = b * g->H + h, Lkp = g->Lkp;
  const uint32_t *k_cols = pk->k_cols + bh * k_pairs(g), *k_rows = pk->k_rows + bh * k_pairs(g),
                 *v_cols = pk->v_cols + bh * k_pairs(g);
  float li[Q_BLOCK], Di[Q_BLOCK];
  if (dk) memset(ts->dk_t, 0, sizeof(float) * (size_t)(Dh * Lkp));
  if (dv) memset(ts->dv_t, 0, sizeof(float) * (size_t)(Dh * Lkp));
  tiles_start();
  for (int64_t q0 = 0; q0 < g->Lq; q0 += Q_BLOCK) {
    int64_t nq = min64(Q_BLOCK, g->Lq - q0), nqp = pad32(nq), row0 = (b * g->Lq + q0) * C + h * Dh;
    int live = 0;
    for (int64_t i = 0; i < nqp; i++) {
      li[i] = i < nq ? lse[bh * g->Lq + q0 + i] : -INFINITY;
      live |= li[i] != -INFINITY;
      float acc = 0;
      if (li[i] != -INFINITY)
        for (int64_t c = 0; c < Dh; c++) acc += dout[row0 + i * C + c] * o[row0 + i * C + c];
      Di[i] = acc;
    }
    if (!live) continue;
    const uint16_t *qa = pk->q_rows + bh * q_elems(g) + q0 * Dh, *q_t = pk->q_t + bh * q_elems(g) + q0;
    const uint16_t *doa = pk->do_rows + bh * q_elems(g) + q0 * Dh, *do_t = pk->do_t + bh * q_elems(g) + q0;
    if (dq) memset(ts->dq_acc, 0, sizeof(float) * (size_t)(nqp * Dh));
    for (int64_t k0 = 0; k0 < g->Lk; k0 += K_TILE) {
      int64_t nk = min64(K_TILE, g->Lk - k0), nkp = pad32(nk);
      key_bias(mask ? mask + b * g->Lk + k0 : NULL, nk, nkp, ts->bias);
      tile_gemm(nqp, nkp, Dh, qa, Dh, k_cols + k0, Lkp, ts->p, nkp, 0);
      probs_tile(ts->p, ts->bias, scale, li, nq, nqp, nkp);
      if (dv) {
        to_row_pairs(ts->p_pairs, nkp, ts->p, nkp, nqp, nqp, nkp);
        tile_gemm(Dh, nkp, nqp, do_t, g->Lqp, ts->p_pairs, nkp, ts->dv_t + k0, Lkp, 1);
      }
      if (!dq && !dk) continue;
      tile_gemm(nqp, nkp, Dh, doa, Dh, v_cols + k0, Lkp, ts->dp, nkp, 0);
      dscores_tile(ts->dp, ts->p, Di, scale, nqp, nkp);
      if (dq) {
        to_rows(ts->ds_rows, nkp, ts->dp, nkp, nqp, nqp, nkp);
        tile_gemm(nqp, Dh, nkp, ts->ds_rows, nkp, k_rows + (k0 / 2) * Dh, Dh, ts->dq_acc, Dh, 1);
      }
      if (dk) {
        to_row_pairs(ts->ds_pairs, nkp, ts->dp, nkp, nqp, nqp, nkp);
        tile_gemm(Dh, nkp, nqp, q_t, g->Lqp, ts->ds_pairs, nkp, ts->dk_t + k0, Lkp, 1);
      }
    }
    if (dq)
      for (int64_t i = 0; i < nq; i++)
        for (int64_t c = 0; c < Dh; c++) dq[row0 + i * C + c] += ts->dq_acc[i * Dh + c];
  }
  _tile_release();
  int64_t r = b * g->Lk * C + h * Dh;
  if (dk) add_transposed(dk + r, C, ts->dk_t, Lkp, g->Lk, Dh);
  if (dv) add_transposed(dv + r, C, ts->dv_t, Lkp, g->Lk, Dh);
}

#pragma GCC pop_options

/* ---- entry points (baseline code: they run the probe before any AVX-512 or AMX) ---- */

static int geom_of(geom *g, int64_t B, int64_t Lq, int64_t Lk, int64_t C, int64_t H) {
  g->B = B;
  g->Lq = Lq;
  g->Lk = Lk;
  g->C = C;
  g->H = H;
  g->Dh = H > 0 ? C / H : 0;
  g->Lqp = pad32(Lq);
  g->Lkp = pad32(Lk);
  return B > 0 && Lq > 0 && Lk > 0 && H > 0 && C % H == 0 && g->Dh % 32 == 0 && g->Dh <= MAX_DH &&
         !omp_in_parallel() && duet_cpu_bf16_attention_available();
}

int duet_cpu_attention_fwd_bf16(int64_t B, int64_t Lq, int64_t Lk, int64_t C, int64_t heads,
                                const float *q, const float *k, const float *v,
                                const uint8_t *mask, float scale, float *o, float *lse) {
  geom g;
  if (!geom_of(&g, B, Lq, Lk, C, heads)) return -1;
  int64_t BH = B * heads, nqb = (Lq + Q_BLOCK - 1) / Q_BLOCK, ntask = BH * nqb;
  int nthreads = omp_get_max_threads();
  size_t per_thread = fwd_scratch_bytes(&g);
  size_t pack = align64(sizeof(uint16_t) * (size_t)BH * q_elems(&g)) +
                2 * align64(sizeof(uint16_t) * (size_t)BH * k_elems(&g));
  pthread_mutex_lock(&g_lock);
  char *p = scratch(pack + per_thread * (size_t)nthreads);
  if (!p) {
    pthread_mutex_unlock(&g_lock);
    return -1;
  }
  packed pk = {0};
  pk.q_rows = take(&p, sizeof(uint16_t) * (size_t)BH * q_elems(&g));
  pk.k_cols = take(&p, sizeof(uint16_t) * (size_t)BH * k_elems(&g));
  pk.v_rows = take(&p, sizeof(uint16_t) * (size_t)BH * k_elems(&g));
  char *thread_base = p;
  int64_t work = BH * Lq * Lk * g.Dh;
#pragma omp parallel if (work >= DUET_CPU_PARALLEL_MIN)
  {
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < BH; bh++) pack_fwd_head(&g, &pk, q, k, v, bh);
    fwd_scratch ts = fwd_scratch_at(&g, thread_base + per_thread * (size_t)omp_get_thread_num());
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < ntask; task++) {
      int64_t bh = task / nqb;
      fwd_task(&g, &pk, mask, scale, bh / heads, bh % heads, (task % nqb) * Q_BLOCK, o, lse, &ts);
    }
  }
  pthread_mutex_unlock(&g_lock);
#pragma omp atomic
  g_calls++;
  return 0;
}

int duet_cpu_attention_bwd_bf16(int64_t B, int64_t Lq, int64_t Lk, int64_t C, int64_t heads,
                                const float *q, const float *k, const float *v,
                                const uint8_t *mask, float scale, const float *o,
                                const float *lse, const float *dout, float *dq, float *dk,
                                float *dv) {
  geom g;
  if (!geom_of(&g, B, Lq, Lk, C, heads)) return -1;
  if (!dq && !dk && !dv) return 0;
  int64_t BH = B * heads;
  int nthreads = omp_get_max_threads();
  size_t per_thread = bwd_scratch_bytes(&g);
  size_t qb = align64(sizeof(uint16_t) * (size_t)BH * q_elems(&g)),
         kb = align64(sizeof(uint16_t) * (size_t)BH * k_elems(&g));
  pthread_mutex_lock(&g_lock);
  char *p = scratch(4 * qb + 3 * kb + per_thread * (size_t)nthreads);
  if (!p) {
    pthread_mutex_unlock(&g_lock);
    return -1;
  }
  packed pk = {0};
  pk.q_rows = take(&p, qb);
  pk.q_t = take(&p, qb);
  pk.do_rows = take(&p, qb);
  pk.do_t = take(&p, qb);
  pk.k_cols = take(&p, kb);
  pk.k_rows = take(&p, kb);
  pk.v_cols = take(&p, kb);
  char *thread_base = p;
  int64_t work = BH * Lq * Lk * g.Dh;
#pragma omp parallel if (work >= DUET_CPU_PARALLEL_MIN)
  {
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < BH; bh++) pack_bwd_head(&g, &pk, q, k, v, dout, bh);
    bwd_scratch ts = bwd_scratch_at(&g, thread_base + per_thread * (size_t)omp_get_thread_num());
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < BH; bh++)
      bwd_task(&g, &pk, mask, scale, bh / heads, bh % heads, o, lse, dout, dq, dk, dv, &ts);
  }
  pthread_mutex_unlock(&g_lock);
#pragma omp atomic
  g_calls++;
  return 0;
}

#else /* no AMX code for this compiler or system */

int duet_cpu_bf16_attention_available(void) { return 0; }

int duet_cpu_attention_fwd_bf16(int64_t B, int64_t Lq, int64_t Lk, int64_t C, int64_t heads,
                                const float *q, const float *k, const float *v,
                                const uint8_t *mask, float scale, float *o, float *lse) {
  (void)B, (void)Lq, (void)Lk, (void)C, (void)heads, (void)q, (void)k, (void)v, (void)mask,
      (void)scale, (void)o, (void)lse;
  return -1;
}

int duet_cpu_attention_bwd_bf16(int64_t B, int64_t Lq, int64_t Lk, int64_t C, int64_t heads,
                                const float *q, const float *k, const float *v,
                                const uint8_t *mask, float scale, const float *o,
                                const float *lse, const float *dout, float *dq, float *dk,
                                float *dv) {
  (void)B, (void)Lq, (void)Lk, (void)C, (void)heads, (void)q, (void)k, (void)v, (void)mask,
      (void)scale, (void)o, (void)lse, (void)dout, (void)dq, (void)dk, (void)dv;
  return -1;
}
#endif
