#include "core/params.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"

#ifdef DUET_HAVE_CUDA
#include "core/cuda/cuda_optim.h"
#endif

void duet_params_init(duet_param_set *ps) { memset(ps, 0, sizeof *ps); }

duet_tensor *duet_tensor_new_on(duet_dtype dt, duet_device dev, int ndim, const int64_t *shape, duet_err *err) {
  if (dev == DUET_CPU) return duet_tensor_new(dt, ndim, shape, err);
  const duet_backend *be = duet_backend_get(dev);
  if (!be) {
    duet_err_set(err, DUET_ENOTSUP, "device %d has no backend (no GPU, or not built with CUDA)", (int)dev);
    return NULL;
  }
  duet_tensor *t = malloc(sizeof *t);
  if (!t) {
    duet_err_set(err, DUET_ENOMEM, "out of memory for a tensor header");
    return NULL;
  }
  if (duet_tensor_init_header(t, dt, dev, ndim, shape, err) != DUET_OK) {
    free(t);
    return NULL;
  }
  size_t bytes = duet_tensor_bytes(t);
  t->data = be->alloc(bytes ? bytes : 1); /* zeroed */
  if (!t->data) {
    free(t);
    duet_err_set(err, DUET_ENOMEM, "out of %s memory for a tensor of %zu bytes", be->name, bytes);
    return NULL;
  }
  t->owns_data = 1;
  return t;
}

void duet_tensor_free_any(duet_tensor *t) {
  if (!t) return;
  if (t->device != DUET_CPU) {
    const duet_backend *be = duet_backend_get(t->device);
    if (t->owns_data && be) be->free(t->data);
    free(t);
    return;
  }
  duet_tensor_free(t);
}

void duet_tensor_download(const duet_tensor *t, void *dst) {
  size_t n = duet_tensor_bytes(t);
  if (!n) return;
  if (t->device == DUET_CPU) memcpy(dst, t->data, n);
  else duet_backend_get(t->device)->copy_to_host(dst, t->data, n);
}

void duet_tensor_upload(duet_tensor *t, const void *src) {
  size_t n = duet_tensor_bytes(t);
  if (!n) return;
  if (t->device == DUET_CPU) memcpy(t->data, src, n);
  else duet_backend_get(t->device)->copy_from_host(t->data, src, n);
}

void duet_tensor_zero(duet_tensor *t) {
  size_t n = duet_tensor_bytes(t);
  if (!n) return;
  if (t->device == DUET_CPU) memset(t->data, 0, n);
  else duet_backend_get(t->device)->zero(t->data, n);
}

double duet_tensor_scalar(const duet_tensor *t) {
  unsigned char bytes[8] = {0}; /* one element of the widest dtype */
  duet_tensor h = *t;
  h.device = DUET_CPU;
  h.data = bytes;
  duet_tensor_download(t, bytes);
  return duet_tensor_get(&h, 0);
}

int duet_tensor_convert_any(duet_tensor *dst, const duet_tensor *src, duet_err *err) {
  if (dst->device != src->device)
    return duet_err_set(err, DUET_EINVAL, "convert: tensors on devices %d and %d", (int)src->device, (int)dst->device);
  if (src->device == DUET_CPU) return duet_tensor_convert(dst, src, err);
#ifdef DUET_HAVE_CUDA
  if (src->device == DUET_CUDA) return duet_cuda_convert(dst, src, err);
#endif
  return duet_err_set(err, DUET_ENOTSUP, "convert: no conversion on device %d", (int)src->device);
}

duet_tensor *duet_params_add(duet_param_set *ps, const char *name, duet_dtype dt, int ndim,
                             const int64_t *shape, int requires_grad, duet_err *err) {
  if (duet_params_find(ps, name)) {
    duet_err_set(err, DUET_EINVAL, "parameter '%s' defined twice", name);
    return NULL;
  }
  if (ps->count == ps->capacity) {
    int cap = ps->capacity ? ps->capacity * 2 : 64;
    duet_tensor **items = realloc(ps->items, sizeof *items * (size_t)cap);
    if (!items) {
      duet_err_set(err, DUET_ENOMEM, "out of memory for parameter '%s'", name);
      return NULL;
    }
    ps->items = items;
    ps->capacity = cap;
  }
  duet_tensor *t = duet_tensor_new_on(dt, ps->device, ndim, shape, err);
  char *copy = strdup(name);
  if (!t || !copy) {
    duet_tensor_free_any(t);
    free(copy);
    if (t || !err || !err->code) duet_err_set(err, DUET_ENOMEM, "out of memory for parameter '%s'", name);
    return NULL;
  }
  t->name = copy;
  t->is_param = 1;
  t->requires_grad = (uint8_t)(requires_grad != 0);
  if (requires_grad) {
    t->grad = duet_tensor_new_on(dt, ps->device, ndim, shape, err);
    if (!t->grad) {
      free(copy);
      duet_tensor_free_any(t);
      return NULL;
    }
  }
  ps->items[ps->count++] = t;
  return t;
}

