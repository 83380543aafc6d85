/* Fused attention on the tensor cores for bf16 with head dims 64 and 128 (FlashAttention-2
 * style), with f32 accumulation throughout.
 *
 * Each block has 4 warps; each warp owns 16 rows of a 64-row tile and issues
 * mma.sync.m16n8k16 (bf16 in, f32 accumulate; sm_80 and later, so Hopper runs it as is). The
 * operand layouts follow the PTX ISA's fragment tables for m16n8k16: with g = lane / 4 and
 * t = lane % 4, an A fragment holds rows g and g + 8, columns 2t, 2t+1 and 2t+8, 2t+9; a B
 * fragment holds rows 2t, 2t+1 and 2t+8, 2t+9 of column g; an accumulator holds rows g and
 * g + 8, columns 2t and 2t+1. An accumulator tile of scores is thus already the A fragment of
 * the next product (P V, dS K, ...) once packed to bf16, and no score ever leaves registers.
 * Operands that the products read along their columns are kept transposed in shared memory
 * (V for P V, K for dS K, Q and dout for the dk/dv products), so every fragment load is one
 * aligned 32-bit word. Rows are padded by 8 elements, which spreads a warp's fragment loads
 * over all 32 banks.
 *
 * Forward: one block per 64 queries walks the keys in tiles of 64 with an online softmax (in
 * base 2, scores pre-scaled by log2 e) and writes o and the natural log-sum-exp per row.
 * Backward, as on the CPU, in two kernels so that every output row has one owner and nothing
 * is added atomically (the result does not depend on scheduling): one block per 64 keys
 * accumulates dk and dv over all queries; one block per 64 queries accumulates dq over all
 * keys. Both recompute P from q, k and the saved log-sum-exp. */
#include "core/cuda/attention_mma.cuh"

/* Compiled for a target older than sm_80 the kernels have no tensor-core instruction and are
 * never launched (attn_mma_usable() checks the device). */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define DUET_MMA_BODY 0
#else
#define DUET_MMA_BODY 1
#endif

namespace {

#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f
const int THREADS = 128;
const int TILE = 64; /* rows per block: 4 warps x 16 */

__device__ __forceinline__ uint32_t ld32(const bf16 *p) { return *reinterpret_cast<const uint32_t *>(p); }

__device__ __forceinline__ uint32_t pack(float lo, float hi) {
  return (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(lo)) |
         ((uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(hi)) << 16);
}

/* d += a b for one m16n8k16 tile. */
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if DUET_MMA_BODY
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  (void)d;
  (void)a;
  (void)b0;
  (void)b1;
#endif
}

/* The A fragment of the 16 x 16 block at `base` (row 0, column 0 of the block). */
template <int LD> __device__ __forceinline__ void frag_a(uint32_t (&f)[4], const bf16 *base, int g, int t) {
  f[0] = ld32(base + g * LD + 2 * t);
  f[1] = ld32(base + (g + 8) * LD + 2 * t);
  f[2] = ld32(base + g * LD + 2 * t + 8);
  f[3] = ld32(base + (g + 8) * LD + 2 * t + 8);
}

/* Accumulator tiles c[2j], c[2j+1] (16 rows x 16 columns) as an A fragment. */
__device__ __forceinline__ void acc_to_a(uint32_t (&f)[4], const float (&lo)[4], const float (&hi)[4]) {
  f[0] = pack(lo[0], lo[1]);
  f[1] = pack(lo[2], lo[3]);
  f[2] = pack(hi[0], hi[1]);
  f[3] = pack(hi[2], hi[3]);
}

/* dst[r * LD + c] = src[(r0 + r) * C + c] for r < ROWS, c < D; rows at or past `limit` are
 * zero. 16-byte loads, consecutive threads along a row. */
template <int ROWS, int D, int LD>
__device__ __forceinline__ void load_rows(bf16 *dst, const bf16 *src, int64_t C, int r0, int limit) {
  const int V = D / 8;
  for (int idx = threadIdx.x; idx < ROWS * V; idx += THREADS) {
    int r = idx / V, c8 = (idx % V) * 8;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r0 + r < limit) val = *reinterpret_cast<const uint4 *>(src + (int64_t)(r0 + r) * C + c8);
    *reinterpret_cast<uint4 *>(dst + r * LD + c8) = val;
  }
}

