/* Element-wise kernel group (CPU: core/cpu/elementwise.c). f32 and f64. */
#ifndef DUET_CORE_KERNELS_ELEMENTWISE_H
#define DUET_CORE_KERNELS_ELEMENTWISE_H

#include "core/tensor.h"

typedef enum duet_binary_op { DUET_BINARY_ADD, DUET_BINARY_SUB, DUET_BINARY_MUL } duet_binary_op;

struct duet_kernels_elementwise {
  /* y[i] = a[i] op b[i % b->numel]: b's shape is a suffix of a's, repeated over its leading
   * dims. */
  void (*binary)(duet_binary_op op, const duet_tensor *a, const duet_tensor *b, duet_tensor *y);
  /* dst[i] += alpha * src[i] */
  void (*axpy)(double alpha, const duet_tensor *src, duet_tensor *dst);
  /* dst[i] += alpha * src[i % src->numel] * (other ? other[i] : 1) */
  void (*bcast_acc)(double alpha, const duet_tensor *src, const duet_tensor *other,
                    duet_tensor *dst);
  /* dst[j] += alpha * sum_r src[r * n + j] * (other ? other[r * n + j] : 1), n = dst->numel */
  void (*reduce_rows)(double alpha, const duet_tensor *src, const duet_tensor *other,
                      duet_tensor *dst);
  /* y[i] = s * x[i] */
  void (*scale)(double s, const duet_tensor *x, duet_tensor *y);
  void (*fill)(duet_tensor *y, double value);
};

#endif