duet_tensor *duet_params_find(const duet_param_set *ps, const char *name) {
  for (int i = 0; i < ps->count; i++)
    if (strcmp(ps->items[i]->name, name) == 0) return ps->items[i];
  return NULL;
}

int64_t duet_params_numel(const duet_param_set *ps) {
  int64_t n = 0;
  for (int i = 0; i < ps->count; i++) n += ps->items[i]->numel;
  return n;
}

/* On the CPU, one parallel loop over blocks of every gradient (duet_blocks_parallel), from
 * ZERO_PARALLEL_MIN elements in all. */
#define ZERO_BLOCK 16384
#define ZERO_PARALLEL_MIN 65536
static void zero_block(void *ctx, int i, int64_t lo, int64_t len) {
  duet_tensor *g = ((duet_tensor **)ctx)[i]->grad;
  if (!g) return;
  size_t es = duet_dtype_size(g->dtype);
  memset((char *)g->data + (size_t)lo * es, 0, (size_t)len * es);
}

void duet_params_zero_grad(duet_param_set *ps) {
  if (ps->device == DUET_CPU) {
    duet_blocks_parallel(ps->items, ps->count, ZERO_BLOCK, ZERO_PARALLEL_MIN, zero_block, ps->items);
    return;
  }
  for (int i = 0; i < ps->count; i++)
    if (ps->items[i]->grad) duet_tensor_zero(ps->items[i]->grad);
}

void duet_params_free(duet_param_set *ps) {
  for (int i = 0; i < ps->count; i++) {
    duet_tensor *t = ps->items[i];
    duet_tensor_free_any(t->grad);
    free((char *)t->name);
    duet_tensor_free_any(t);
  }
  free(ps->items);
  memset(ps, 0, sizeof *ps);
}

void duet_blocks_parallel(duet_tensor *const *t, int n, int64_t block, int64_t min_elems,
                          duet_block_fn fn, void *ctx) {
  int64_t total = 0;
  for (int i = 0; i < n; i++) total += t[i] ? t[i]->numel : 0;
#pragma omp parallel if (total >= min_elems)
  {
    int threads = omp_get_num_threads(), me = omp_get_thread_num();
    int64_t b = 0; /* global block index: block b goes to thread b mod threads */
    for (int i = 0; i < n; i++) {
      if (!t[i]) continue;
      for (int64_t lo = 0; lo < t[i]->numel; lo += block, b++)
        if (b % threads == me) fn(ctx, i, lo, t[i]->numel - lo < block ? t[i]->numel - lo : block);
    }
  }
}

/* New device storage for t (same bytes), or NULL. */
static void *device_copy(const duet_backend *be, const duet_tensor *t) {
  size_t n = duet_tensor_bytes(t);
  void *p = be->alloc(n ? n : 1);
  if (p && n) be->copy_from_host(p, t->data, n);
  return p;
}

int duet_params_to_device(duet_param_set *ps, duet_device dev, duet_err *err) {
  if (dev == ps->device) return DUET_OK;
  if (ps->device != DUET_CPU)
    return duet_err_set(err, DUET_ENOTSUP, "parameters: moving from device %d to %d (only CPU -> device)",
                        (int)ps->device, (int)dev);
  const duet_backend *be = duet_backend_get(dev);
  if (!be) return duet_err_set(err, DUET_ENOTSUP, "parameters: device %d has no backend (no GPU, or not built with CUDA)", (int)dev);
  /* Two slots per parameter (value, gradient), all allocated before any host storage goes. */
  int n = ps->count;
  void **dev_data = calloc((size_t)2 * (size_t)n + 1, sizeof *dev_data);
  if (!dev_data) return duet_err_set(err, DUET_ENOMEM, "parameters: out of memory");
  int ok = 1;
  for (int i = 0; i < n && ok; i++) {
    duet_tensor *t = ps->items[i];
    ok = (dev_data[2 * i] = device_copy(be, t)) != NULL;
    if (ok && t->grad) ok = (dev_data[2 * i + 1] = device_copy(be, t->grad)) != NULL;
  }
  if (!ok) {
    for (int i = 0; i < 2 * n; i++)
      if (dev_data[i]) be->free(dev_data[i]);
    free(dev_data);
    return duet_err_set(err, DUET_ENOMEM, "parameters: out of %s memory for %lld elements", be->name,
                        (long long)duet_params_numel(ps));
  }
  for (int i = 0; i < n; i++) {
    duet_tensor *t = ps->items[i];
    free(t->data);
    t->data = dev_data[2 * i];
    t->device = dev;
    if (t->grad) {
      free(t->grad->data);
      t->grad->data = dev_data[2 * i + 1];
      t->grad->device = dev;
    }
  }
  free(dev_data);
  ps->device = dev;
  return DUET_OK;
}
