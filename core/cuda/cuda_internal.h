/* Private to core/cuda/: the process's CUDA context and the helpers every file of the backend
 * shares. Included by C (.c) and CUDA C++ (.cu) files alike. */
#ifndef DUET_CORE_CUDA_INTERNAL_H
#define DUET_CORE_CUDA_INTERNAL_H

#include <cuda_runtime_api.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cuda/cuda_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "core/kernels_attention.h"
#include "core/kernels_elementwise.h"
#include "core/kernels_layout.h"
#include "core/kernels_loss.h"
#include "core/kernels_nn.h"

struct duet_gemm_cache; /* gemm_cuda.c */

/* One per process (backend_cuda.c keeps it in a function-local static, made once under
 * pthread_once). Everything after `lock` is guarded by it. */
typedef struct duet_cuda_ctx {
  int usable; /* a device was found and the stream, handle and workspace were made */
  int device;
  int cc_major, cc_minor, sm_count;
  size_t smem_optin; /* the most dynamic shared memory a block may ask for */
  char name[256];
  cudaStream_t stream;
  void *lt;           /* cublasLtHandle_t */
  void *workspace;    /* cuBLASLt workspace */
  size_t workspace_bytes;
  pthread_mutex_t lock;
  void *scratch;      /* grown on demand; see duet_cuda_scratch() */
  size_t scratch_bytes;
  int64_t device_allocs;
  struct duet_gemm_cache *gemm_cache;
  int err_code;
  char err_msg[512];
} duet_cuda_ctx;

/* The context, made on first call; NULL when there is no usable device. */
duet_cuda_ctx *duet_cuda_ctx_get(void);

/* Records err as the context's error unless one is already kept (first error wins). */
void duet_cuda_record(int code, const char *fmt, ...)
#ifndef __CUDACC__
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Records a failed CUDA call (returns 0) or does nothing (returns 1). */
int duet_cuda_ok(cudaError_t e, const char *what);
/* After a kernel launch: records cudaGetLastError() under `what`; returns 1 when clean. */
int duet_cuda_launched(const char *what);

/* cudaMalloc that counts (into the context) and records failures; NULL on failure. */
void *duet_cuda_malloc_counted(size_t bytes);

/* Device memory for the duration of one backend call: the same buffer is handed out again
 * by the next call, which is safe because every user runs on the one stream in order.
 * Grows (cudaMalloc, counted) only when a larger request comes, so a step whose shapes repeat
 * stops allocating after its first run. NULL (error recorded) on failure. */
void *duet_cuda_scratch(size_t bytes);

/* The cache of cuBLASLt plans (gemm_cuda.c), made with the context. */
struct duet_gemm_cache *duet_cuda_gemm_cache_new(void);

/* The gemm table entry (gemm_cuda.c). */
void duet_cuda_gemm_batched(duet_dtype dt, int trans_a, int trans_b, int64_t m, int64_t n,
                            int64_t k, double alpha, const void *a, int64_t lda,
                            int64_t stride_a, const void *b, int64_t ldb, int64_t stride_b,
                            double beta, void *c, int64_t ldc, int64_t stride_c, int64_t batch);

/* Kernel groups (the .cu files). */
extern const struct duet_kernels_elementwise duet_cuda_elementwise_kernels;
extern const struct duet_kernels_nn duet_cuda_nn_kernels;
extern const struct duet_kernels_attention duet_cuda_attention_kernels;
extern const struct duet_kernels_layout duet_cuda_layout_kernels;
extern const struct duet_kernels_loss duet_cuda_loss_kernels;
extern const struct duet_kernels_norm_modulate duet_cuda_norm_modulate_kernels;

/* C = beta * C for a strided batch of m x n row-major matrices (gemm with k = 0). */
void duet_cuda_scale_matrices(duet_dtype dt, int64_t m, int64_t n, double beta, void *c,
                              int64_t ldc, int64_t stride_c, int64_t batch);

#ifdef __cplusplus
}
#endif

#endif
