/* CUDA kernels for norms, activations, softmax and adaLN modulation (the CPU reference:
 * core/cpu/nn.c). f32, bf16, f64.
 *
 * A norm is one fused kernel per row: statistics, normalisation and affine in one launch, the
 * row read from memory once and then from cache. Row statistics are accumulated in double,
 * as on the CPU. Per-row statistics (mean, rstd) are stored in their tensor's dtype, which
 * may be x's or f32 (for bf16 activations f32 statistics keep the backward accurate).
 * Per-channel gradients (dw, db, dshift, dscale, dgate) are deterministic column sums
 * (colsum.cuh). */
#include "core/cuda/colsum.cuh"

namespace {

/* One block per row: enough threads to cover short rows without idling most of them. */
static inline int row_threads(int64_t D) { return D <= 256 ? 32 : D <= 1024 ? 128 : 256; }
static inline unsigned row_blocks(int64_t rows) { return (unsigned)(rows < 1 ? 1 : rows > 65535 ? 65535 : rows); }

/* Statistics are stored as float when their tensor is f32, else as T. */
template <class T> struct stats {
  void *p;
  int f32;
  __device__ double get(int64_t r) const {
    return f32 ? (double)static_cast<const float *>(p)[r] : (double)ld(static_cast<const T *>(p)[r]);
  }
  __device__ void set(int64_t r, double v) const {
    if (!p) return;
    if (f32) static_cast<float *>(p)[r] = (float)v;
    else static_cast<T *>(p)[r] = st<T>(v);
  }
};
template <class T> static stats<T> stats_of(const duet_tensor *t) {
  stats<T> s = {t ? t->data : nullptr, t ? t->dtype == DUET_F32 : 0};
  return s;
}

/* ---- layernorm ---- */

template <class T>
__global__ void k_layernorm_fwd(const T *x, const T *w, const T *b, double eps, T *y, stats<T> mean,
                                stats<T> rstd, int64_t rows, int64_t D) {
  __shared__ double sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *xr = x + r * D;
    T *yr = y + r * D;
    double s = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) s += (double)ld(xr[j]);
    double mu = block_sum(s, sh) / (double)D;
    /* Two passes: the one-pass E[x^2] - E[x]^2 loses digits when |mean| >> std. */
    double v = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      double d = (double)ld(xr[j]) - mu;
      v += d * d;
    }
    double var = block_sum(v, sh) / (double)D;
    double rs = 1.0 / sqrt(var + eps);
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      double o = ((double)ld(xr[j]) - mu) * rs;
      if (w) o *= (double)ld(w[j]);
      if (b) o += (double)ld(b[j]);
      yr[j] = st<T>(o);
    }
    if (threadIdx.x == 0) {
      mean.set(r, mu);
      rstd.set(r, rs);
    }
  }
}

template <class T>
__global__ void k_layernorm_bwd_dx(const T *x, const T *w, stats<T> mean, stats<T> rstd, const T *dy, T *dx,
                                   int64_t rows, int64_t D) {
  __shared__ double sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *xr = x + r * D, *gr = dy + r * D;
    T *dr = dx + r * D;
    double mu = mean.get(r), rs = rstd.get(r), s1 = 0, s2 = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      double g = (double)ld(gr[j]) * (w ? (double)ld(w[j]) : 1.0);
      s1 += g;
      s2 += g * ((double)ld(xr[j]) - mu) * rs;
    }
    s1 = block_sum(s1, sh) / (double)D;
    s2 = block_sum(s2, sh) / (double)D;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      double g = (double)ld(gr[j]) * (w ? (double)ld(w[j]) : 1.0);
      double xh = ((double)ld(xr[j]) - mu) * rs;
      dr[j] = st<T>((double)ld(dr[j]) + rs * (g - s1 - xh * s2));
    }
  }
}

template <class T> struct ln_param_terms {
  const T *x, *dy;
  stats<T> mean, rstd;
  int64_t D;
  __device__ void operator()(int64_t, int64_t r, int64_t j, double *acc) const {
    double g = (double)ld(dy[r * D + j]);
    acc[0] += g * ((double)ld(x[r * D + j]) - mean.get(r)) * rstd.get(r);
    acc[1] += g;
  }
};
template <class T> struct add_two {
  T *d0, *d1; /* either may be NULL */
  int64_t stride; /* groups: element g * stride + j */
  __device__ void operator()(int64_t g, int64_t j, const double *s) const {
    if (d0) d0[g * stride + j] = st<T>((double)ld(d0[g * stride + j]) + s[0]);
    if (d1) d1[g * stride + j] = st<T>((double)ld(d1[g * stride + j]) + s[1]);
  }
};

