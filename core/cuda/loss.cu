/* CUDA loss and timestep-embedding kernels (the CPU reference: core/cpu/loss.c).
 *
 * The MSE is summed in double over a fixed number of element ranges, one block each, and the
 * partial sums are then added in order by one thread: the loss does not depend on the GPU or
 * on scheduling. Neither pass reads a value back to the host: the coefficient that the
 * backward needs stays on the device. */
#include <math.h>

#include "core/cuda/cuda_util.cuh"

namespace {

const int MSE_BLOCKS = 256;
const int MSE_THREADS = 256;

/* A mask is u8 or the prediction's dtype; NULL means all ones. */
template <class T> struct mask_view {
  const uint8_t *u8;
  const T *f;
  __device__ double at(int64_t r) const { return u8 ? (double)u8[r] : f ? (double)ld(f[r]) : 1.0; }
};

template <class T> static mask_view<T> mask_of(const duet_tensor *mask) {
  mask_view<T> m = {nullptr, nullptr};
  if (mask && mask->dtype == DUET_U8) m.u8 = static_cast<const uint8_t *>(mask->data);
  else if (mask) m.f = static_cast<const T *>(mask->data);
  return m;
}

template <class T>
__global__ void k_mse_part(const T *p, const T *t, mask_view<T> m, int64_t n, int64_t rows, int64_t dim, double *part) {
  __shared__ double sh[32];
  const int64_t lo = n * blockIdx.x / MSE_BLOCKS, hi = n * (blockIdx.x + 1) / MSE_BLOCKS;
  double acc = 0;
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
    const double w = m.at(i / dim);
    if (w == 0) continue; /* keeps a NaN or Inf in a masked row out of the loss */
    const double d = (double)ld(p[i]) - (double)ld(t[i]);
    acc += w * (d * d);
  }
  const double sq = block_sum(acc, sh);
  const int64_t rlo = rows * blockIdx.x / MSE_BLOCKS, rhi = rows * (blockIdx.x + 1) / MSE_BLOCKS;
  double ms = 0;
  for (int64_t r = rlo + threadIdx.x; r < rhi; r += blockDim.x) ms += m.at(r);
  ms = block_sum(ms, sh);
  if (threadIdx.x == 0) {
    part[2 * blockIdx.x] = sq;
    part[2 * blockIdx.x + 1] = ms;
  }
}

template <class T>
__global__ void k_mse_finish(const double *part, double weight, int64_t dim, T *loss, T *coef) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  double sq = 0, msum = 0;
  for (int b = 0; b < MSE_BLOCKS; b++) {
    sq += part[2 * b];
    msum += part[2 * b + 1];
  }
  const double c = msum != 0 ? weight / (msum * (double)dim) : 0.0;
  coef[0] = st<T>(c);
  loss[0] = st<T>(c * sq);
}

template <class T>
__global__ void k_mse_bwd(const T *dloss, const T *coef, const T *p, const T *t, mask_view<T> m, T *dp, int64_t n,
                          int64_t dim) {
  const double g = 2.0 * (double)ld(dloss[0]) * (double)ld(coef[0]);
  if (g == 0) return;
  DUET_GRID_LOOP(i, n) {
    const double w = g * m.at(i / dim);
    if (w == 0) continue;
    dp[i] = st<T>((double)ld(dp[i]) + w * ((double)ld(p[i]) - (double)ld(t[i])));
  }
}

template <class T>
__global__ void k_timestep_fwd(const T *t, double lp, double scale, T *out, int64_t batch, int64_t dim) {
  const int64_t half = dim / 2;
  DUET_GRID_LOOP(i, batch * half) {
    const int64_t b = i / half, k = i % half;
    const double a = scale * (double)ld(t[b]) * exp(-lp * (double)k / (double)half);
    out[b * dim + k] = st<T>(cos(a));
    out[b * dim + half + k] = st<T>(sin(a));
  }
}

/* One warp per batch entry; lanes take every 32nd frequency, and the warp's fixed butterfly
 * adds them up. */
