/* Device-side helpers shared by the CUDA kernel files (private to core/cuda/).
 *
 * Every kernel is a template over the storage type T (float, bf16 or double) and computes in
 * acc_t<T>: float for f32 and bf16, double for f64, so one body serves all three like the CPU
 * backend's one body serves f32 and f64. Reductions that the CPU backend accumulates in
 * double are accumulated in double here too, over a split fixed by the problem's shape alone,
 * so a result is the same on every run and every GPU. */
#ifndef DUET_CORE_CUDA_UTIL_CUH
#define DUET_CORE_CUDA_UTIL_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "core/cuda/cuda_internal.h"

typedef __nv_bfloat16 bf16;

template <class T> struct acc_of { typedef float type; };
template <> struct acc_of<double> { typedef double type; };
template <class T> using acc_t = typename acc_of<T>::type;

__device__ __forceinline__ float ld(float x) { return x; }
__device__ __forceinline__ float ld(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ double ld(double x) { return x; }

template <class T> struct conv;
template <> struct conv<float> {
  static __host__ __device__ __forceinline__ float from(float v) { return v; }
  static __host__ __device__ __forceinline__ float from(double v) { return (float)v; }
};
template <> struct conv<bf16> {
  static __host__ __device__ __forceinline__ bf16 from(float v) { return __float2bfloat16_rn(v); }
  static __host__ __device__ __forceinline__ bf16 from(double v) { return __float2bfloat16_rn((float)v); }
};
template <> struct conv<double> {
  static __host__ __device__ __forceinline__ double from(float v) { return (double)v; }
  static __host__ __device__ __forceinline__ double from(double v) { return v; }
};
template <class T, class V> __device__ __forceinline__ T st(V v) { return conv<T>::from(v); }

/* Exponentials and tanh in the computing precision. */
__device__ __forceinline__ float dexp(float v) { return expf(v); }
__device__ __forceinline__ double dexp(double v) { return exp(v); }
__device__ __forceinline__ float dtanh(float v) { return tanhf(v); }
__device__ __forceinline__ double dtanh(double v) { return tanh(v); }
__device__ __forceinline__ float dlog(float v) { return logf(v); }
__device__ __forceinline__ double dlog(double v) { return log(v); }
template <class A> __device__ __forceinline__ A neg_inf() { return -(A)INFINITY; }

/* Sums over a warp in a fixed butterfly: every lane gets the same bits. */
template <class A> __device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
  for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <class A> __device__ __forceinline__ A warp_max(A v) {
#pragma unroll
  for (int o = 16; o; o >>= 1) {
    A w = __shfl_xor_sync(0xffffffffu, v, o);
    v = w > v ? w : v;
  }
  return v;
}

/* Block-wide sum and max (blockDim.x a multiple of 32, <= 1024); sh holds 32 values. Every
 * thread gets the result. Safe to call repeatedly with the same sh. */
template <class A> __device__ A block_sum(A v, A *sh) {
  v = warp_sum(v);
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) sh[w] = v;
  __syncthreads();
  if (w == 0) {
    A x = lane < nw ? sh[lane] : (A)0;
    x = warp_sum(x);
    if (lane == 0) sh[0] = x;
  }
  __syncthreads();
  return sh[0];
}
template <class A> __device__ A block_max(A v, A *sh) {
  v = warp_max(v);
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) sh[w] = v;
  __syncthreads();
  if (w == 0) {
    A x = lane < nw ? sh[lane] : neg_inf<A>();
    x = warp_max(x);
    if (lane == 0) sh[0] = x;
  }
  __syncthreads();
  return sh[0];
}

/* Grid-stride loops over [0, n). */
#define DUET_GRID_LOOP(i, n)                                                         \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);          \
       i += (int64_t)gridDim.x * blockDim.x)

static inline unsigned duet_blocks(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  if (b > 65535) b = 65535;
  return (unsigned)(b < 1 ? 1 : b);
}
/* Rows of a 2-D launch go in grid.y, which stops at 65535; kernels stride over the rest. */
static inline unsigned duet_rows_grid(int64_t rows) {
  return (unsigned)(rows < 1 ? 1 : rows > 65535 ? 65535 : rows);
}

/* Runs `body` with T bound to the storage type of dtype dt (f32, bf16 or f64); records an
 * error for any other dtype. */
#define DUET_DISPATCH_FLOAT(dt, what, ...)                                             \
  do {                                                                                 \
    switch (dt) {                                                                      \
      case DUET_F32: { typedef float T; __VA_ARGS__; } break;                          \
      case DUET_BF16: { typedef bf16 T; __VA_ARGS__; } break;                          \
      case DUET_F64: { typedef double T; __VA_ARGS__; } break;                         \
      default:                                                                         \
        duet_cuda_record(DUET_EINVAL, "cuda %s: dtype %s is not a float dtype", what,  \
                         duet_dtype_name(dt));                                         \
    }                                                                                  \
  } while (0)

#define DUET_CTX_OR_RETURN(ctx)                                                        \
  duet_cuda_ctx *ctx = duet_cuda_ctx_get();                                            \
  if (!ctx) return

/* Typed views of a tensor's storage. */
template <class T> static inline const T *cptr(const duet_tensor *t) {
  return t ? static_cast<const T *>(t->data) : nullptr;
}
template <class T> static inline T *mptr(duet_tensor *t) { return t ? static_cast<T *>(t->data) : nullptr; }

static inline int64_t duet_last_dim(const duet_tensor *x) { return x->ndim ? x->shape[x->ndim - 1] : 1; }

#endif
