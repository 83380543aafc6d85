/* A model's parameters: named tensors that own their storage and their gradient, allocated
 * once. The names are the keys of the safetensors checkpoint.
 *
 * Parameters live on one device. A model is built and initialised on the CPU (initialisers
 * write host memory); duet_params_to_device() then moves every parameter and gradient to
 * the device in one go, through the device backend's alloc and copy. Storage on a device
 * other than the CPU is not host-addressable: read it with duet_tensor_download() or copy
 * it with duet_tensor_upload(). */
#ifndef DUET_CORE_PARAMS_H
#define DUET_CORE_PARAMS_H

#include "core/tensor.h"

typedef struct duet_param_set {
  duet_tensor **items;
  int count, capacity;
  duet_device device; /* where every parameter and gradient lives (DUET_CPU after init) */
} duet_param_set;

void duet_params_init(duet_param_set *ps);
/* Creates a zeroed parameter (and its zeroed gradient when requires_grad) on the set's
 * device. Names are unique. */
duet_tensor *duet_params_add(duet_param_set *ps, const char *name, duet_dtype dt, int ndim,
                             const int64_t *shape, int requires_grad, duet_err *err);
duet_tensor *duet_params_find(const duet_param_set *ps, const char *name);
int64_t duet_params_numel(const duet_param_set *ps);
/* Zeroes every gradient (memset on the CPU, the backend's zero on a device). */
void duet_params_zero_grad(duet_param_set *ps);
void duet_params_free(duet_param_set *ps);

/* Moves every parameter and gradient (values kept) to dev: device storage from the backend's
 * alloc, filled by a copy from the host, and the host storage freed. DUET_ENOTSUP when dev
 * has no backend (no GPU, or a build without CUDA). On failure nothing has moved. */
int duet_params_to_device(duet_param_set *ps, duet_device dev, duet_err *err);

/* ---- one parallel loop over many tensors ---- */

/* Calls fn(ctx, i, lo, len) for every block [lo, lo + len) of at most `block` elements of the
 * tensors t[0..n) (NULL entries have none), the blocks dealt in turn to the threads of one
 * parallel region (one thread when the tensors hold fewer than min_elems elements in all). A
 * pass over every parameter then runs as one parallel loop rather than one per tensor, most of
 * which are too small to split on their own. fn must touch only its block. */
typedef void (*duet_block_fn)(void *ctx, int i, int64_t lo, int64_t len);
void duet_blocks_parallel(duet_tensor *const *t, int n, int64_t block, int64_t min_elems,
                          duet_block_fn fn, void *ctx);

/* ---- owned tensors on any device (parameters, gradients, optimizer and EMA state) ---- */

/* A zeroed tensor that owns its storage on dev: duet_tensor_new() for the CPU, the device
 * backend's alloc (zeroed) otherwise. */
duet_tensor *duet_tensor_new_on(duet_dtype dt, duet_device dev, int ndim, const int64_t *shape, duet_err *err);
/* Frees a tensor made by duet_tensor_new_on() (or duet_tensor_new()), whatever its device. */
void duet_tensor_free_any(duet_tensor *t);
/* Copies all of t's bytes into host memory dst / from host memory src (memcpy on the CPU). */
void duet_tensor_download(const duet_tensor *t, void *dst);
void duet_tensor_upload(duet_tensor *t, const void *src);
/* The value of a one-element tensor (a loss) on any device, read back to the host. */
double duet_tensor_scalar(const duet_tensor *t);
/* Zeroes t's storage on its device. */
void duet_tensor_zero(duet_tensor *t);
/* dst <- src converted element by element (float dtypes, equal numel, both on one device):
 * on the CPU any float dtype into any other (duet_tensor_convert), on the GPU f32 <-> bf16
 * with the CPU's rounding (core/cuda/cuda_optim.h). Runs on the device's stream. */
int duet_tensor_convert_any(duet_tensor *dst, const duet_tensor *src, duet_err *err);

#endif
