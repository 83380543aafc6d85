// Host emulation of the CUDA features that core/cuda/'s kernels use, so that the kernels (and
// the tests/gpu programs) can run on a machine without a GPU. A development aid, not part of
// the build: tests/gpu/emu/run.sh compiles patched copies of the .cu files as host C++.
//
// Every CUDA thread of a block is a fiber (ucontext) of one host thread; a launch runs its
// blocks one after another, so `static` stands in for __shared__. A fiber runs until it waits
// at a barrier, then the next one runs: __syncthreads is a block barrier; warp shuffles and
// mma.sync.m16n8k16 (bf16 in, f32 accumulate) exchange through per-warp slots between two
// warp barriers. The mma follows the PTX ISA's fragment tables (groupID g = lane / 4,
// t = lane % 4; A rows g, g + 8 and columns 2t, 2t+1, 2t+8, 2t+9; B rows 2t, 2t+1, 2t+8, 2t+9 of
// column g; C rows g, g + 8, columns 2t, 2t+1), so it checks that the kernels use those layouts
// consistently; it cannot check timing, memory ordering or the hardware itself.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#undef __shared__
#define __shared__ static
#undef __launch_bounds__
#define __launch_bounds__(...)

struct emu_idx {
  unsigned x, y, z;
};
extern emu_idx threadIdx, blockIdx;
extern unsigned emu_linear; /* the running thread's index within its block */
extern emu_idx blockDim, gridDim;
extern unsigned char emu_smem[];          /* dynamic shared memory */

/* A barrier among the fibers of a launch: the last to arrive goes on, the others yield to
 * the next fiber until the barrier's generation has moved. */
struct emu_barrier {
  unsigned n = 0, count = 0, gen = 0;
  void arrive_and_wait();
};
struct emu_warp {
  emu_barrier bar;
  unsigned char slot[32][16];
  uint32_t a[32][4], b[32][2];
};
extern emu_barrier *emu_block_bar;
extern std::vector<std::unique_ptr<emu_warp>> emu_warps;

inline void __syncthreads() { emu_block_bar->arrive_and_wait(); }

template <class V> V __shfl_xor_sync(unsigned, V v, int off) {
  emu_warp &w = *emu_warps[emu_linear / 32];
  unsigned lane = emu_linear & 31;
  memcpy(w.slot[lane], &v, sizeof v);
  w.bar.arrive_and_wait();
  V r;
  memcpy(&r, w.slot[lane ^ (unsigned)off], sizeof r);
  w.bar.arrive_and_wait();
  return r;
}

inline float emu_bf(uint32_t reg, int hi) {
  return __bfloat162float(__ushort_as_bfloat16((unsigned short)(hi ? reg >> 16 : reg & 0xffff)));
}

inline long emu_mma_count = 0; /* issued by thread 0 of a block: shows the path was taken */

inline void emu_mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  emu_warp &w = *emu_warps[emu_linear / 32];
  unsigned lane = emu_linear & 31, g = lane >> 2, t = lane & 3;
  if (emu_linear == 0) emu_mma_count++;
  memcpy(w.a[lane], a, 16);
  w.b[lane][0] = b0;
  w.b[lane][1] = b1;
  w.bar.arrive_and_wait();
  float out[4];
  for (int e = 0; e < 4; e++) {
    int row = (int)g + 8 * (e >> 1), col = 2 * (int)t + (e & 1);
    float acc = d[e];
    for (int k = 0; k < 16; k++) {
      int la = (row & 7) * 4 + ((k & 7) >> 1), ra = (row >= 8) + 2 * (k >= 8);
      int lb = col * 4 + ((k & 7) >> 1), rb = k >= 8;
      acc += emu_bf(w.a[la][ra], k & 1) * emu_bf(w.b[lb][rb], k & 1);
    }
    out[e] = acc;
  }
  w.bar.arrive_and_wait();
  for (int e = 0; e < 4; e++) d[e] = out[e];
}

void emu_run(dim3 g, dim3 b, const std::function<void()> &body);

template <class K> struct emu_launcher {
  K k;
  dim3 g, b;
  template <class... A> void operator()(A... args) const {
    emu_run(g, b, [&]() { k(args...); });
  }
};
/* kernel<<<g, b, smem, stream>>>(args) becomes emu_launch(kernel, g, b, smem, stream)(args). */
template <class K, class G, class B> emu_launcher<K> emu_launch(K k, G g, B b, size_t = 0, cudaStream_t = 0) {
  return {k, dim3(g), dim3(b)};
}

/* Device intrinsics, on the host: x86-64 has no fused multiply-add here, so each operation
 * rounds once, as the intrinsics do. */
inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
inline float __fsub_rn(float a, float b) { volatile float r = a - b; return r; }
inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
inline float __fdiv_rn(float a, float b) { volatile float r = a / b; return r; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
inline unsigned long long atomicMin(unsigned long long *p, unsigned long long v) { /* fibers: one host thread */
  unsigned long long old = *p;
  if (v < old) *p = v;
  return old;
}

/* The runtime calls the kernel files make, on host memory. */
#define cudaMemsetAsync(p, v, n, s) (memset((p), (v), (n)), cudaSuccess)
#define cudaMemcpyAsync(d, s, n, k, st) (memcpy((d), (s), (n)), cudaSuccess)
#define cudaStreamSynchronize(s) cudaSuccess
#define cudaGetLastError() cudaSuccess
#define cudaFuncSetAttribute(...) cudaSuccess
#define cudaFuncGetAttributes(fa, k) ((fa)->ptxVersion = 90, cudaSuccess)