/* dst[c * LDT + r] = src[(r0 + r) * C + c]: the transpose, consecutive threads down a column
 * so that the 2-byte stores of a warp fall in distinct banks. */
template <int ROWS, int D, int LDT>
__device__ __forceinline__ void load_rows_t(bf16 *dst, const bf16 *src, int64_t C, int r0, int limit) {
  const int V = D / 8;
  for (int idx = threadIdx.x; idx < ROWS * V; idx += THREADS) {
    int r = idx % ROWS, c8 = (idx / ROWS) * 8;
    union {
      uint4 v;
      unsigned short u[8];
    } val;
    val.v = make_uint4(0, 0, 0, 0);
    if (r0 + r < limit) val.v = *reinterpret_cast<const uint4 *>(src + (int64_t)(r0 + r) * C + c8);
#pragma unroll
    for (int e = 0; e < 8; e++) dst[(c8 + e) * LDT + r] = __ushort_as_bfloat16(val.u[e]);
  }
}

__device__ __forceinline__ float lse_load(const attn_mma_args &a, int64_t i) {
  return a.lse_f32 ? static_cast<const float *>(a.lse)[i] : __bfloat162float(static_cast<const bf16 *>(a.lse)[i]);
}

/* dst[0..1] += (x0, x1) on a bf16 pair. */
__device__ __forceinline__ void add_pair(bf16 *dst, float x0, float x1) {
  uint32_t old = ld32(dst);
  float a0 = __bfloat162float(__ushort_as_bfloat16((unsigned short)(old & 0xffffu)));
  float a1 = __bfloat162float(__ushort_as_bfloat16((unsigned short)(old >> 16)));
  *reinterpret_cast<uint32_t *>(dst) = pack(a0 + x0, a1 + x1);
}

template <int D> struct fwd_smem {
  static const int LD = D + 8, LDT = TILE + 8;
  static const size_t bytes = (size_t)(2 * TILE * LD + D * LDT) * sizeof(bf16) + TILE;
};

template <int D> __global__ void __launch_bounds__(THREADS) k_fwd(attn_mma_args a) {
  const int LD = fwd_smem<D>::LD, LDT = fwd_smem<D>::LDT;
  extern __shared__ __align__(16) unsigned char duet_smem[];
  bf16 *Qs = reinterpret_cast<bf16 *>(duet_smem), *Ks = Qs + TILE * LD, *Vt = Ks + TILE * LD;
  uint8_t *keep = reinterpret_cast<uint8_t *>(Vt + D * LDT);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int bh = blockIdx.y, b = bh / a.H, h = bh % a.H, q0 = blockIdx.x * TILE;
  const int64_t C = (int64_t)a.H * D;
  const bf16 *qb = a.q + (int64_t)b * a.Lq * C + h * D;
  const bf16 *kb = a.k + (int64_t)b * a.Lk * C + h * D, *vb = a.v + (int64_t)b * a.Lk * C + h * D;
  const float sl2 = a.scale * LOG2E;

  load_rows<TILE, D, LD>(Qs, qb, C, q0, a.Lq);
  __syncthreads();
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) frag_a<LD>(qf[kk], Qs + warp * 16 * LD + kk * 16, g, t);

  float oacc[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; i++) oacc[i][0] = oacc[i][1] = oacc[i][2] = oacc[i][3] = 0.f;
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};

  for (int k0 = 0; k0 < a.Lk; k0 += TILE) {
    __syncthreads();
    load_rows<TILE, D, LD>(Ks, kb, C, k0, a.Lk);
    load_rows_t<TILE, D, LDT>(Vt, vb, C, k0, a.Lk);
    for (int j = threadIdx.x; j < TILE; j += THREADS)
      keep[j] = (k0 + j < a.Lk) && (!a.mask || a.mask[(int64_t)b * a.Lk + k0 + j]);
    __syncthreads();

    float s[TILE / 8][4];
#pragma unroll
    for (int nt = 0; nt < TILE / 8; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
#pragma unroll
      for (int nt = 0; nt < TILE / 8; nt++) {
        const bf16 *kr = Ks + (nt * 8 + g) * LD + kk * 16 + 2 * t;
        mma(s[nt], qf[kk], ld32(kr), ld32(kr + 8));
      }

    float mx[2] = {mrow[0], mrow[1]};
#pragma unroll
    for (int nt = 0; nt < TILE / 8; nt++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        float val = keep[nt * 8 + 2 * t + (e & 1)] ? s[nt][e] * sl2 : -INFINITY;
        s[nt][e] = val;
        mx[e >> 1] = fmaxf(mx[e >> 1], val);
      }
    float alpha[2], rsum[2] = {0.f, 0.f};
#pragma unroll
    for (int r = 0; r < 2; r++) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      /* Every key so far masked: nothing accumulated, nothing to rescale. */
      alpha[r] = mx[r] == -INFINITY ? 1.f : exp2f(mrow[r] - mx[r]);
    }
#pragma unroll
    for (int nt = 0; nt < TILE / 8; nt++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        int r = e >> 1;
        float p = mx[r] == -INFINITY ? 0.f : exp2f(s[nt][e] - mx[r]);
        s[nt][e] = p;
        rsum[r] += p;
      }
#pragma unroll
    for (int r = 0; r < 2; r++) {
      lrow[r] = lrow[r] * alpha[r] + rsum[r];
      mrow[r] = mx[r];
    }
#pragma unroll
    for (int dt = 0; dt < D / 8; dt++) {
      oacc[dt][0] *= alpha[0];
      oacc[dt][1] *= alpha[0];
      oacc[dt][2] *= alpha[1];
      oacc[dt][3] *= alpha[1];
    }
#pragma unroll
    for (int kk = 0; kk < TILE / 16; kk++) {
      uint32_t pa[4];
      acc_to_a(pa, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int dt = 0; dt < D / 8; dt++) {
        const bf16 *vr = Vt + (dt * 8 + g) * LDT + kk * 16 + 2 * t;
        mma(oacc[dt], pa, ld32(vr), ld32(vr + 8));
      }
    }
  }

