/* The tensor-core attention kernels (attention_mma.cu), called by attention.cu when they
 * apply: bf16 tensors, head dim 64 or 128, a device of compute capability 8.0 or more, and
 * every pointer 16-byte aligned. Private to core/cuda/. */
#ifndef DUET_CORE_CUDA_ATTENTION_MMA_CUH
#define DUET_CORE_CUDA_ATTENTION_MMA_CUH

#include "core/cuda/cuda_util.cuh"

struct attn_mma_args {
  const bf16 *q, *k, *v, *o, *dout;
  const uint8_t *mask;   /* [B, Lk] or NULL */
  bf16 *out, *dq, *dk, *dv; /* forward output; gradients (accumulated, each may be NULL) */
  void *lse;             /* [B, H, Lq], f32 when lse_f32 else bf16; NULL in a forward without one */
  int lse_f32;
  const float *dsum;     /* backward: dout . o per (b, h, query), [B, H, Lq] */
  int B, Lq, Lk, H, Dh;
  float scale;
};

/* Whether the tensor-core kernels take this problem, and the shared memory they need. */
int attn_mma_usable(const duet_cuda_ctx *ctx, const attn_mma_args &a, int backward);
void attn_mma_fwd(const attn_mma_args &a, cudaStream_t st);
void attn_mma_bwd(const attn_mma_args &a, cudaStream_t st);

#endif
