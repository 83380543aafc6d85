/* AdamW, the global gradient norm and clipping, and f32 <-> bf16 conversion on the GPU. */
#include <math.h>

#include "core/cuda/cuda_optim.h"
#include "core/cuda/cuda_util.cuh"

namespace {

/* Elements per block of the norm's first pass; fixes the order of the sum. */
const int64_t SUMSQ_BLOCK = 16384;
const int SUMSQ_THREADS = 256;

int launch_status(const char *what, duet_err *err) {
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) return DUET_OK;
  return duet_err_set(err, e == cudaErrorMemoryAllocation ? DUET_ENOMEM : DUET_EINVAL, "cuda %s: %s", what,
                      cudaGetErrorString(e));
}

int no_device(duet_err *err, const char *what) {
  return duet_err_set(err, DUET_ENOTSUP, "cuda %s: no CUDA device", what);
}

/* duet_adamw_update_elem() with every operation spelled as its correctly rounded intrinsic:
 * nvcc would otherwise fuse a * b + c into one FMA, which rounds once where the CPU (x86-64,
 * ISO C) rounds twice. The order of operations is the C expression's. */
__global__ void k_adamw(float *p, const float *g, float *m, float *v, int64_t lo, int64_t hi, duet_adamw_hparams h) {
  DUET_GRID_LOOP(k, hi - lo) {
    const int64_t i = lo + k;
    const float gi = g[i];
    const float mi = __fadd_rn(__fmul_rn(h.beta1, m[i]), __fmul_rn(h.one_minus_beta1, gi));
    const float vi = __fadd_rn(__fmul_rn(h.beta2, v[i]), __fmul_rn(__fmul_rn(h.one_minus_beta2, gi), gi));
    m[i] = mi;
    v[i] = vi;
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), h.bc2_sqrt), h.eps);
    p[i] = __fsub_rn(__fmul_rn(p[i], h.decay_factor), __fdiv_rn(__fmul_rn(h.step_size, mi), denom));
  }
}

__global__ void k_sumsq_part(const float *x, int64_t n, double *part) {
  __shared__ double sh[32];
  const int64_t lo = (int64_t)blockIdx.x * SUMSQ_BLOCK;
  const int64_t hi = lo + SUMSQ_BLOCK < n ? lo + SUMSQ_BLOCK : n;
  double acc = 0;
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
    const double d = (double)x[i];
    acc += d * d;
  }
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

/* One block adds `count` partial sums: thread t takes a contiguous run, in order, then the
 * block's fixed tree. */
__global__ void k_sum_parts(const double *part, int64_t count, double *out) {
  __shared__ double sh[32];
  const int64_t per = (count + blockDim.x - 1) / blockDim.x;
  const int64_t lo = threadIdx.x * per, hi = lo + per < count ? lo + per : count;
  double acc = 0;
  for (int64_t i = lo; i < hi; i++) acc += part[i];
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) *out = acc;
}

__global__ void k_scale(float *x, int64_t n, float s) {
  DUET_GRID_LOOP(i, n) x[i] = __fmul_rn(x[i], s);
}

/* duet_ema_update()'s expression d * s + w * p, each operation rounded as the CPU rounds it. */
__global__ void k_ema(float *s, const float *p, int64_t n, float d, float w) {
  DUET_GRID_LOOP(i, n) s[i] = __fadd_rn(__fmul_rn(d, s[i]), __fmul_rn(w, p[i]));
}

__global__ void k_swap(float *a, float *b, int64_t n) {
  DUET_GRID_LOOP(i, n) {
    const float x = a[i];
    a[i] = b[i];
    b[i] = x;
  }
}

/* duet_f32_to_bf16(), bit for bit. */
__device__ __forceinline__ uint16_t f32_to_bf16_bits(float f) {
  const uint32_t u = __float_as_uint(f);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return (uint16_t)((u >> 16) | 0x40);
  const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)((u + rounding) >> 16);
}

