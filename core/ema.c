#include "core/ema.h"

#include <stdlib.h>
#include <string.h>

#include "core/optim.h"
#include "core/cpu/vec_math.h"
#ifdef DUET_HAVE_CUDA
#include "core/cuda/cuda_optim.h"
#endif

#define OMP_MIN_ELEMS 32768
#define EMA_BLOCK 8192

/* In a function of its own for the AVX2/AVX-512 clones (same bits: no FMA contraction in C17). */
DUET_VEC_F32 static void ema_block(float *restrict s, const float *restrict p, int64_t n, float d, float w) {
  for (int64_t k = 0; k < n; k++) s[k] = d * s[k] + w * p[k];
}

/* dst <- src, same shape and dtype, each on the CPU or the GPU. */
static int copy_values(duet_tensor *dst, const duet_tensor *src, duet_err *err) {
  size_t n = duet_tensor_bytes(src);
  if (dst->device == DUET_CPU && src->device == DUET_CPU) {
    memcpy(dst->data, src->data, n);
    return DUET_OK;
  }
  if (dst->device == DUET_CPU) {
    duet_tensor_download(src, dst->data);
    return DUET_OK;
  }
  if (src->device == DUET_CPU) {
    duet_tensor_upload(dst, src->data);
    return DUET_OK;
  }
  /* Device to device through the host: done once at init and for copy_to, never per step. */
  void *h = malloc(n ? n : 1);
  if (!h) return duet_err_set(err, DUET_ENOMEM, "ema: out of memory copying %zu bytes", n);
  duet_tensor_download(src, h);
  duet_tensor_upload(dst, h);
  free(h);
  return DUET_OK;
}

int duet_ema_init(duet_ema *e, duet_param_set *ps, double decay, duet_err *err) {
  memset(e, 0, sizeof *e);
  if (!(decay >= 0 && decay <= 1)) return duet_err_set(err, DUET_EINVAL, "ema: decay %g outside [0, 1]", decay);
  for (int i = 0; i < ps->count; i++) {
    const duet_tensor *t = ps->items[i];
    if (t->requires_grad && (t->dtype != DUET_F32 || !duet_optim_device_ok(t->device)))
      return duet_err_set(err, DUET_ENOTSUP, "ema: parameter '%s' is %s on device %d; f32 on the CPU%s needed",
                          t->name, duet_dtype_name(t->dtype), (int)t->device,
                          duet_optim_device_ok(DUET_CUDA) ? " or the GPU" : "");
  }
  e->decay = decay;
  e->params = ps;
  e->count = ps->count;
  e->shadow = calloc((size_t)ps->count + 1, sizeof *e->shadow);
  if (!e->shadow) return duet_err_set(err, DUET_ENOMEM, "ema: out of memory");
  for (int i = 0; i < ps->count; i++) {
    const duet_tensor *t = ps->items[i];
    if (!t->requires_grad) continue;
    e->shadow[i] = duet_tensor_new_on(DUET_F32, t->device, t->ndim, t->shape, err);
    if (!e->shadow[i]) {
      duet_ema_free(e);
      return duet_err_prefix(err, "ema: shadow of '%s': ", t->name);
    }
    int rc = copy_values(e->shadow[i], t, err);
    if (rc) {
      duet_ema_free(e);
      return rc;
    }
  }
  return DUET_OK;
}

void duet_ema_free(duet_ema *e) {
  for (int i = 0; i < e->count; i++)
    if (e->shadow) duet_tensor_free_any(e->shadow[i]);
  free(e->shadow);
  memset(e, 0, sizeof *e);
}

/* Every CPU shadow's update as one parallel loop over blocks (duet_blocks_parallel), as
 * AdamW's step: most tensors are too small to split on their own. */
typedef struct ema_pass {
  duet_ema *e;
  float d, w;
} ema_pass;

