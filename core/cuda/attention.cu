/* CUDA attention and rotary positions (the CPU reference: core/cpu/attention.c).
 *
 * bf16 with head dim 64 or 128 runs on the tensor cores (attention_mma.cu). Everything else
 * (f32, which must match the CPU's f32 arithmetic and so cannot use TF32; f64; other head
 * dims such as the tiny configs' 32) runs the kernels below: the same flash-style algorithm
 * on the CUDA cores. A query row belongs to a group of G consecutive threads (G = 1 to 16,
 * the smallest with Dh <= 16 G), each holding up to 16 of its channels (c = lane + G i) of q
 * and of the output in registers; a score is the group's partial dot products summed with
 * G-wide shuffles. Keys and values pass through shared memory in tiles, and the online
 * softmax rescales the accumulators once per 8 keys.
 *
 * The contract is the CPU kernel's: o = softmax(scale q k^T, masked keys removed) v per
 * (batch, head), the natural log-sum-exp of each row in lse (-inf, with o = 0, for a row that
 * has no key), and a backward that recomputes P from q, k and lse. lse may be of q's dtype or
 * f32 (for bf16 attention f32 keeps the backward's P accurate). Both backward passes are
 * deterministic: one for dk and dv (a thread group per key), one for dq (a group per
 * query), each output owned by one group, no atomics. */
#include <math.h>

#include "core/cuda/attention_mma.cuh"