template <class T>
__global__ void k_timestep_bwd(const T *t, const T *dy, double lp, double scale, T *dt, int64_t batch, int64_t dim) {
  const int64_t half = dim / 2, warps = (int64_t)gridDim.x * (blockDim.x / 32);
  for (int64_t b = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; b < batch; b += warps) {
    double acc = 0;
    for (int64_t k = threadIdx.x & 31; k < half; k += 32) {
      const double da = scale * exp(-lp * (double)k / (double)half);
      const double a = da * (double)ld(t[b]);
      acc += da * (-sin(a) * (double)ld(dy[b * dim + k]) + cos(a) * (double)ld(dy[b * dim + half + k]));
    }
    acc = warp_sum(acc);
    if ((threadIdx.x & 31) == 0) dt[b] = st<T>((double)ld(dt[b]) + acc);
  }
}

void mse_forward(const duet_tensor *pred, const duet_tensor *target, const duet_tensor *mask, double weight,
                 duet_tensor *loss, duet_tensor *coef) {
  DUET_CTX_OR_RETURN(ctx);
  const int64_t n = pred->numel, rows = mask ? mask->numel : n, dim = rows ? n / rows : 1;
  double *part = static_cast<double *>(duet_cuda_scratch(2 * MSE_BLOCKS * sizeof(double)));
  if (!part) return;
  DUET_DISPATCH_FLOAT(pred->dtype, "mse", {
    k_mse_part<T><<<MSE_BLOCKS, MSE_THREADS, 0, ctx->stream>>>(cptr<T>(pred), cptr<T>(target), mask_of<T>(mask), n,
                                                               rows, dim, part);
    if (!duet_cuda_launched("mse")) return;
    k_mse_finish<T><<<1, 32, 0, ctx->stream>>>(part, weight, dim, mptr<T>(loss), mptr<T>(coef));
  });
  duet_cuda_launched("mse");
}

void mse_backward(const duet_tensor *dloss, const duet_tensor *coef, const duet_tensor *pred, const duet_tensor *target,
                  const duet_tensor *mask, duet_tensor *dpred) {
  DUET_CTX_OR_RETURN(ctx);
  const int64_t n = pred->numel, rows = mask ? mask->numel : n, dim = rows ? n / rows : 1;
  if (n == 0) return;
  DUET_DISPATCH_FLOAT(pred->dtype, "mse backward", {
    k_mse_bwd<T><<<duet_blocks(n, 256), 256, 0, ctx->stream>>>(cptr<T>(dloss), cptr<T>(coef), cptr<T>(pred),
                                                               cptr<T>(target), mask_of<T>(mask), mptr<T>(dpred), n, dim);
  });
  duet_cuda_launched("mse backward");
}

void timestep_forward(const duet_tensor *t, double max_period, double scale, duet_tensor *out) {
  DUET_CTX_OR_RETURN(ctx);
  const int64_t batch = t->numel, dim = out->shape[1];
  if (batch == 0 || dim < 2) return;
  DUET_DISPATCH_FLOAT(t->dtype, "timestep embedding", {
    k_timestep_fwd<T><<<duet_blocks(batch * (dim / 2), 256), 256, 0, ctx->stream>>>(cptr<T>(t), log(max_period), scale,
                                                                                    mptr<T>(out), batch, dim);
  });
  duet_cuda_launched("timestep embedding");
}

void timestep_backward(const duet_tensor *t, const duet_tensor *dout, double max_period, double scale, duet_tensor *dt) {
  DUET_CTX_OR_RETURN(ctx);
  const int64_t batch = t->numel, dim = dout->shape[1];
  if (batch == 0 || dim < 2) return;
  DUET_DISPATCH_FLOAT(t->dtype, "timestep embedding backward", {
    k_timestep_bwd<T><<<duet_blocks(batch * 32, 256), 256, 0, ctx->stream>>>(cptr<T>(t), cptr<T>(dout), log(max_period),
                                                                             scale, mptr<T>(dt), batch, dim);
  });
  duet_cuda_launched("timestep embedding backward");
}

}  // namespace

extern "C" const struct duet_kernels_loss duet_cuda_loss_kernels = {
    mse_forward,
    mse_backward,
    timestep_forward,
    timestep_backward,
};
