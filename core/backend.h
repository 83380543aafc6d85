/* The backend seam: every kernel an op launches is reached through the table of the device
 * its tensors live on. The CPU backend (core/cpu/) is the reference; the CUDA backend fills
 * the same table from core/cuda/. Kernels receive tensor headers whose storage is on the
 * backend's device; the ops layer (core/ops_*.c) has already checked shapes and dtypes.
 *
 * Kernels that produce a gradient ACCUMULATE into it (dx += ...), because a tensor used by
 * several ops receives several contributions. */
#ifndef DUET_CORE_BACKEND_H
#define DUET_CORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"

/* Kernel groups; each is defined in its own header (core/kernels_*.h). */
struct duet_kernels_elementwise;
struct duet_kernels_nn;
struct duet_kernels_attention;
struct duet_kernels_layout;
struct duet_kernels_loss;
struct duet_kernels_norm_modulate;

typedef struct duet_backend {
  const char *name;
  duet_device device;

  void *(*alloc)(size_t bytes); /* persistent storage, zeroed */
  void (*free)(void *p);
  void (*zero)(void *p, size_t bytes);
  void (*copy_from_host)(void *dst, const void *src, size_t bytes);
  void (*copy_to_host)(void *dst, const void *src, size_t bytes);

  /* C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b] for b < batch, row-major, f32 or f64;
   * a stride of 0 broadcasts one matrix over the batch. */
  void (*gemm_batched)(duet_dtype dt, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                       double alpha, const void *a, int64_t lda, int64_t stride_a,
                       const void *b, int64_t ldb, int64_t stride_b, double beta, void *c,
                       int64_t ldc, int64_t stride_c, int64_t batch);

  const struct duet_kernels_elementwise *elementwise; /* core/kernels_elementwise.h */
  const struct duet_kernels_nn *nn;                   /* core/kernels_nn.h */
  const struct duet_kernels_attention *attention;     /* core/kernels_attention.h */
  const struct duet_kernels_layout *layout;           /* core/kernels_layout.h */
  const struct duet_kernels_loss *loss;               /* core/kernels_loss.h */
  const struct duet_kernels_norm_modulate *norm_modulate; /* core/kernels_nn.h; NULL: not fused */
} duet_backend;

/* The table for a device, or NULL when that backend is not built or has no device. */
const duet_backend *duet_backend_get(duet_device dev);

extern const duet_backend duet_cpu_backend;

#endif