#pragma unroll
  for (int r = 0; r < 2; r++) {
    lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 1);
    lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 2);
  }
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int row = q0 + warp * 16 + g + 8 * r;
    if (row >= a.Lq) continue;
    const float inv = lrow[r] > 0.f ? 1.f / lrow[r] : 0.f;
    bf16 *orow = a.out + ((int64_t)b * a.Lq + row) * C + h * D;
#pragma unroll
    for (int dt = 0; dt < D / 8; dt++)
      *reinterpret_cast<uint32_t *>(orow + dt * 8 + 2 * t) = pack(oacc[dt][2 * r] * inv, oacc[dt][2 * r + 1] * inv);
    if (t == 0 && a.lse) {
      const float v = lrow[r] > 0.f ? mrow[r] * LN2 + logf(lrow[r]) : -INFINITY;
      const int64_t i = ((int64_t)b * a.H + h) * a.Lq + row;
      if (a.lse_f32) static_cast<float *>(a.lse)[i] = v;
      else static_cast<bf16 *>(a.lse)[i] = __float2bfloat16_rn(v);
    }
  }
}

template <int D> struct dq_smem {
  static const int LD = D + 8, LDT = TILE + 8;
  static const size_t bytes = (size_t)(4 * TILE * LD + D * LDT) * sizeof(bf16) + TILE;
};