/* ---- rmsnorm ---- */

template <class T>
__global__ void k_rmsnorm_fwd(const T *x, const T *w, double eps, T *y, stats<T> rstd, int64_t rows, int64_t D) {
  __shared__ double sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *xr = x + r * D;
    T *yr = y + r * D;
    double ss = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      double v = (double)ld(xr[j]);
      ss += v * v;
    }
    double rs = 1.0 / sqrt(block_sum(ss, sh) / (double)D + eps);
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      double o = (double)ld(xr[j]) * rs;
      if (w) o *= (double)ld(w[j]);
      yr[j] = st<T>(o);
    }
    if (threadIdx.x == 0) rstd.set(r, rs);
  }
}

template <class T>
__global__ void k_rmsnorm_bwd_dx(const T *x, const T *w, stats<T> rstd, const T *dy, T *dx, int64_t rows, int64_t D) {
  __shared__ double sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *xr = x + r * D, *gr = dy + r * D;
    T *dr = dx + r * D;
    double rs = rstd.get(r), s = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x)
      s += (double)ld(gr[j]) * (w ? (double)ld(w[j]) : 1.0) * (double)ld(xr[j]) * rs;
    s = block_sum(s, sh) / (double)D;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      double g = (double)ld(gr[j]) * (w ? (double)ld(w[j]) : 1.0);
      dr[j] = st<T>((double)ld(dr[j]) + rs * (g - (double)ld(xr[j]) * rs * s));
    }
  }
}

template <class T> struct rms_param_term {
  const T *x, *dy;
  stats<T> rstd;
  int64_t D;
  __device__ void operator()(int64_t, int64_t r, int64_t j, double *acc) const {
    acc[0] += (double)ld(dy[r * D + j]) * (double)ld(x[r * D + j]) * rstd.get(r);
  }
};
template <class T> struct add_one {
  T *d;
  int64_t stride;
  __device__ void operator()(int64_t g, int64_t j, const double *s) const {
    d[g * stride + j] = st<T>((double)ld(d[g * stride + j]) + s[0]);
  }
};

/* ---- activations ---- */

template <class A> __device__ __forceinline__ A gelu_f(A v) {
  const A c = (A)0.7978845608028654, k3 = (A)0.044715;
  return (A)0.5 * v * ((A)1 + dtanh(c * (v + k3 * v * v * v)));
}
template <class A> __device__ __forceinline__ A gelu_d(A v) {
  const A c = (A)0.7978845608028654, k3 = (A)0.044715;
  A t = dtanh(c * (v + k3 * v * v * v));
  return (A)0.5 * ((A)1 + t) + (A)0.5 * v * ((A)1 - t * t) * c * ((A)1 + (A)3 * k3 * v * v);
}

template <class T> __global__ void k_act_fwd(int act, const T *x, T *y, int64_t n) {
  typedef acc_t<T> A;
  DUET_GRID_LOOP(i, n) {
    A v = ld(x[i]);
    y[i] = st<T>(act == DUET_ACT_GELU_TANH ? gelu_f(v) : v / ((A)1 + dexp(-v)));
  }
}

template <class T> __global__ void k_act_bwd(int act, const T *x, const T *dy, T *dx, int64_t n) {
  typedef acc_t<T> A;
  DUET_GRID_LOOP(i, n) {
    A v = ld(x[i]), d;
    if (act == DUET_ACT_GELU_TANH) {
      d = gelu_d(v);
    } else {
      A s = (A)1 / ((A)1 + dexp(-v));
      d = s * ((A)1 + v * ((A)1 - s));
    }
    dx[i] = st<T>(ld(dx[i]) + ld(dy[i]) * d);
  }
}

/* ---- softmax ---- */

template <class T> __global__ void k_softmax_fwd(const T *x, T *y, int64_t rows, int64_t D) {
  typedef acc_t<T> A;
  __shared__ A shm[32];
  __shared__ double shs[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *xr = x + r * D;
    T *yr = y + r * D;
    A mx = neg_inf<A>();
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      A v = ld(xr[j]);
      mx = v > mx ? v : mx;
    }
    mx = block_max(mx, shm);
    if (mx == neg_inf<A>()) { /* nothing to attend: exp(-inf - -inf) would be NaN */
      for (int64_t j = threadIdx.x; j < D; j += blockDim.x) yr[j] = st<T>((A)0);
      continue;
    }
    double sum = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) sum += (double)dexp(ld(xr[j]) - mx);
    A inv = (A)(1.0 / block_sum(sum, shs));
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) yr[j] = st<T>(dexp(ld(xr[j]) - mx) * inv);
  }
}

