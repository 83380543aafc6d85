#include "core/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const size_t dtype_sizes[DUET_DTYPE_COUNT] = {4, 2, 8, 4, 1};
static const char *const dtype_names[DUET_DTYPE_COUNT] = {"f32", "bf16", "f64", "i32", "u8"};

size_t duet_dtype_size(duet_dtype dt) {
  return (unsigned)dt < DUET_DTYPE_COUNT ? dtype_sizes[dt] : 0;
}

const char *duet_dtype_name(duet_dtype dt) {
  return (unsigned)dt < DUET_DTYPE_COUNT ? dtype_names[dt] : "?";
}

int duet_dtype_is_float(duet_dtype dt) {
  return dt == DUET_F32 || dt == DUET_BF16 || dt == DUET_F64;
}

int64_t duet_shape_numel(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  return n;
}

int duet_shape_equal(const duet_tensor *a, const duet_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return 0;
  return 1;
}

const char *duet_shape_str(const duet_tensor *t, char *buf, size_t size) {
  size_t n = 0;
  n += (size_t)snprintf(buf + n, size - n, "[");
  for (int i = 0; i < t->ndim && n < size; i++)
    n += (size_t)snprintf(buf + n, size - n, i ? ",%lld" : "%lld", (long long)t->shape[i]);
  if (n < size) snprintf(buf + n, size - n, "]");
  return buf;
}

int duet_tensor_init_header(duet_tensor *t, duet_dtype dt, duet_device dev, int ndim,
                            const int64_t *shape, duet_err *err) {
  if (ndim < 0 || ndim > DUET_MAX_DIMS)
    return duet_err_set(err, DUET_EINVAL, "tensor rank %d outside 0..%d", ndim, DUET_MAX_DIMS);
  if ((unsigned)dt >= DUET_DTYPE_COUNT)
    return duet_err_set(err, DUET_EINVAL, "unknown dtype %d", (int)dt);
  memset(t, 0, sizeof *t);
  t->dtype = dt;
  t->device = dev;
  t->ndim = ndim;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return duet_err_set(err, DUET_EINVAL, "negative dimension %lld", (long long)shape[i]);
    t->shape[i] = shape[i];
  }
  t->numel = duet_shape_numel(ndim, shape);
  return DUET_OK;
}

duet_tensor *duet_tensor_new(duet_dtype dt, int ndim, const int64_t *shape, duet_err *err) {
  duet_tensor *t = malloc(sizeof *t);
  if (!t) {
    duet_err_set(err, DUET_ENOMEM, "out of memory for a tensor header");
    return NULL;
  }
  if (duet_tensor_init_header(t, dt, DUET_CPU, ndim, shape, err) != DUET_OK) {
    free(t);
    return NULL;
  }
  size_t bytes = duet_tensor_bytes(t);
  size_t rounded = (bytes + 63) & ~(size_t)63;
  t->data = aligned_alloc(64, rounded ? rounded : 64);
  if (!t->data) {
    free(t);
    duet_err_set(err, DUET_ENOMEM, "out of memory for a tensor of %zu bytes", bytes);
    return NULL;
  }
  memset(t->data, 0, rounded ? rounded : 64);
  t->owns_data = 1;
  return t;
}

void duet_tensor_free(duet_tensor *t) {
  if (!t) return;
  if (t->owns_data) free(t->data);
  free(t);
}

uint16_t duet_f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return (uint16_t)((u >> 16) | 0x40);
  uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)((u + rounding) >> 16);
}

float duet_bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

double duet_tensor_get(const duet_tensor *t, int64_t i) {
  switch (t->dtype) {
    case DUET_F32: return ((const float *)t->data)[i];
    case DUET_BF16: return duet_bf16_to_f32(((const uint16_t *)t->data)[i]);
    case DUET_F64: return ((const double *)t->data)[i];
    case DUET_I32: return ((const int32_t *)t->data)[i];
    case DUET_U8: return ((const uint8_t *)t->data)[i];
    default: return 0;
  }
}

void duet_tensor_set(duet_tensor *t, int64_t i, double v) {
  switch (t->dtype) {
    case DUET_F32: ((float *)t->data)[i] = (float)v; break;
    case DUET_BF16: ((uint16_t *)t->data)[i] = duet_f32_to_bf16((float)v); break;
    case DUET_F64: ((double *)t->data)[i] = v; break;
    case DUET_I32: ((int32_t *)t->data)[i] = (int32_t)v; break;
    case DUET_U8: ((uint8_t *)t->data)[i] = (uint8_t)v; break;
    default: break;
  }
}

int duet_tensor_convert(duet_tensor *dst, const duet_tensor *src, duet_err *err) {
  if (dst->numel != src->numel)
    return duet_err_set(err, DUET_EINVAL, "convert: %lld elements into %lld",
                        (long long)src->numel, (long long)dst->numel);
  if (dst->device != DUET_CPU || src->device != DUET_CPU)
    return duet_err_set(err, DUET_ENOTSUP, "convert: CPU tensors only");
  int64_t n = src->numel;
  if (src->dtype == dst->dtype) {
    memcpy(dst->data, src->data, duet_tensor_bytes(src));
    return DUET_OK;
  }
  if (src->dtype == DUET_F32 && dst->dtype == DUET_BF16) {
    const float *s = src->data;
    uint16_t *d = dst->data;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) d[i] = duet_f32_to_bf16(s[i]);
    return DUET_OK;
  }
  if (src->dtype == DUET_BF16 && dst->dtype == DUET_F32) {
    const uint16_t *s = src->data;
    float *d = dst->data;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) d[i] = duet_bf16_to_f32(s[i]);
    return DUET_OK;
  }
  for (int64_t i = 0; i < n; i++) duet_tensor_set(dst, i, duet_tensor_get(src, i));
  return DUET_OK;
}
