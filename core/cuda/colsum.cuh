/* Deterministic column sums (private to core/cuda/): for every group g < groups and column
 * j < n, NOUT sums over rows r < rows of values f(g, r, j), in double.
 *
 * Gradients of per-channel vectors (a bias, a norm's gain, adaLN's shift and scale) are such
 * sums over many rows. Atomics would make their low bits depend on timing; instead the rows
 * are cut into a number of chunks fixed by `rows` alone, each chunk is summed by one block in
 * a fixed pattern into scratch, and a second pass adds the chunks in order. The result is the
 * same on every run and every GPU.
 *
 * F: struct with `__device__ void operator()(int64_t g, int64_t r, int64_t j, double *acc)`
 *    adding its NOUT values into acc.
 * W: struct with `__device__ void operator()(int64_t g, int64_t j, const double *sums)`
 *    consuming the totals (typically dst[g, j] += alpha * sums[k]). */
#ifndef DUET_CORE_CUDA_COLSUM_CUH
#define DUET_CORE_CUDA_COLSUM_CUH

#include "core/cuda/cuda_util.cuh"

#define COLSUM_WIDE_Y 8

template <int NOUT, class F>
__global__ void colsum_wide(F f, int64_t groups, int64_t rows, int64_t n, int chunks, double *part) {
  __shared__ double sh[NOUT][COLSUM_WIDE_Y][33];
  int64_t j = (int64_t)blockIdx.x * 32 + threadIdx.x;
  int c = blockIdx.y;
  int64_t r0 = rows * c / chunks, r1 = rows * (c + 1) / chunks;
  for (int64_t g = blockIdx.z; g < groups; g += gridDim.z) {
    double acc[NOUT];
#pragma unroll
    for (int k = 0; k < NOUT; k++) acc[k] = 0;
    if (j < n)
      for (int64_t r = r0 + threadIdx.y; r < r1; r += COLSUM_WIDE_Y) f(g, r, j, acc);
#pragma unroll
    for (int k = 0; k < NOUT; k++) sh[k][threadIdx.y][threadIdx.x] = acc[k];
    __syncthreads();
    if (threadIdx.y == 0 && j < n) {
#pragma unroll
      for (int k = 0; k < NOUT; k++) {
        double s = 0;
        for (int t = 0; t < COLSUM_WIDE_Y; t++) s += sh[k][t][threadIdx.x];
        part[((g * chunks + c) * n + j) * NOUT + k] = s;
      }
    }
    __syncthreads();
  }
}

/* Few columns (n < 32): a block's threads split the chunk's rows instead. */
template <int NOUT, class F>
__global__ void colsum_narrow(F f, int64_t groups, int64_t rows, int64_t n, int chunks, double *part) {
  __shared__ double sh[32];
  int c = blockIdx.x;
  int64_t r0 = rows * c / chunks, r1 = rows * (c + 1) / chunks;
  for (int64_t g = blockIdx.y; g < groups; g += gridDim.y) {
    for (int64_t j = 0; j < n; j++) {
      double acc[NOUT];
#pragma unroll
      for (int k = 0; k < NOUT; k++) acc[k] = 0;
      for (int64_t r = r0 + threadIdx.x; r < r1; r += blockDim.x) f(g, r, j, acc);
#pragma unroll
      for (int k = 0; k < NOUT; k++) {
        double s = block_sum(acc[k], sh);
        if (threadIdx.x == 0) part[((g * chunks + c) * n + j) * NOUT + k] = s;
      }
    }
  }
}

template <int NOUT, class W>
__global__ void colsum_finish(W w, const double *part, int64_t groups, int64_t n, int chunks) {
  DUET_GRID_LOOP(idx, groups * n) {
    int64_t g = idx / n, j = idx % n;
    double s[NOUT];
#pragma unroll
    for (int k = 0; k < NOUT; k++) s[k] = 0;
    for (int c = 0; c < chunks; c++)
#pragma unroll
      for (int k = 0; k < NOUT; k++) s[k] += part[((g * chunks + c) * n + j) * NOUT + k];
    w(g, j, s);
  }
}

template <int NOUT, class F, class W>
static void colsum_run(const char *what, F f, W w, int64_t groups, int64_t rows, int64_t n, cudaStream_t st) {
  if (groups <= 0 || n <= 0) return;
  int narrow = n < 32;
  int64_t per = narrow ? 4096 : 256, max_chunks = narrow ? 1024 : 256;
  int64_t chunks = (rows + per - 1) / per;
  if (chunks < 1) chunks = 1;
  if (chunks > max_chunks) chunks = max_chunks;
  double *part = static_cast<double *>(duet_cuda_scratch((size_t)(groups * chunks * n * NOUT) * sizeof(double)));
  if (!part) return;
  unsigned gz = (unsigned)(groups > 65535 ? 65535 : groups);
  if (narrow) {
    colsum_narrow<NOUT><<<dim3((unsigned)chunks, gz), 256, 0, st>>>(f, groups, rows, n, (int)chunks, part);
  } else {
    dim3 grid((unsigned)((n + 31) / 32), (unsigned)chunks, gz);
    colsum_wide<NOUT><<<grid, dim3(32, COLSUM_WIDE_Y), 0, st>>>(f, groups, rows, n, (int)chunks, part);
  }
  if (!duet_cuda_launched(what)) return;
  colsum_finish<NOUT><<<duet_blocks(groups * n, 256), 256, 0, st>>>(w, part, groups, n, (int)chunks);
  duet_cuda_launched(what);
}

#endif