template <int D> __global__ void __launch_bounds__(THREADS) k_bwd_dq(attn_mma_args a) {
  const int LD = dq_smem<D>::LD, LDT = dq_smem<D>::LDT;
  extern __shared__ __align__(16) unsigned char duet_smem[];
  bf16 *Qs = reinterpret_cast<bf16 *>(duet_smem), *dOs = Qs + TILE * LD, *Ks = dOs + TILE * LD, *Vs = Ks + TILE * LD;
  bf16 *Kt = Vs + TILE * LD;
  uint8_t *keep = reinterpret_cast<uint8_t *>(Kt + D * LDT);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int bh = blockIdx.y, b = bh / a.H, h = bh % a.H, q0 = blockIdx.x * TILE;
  const int64_t C = (int64_t)a.H * D;
  const bf16 *qb = a.q + (int64_t)b * a.Lq * C + h * D, *dob = a.dout + (int64_t)b * a.Lq * C + h * D;
  const bf16 *kb = a.k + (int64_t)b * a.Lk * C + h * D, *vb = a.v + (int64_t)b * a.Lk * C + h * D;
  const float sl2 = a.scale * LOG2E;

  load_rows<TILE, D, LD>(Qs, qb, C, q0, a.Lq);
  load_rows<TILE, D, LD>(dOs, dob, C, q0, a.Lq);
  float lse2[2], dsum[2];
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int row = q0 + warp * 16 + g + 8 * r;
    const int64_t i = ((int64_t)b * a.H + h) * a.Lq + row;
    lse2[r] = row < a.Lq ? lse_load(a, i) * LOG2E : -INFINITY;
    dsum[r] = row < a.Lq ? a.dsum[i] : 0.f;
  }
  float dq[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; i++) dq[i][0] = dq[i][1] = dq[i][2] = dq[i][3] = 0.f;

  for (int k0 = 0; k0 < a.Lk; k0 += TILE) {
    __syncthreads();
    load_rows<TILE, D, LD>(Ks, kb, C, k0, a.Lk);
    load_rows<TILE, D, LD>(Vs, vb, C, k0, a.Lk);
    load_rows_t<TILE, D, LDT>(Kt, kb, C, k0, a.Lk);
    for (int j = threadIdx.x; j < TILE; j += THREADS)
      keep[j] = (k0 + j < a.Lk) && (!a.mask || a.mask[(int64_t)b * a.Lk + k0 + j]);
    __syncthreads();

    float s[TILE / 8][4], dp[TILE / 8][4];
#pragma unroll
    for (int nt = 0; nt < TILE / 8; nt++)
#pragma unroll
      for (int e = 0; e < 4; e++) s[nt][e] = dp[nt][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
      uint32_t aq[4], ado[4];
      frag_a<LD>(aq, Qs + warp * 16 * LD + kk * 16, g, t);
      frag_a<LD>(ado, dOs + warp * 16 * LD + kk * 16, g, t);
#pragma unroll
      for (int nt = 0; nt < TILE / 8; nt++) {
        const bf16 *kr = Ks + (nt * 8 + g) * LD + kk * 16 + 2 * t;
        const bf16 *vr = Vs + (nt * 8 + g) * LD + kk * 16 + 2 * t;
        mma(s[nt], aq, ld32(kr), ld32(kr + 8));
        mma(dp[nt], ado, ld32(vr), ld32(vr + 8));
      }
    }
    /* dS = P (dP - dsum), with P recomputed from the saved log-sum-exp. */
#pragma unroll
    for (int nt = 0; nt < TILE / 8; nt++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int r = e >> 1;
        const float p = (keep[nt * 8 + 2 * t + (e & 1)] && lse2[r] != -INFINITY) ? exp2f(s[nt][e] * sl2 - lse2[r]) : 0.f;
        s[nt][e] = p * (dp[nt][e] - dsum[r]);
      }
#pragma unroll
    for (int kk = 0; kk < TILE / 16; kk++) {
      uint32_t ds[4];
      acc_to_a(ds, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int dt = 0; dt < D / 8; dt++) {
        const bf16 *kr = Kt + (dt * 8 + g) * LDT + kk * 16 + 2 * t;
        mma(dq[dt], ds, ld32(kr), ld32(kr + 8));
      }
    }
  }

#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int row = q0 + warp * 16 + g + 8 * r;
    if (row >= a.Lq) continue;
    bf16 *dqr = a.dq + ((int64_t)b * a.Lq + row) * C + h * D;
#pragma unroll
    for (int dt = 0; dt < D / 8; dt++)
      add_pair(dqr + dt * 8 + 2 * t, a.scale * dq[dt][2 * r], a.scale * dq[dt][2 * r + 1]);
  }
}

template <int D> struct dkdv_cfg {
  static const int QT = D == 128 ? 32 : 64; /* queries per step: bounds the registers of dk, dv */
  static const int LD = D + 8, LDT = QT + 8;
  static const size_t bytes = (size_t)(2 * TILE * LD + 2 * QT * LD + 2 * D * LDT) * sizeof(bf16) + 2 * QT * sizeof(float);
};