namespace {

const int THREADS = 128;
const int PER = 16; /* channels per thread at most */

struct shape {
  int64_t B, Lq, Lk, C;
  int H, Dh;
};

static shape shape_of(const duet_tensor *q, const duet_tensor *k, int heads) {
  shape s;
  s.B = q->shape[0];
  s.Lq = q->shape[1];
  s.Lk = k->shape[1];
  s.C = q->shape[2];
  s.H = heads;
  s.Dh = (int)(s.C / heads);
  return s;
}

/* Where the log-sum-exp lives: f32, or the attention's own dtype. */
struct lse_ref {
  void *p;
  int f32;
};

template <class T, class A> __device__ __forceinline__ A lse_get(lse_ref l, int64_t i) {
  return l.f32 ? (A) static_cast<const float *>(l.p)[i] : (A)ld(static_cast<const T *>(l.p)[i]);
}
template <class T, class A> __device__ __forceinline__ void lse_set(lse_ref l, int64_t i, A v) {
  if (l.f32) static_cast<float *>(l.p)[i] = (float)v;
  else static_cast<T *>(l.p)[i] = st<T>(v);
}

template <int G, class A> __device__ __forceinline__ A group_sum(A v) {
#pragma unroll
  for (int o = G / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/* ---- forward ---- */

template <class T, int G>
__global__ void __launch_bounds__(THREADS)
    k_fwd(const T *q, const T *k, const T *v, const uint8_t *mask, T *o, lse_ref lse, shape s, acc_t<T> scale, int BK) {
  typedef acc_t<T> A;
  const int QPB = THREADS / G;
  extern __shared__ __align__(16) unsigned char duet_smem[];
  T *Ks = reinterpret_cast<T *>(duet_smem), *Vs = Ks + BK * s.Dh;
  uint8_t *keep = reinterpret_cast<uint8_t *>(Vs + BK * s.Dh);
  const int lg = threadIdx.x % G, Dh = s.Dh;
  const int64_t bh = blockIdx.y, b = bh / s.H, h = bh % s.H;
  const int64_t row = (int64_t)blockIdx.x * QPB + threadIdx.x / G;
  const bool valid = row < s.Lq;

  A qv[PER], ov[PER];
  const T *qp = q + (b * s.Lq + (valid ? row : 0)) * s.C + h * Dh;
#pragma unroll
  for (int i = 0; i < PER; i++) {
    const int c = lg + G * i;
    qv[i] = (valid && c < Dh) ? ld(qp[c]) : (A)0;
    ov[i] = 0;
  }
  A m = neg_inf<A>(), l = 0;
  const T *kb = k + b * s.Lk * s.C + h * Dh, *vb = v + b * s.Lk * s.C + h * Dh;
  for (int64_t k0 = 0; k0 < s.Lk; k0 += BK) {
    const int nk = (int)(s.Lk - k0 < BK ? s.Lk - k0 : BK);
    __syncthreads();
    for (int idx = threadIdx.x; idx < nk * Dh; idx += THREADS) {
      const int j = idx / Dh, c = idx - j * Dh;
      Ks[idx] = kb[(k0 + j) * s.C + c];
      Vs[idx] = vb[(k0 + j) * s.C + c];
    }
    for (int j = threadIdx.x; j < nk; j += THREADS) keep[j] = mask ? mask[b * s.Lk + k0 + j] != 0 : 1;
    __syncthreads();
    for (int j0 = 0; j0 < nk; j0 += 8) {
      A sc[8], cmax = m;
#pragma unroll
      for (int jj = 0; jj < 8; jj++) {
        const int j = j0 + jj;
        A part = 0;
        if (j < nk) {
          const T *kr = Ks + j * Dh;
#pragma unroll
          for (int i = 0; i < PER; i++) {
            const int c = lg + G * i;
            if (c < Dh) part += qv[i] * ld(kr[c]);
          }
        }
        part = group_sum<G>(part);
        sc[jj] = (j < nk && keep[j]) ? scale * part : neg_inf<A>();
        cmax = sc[jj] > cmax ? sc[jj] : cmax;
      }
      if (cmax == neg_inf<A>()) continue; /* every key so far masked */
      const A alpha = dexp(m - cmax);
      A psum = 0;
#pragma unroll
      for (int i = 0; i < PER; i++) ov[i] *= alpha;
#pragma unroll
      for (int jj = 0; jj < 8; jj++) {
        const A p = sc[jj] == neg_inf<A>() ? (A)0 : dexp(sc[jj] - cmax);
        psum += p;
        if (p != (A)0) {
          const T *vr = Vs + (j0 + jj) * Dh;
#pragma unroll
          for (int i = 0; i < PER; i++) {
            const int c = lg + G * i;
            if (c < Dh) ov[i] += p * ld(vr[c]);
          }
        }
      }
      l = l * alpha + psum;
      m = cmax;
    }
  }
  if (!valid) return;
  const A inv = l > (A)0 ? (A)1 / l : (A)0;
  T *op = o + (b * s.Lq + row) * s.C + h * Dh;
#pragma unroll
  for (int i = 0; i < PER; i++) {
    const int c = lg + G * i;
    if (c < Dh) op[c] = st<T>(ov[i] * inv);
  }
  if (lse.p && lg == 0) lse_set<T, A>(lse, (b * s.H + h) * s.Lq + row, l > (A)0 ? m + dlog(l) : neg_inf<A>());
}

/* ---- backward ---- */

/* dsum[(b, h, i)] = dout_i . o_i, the row term of dS = P (dP - dsum). One warp per row. */
template <class T>
__global__ void k_rowdot(const T *dout, const T *o, acc_t<T> *dsum, shape s) {
  typedef acc_t<T> A;
  const int64_t rows = s.B * s.Lq * s.H;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);
  for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; r < rows; r += warps) {
    const int64_t h = r % s.H, i = (r / s.H) % s.Lq, b = r / (s.H * s.Lq);
    const int64_t off = (b * s.Lq + i) * s.C + h * s.Dh;
    A acc = 0;
    for (int c = threadIdx.x & 31; c < s.Dh; c += 32) acc += ld(dout[off + c]) * ld(o[off + c]);
    acc = warp_sum(acc);
    if ((threadIdx.x & 31) == 0) dsum[(b * s.H + h) * s.Lq + i] = acc;
  }
}

template <class T, int G>
__global__ void __launch_bounds__(THREADS)
    k_bwd_dkdv(const T *q, const T *k, const T *v, const uint8_t *mask, lse_ref lse, const T *dout,
               const acc_t<T> *dsum, T *dk, T *dv, shape s, acc_t<T> scale, int BQ) {
  typedef acc_t<T> A;
  const int KPB = THREADS / G;
  extern __shared__ __align__(16) unsigned char duet_smem[];
  A *ls = reinterpret_cast<A *>(duet_smem), *ds_ = ls + BQ;
  T *Qs = reinterpret_cast<T *>(ds_ + BQ), *dOs = Qs + BQ * s.Dh;
  const int lg = threadIdx.x % G, Dh = s.Dh;
  const int64_t bh = blockIdx.y, b = bh / s.H, h = bh % s.H;
  const int64_t key = (int64_t)blockIdx.x * KPB + threadIdx.x / G;
  const bool valid = key < s.Lk;
  const bool kept = valid && (!mask || mask[b * s.Lk + key]);

  A kv[PER], vv[PER], dkv[PER], dvv[PER];
  const int64_t koff = (b * s.Lk + (valid ? key : 0)) * s.C + h * Dh;
#pragma unroll
  for (int i = 0; i < PER; i++) {
    const int c = lg + G * i;
    kv[i] = (valid && c < Dh) ? ld(k[koff + c]) : (A)0;
    vv[i] = (valid && c < Dh) ? ld(v[koff + c]) : (A)0;
    dkv[i] = dvv[i] = 0;
  }
  const T *qb = q + b * s.Lq * s.C + h * Dh, *db = dout + b * s.Lq * s.C + h * Dh;
  for (int64_t q0 = 0; q0 < s.Lq; q0 += BQ) {
    const int nq = (int)(s.Lq - q0 < BQ ? s.Lq - q0 : BQ);
    __syncthreads();
    for (int idx = threadIdx.x; idx < nq * Dh; idx += THREADS) {
      const int i = idx / Dh, c = idx - i * Dh;
      Qs[idx] = qb[(q0 + i) * s.C + c];
      dOs[idx] = db[(q0 + i) * s.C + c];
    }
    for (int i = threadIdx.x; i < nq; i += THREADS) {
      const int64_t r = (b * s.H + h) * s.Lq + q0 + i;
      ls[i] = lse_get<T, A>(lse, r);
      ds_[i] = dsum[r];
    }
    __syncthreads();
    for (int i = 0; i < nq; i++) {
      const T *qr = Qs + i * Dh, *dr = dOs + i * Dh;
      A ps = 0, pd = 0;
#pragma unroll
      for (int p = 0; p < PER; p++) {
        const int c = lg + G * p;
        if (c < Dh) {
          ps += ld(qr[c]) * kv[p];
          pd += ld(dr[c]) * vv[p];
        }
      }
      ps = group_sum<G>(ps);
      pd = group_sum<G>(pd);
      const A li = ls[i];
      if (!kept || li == neg_inf<A>()) continue;
      const A pr = dexp(scale * ps - li);
      if (pr == (A)0) continue;
      const A dsv = pr * (pd - ds_[i]);
#pragma unroll
      for (int p = 0; p < PER; p++) {
        const int c = lg + G * p;
        if (c < Dh) {
          dvv[p] += pr * ld(dr[c]);
          dkv[p] += scale * dsv * ld(qr[c]);
        }
      }
    }
  }
  if (!valid) return;
#pragma unroll
  for (int p = 0; p < PER; p++) {
    const int c = lg + G * p;
    if (c >= Dh) continue;
    if (dk) dk[koff + c] = st<T>(ld(dk[koff + c]) + dkv[p]);
    if (dv) dv[koff + c] = st<T>(ld(dv[koff + c]) + dvv[p]);
  }
}

template <class T, int G>
__global__ void __launch_bounds__(THREADS)
    k_bwd_dq(const T *q, const T *k, const T *v, const uint8_t *mask, lse_ref lse, const T *dout,
             const acc_t<T> *dsum, T *dq, shape s, acc_t<T> scale, int BK) {
  typedef acc_t<T> A;
  const int QPB = THREADS / G;
  extern __shared__ __align__(16) unsigned char duet_smem[];
  T *Ks = reinterpret_cast<T *>(duet_smem), *Vs = Ks + BK * s.Dh;
  uint8_t *keep = reinterpret_cast<uint8_t *>(Vs + BK * s.Dh);
  const int lg = threadIdx.x % G, Dh = s.Dh;
  const int64_t bh = blockIdx.y, b = bh / s.H, h = bh % s.H;
  const int64_t row = (int64_t)blockIdx.x * QPB + threadIdx.x / G;
  const bool valid = row < s.Lq;
  const int64_t qoff = (b * s.Lq + (valid ? row : 0)) * s.C + h * Dh;
  const int64_t r = (b * s.H + h) * s.Lq + (valid ? row : 0);
  const A li = valid ? lse_get<T, A>(lse, r) : neg_inf<A>(), di = valid ? dsum[r] : (A)0;

  A qv[PER], dov[PER], dqv[PER];
#pragma unroll
  for (int i = 0; i < PER; i++) {
    const int c = lg + G * i;
    qv[i] = (valid && c < Dh) ? ld(q[qoff + c]) : (A)0;
    dov[i] = (valid && c < Dh) ? ld(dout[qoff + c]) : (A)0;
    dqv[i] = 0;
  }
  const T *kb = k + b * s.Lk * s.C + h * Dh, *vb = v + b * s.Lk * s.C + h * Dh;
  for (int64_t k0 = 0; k0 < s.Lk; k0 += BK) {
    const int nk = (int)(s.Lk - k0 < BK ? s.Lk - k0 : BK);
    __syncthreads();
    for (int idx = threadIdx.x; idx < nk * Dh; idx += THREADS) {
      const int j = idx / Dh, c = idx - j * Dh;
      Ks[idx] = kb[(k0 + j) * s.C + c];
      Vs[idx] = vb[(k0 + j) * s.C + c];
    }
    for (int j = threadIdx.x; j < nk; j += THREADS) keep[j] = mask ? mask[b * s.Lk + k0 + j] != 0 : 1;
    __syncthreads();
    for (int j = 0; j < nk; j++) {
      const T *kr = Ks + j * Dh, *vr = Vs + j * Dh;
      A ps = 0, pd = 0;
#pragma unroll
      for (int p = 0; p < PER; p++) {
        const int c = lg + G * p;
        if (c < Dh) {
          ps += qv[p] * ld(kr[c]);
          pd += dov[p] * ld(vr[c]);
        }
      }
      ps = group_sum<G>(ps);
      pd = group_sum<G>(pd);
      if (!keep[j] || li == neg_inf<A>()) continue;
      const A pr = dexp(scale * ps - li);
      if (pr == (A)0) continue;
      const A dsv = scale * pr * (pd - di);
#pragma unroll
      for (int p = 0; p < PER; p++) {
        const int c = lg + G * p;
        if (c < Dh) dqv[p] += dsv * ld(kr[c]);
      }
    }
  }
  if (!valid) return;
#pragma unroll
  for (int p = 0; p < PER; p++) {
    const int c = lg + G * p;
    if (c < Dh) dq[qoff + c] = st<T>(ld(dq[qoff + c]) + dqv[p]);
  }
}

/* ---- launchers ---- */

static int group_for(int Dh) {
  return Dh <= 16 ? 1 : Dh <= 32 ? 2 : Dh <= 64 ? 4 : Dh <= 128 ? 8 : Dh <= 256 ? 16 : 0;
}

#define WITH_GROUP(g_, ...)                               \
  switch (g_) {                                           \
    case 1: { const int G = 1; __VA_ARGS__; } break;      \
    case 2: { const int G = 2; __VA_ARGS__; } break;      \
    case 4: { const int G = 4; __VA_ARGS__; } break;      \
    case 8: { const int G = 8; __VA_ARGS__; } break;      \
    default: { const int G = 16; __VA_ARGS__; } break;    \
  }

/* Rows per shared-memory tile: two [rows, Dh] tiles of T (+ extra bytes per row) in 40 KiB. */
static int tile_rows(int Dh, size_t es, size_t extra) {
  size_t per = 2 * (size_t)Dh * es + extra;
  size_t r = (40 * 1024) / per;
  r = r / 8 * 8;
  return (int)(r < 8 ? 8 : r > 64 ? 64 : r);
}

static int lse_of(const duet_tensor *lse, duet_dtype qt, lse_ref *out, const char *what) {
  out->p = lse ? lse->data : nullptr;
  out->f32 = 0;
  if (!lse) return 1;
  if (lse->dtype == DUET_F32) out->f32 = 1;
  else if (lse->dtype != qt) {
    duet_cuda_record(DUET_EINVAL, "cuda %s: lse has dtype %s; expected f32 or %s", what, duet_dtype_name(lse->dtype),
                     duet_dtype_name(qt));
    return 0;
  }
  return 1;
}

static attn_mma_args mma_args(const shape &s, const duet_tensor *q, const duet_tensor *k, const duet_tensor *v,
                              const duet_tensor *mask, const lse_ref &l, double scale) {
  attn_mma_args a = {};
  a.q = cptr<bf16>(q);
  a.k = cptr<bf16>(k);
  a.v = cptr<bf16>(v);
  a.mask = mask ? static_cast<const uint8_t *>(mask->data) : nullptr;
  a.lse = l.p;
  a.lse_f32 = l.f32;
  a.B = (int)s.B;
  a.Lq = (int)s.Lq;
  a.Lk = (int)s.Lk;
  a.H = s.H;
  a.Dh = s.Dh;
  a.scale = (float)scale;
  return a;
}

static int fits_int(const shape &s) { return s.B < INT32_MAX && s.Lq < INT32_MAX && s.Lk < INT32_MAX; }

void attention_fwd(const duet_tensor *q, const duet_tensor *k, const duet_tensor *v, const duet_tensor *key_mask,
                   int heads, double scale, duet_tensor *o, duet_tensor *lse) {
  DUET_CTX_OR_RETURN(ctx);
  shape s = shape_of(q, k, heads);
  if (s.B == 0 || s.Lq == 0 || s.C == 0) return;
  lse_ref l;
  if (!lse_of(lse, q->dtype, &l, "attention")) return;
  const uint8_t *mask = key_mask ? static_cast<const uint8_t *>(key_mask->data) : nullptr;
  if (q->dtype == DUET_BF16 && fits_int(s)) {
    attn_mma_args a = mma_args(s, q, k, v, key_mask, l, scale);
    a.out = mptr<bf16>(o);
    if (attn_mma_usable(ctx, a, 0)) {
      attn_mma_fwd(a, ctx->stream);
      return;
    }
  }
  const int G = group_for(s.Dh);
  if (!G || s.B * s.H > 65535) {
    duet_cuda_record(DUET_ENOTSUP, "cuda attention: head dim %d or %lld batch-heads not supported (head dim <= 256, "
                     "batch x heads <= 65535)", s.Dh, (long long)(s.B * s.H));
    return;
  }
  DUET_DISPATCH_FLOAT(q->dtype, "attention", {
    const int BK = tile_rows(s.Dh, sizeof(T), 1);
    const size_t smem = 2 * (size_t)BK * s.Dh * sizeof(T) + BK;
    dim3 grid((unsigned)((s.Lq + THREADS / G - 1) / (THREADS / G)), (unsigned)(s.B * s.H));
    WITH_GROUP(G, k_fwd<T, G><<<grid, THREADS, smem, ctx->stream>>>(cptr<T>(q), cptr<T>(k), cptr<T>(v), mask,
                                                                     mptr<T>(o), l, s, (acc_t<T>)scale, BK));
  });
  duet_cuda_launched("attention");
}

void attention_bwd(const duet_tensor *q, const duet_tensor *k, const duet_tensor *v, const duet_tensor *key_mask,
                   int heads, double scale, const duet_tensor *o, const duet_tensor *lse, const duet_tensor *dout,
                   duet_tensor *dq, duet_tensor *dk, duet_tensor *dv) {
  DUET_CTX_OR_RETURN(ctx);
  shape s = shape_of(q, k, heads);
  if (s.B == 0 || s.Lq == 0 || s.Lk == 0 || s.C == 0 || (!dq && !dk && !dv)) return;
  lse_ref l;
  if (!lse_of(lse, q->dtype, &l, "attention backward")) return;
  if (!l.p) {
    duet_cuda_record(DUET_EINVAL, "cuda attention backward: no log-sum-exp");
    return;
  }
  const int G = group_for(s.Dh);
  const uint8_t *mask = key_mask ? static_cast<const uint8_t *>(key_mask->data) : nullptr;
  DUET_DISPATCH_FLOAT(q->dtype, "attention backward", {
    typedef acc_t<T> A;
    A *dsum = static_cast<A *>(duet_cuda_scratch((size_t)(s.B * s.H * s.Lq) * sizeof(A)));
    if (!dsum) return;
    k_rowdot<T><<<duet_blocks(s.B * s.Lq * s.H * 32, 256), 256, 0, ctx->stream>>>(cptr<T>(dout), cptr<T>(o), dsum, s);
    if (!duet_cuda_launched("attention backward (row dots)")) return;
    bool done = false;
    if (q->dtype == DUET_BF16 && fits_int(s)) {
      attn_mma_args a = mma_args(s, q, k, v, key_mask, l, scale);
      a.o = cptr<bf16>(o);
      a.dout = cptr<bf16>(dout);
      a.dq = mptr<bf16>(dq);
      a.dk = mptr<bf16>(dk);
      a.dv = mptr<bf16>(dv);
      a.dsum = reinterpret_cast<const float *>(dsum);
      if (attn_mma_usable(ctx, a, 1)) {
        attn_mma_bwd(a, ctx->stream);
        done = true;
      }
    }
    if (!done) {
      if (!G || s.B * s.H > 65535) {
        duet_cuda_record(DUET_ENOTSUP, "cuda attention backward: head dim %d or %lld batch-heads not supported",
                         s.Dh, (long long)(s.B * s.H));
        return;
      }
      if (dk || dv) {
        const int BQ = tile_rows(s.Dh, sizeof(T), 2 * sizeof(A));
        const size_t smem = 2 * (size_t)BQ * sizeof(A) + 2 * (size_t)BQ * s.Dh * sizeof(T);
        dim3 grid((unsigned)((s.Lk + THREADS / G - 1) / (THREADS / G)), (unsigned)(s.B * s.H));
        WITH_GROUP(G, k_bwd_dkdv<T, G><<<grid, THREADS, smem, ctx->stream>>>(
                          cptr<T>(q), cptr<T>(k), cptr<T>(v), mask, l, cptr<T>(dout), dsum, mptr<T>(dk), mptr<T>(dv),
                          s, (A)scale, BQ));
        if (!duet_cuda_launched("attention backward (dk, dv)")) return;
      }
      if (dq) {
        const int BK = tile_rows(s.Dh, sizeof(T), 1);
        const size_t smem = 2 * (size_t)BK * s.Dh * sizeof(T) + BK;
        dim3 grid((unsigned)((s.Lq + THREADS / G - 1) / (THREADS / G)), (unsigned)(s.B * s.H));
        WITH_GROUP(G, k_bwd_dq<T, G><<<grid, THREADS, smem, ctx->stream>>>(cptr<T>(q), cptr<T>(k), cptr<T>(v), mask, l,
                                                                           cptr<T>(dout), dsum, mptr<T>(dq), s, (A)scale, BK));
        duet_cuda_launched("attention backward (dq)");
      }
    }
  });
}

/* ---- rotary positions ---- */

struct rope_args {
  int n_axes;
  int pairs[DUET_ROPE_MAX_AXES];
  double theta;
};

/* One thread per (token, rotation pair), looping over heads: the angle and its sine are
 * computed once and in double, as on the CPU (positions times frequencies can be large). */
template <class T, class P>
__global__ void k_rope(const T *x, const P *pos, T *y, int64_t BL, int64_t L, int heads, int Dh, int64_t C,
                       rope_args ra, int per_sample, int inverse) {
  typedef acc_t<T> A;
  const int npairs = Dh / 2;
  for (int64_t t = blockIdx.y; t < BL; t += gridDim.y) {
    for (int pair = blockIdx.x * blockDim.x + threadIdx.x; pair < npairs; pair += gridDim.x * blockDim.x) {
      int a = 0, j = pair;
      while (a < ra.n_axes - 1 && j >= ra.pairs[a]) {
        j -= ra.pairs[a];
        a++;
      }
      const double p = (double)pos[(per_sample ? t : t % L) * ra.n_axes + a];
      const double ang = p * pow(ra.theta, -(double)j / (double)ra.pairs[a]);
      const A c = (A)cos(ang), sn = (A)(inverse ? -sin(ang) : sin(ang));
      const T *xr = x + t * C;
      T *yr = y + t * C;
      for (int h = 0; h < heads; h++) {
        const int64_t i0 = (int64_t)h * Dh + 2 * pair;
        const A x0 = ld(xr[i0]), x1 = ld(xr[i0 + 1]);
        if (inverse) {
          yr[i0] = st<T>(ld(yr[i0]) + (x0 * c - x1 * sn));
          yr[i0 + 1] = st<T>(ld(yr[i0 + 1]) + (x0 * sn + x1 * c));
        } else {
          yr[i0] = st<T>(x0 * c - x1 * sn);
          yr[i0 + 1] = st<T>(x0 * sn + x1 * c);
        }
      }
    }
  }
}

static void rope_apply(const duet_tensor *x, const duet_tensor *pos, int heads, const duet_rope_spec *spec, int inverse,
                       duet_tensor *y) {
  DUET_CTX_OR_RETURN(ctx);
  const int64_t B = x->shape[0], L = x->shape[1], C = x->shape[2];
  const int Dh = (int)(C / heads), npairs = Dh / 2;
  if (B * L == 0 || npairs == 0) return;
  rope_args ra = {};
  ra.n_axes = spec->n_axes;
  for (int a = 0; a < spec->n_axes && a < DUET_ROPE_MAX_AXES; a++) ra.pairs[a] = spec->pairs_per_axis[a];
  ra.theta = spec->theta;
  const int threads = npairs <= 32 ? 32 : npairs <= 64 ? 64 : 128;
  dim3 grid((unsigned)((npairs + threads - 1) / threads), duet_rows_grid(B * L));
  const int per_sample = pos->ndim == 3;
  DUET_DISPATCH_FLOAT(x->dtype, inverse ? "rope backward" : "rope", {
    if (pos->dtype == DUET_F64)
      k_rope<T, double><<<grid, threads, 0, ctx->stream>>>(cptr<T>(x), cptr<double>(pos), mptr<T>(y), B * L, L, heads,
                                                           Dh, C, ra, per_sample, inverse);
    else
      k_rope<T, float><<<grid, threads, 0, ctx->stream>>>(cptr<T>(x), cptr<float>(pos), mptr<T>(y), B * L, L, heads,
                                                          Dh, C, ra, per_sample, inverse);
  });
  duet_cuda_launched(inverse ? "rope backward" : "rope");
}

void rope_fwd(const duet_tensor *x, const duet_tensor *pos, int heads, const duet_rope_spec *spec, duet_tensor *y) {
  rope_apply(x, pos, heads, spec, 0, y);
}

void rope_bwd(const duet_tensor *dy, const duet_tensor *pos, int heads, const duet_rope_spec *spec, duet_tensor *dx) {
  rope_apply(dy, pos, heads, spec, 1, dx);
}

}  // namespace

extern "C" const struct duet_kernels_attention duet_cuda_attention_kernels = {
    attention_fwd,
    attention_bwd,
    rope_fwd,
    rope_bwd,
};
