#include "gpu_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

void gt_require_gpu(const char *name) {
  if (!duet_cuda_available()) {
    printf("%s: no CUDA device: skipped\n", name);
    exit(77);
  }
  char dev[300];
  printf("%s: on %s\n", name, duet_cuda_device_name(dev, sizeof dev));
}

const duet_backend *gt_cpu(void) { return duet_backend_get(DUET_CPU); }
const duet_backend *gt_gpu(void) { return duet_backend_get(DUET_CUDA); }

duet_tensor *gt_host(duet_dtype dt, int ndim, const int64_t *shape) {
  duet_err err;
  duet_tensor *t = duet_tensor_new(dt, ndim, shape, &err);
  if (!t) {
    fprintf(stderr, "gt_host: %s\n", err.msg);
    exit(1);
  }
  return t;
}

duet_tensor *gt_rand(duet_dtype dt, int ndim, const int64_t *shape, uint64_t seed, double lo, double hi) {
  duet_tensor *t = gt_host(dt, ndim, shape);
  duet_rng r = duet_rng_make(seed, 0x67707574u);
  for (int64_t i = 0; i < t->numel; i++) {
    double u = lo + (hi - lo) * duet_rng_uniform_f64(&r);
    if (dt == DUET_I32 || dt == DUET_U8) u = floor(u);
    duet_tensor_set(t, i, u);
  }
  return t;
}

duet_dtype gt_ref_dtype(duet_dtype dt) { return dt == DUET_F64 ? DUET_F64 : DUET_F32; }

duet_tensor *gt_input(duet_dtype dt, int ndim, const int64_t *shape, uint64_t seed, double lo, double hi) {
  duet_tensor *t = gt_rand(gt_ref_dtype(dt), ndim, shape, seed, lo, hi);
  if (dt == DUET_BF16) gt_round_bf16(t);
  return t;
}

duet_tensor *gt_clone(const duet_tensor *h) {
  duet_tensor *c = gt_host(h->dtype, h->ndim, h->shape);
  memcpy(c->data, h->data, duet_tensor_bytes(h));
  return c;
}

void gt_round_bf16(duet_tensor *h) {
  if (h->dtype != DUET_F32) return;
  float *p = h->data;
  for (int64_t i = 0; i < h->numel; i++) p[i] = duet_bf16_to_f32(duet_f32_to_bf16(p[i]));
}

static duet_tensor *dev_new(duet_dtype dt, int ndim, const int64_t *shape) {
  duet_tensor *t = calloc(1, sizeof *t);
  duet_err err;
  if (!t || duet_tensor_init_header(t, dt, DUET_CUDA, ndim, shape, &err) != DUET_OK) {
    fprintf(stderr, "gt: cannot make a GPU tensor\n");
    exit(1);
  }
  t->data = gt_gpu()->alloc(duet_tensor_bytes(t));
  if (!t->data) {
    fprintf(stderr, "gt: out of GPU memory\n");
    exit(1);
  }
  return t;
}

duet_tensor *gt_up(const duet_tensor *h, duet_dtype dt) {
  duet_tensor *d = dev_new(dt, h->ndim, h->shape);
  if (dt == h->dtype) {
    gt_gpu()->copy_from_host(d->data, h->data, duet_tensor_bytes(h));
  } else if (dt == DUET_BF16 && h->dtype == DUET_F32) {
    uint16_t *tmp = malloc((size_t)h->numel * 2 + 2);
    const float *s = h->data;
    for (int64_t i = 0; i < h->numel; i++) tmp[i] = duet_f32_to_bf16(s[i]);
    gt_gpu()->copy_from_host(d->data, tmp, (size_t)h->numel * 2);
    free(tmp);
  } else {
    fprintf(stderr, "gt_up: %s -> %s not supported\n", duet_dtype_name(h->dtype), duet_dtype_name(dt));
    exit(1);
  }
  return d;
}

duet_tensor *gt_poison(duet_dtype dt, int ndim, const int64_t *shape) {
  duet_tensor *d = dev_new(dt, ndim, shape);
  size_t bytes = duet_tensor_bytes(d);
  unsigned char *ff = malloc(bytes + 1);
  memset(ff, 0xff, bytes + 1);
  gt_gpu()->copy_from_host(d->data, ff, bytes);
  free(ff);
  return d;
}

duet_tensor *gt_down(const duet_tensor *d) {
  duet_dtype hd = d->dtype == DUET_BF16 ? DUET_F32 : d->dtype;
  duet_tensor *h = gt_host(hd, d->ndim, d->shape);
  if (d->dtype == DUET_BF16) {
    uint16_t *tmp = malloc((size_t)d->numel * 2 + 2);
    gt_gpu()->copy_to_host(tmp, d->data, (size_t)d->numel * 2);
    float *p = h->data;
    for (int64_t i = 0; i < d->numel; i++) p[i] = duet_bf16_to_f32(tmp[i]);
    free(tmp);
  } else {
    gt_gpu()->copy_to_host(h->data, d->data, duet_tensor_bytes(d));
  }
  return h;
}

void gt_free(duet_tensor *t) {
  if (!t) return;
  if (t->device == DUET_CUDA) {
    gt_gpu()->free(t->data);
    free(t);
  } else {
    duet_tensor_free(t);
  }
}

double gt_rel_err(const duet_tensor *got, const duet_tensor *ref) {
  if (got->numel != ref->numel) return INFINITY;
  double num = 0, den = 0;
  for (int64_t i = 0; i < ref->numel; i++) {
    double a = duet_tensor_get(got, i), b = duet_tensor_get(ref, i);
    if (isnan(a) || isnan(b)) return INFINITY;
    if (isinf(a) || isinf(b)) {
      if (a != b) return INFINITY;
      continue;
    }
    num += (a - b) * (a - b);
    den += b * b;
  }
  if (den == 0) return num == 0 ? 0 : INFINITY;
  return sqrt(num / den);
}

int gt_expect_close(const char *what, const duet_tensor *d, const duet_tensor *ref, double tol) {
  duet_tensor *h = d->device == DUET_CUDA ? gt_down(d) : (duet_tensor *)d;
  double e = gt_rel_err(h, ref);
  CHECK_MSG(e <= tol, "%s: relative error %.3g > %.3g", what, e, tol);
  if (h != d) gt_free(h);
  return e <= tol;
}

int gt_expect_delta(const char *what, const duet_tensor *d, const duet_tensor *ref, const duet_tensor *init, double tol) {
  duet_tensor *got = gt_down(d), *want = gt_clone(ref);
  for (int64_t i = 0; i < init->numel; i++) {
    double z = duet_tensor_get(init, i);
    duet_tensor_set(got, i, duet_tensor_get(got, i) - z);
    duet_tensor_set(want, i, duet_tensor_get(want, i) - z);
  }
  int ok = gt_expect_close(what, got, want, tol);
  gt_free(got);
  gt_free(want);
  return ok;
}

void gt_expect_no_cuda_error(const char *what) {
  duet_err err;
  int rc = duet_cuda_sync(&err);
  CHECK_MSG(rc == DUET_OK, "%s: CUDA error: %s", what, rc ? err.msg : "");
  if (rc) duet_cuda_clear_error();
}

double gt_tol(duet_dtype dt, double bf16_tol) {
  switch (dt) {
    case DUET_F64: return 1e-12;
    case DUET_BF16: return bf16_tol;
    default: return 1e-5;
  }
}