template <int D> __global__ void __launch_bounds__(THREADS) k_bwd_dkdv(attn_mma_args a) {
  const int QT = dkdv_cfg<D>::QT, LD = dkdv_cfg<D>::LD, LDT = dkdv_cfg<D>::LDT;
  extern __shared__ __align__(16) unsigned char duet_smem[];
  bf16 *Ks = reinterpret_cast<bf16 *>(duet_smem), *Vs = Ks + TILE * LD, *Qs = Vs + TILE * LD, *dOs = Qs + QT * LD;
  bf16 *Qt = dOs + QT * LD, *dOt = Qt + D * LDT;
  float *lse2s = reinterpret_cast<float *>(dOt + D * LDT), *dsums = lse2s + QT;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int bh = blockIdx.y, b = bh / a.H, h = bh % a.H, k0 = blockIdx.x * TILE;
  const int64_t C = (int64_t)a.H * D;
  const bf16 *qb = a.q + (int64_t)b * a.Lq * C + h * D, *dob = a.dout + (int64_t)b * a.Lq * C + h * D;
  const bf16 *kb = a.k + (int64_t)b * a.Lk * C + h * D, *vb = a.v + (int64_t)b * a.Lk * C + h * D;
  const float sl2 = a.scale * LOG2E;

  load_rows<TILE, D, LD>(Ks, kb, C, k0, a.Lk);
  load_rows<TILE, D, LD>(Vs, vb, C, k0, a.Lk);
  bool kept[2];
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int key = k0 + warp * 16 + g + 8 * r;
    kept[r] = key < a.Lk && (!a.mask || a.mask[(int64_t)b * a.Lk + key]);
  }
  float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; i++)
#pragma unroll
    for (int e = 0; e < 4; e++) dk[i][e] = dv[i][e] = 0.f;

  for (int q0 = 0; q0 < a.Lq; q0 += QT) {
    __syncthreads();
    load_rows<QT, D, LD>(Qs, qb, C, q0, a.Lq);
    load_rows<QT, D, LD>(dOs, dob, C, q0, a.Lq);
    load_rows_t<QT, D, LDT>(Qt, qb, C, q0, a.Lq);
    load_rows_t<QT, D, LDT>(dOt, dob, C, q0, a.Lq);
    for (int i = threadIdx.x; i < QT; i += THREADS) {
      const int64_t idx = ((int64_t)b * a.H + h) * a.Lq + q0 + i;
      lse2s[i] = q0 + i < a.Lq ? lse_load(a, idx) * LOG2E : -INFINITY;
      dsums[i] = q0 + i < a.Lq ? a.dsum[idx] : 0.f;
    }
    __syncthreads();

    /* Transposed scores: rows are this warp's keys, columns the step's queries. */
    float sT[QT / 8][4], dpT[QT / 8][4];
#pragma unroll
    for (int nt = 0; nt < QT / 8; nt++)
#pragma unroll
      for (int e = 0; e < 4; e++) sT[nt][e] = dpT[nt][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
      uint32_t ak[4], av[4];
      frag_a<LD>(ak, Ks + warp * 16 * LD + kk * 16, g, t);
      frag_a<LD>(av, Vs + warp * 16 * LD + kk * 16, g, t);
#pragma unroll
      for (int nt = 0; nt < QT / 8; nt++) {
        const bf16 *qr = Qs + (nt * 8 + g) * LD + kk * 16 + 2 * t;
        const bf16 *dr = dOs + (nt * 8 + g) * LD + kk * 16 + 2 * t;
        mma(sT[nt], ak, ld32(qr), ld32(qr + 8));
        mma(dpT[nt], av, ld32(dr), ld32(dr + 8));
      }
    }
#pragma unroll
    for (int nt = 0; nt < QT / 8; nt++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int qi = nt * 8 + 2 * t + (e & 1);
        const float l2 = lse2s[qi];
        const float p = (kept[e >> 1] && l2 != -INFINITY) ? exp2f(sT[nt][e] * sl2 - l2) : 0.f;
        sT[nt][e] = p;
        dpT[nt][e] = p * (dpT[nt][e] - dsums[qi]);
      }
#pragma unroll
    for (int kk = 0; kk < QT / 16; kk++) {
      uint32_t ap[4], as[4];
      acc_to_a(ap, sT[2 * kk], sT[2 * kk + 1]);
      acc_to_a(as, dpT[2 * kk], dpT[2 * kk + 1]);
#pragma unroll
      for (int dt = 0; dt < D / 8; dt++) {
        const bf16 *o = dOt + (dt * 8 + g) * LDT + kk * 16 + 2 * t;
        const bf16 *qq = Qt + (dt * 8 + g) * LDT + kk * 16 + 2 * t;
        mma(dv[dt], ap, ld32(o), ld32(o + 8));
        mma(dk[dt], as, ld32(qq), ld32(qq + 8));
      }
    }
  }

