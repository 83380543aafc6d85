/* Tensors: contiguous, row-major, up to DUET_MAX_DIMS dims, with a dtype and a device.
 *
 * A tensor either owns its storage (parameters, gradients of parameters, optimizer state:
 * allocated once) or borrows it from a per-step arena (activations and their gradients). */
#ifndef DUET_CORE_TENSOR_H
#define DUET_CORE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define DUET_MAX_DIMS 6

typedef enum duet_dtype {
  DUET_F32 = 0,
  DUET_BF16 = 1, /* storage and conversion on CPU; compute in f32 */
  DUET_F64 = 2,  /* reference precision for gradient checks */
  DUET_I32 = 3,
  DUET_U8 = 4,
  DUET_DTYPE_COUNT
} duet_dtype;

typedef enum duet_device { DUET_CPU = 0, DUET_CUDA = 1, DUET_DEVICE_COUNT } duet_device;

typedef struct duet_tensor {
  duet_dtype dtype;
  duet_device device;
  int ndim;
  int64_t shape[DUET_MAX_DIMS];
  int64_t numel;
  void *data;
  /* Same shape and dtype as the tensor. A parameter's is allocated with it; an activation's
   * is taken from the arena when backward first reaches it. */
  struct duet_tensor *grad;
  uint8_t requires_grad;
  uint8_t is_param;
  uint8_t owns_data; /* free(data) in duet_tensor_free */
  const char *name;  /* parameters: the safetensors key */
} duet_tensor;

size_t duet_dtype_size(duet_dtype dt);
const char *duet_dtype_name(duet_dtype dt);
int duet_dtype_is_float(duet_dtype dt); /* f32, bf16, f64 */

int64_t duet_shape_numel(int ndim, const int64_t *shape);
int duet_shape_equal(const duet_tensor *a, const duet_tensor *b);
/* "[2,3,4]" into buf; returns buf (for error messages). */
const char *duet_shape_str(const duet_tensor *t, char *buf, size_t size);

static inline size_t duet_tensor_bytes(const duet_tensor *t) {
  return (size_t)t->numel * duet_dtype_size(t->dtype);
}

/* Heap tensor with zeroed, 64-byte aligned storage it owns. */
duet_tensor *duet_tensor_new(duet_dtype dt, int ndim, const int64_t *shape, duet_err *err);
void duet_tensor_free(duet_tensor *t);

/* Fills the header (not the storage) of t. Returns DUET_EINVAL on a bad shape. */
int duet_tensor_init_header(duet_tensor *t, duet_dtype dt, duet_device dev, int ndim,
                            const int64_t *shape, duet_err *err);

/* bf16 <-> f32 with round-to-nearest-even; NaN stays NaN. */
uint16_t duet_f32_to_bf16(float f);
float duet_bf16_to_f32(uint16_t h);
/* Element-wise dtype conversion between float dtypes of equal numel (CPU). */
int duet_tensor_convert(duet_tensor *dst, const duet_tensor *src, duet_err *err);

/* Element i as double (any dtype, CPU) and its setter: for tests and small utilities. */
double duet_tensor_get(const duet_tensor *t, int64_t i);
void duet_tensor_set(duet_tensor *t, int64_t i, double v);

#endif