__global__ void k_to_bf16(uint16_t *dst, const float *src, int64_t n) {
  DUET_GRID_LOOP(i, n) dst[i] = f32_to_bf16_bits(src[i]);
}

__global__ void k_to_f32(float *dst, const uint16_t *src, int64_t n) {
  DUET_GRID_LOOP(i, n) dst[i] = __uint_as_float((uint32_t)src[i] << 16);
}

int64_t blocks_of(int64_t n) { return (n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK; }

/* Sum of squares of spans [first, first + count) into *out (host). */
int sumsq_spans(duet_cuda_ctx *ctx, const duet_cuda_span *spans, int count, double *out, duet_err *err) {
  int64_t total = 0;
  for (int i = 0; i < count; i++) {
    if (spans[i].n < 0) return duet_err_set(err, DUET_EINVAL, "cuda grad norm: span %d has %lld elements", i, (long long)spans[i].n);
    total += blocks_of(spans[i].n);
  }
  *out = 0;
  if (total == 0) return DUET_OK;
  double *part = static_cast<double *>(duet_cuda_scratch((size_t)(total + 1) * sizeof(double)));
  if (!part) return duet_cuda_status(err);
  int64_t at = 0;
  for (int i = 0; i < count; i++) {
    const int64_t nb = blocks_of(spans[i].n);
    if (!nb) continue;
    if (nb > INT32_MAX) return duet_err_set(err, DUET_EINVAL, "cuda grad norm: span %d too large", i);
    k_sumsq_part<<<(unsigned)nb, SUMSQ_THREADS, 0, ctx->stream>>>(spans[i].data, spans[i].n, part + at);
    int rc = launch_status("grad norm", err);
    if (rc) return rc;
    at += nb;
  }
  k_sum_parts<<<1, 1024, 0, ctx->stream>>>(part, total, part + total);
  int rc = launch_status("grad norm", err);
  if (rc) return rc;
  cudaError_t e = cudaMemcpyAsync(out, part + total, sizeof *out, cudaMemcpyDeviceToHost, ctx->stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(ctx->stream);
  if (e != cudaSuccess) return duet_err_set(err, DUET_EINVAL, "cuda grad norm: %s", cudaGetErrorString(e));
  return DUET_OK;
}

}  // namespace

extern "C" int duet_cuda_adamw_update_range(float *p, const float *g, float *m, float *v, int64_t lo, int64_t hi,
                                            const duet_adamw_hparams *h, duet_err *err) {
  duet_cuda_ctx *ctx = duet_cuda_ctx_get();
  if (!ctx) return no_device(err, "adamw");
  if (hi <= lo) return DUET_OK;
  k_adamw<<<duet_blocks(hi - lo, 256), 256, 0, ctx->stream>>>(p, g, m, v, lo, hi, *h);
  return launch_status("adamw", err);
}

extern "C" int duet_cuda_grad_sumsq(const duet_cuda_span *spans, int count, double *sumsq, duet_err *err) {
  duet_cuda_ctx *ctx = duet_cuda_ctx_get();
  if (!ctx) return no_device(err, "grad norm");
  return sumsq_spans(ctx, spans, count, sumsq, err);
}

extern "C" int duet_cuda_scale_f32(float *x, int64_t n, float s, duet_err *err) {
  duet_cuda_ctx *ctx = duet_cuda_ctx_get();
  if (!ctx) return no_device(err, "scale");
  if (n <= 0) return DUET_OK;
  k_scale<<<duet_blocks(n, 256), 256, 0, ctx->stream>>>(x, n, s);
  return launch_status("scale", err);
}

extern "C" int duet_cuda_grad_clip(const duet_cuda_span *spans, int count, double max_norm, double *norm,
                                   duet_err *err) {
  duet_cuda_ctx *ctx = duet_cuda_ctx_get();
  if (!ctx) return no_device(err, "grad clip");
  double ss = 0;
  int rc = sumsq_spans(ctx, spans, count, &ss, err);
  if (rc) return rc;
  const double n = sqrt(ss);
  if (norm) *norm = n;
  if (!isfinite(n)) {
    /* The sum can overflow to Inf with every gradient finite; then no span is blamed. */
    for (int i = 0; i < count; i++) {
      double one = 0;
      if ((rc = sumsq_spans(ctx, &spans[i], 1, &one, err))) return rc;
      if (!isfinite(one))
        return duet_err_set(err, DUET_ENUMERIC, "gradient norm is %s (first non-finite in span %d)",
                            isnan(n) ? "NaN" : "Inf", i);
    }
    return duet_err_set(err, DUET_ENUMERIC, "gradient norm is %s", isnan(n) ? "NaN" : "Inf");
  }
  if (max_norm > 0 && n > max_norm) {
    const float fs = (float)(max_norm / n);
    for (int i = 0; i < count; i++)
      if ((rc = duet_cuda_scale_f32(spans[i].data, spans[i].n, fs, err))) return rc;
  }
  return DUET_OK;
}

extern "C" int duet_cuda_ema_update_f32(float *shadow, const float *p, int64_t n, float d, float w, duet_err *err) {
  duet_cuda_ctx *ctx = duet_cuda_ctx_get();
  if (!ctx) return no_device(err, "ema");
  if (n <= 0) return DUET_OK;
  k_ema<<<duet_blocks(n, 256), 256, 0, ctx->stream>>>(shadow, p, n, d, w);
  return launch_status("ema", err);
}

extern "C" int duet_cuda_swap_f32(float *a, float *b, int64_t n, duet_err *err) {
  duet_cuda_ctx *ctx = duet_cuda_ctx_get();
  if (!ctx) return no_device(err, "swap");
  if (n <= 0) return DUET_OK;
  k_swap<<<duet_blocks(n, 256), 256, 0, ctx->stream>>>(a, b, n);
  return launch_status("swap", err);
}

extern "C" int duet_cuda_f32_to_bf16(uint16_t *dst, const float *src, int64_t n, duet_err *err) {
  duet_cuda_ctx *ctx = duet_cuda_ctx_get();
  if (!ctx) return no_device(err, "f32 -> bf16");
  if (n <= 0) return DUET_OK;
  k_to_bf16<<<duet_blocks(n, 256), 256, 0, ctx->stream>>>(dst, src, n);
  return launch_status("f32 -> bf16", err);
}

extern "C" int duet_cuda_bf16_to_f32(float *dst, const uint16_t *src, int64_t n, duet_err *err) {
  duet_cuda_ctx *ctx = duet_cuda_ctx_get();
  if (!ctx) return no_device(err, "bf16 -> f32");
  if (n <= 0) return DUET_OK;
  k_to_f32<<<duet_blocks(n, 256), 256, 0, ctx->stream>>>(dst, src, n);
  return launch_status("bf16 -> f32", err);
}

extern "C" int duet_cuda_convert(duet_tensor *dst, const duet_tensor *src, duet_err *err) {
  if (dst->numel != src->numel)
    return duet_err_set(err, DUET_EINVAL, "cuda convert: %lld elements into %lld", (long long)src->numel,
                        (long long)dst->numel);
  if (dst->device != DUET_CUDA || src->device != DUET_CUDA)
    return duet_err_set(err, DUET_EINVAL, "cuda convert: both tensors must be on the GPU");
  if (src->dtype == DUET_F32 && dst->dtype == DUET_BF16)
    return duet_cuda_f32_to_bf16(static_cast<uint16_t *>(dst->data), static_cast<const float *>(src->data), src->numel, err);
  if (src->dtype == DUET_BF16 && dst->dtype == DUET_F32)
    return duet_cuda_bf16_to_f32(static_cast<float *>(dst->data), static_cast<const uint16_t *>(src->data), src->numel, err);
  return duet_err_set(err, DUET_ENOTSUP, "cuda convert: %s -> %s", duet_dtype_name(src->dtype), duet_dtype_name(dst->dtype));
}