template <class T> __global__ void k_softmax_bwd(const T *y, const T *dy, T *dx, int64_t rows, int64_t D) {
  __shared__ double sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *yr = y + r * D, *gr = dy + r * D;
    T *dr = dx + r * D;
    double dot = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) dot += (double)ld(yr[j]) * (double)ld(gr[j]);
    dot = block_sum(dot, sh);
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x)
      dr[j] = st<T>((double)ld(dr[j]) + (double)ld(yr[j]) * ((double)ld(gr[j]) - dot));
  }
}

/* ---- modulation and gated residual: x [B, L, D] with per-sample vectors [B, D] ---- */

#define ROW_LOOP(r, rows) for (int64_t r = blockIdx.y; r < (rows); r += gridDim.y)
#define COL_LOOP(j, n) for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < (n); j += (int64_t)gridDim.x * blockDim.x)

static inline dim3 grid2d(int64_t rows, int64_t cols, int threads) {
  int64_t bx = (cols + threads - 1) / threads;
  if (bx > 1024) bx = 1024;
  return dim3((unsigned)(bx < 1 ? 1 : bx), duet_rows_grid(rows));
}

template <class T>
__global__ void k_modulate_fwd(const T *x, const T *shift, const T *scale, T *y, int64_t rows, int64_t L, int64_t D) {
  ROW_LOOP(r, rows) {
    const T *xr = x + r * D, *sh = shift + (r / L) * D, *sc = scale + (r / L) * D;
    T *yr = y + r * D;
    COL_LOOP(j, D) yr[j] = st<T>(ld(xr[j]) * ((acc_t<T>)1 + ld(sc[j])) + ld(sh[j]));
  }
}

template <class T>
__global__ void k_modulate_bwd_dx(const T *scale, const T *dy, T *dx, int64_t rows, int64_t L, int64_t D) {
  ROW_LOOP(r, rows) {
    const T *gr = dy + r * D, *sc = scale + (r / L) * D;
    T *dr = dx + r * D;
    COL_LOOP(j, D) dr[j] = st<T>(ld(dr[j]) + ld(gr[j]) * ((acc_t<T>)1 + ld(sc[j])));
  }
}

template <class T> struct mod_terms {
  const T *x, *dy;
  int64_t L, D;
  __device__ void operator()(int64_t b, int64_t l, int64_t j, double *acc) const {
    int64_t i = (b * L + l) * D + j;
    double g = (double)ld(dy[i]);
    acc[0] += g;
    acc[1] += g * (double)ld(x[i]);
  }
};

template <class T>
__global__ void k_gated_fwd(const T *x, const T *gate, const T *y, T *out, int64_t rows, int64_t L, int64_t D) {
  ROW_LOOP(r, rows) {
    const T *xr = x + r * D, *yr = y + r * D, *gt = gate + (r / L) * D;
    T *orow = out + r * D;
    COL_LOOP(j, D) orow[j] = st<T>(ld(xr[j]) + ld(gt[j]) * ld(yr[j]));
  }
}

template <class T>
__global__ void k_gated_bwd(const T *gate, const T *dout, T *dx, T *dy, int64_t rows, int64_t L, int64_t D) {
  ROW_LOOP(r, rows) {
    const T *gr = dout + r * D, *gt = gate + (r / L) * D;
    COL_LOOP(j, D) {
      if (dx) dx[r * D + j] = st<T>(ld(dx[r * D + j]) + ld(gr[j]));
      if (dy) dy[r * D + j] = st<T>(ld(dy[r * D + j]) + ld(gt[j]) * ld(gr[j]));
    }
  }
}

template <class T> struct gate_term {
  const T *y, *dout;
  int64_t L, D;
  __device__ void operator()(int64_t b, int64_t l, int64_t j, double *acc) const {
    int64_t i = (b * L + l) * D + j;
    acc[0] += (double)ld(dout[i]) * (double)ld(y[i]);
  }
};

/* ---- table functions ---- */