static void ema_pass_block(void *ctx, int i, int64_t lo, int64_t len) {
  ema_pass *a = ctx;
  ema_block((float *)a->e->shadow[i]->data + lo, (const float *)a->e->params->items[i]->data + lo, len, a->d,
            a->w);
}

int duet_ema_update(duet_ema *e, duet_err *err) {
  if (e->swapped) return duet_err_set(err, DUET_EINVAL, "ema: update while the EMA weights are swapped in");
  if (e->params->count != e->count)
    return duet_err_set(err, DUET_EINVAL, "ema: the parameter set changed after init");
  const float d = (float)e->decay, w = (float)(1.0 - e->decay);
  if (e->params->device == DUET_CPU) {
    ema_pass a = {e, d, w};
    duet_blocks_parallel(e->shadow, e->count, EMA_BLOCK, OMP_MIN_ELEMS, ema_pass_block, &a);
    e->updates++;
    return DUET_OK;
  }
  for (int i = 0; i < e->count; i++) {
    if (!e->shadow[i]) continue;
    float *s = e->shadow[i]->data;
    const float *p = e->params->items[i]->data;
    int64_t n = e->shadow[i]->numel;
    if (e->shadow[i]->device != DUET_CPU) {
#ifdef DUET_HAVE_CUDA
      int rc = duet_cuda_ema_update_f32(s, p, n, d, w, err);
      if (rc) return rc;
#endif
      continue;
    }
    int64_t nblk = (n + EMA_BLOCK - 1) / EMA_BLOCK;
#pragma omp parallel for schedule(static) if (n > OMP_MIN_ELEMS)
    for (int64_t b = 0; b < nblk; b++)
      ema_block(s + b * EMA_BLOCK, p + b * EMA_BLOCK, n - b * EMA_BLOCK < EMA_BLOCK ? n - b * EMA_BLOCK : EMA_BLOCK, d, w);
  }
  e->updates++;
  return DUET_OK;
}

void duet_ema_swap(duet_ema *e) {
  for (int i = 0; i < e->count; i++) {
    if (!e->shadow[i]) continue;
    float *s = e->shadow[i]->data, *p = e->params->items[i]->data;
    int64_t n = e->shadow[i]->numel;
    if (e->shadow[i]->device != DUET_CPU) {
#ifdef DUET_HAVE_CUDA
      duet_cuda_swap_f32(s, p, n, NULL); /* a launch failure is kept in the backend's status */
#endif
      continue;
    }
#pragma omp parallel for schedule(static) if (n > OMP_MIN_ELEMS)
    for (int64_t k = 0; k < n; k++) {
      float x = s[k];
      s[k] = p[k];
      p[k] = x;
    }
  }
  e->swapped = !e->swapped;
}

const duet_tensor *duet_ema_weights(const duet_ema *e, int i) {
  if (!e->shadow[i]) return e->params->items[i];
  return e->swapped ? e->params->items[i] : e->shadow[i];
}

int duet_ema_index(const duet_ema *e, const char *name) {
  for (int i = 0; i < e->count; i++)
    if (strcmp(e->params->items[i]->name, name) == 0) return i;
  return -1;
}

int duet_ema_copy_to(const duet_ema *e, duet_param_set *dst, duet_err *err) {
  for (int i = 0; i < e->count; i++) {
    const duet_tensor *src = duet_ema_weights(e, i);
    duet_tensor *d = duet_params_find(dst, e->params->items[i]->name);
    if (!d || d->dtype != DUET_F32 || !duet_shape_equal(d, src))
      return duet_err_set(err, DUET_EINVAL, "ema: the destination has no f32 parameter '%s' of the same shape",
                          e->params->items[i]->name);
  }
  for (int i = 0; i < e->count; i++) {
    const duet_tensor *src = duet_ema_weights(e, i);
    int rc = copy_values(duet_params_find(dst, e->params->items[i]->name), src, err);
    if (rc) return rc;
  }
  return DUET_OK;
}
