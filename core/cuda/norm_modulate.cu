/* CUDA kernels of the fused norm + adaLN modulation (core/kernels_nn.h; the CPU reference:
 * core/cpu/norm_modulate.c). f32, bf16, f64.
 *
 * Forward: one block per row computes the statistics (in double, two passes for layernorm),
 * then writes y = n * (1 + scale) + shift with n never stored. Backward: one block per row for
 * dx (the two row means of dn = dy * (1 + scale) and of dn * n), and deterministic column sums
 * over each sample's rows for dshift (sum dy) and dscale (sum dy * n) (colsum.cuh). Statistics
 * are stored in their tensor's dtype, x's or f32. */
#include "core/cuda/colsum.cuh"

namespace {

int nm_threads(int64_t D) { return D <= 256 ? 32 : D <= 1024 ? 128 : 256; }
unsigned nm_blocks(int64_t rows) { return (unsigned)(rows < 1 ? 1 : rows > 65535 ? 65535 : rows); }

/* A statistic stored as float when its tensor is f32, else as T; p may be NULL. */
template <class T> struct nm_stat {
  void *p;
  int f32;
  __device__ double get(int64_t r) const {
    if (!p) return 0.0;
    return f32 ? (double)static_cast<const float *>(p)[r] : (double)ld(static_cast<const T *>(p)[r]);
  }
  __device__ void set(int64_t r, double v) const {
    if (!p) return;
    if (f32) static_cast<float *>(p)[r] = (float)v;
    else static_cast<T *>(p)[r] = st<T>(v);
  }
};
template <class T> nm_stat<T> nm_stat_of(const duet_tensor *t) {
  nm_stat<T> s = {t ? t->data : nullptr, t ? t->dtype == DUET_F32 : 0};
  return s;
}

template <class T>
__global__ void k_nm_fwd(int rms, const T *x, const T *shift, const T *scale, double eps, T *y, nm_stat<T> mean,
                         nm_stat<T> rstd, int64_t rows, int64_t L, int64_t D) {
  __shared__ double sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *xr = x + r * D, *shr = shift + (r / L) * D, *scr = scale + (r / L) * D;
    T *yr = y + r * D;
    double mu = 0;
    if (!rms) {
      double s = 0;
      for (int64_t j = threadIdx.x; j < D; j += blockDim.x) s += (double)ld(xr[j]);
      mu = block_sum(s, sh) / (double)D;
    }
    double v = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      double d = (double)ld(xr[j]) - mu;
      v += d * d;
    }
    double rs = 1.0 / sqrt(block_sum(v, sh) / (double)D + eps);
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      double n = ((double)ld(xr[j]) - mu) * rs;
      yr[j] = st<T>(n * (1.0 + (double)ld(scr[j])) + (double)ld(shr[j]));
    }
    if (threadIdx.x == 0) {
      mean.set(r, mu);
      rstd.set(r, rs);
    }
  }
}

template <class T>
__global__ void k_nm_bwd_dx(int rms, const T *x, const T *scale, nm_stat<T> mean, nm_stat<T> rstd, const T *dy,
                            T *dx, int64_t rows, int64_t L, int64_t D) {
  __shared__ double sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *xr = x + r * D, *gr = dy + r * D, *scr = scale + (r / L) * D;
    T *dr = dx + r * D;
    double mu = rms ? 0.0 : mean.get(r), rs = rstd.get(r), s1 = 0, s2 = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      double g = (double)ld(gr[j]) * (1.0 + (double)ld(scr[j]));
      s1 += g;
      s2 += g * ((double)ld(xr[j]) - mu) * rs;
    }
    s1 = block_sum(s1, sh) / (double)D;
    s2 = block_sum(s2, sh) / (double)D;
    if (rms) s1 = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      double g = (double)ld(gr[j]) * (1.0 + (double)ld(scr[j]));
      double n = ((double)ld(xr[j]) - mu) * rs;
      dr[j] = st<T>((double)ld(dr[j]) + rs * (g - s1 - n * s2));
    }
  }
}

/* Per (sample b, token l, channel j): dy and dy * n. */
template <class T> struct nm_terms {
  const T *x, *dy;
  nm_stat<T> mean, rstd;
  int rms;
  int64_t L, D;
  __device__ void operator()(int64_t b, int64_t l, int64_t j, double *acc) const {
    int64_t r = b * L + l, i = r * D + j;
    double g = (double)ld(dy[i]);
    double mu = rms ? 0.0 : mean.get(r);
    acc[0] += g;
    acc[1] += g * (((double)ld(x[i]) - mu) * rstd.get(r));
  }
};

template <class T> struct nm_add_two {
  T *d0, *d1; /* either may be NULL */
  int64_t D;
  __device__ void operator()(int64_t b, int64_t j, const double *s) const {
    if (d0) d0[b * D + j] = st<T>((double)ld(d0[b * D + j]) + s[0]);
    if (d1) d1[b * D + j] = st<T>((double)ld(d1[b * D + j]) + s[1]);
  }
};

void nm_fwd(int rms, const duet_tensor *x, const duet_tensor *shift, const duet_tensor *scale, double eps,
            duet_tensor *y, duet_tensor *mean, duet_tensor *rstd) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t B = x->shape[0], L = x->shape[1], D = x->shape[2], rows = B * L;
  if (rows == 0 || D == 0) return;
  DUET_DISPATCH_FLOAT(x->dtype, "norm_modulate", {
    k_nm_fwd<T><<<nm_blocks(rows), nm_threads(D), 0, ctx->stream>>>(
        rms, cptr<T>(x), cptr<T>(shift), cptr<T>(scale), eps, mptr<T>(y), nm_stat_of<T>(rms ? nullptr : mean),
        nm_stat_of<T>(rstd), rows, L, D);
  });
  duet_cuda_launched("norm_modulate");
}

void nm_bwd(int rms, const duet_tensor *x, const duet_tensor *scale, const duet_tensor *mean, const duet_tensor *rstd,
            const duet_tensor *dy, duet_tensor *dx, duet_tensor *dshift, duet_tensor *dscale) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t B = x->shape[0], L = x->shape[1], D = x->shape[2], rows = B * L;
  if (B == 0 || D == 0) return;
  const duet_tensor *m = rms ? nullptr : mean;
  DUET_DISPATCH_FLOAT(x->dtype, "norm_modulate backward", {
    if (dx && rows) {
      k_nm_bwd_dx<T><<<nm_blocks(rows), nm_threads(D), 0, ctx->stream>>>(
          rms, cptr<T>(x), cptr<T>(scale), nm_stat_of<T>(m), nm_stat_of<T>(rstd), cptr<T>(dy), mptr<T>(dx), rows, L,
          D);
      duet_cuda_launched("norm_modulate backward");
    }
    if (dshift || dscale) {
      nm_terms<T> f = {cptr<T>(x), cptr<T>(dy), nm_stat_of<T>(m), nm_stat_of<T>(rstd), rms, L, D};
      nm_add_two<T> out = {mptr<T>(dshift), mptr<T>(dscale), D};
      colsum_run<2>("norm_modulate backward (dshift, dscale)", f, out, B, L, D, ctx->stream);
    }
  });
}

}  // namespace

extern "C" const struct duet_kernels_norm_modulate duet_cuda_norm_modulate_kernels = {nm_fwd, nm_bwd};