void layernorm_fwd(const duet_tensor *x, const duet_tensor *w, const duet_tensor *b, double eps, duet_tensor *y,
                   duet_tensor *mean, duet_tensor *rstd) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t D = duet_last_dim(x), rows = D ? x->numel / D : 0;
  if (rows == 0) return;
  DUET_DISPATCH_FLOAT(x->dtype, "layernorm", {
    k_layernorm_fwd<T><<<row_blocks(rows), row_threads(D), 0, ctx->stream>>>(
        cptr<T>(x), cptr<T>(w), cptr<T>(b), eps, mptr<T>(y), stats_of<T>(mean), stats_of<T>(rstd), rows, D);
  });
  duet_cuda_launched("layernorm");
}

void layernorm_bwd(const duet_tensor *x, const duet_tensor *w, const duet_tensor *mean, const duet_tensor *rstd,
                   const duet_tensor *dy, duet_tensor *dx, duet_tensor *dw, duet_tensor *db) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t D = duet_last_dim(x), rows = D ? x->numel / D : 0;
  if (D == 0) return;
  DUET_DISPATCH_FLOAT(x->dtype, "layernorm backward", {
    if (dx && rows) {
      k_layernorm_bwd_dx<T><<<row_blocks(rows), row_threads(D), 0, ctx->stream>>>(
          cptr<T>(x), cptr<T>(w), stats_of<T>(mean), stats_of<T>(rstd), cptr<T>(dy), mptr<T>(dx), rows, D);
      duet_cuda_launched("layernorm backward");
    }
    if (dw || db) {
      ln_param_terms<T> f = {cptr<T>(x), cptr<T>(dy), stats_of<T>(mean), stats_of<T>(rstd), D};
      add_two<T> out = {mptr<T>(dw), mptr<T>(db), 0};
      colsum_run<2>("layernorm backward (dw, db)", f, out, 1, rows, D, ctx->stream);
    }
  });
}

void rmsnorm_fwd(const duet_tensor *x, const duet_tensor *w, double eps, duet_tensor *y, duet_tensor *rstd) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t D = duet_last_dim(x), rows = D ? x->numel / D : 0;
  if (rows == 0) return;
  DUET_DISPATCH_FLOAT(x->dtype, "rmsnorm", {
    k_rmsnorm_fwd<T><<<row_blocks(rows), row_threads(D), 0, ctx->stream>>>(cptr<T>(x), cptr<T>(w), eps, mptr<T>(y),
                                                                          stats_of<T>(rstd), rows, D);
  });
  duet_cuda_launched("rmsnorm");
}

void rmsnorm_bwd(const duet_tensor *x, const duet_tensor *w, const duet_tensor *rstd, const duet_tensor *dy,
                 duet_tensor *dx, duet_tensor *dw) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t D = duet_last_dim(x), rows = D ? x->numel / D : 0;
  if (D == 0) return;
  DUET_DISPATCH_FLOAT(x->dtype, "rmsnorm backward", {
    if (dx && rows) {
      k_rmsnorm_bwd_dx<T><<<row_blocks(rows), row_threads(D), 0, ctx->stream>>>(
          cptr<T>(x), cptr<T>(w), stats_of<T>(rstd), cptr<T>(dy), mptr<T>(dx), rows, D);
      duet_cuda_launched("rmsnorm backward");
    }
    if (dw) {
      rms_param_term<T> f = {cptr<T>(x), cptr<T>(dy), stats_of<T>(rstd), D};
      add_one<T> out = {mptr<T>(dw), 0};
      colsum_run<1>("rmsnorm backward (dw)", f, out, 1, rows, D, ctx->stream);
    }
  });
}

void activation_fwd(duet_activation act, const duet_tensor *x, duet_tensor *y) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t n = x->numel;
  if (n == 0) return;
  DUET_DISPATCH_FLOAT(x->dtype, "activation", {
    k_act_fwd<T><<<duet_blocks(n, 256), 256, 0, ctx->stream>>>((int)act, cptr<T>(x), mptr<T>(y), n);
  });
  duet_cuda_launched("activation");
}

void activation_bwd(duet_activation act, const duet_tensor *x, const duet_tensor *dy, duet_tensor *dx) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t n = x->numel;
  if (n == 0) return;
  DUET_DISPATCH_FLOAT(x->dtype, "activation backward", {
    k_act_bwd<T><<<duet_blocks(n, 256), 256, 0, ctx->stream>>>((int)act, cptr<T>(x), cptr<T>(dy), mptr<T>(dx), n);
  });
  duet_cuda_launched("activation backward");
}