#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int key = k0 + warp * 16 + g + 8 * r;
    if (key >= a.Lk) continue;
    const int64_t off = ((int64_t)b * a.Lk + key) * C + h * D;
#pragma unroll
    for (int dt = 0; dt < D / 8; dt++) {
      if (a.dk) add_pair(a.dk + off + dt * 8 + 2 * t, a.scale * dk[dt][2 * r], a.scale * dk[dt][2 * r + 1]);
      if (a.dv) add_pair(a.dv + off + dt * 8 + 2 * t, dv[dt][2 * r], dv[dt][2 * r + 1]);
    }
  }
}

int aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

template <class K> int prepare(K kernel, size_t bytes, const char *what) {
  if (bytes <= 48 * 1024) return 1;
  return duet_cuda_ok(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes), what);
}

template <int D> void fwd_launch(const attn_mma_args &a, cudaStream_t st) {
  const size_t bytes = fwd_smem<D>::bytes;
  if (!prepare(k_fwd<D>, bytes, "attention (tensor cores): shared memory")) return;
  dim3 grid((unsigned)((a.Lq + TILE - 1) / TILE), (unsigned)(a.B * a.H));
  k_fwd<D><<<grid, THREADS, bytes, st>>>(a);
  duet_cuda_launched("attention (tensor cores)");
}

template <int D> void bwd_launch(const attn_mma_args &a, cudaStream_t st) {
  if ((a.dk || a.dv) && a.Lk > 0) {
    const size_t bytes = dkdv_cfg<D>::bytes;
    if (!prepare(k_bwd_dkdv<D>, bytes, "attention backward (tensor cores): shared memory")) return;
    dim3 grid((unsigned)((a.Lk + TILE - 1) / TILE), (unsigned)(a.B * a.H));
    k_bwd_dkdv<D><<<grid, THREADS, bytes, st>>>(a);
    if (!duet_cuda_launched("attention backward dk, dv (tensor cores)")) return;
  }
  if (a.dq && a.Lk > 0) {
    const size_t bytes = dq_smem<D>::bytes;
    if (!prepare(k_bwd_dq<D>, bytes, "attention backward (tensor cores): shared memory")) return;
    dim3 grid((unsigned)((a.Lq + TILE - 1) / TILE), (unsigned)(a.B * a.H));
    k_bwd_dq<D><<<grid, THREADS, bytes, st>>>(a);
    duet_cuda_launched("attention backward dq (tensor cores)");
  }
}

}  // namespace

/* Whether this binary's kernels carry the tensor-core instructions: a build for an older
 * target (say the compiler's default sm_75) runs on a newer GPU from its PTX, compiled for
 * that older target, where the mma was left out. */
static int built_with_mma() {
  cudaFuncAttributes fa;
  if (cudaFuncGetAttributes(&fa, k_fwd<64>) != cudaSuccess) {
    (void)cudaGetLastError(); /* clears the error just returned: the CUDA-core kernels run */
    return 0;
  }
  return fa.ptxVersion >= 80;
}

int attn_mma_usable(const duet_cuda_ctx *ctx, const attn_mma_args &a, int backward) {
  if (ctx->cc_major < 8 || (a.Dh != 64 && a.Dh != 128) || !built_with_mma()) return 0;
  if ((int64_t)a.B * a.H > 65535) return 0;
  const void *ptrs[] = {a.q, a.k, a.v, a.o, a.dout, a.out, a.dq, a.dk, a.dv};
  for (const void *p : ptrs)
    if (p && !aligned16(p)) return 0;
  size_t need = a.Dh == 64 ? (backward ? (dkdv_cfg<64>::bytes > dq_smem<64>::bytes ? dkdv_cfg<64>::bytes : dq_smem<64>::bytes)
                                       : fwd_smem<64>::bytes)
                           : (backward ? (dkdv_cfg<128>::bytes > dq_smem<128>::bytes ? dkdv_cfg<128>::bytes : dq_smem<128>::bytes)
                                       : fwd_smem<128>::bytes);
  return need <= ctx->smem_optin;
}

void attn_mma_fwd(const attn_mma_args &a, cudaStream_t st) {
  if (a.Dh == 64) fwd_launch<64>(a, st);
  else fwd_launch<128>(a, st);
}

void attn_mma_bwd(const attn_mma_args &a, cudaStream_t st) {
  if (a.Dh == 64) bwd_launch<64>(a, st);
  else bwd_launch<128>(a, st);
}
