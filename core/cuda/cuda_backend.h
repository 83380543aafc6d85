/* The CUDA backend's own entry points, beyond the duet_backend table (core/backend.h) that
 * duet_backend_get(DUET_CUDA) returns.
 *
 * One process drives one GPU. The backend keeps one context per process (the device, one
 * compute stream, the cuBLASLt handle and workspace, a scratch buffer and the first error),
 * created on first use on the device that is current then. A process that drives one of
 * several GPUs (one rank per GPU) calls duet_cuda_select_device() before anything else.
 *
 * Every kernel is launched on the context's stream, in order, and returns at once; one host
 * thread issues the backend's work (others may copy to and from the device). Table
 * functions cannot return an error, so a failure (a launch error, a cuBLASLt status, a shape
 * the CUDA kernels do not support) is recorded in the context and reported by
 * duet_cuda_status(); the first error is kept until duet_cuda_clear_error(). Faults that the
 * device reports asynchronously surface at the next synchronising call (a copy to the host,
 * duet_cuda_sync()). */
#ifndef DUET_CORE_CUDA_BACKEND_H
#define DUET_CORE_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "core/backend.h"

extern const duet_backend duet_cuda_backend;

/* 1 when a CUDA device is usable (cudaGetDeviceCount() > 0 and the context could be made),
 * else 0. The answer is computed once per process and cached in the context. */
int duet_cuda_available(void);

/* Makes `device` the process's device and creates the context on it. Must come before any
 * other call into the backend; DUET_ENOTSUP when the context already lives on another
 * device or there is no such device. */
int duet_cuda_select_device(int device, duet_err *err);

/* The first error recorded since the last clear (DUET_OK when none), without synchronising. */
int duet_cuda_status(duet_err *err);
void duet_cuda_clear_error(void);
/* Waits for the stream's work and returns duet_cuda_status() after it. */
int duet_cuda_sync(duet_err *err);

/* The compute stream (a cudaStream_t), for NCCL and for timing with events. */
void *duet_cuda_stream(void);
/* "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)" into buf; "" when no device. */
const char *duet_cuda_device_name(char *buf, size_t size);
/* cudaMalloc calls the backend has made so far (persistent storage, step arenas' blocks,
 * scratch growth, workspace): a step that allocates nothing leaves it unchanged. */
int64_t duet_cuda_device_allocs(void);

/* A matrix product with more control than the table's gemm_batched (same row-major
 * convention: C[b] = alpha * op(A[b]) op(B[b]) + beta * C[b], strides in elements, a stride
 * of 0 for A or B shares one matrix over the batch).
 *   ab_type f32: f32 in, f32 out, full f32 arithmetic (TF32 off), as the CPU backend.
 *   ab_type bf16: bf16 in, f32 accumulation, C of c_type bf16 or f32 (f32 lets bf16
 *     activations accumulate into f32 master-weight gradients).
 *   ab_type f64: f64 throughout.
 * bias (may be NULL): [n] of c_type added to every row of C by cuBLASLt's BIAS epilogue, so
 * a linear layer's y = x w^T + b is one call and no extra pass. */
typedef struct duet_cuda_gemm {
  duet_dtype ab_type, c_type;
  int trans_a, trans_b;
  int64_t m, n, k, batch;
  const void *a;
  int64_t lda, stride_a;
  const void *b;
  int64_t ldb, stride_b;
  void *c;
  int64_t ldc, stride_c;
  double alpha, beta;
  const void *bias;
} duet_cuda_gemm;

int duet_cuda_gemm_run(const duet_cuda_gemm *g, duet_err *err);

#ifdef __cplusplus
}
#endif

#endif