void softmax_fwd(const duet_tensor *x, duet_tensor *y) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t D = duet_last_dim(x), rows = D ? x->numel / D : 0;
  if (rows == 0) return;
  DUET_DISPATCH_FLOAT(x->dtype, "softmax", {
    k_softmax_fwd<T><<<row_blocks(rows), row_threads(D), 0, ctx->stream>>>(cptr<T>(x), mptr<T>(y), rows, D);
  });
  duet_cuda_launched("softmax");
}

void softmax_bwd(const duet_tensor *y, const duet_tensor *dy, duet_tensor *dx) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t D = duet_last_dim(y), rows = D ? y->numel / D : 0;
  if (rows == 0) return;
  DUET_DISPATCH_FLOAT(y->dtype, "softmax backward", {
    k_softmax_bwd<T><<<row_blocks(rows), row_threads(D), 0, ctx->stream>>>(cptr<T>(y), cptr<T>(dy), mptr<T>(dx),
                                                                          rows, D);
  });
  duet_cuda_launched("softmax backward");
}

void modulate_fwd(const duet_tensor *x, const duet_tensor *shift, const duet_tensor *scale, duet_tensor *y) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t B = x->shape[0], L = x->shape[1], D = x->shape[2];
  if (x->numel == 0) return;
  DUET_DISPATCH_FLOAT(x->dtype, "modulate", {
    k_modulate_fwd<T><<<grid2d(B * L, D, 256), 256, 0, ctx->stream>>>(cptr<T>(x), cptr<T>(shift), cptr<T>(scale),
                                                                      mptr<T>(y), B * L, L, D);
  });
  duet_cuda_launched("modulate");
}

void modulate_bwd(const duet_tensor *x, const duet_tensor *scale, const duet_tensor *dy, duet_tensor *dx,
                  duet_tensor *dshift, duet_tensor *dscale) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t B = x->shape[0], L = x->shape[1], D = x->shape[2];
  if (B == 0 || D == 0) return;
  DUET_DISPATCH_FLOAT(x->dtype, "modulate backward", {
    if (dx && L) {
      k_modulate_bwd_dx<T><<<grid2d(B * L, D, 256), 256, 0, ctx->stream>>>(cptr<T>(scale), cptr<T>(dy), mptr<T>(dx),
                                                                           B * L, L, D);
      duet_cuda_launched("modulate backward");
    }
    if (dshift || dscale) {
      mod_terms<T> f = {cptr<T>(x), cptr<T>(dy), L, D};
      add_two<T> out = {mptr<T>(dshift), mptr<T>(dscale), D};
      colsum_run<2>("modulate backward (dshift, dscale)", f, out, B, L, D, ctx->stream);
    }
  });
}

void gated_residual_fwd(const duet_tensor *x, const duet_tensor *gate, const duet_tensor *y, duet_tensor *out) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t B = x->shape[0], L = x->shape[1], D = x->shape[2];
  if (x->numel == 0) return;
  DUET_DISPATCH_FLOAT(x->dtype, "gated residual", {
    k_gated_fwd<T><<<grid2d(B * L, D, 256), 256, 0, ctx->stream>>>(cptr<T>(x), cptr<T>(gate), cptr<T>(y),
                                                                   mptr<T>(out), B * L, L, D);
  });
  duet_cuda_launched("gated residual");
}

void gated_residual_bwd(const duet_tensor *gate, const duet_tensor *y, const duet_tensor *dout, duet_tensor *dx,
                        duet_tensor *dgate, duet_tensor *dy) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t B = y->shape[0], L = y->shape[1], D = y->shape[2];
  if (B == 0 || D == 0) return;
  DUET_DISPATCH_FLOAT(y->dtype, "gated residual backward", {
    if ((dx || dy) && L) {
      k_gated_bwd<T><<<grid2d(B * L, D, 256), 256, 0, ctx->stream>>>(cptr<T>(gate), cptr<T>(dout), mptr<T>(dx),
                                                                     mptr<T>(dy), B * L, L, D);
      duet_cuda_launched("gated residual backward");
    }
    if (dgate) {
      gate_term<T> f = {cptr<T>(y), cptr<T>(dout), L, D};
      add_one<T> out = {mptr<T>(dgate), D};
      colsum_run<1>("gated residual backward (dgate)", f, out, B, L, D, ctx->stream);
    }
  });
}

}  // namespace

extern "C" const struct duet_kernels_nn duet_cuda_nn_kernels = {
    layernorm_fwd, layernorm_bwd, rmsnorm_fwd, rmsnorm_bwd, activation_fwd, activation_bwd,
    softmax_fwd,   softmax_bwd,   modulate_fwd, modulate_bwd, gated_residual_fwd, gated_residual_bwd,
};
