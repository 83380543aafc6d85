#include "core/ema.h"

#include <stdlib.h>
#include <string.h>

#define OMP_MIN_ELEMS 32768

int duet_ema_init(duet_ema *e, duet_param_set *ps, double decay, duet_err *err) {
  memset(e, 0, sizeof *e);
  if (!(decay >= 0 && decay <= 1)) return duet_err_set(err, DUET_EINVAL, "ema: decay %g outside [0, 1]", decay);
  for (int i = 0; i < ps->count; i++) {
    const duet_tensor *t = ps->items[i];
    if (t->requires_grad && (t->dtype != DUET_F32 || t->device != DUET_CPU))
      return duet_err_set(err, DUET_ENOTSUP, "ema: parameter '%s' is %s; f32 on the CPU needed", t->name,
                          duet_dtype_name(t->dtype));
  }
  e->decay = decay;
  e->params = ps;
  e->count = ps->count;
  e->shadow = calloc((size_t)ps->count + 1, sizeof *e->shadow);
  if (!e->shadow) return duet_err_set(err, DUET_ENOMEM, "ema: out of memory");
  for (int i = 0; i < ps->count; i++) {
    const duet_tensor *t = ps->items[i];
    if (!t->requires_grad) continue;
    e->shadow[i] = duet_tensor_new(DUET_F32, t->ndim, t->shape, err);
    if (!e->shadow[i]) {
      duet_ema_free(e);
      return duet_err_prefix(err, "ema: shadow of '%s': ", t->name);
    }
    memcpy(e->shadow[i]->data, t->data, duet_tensor_bytes(t));
  }
  return DUET_OK;
}

void duet_ema_free(duet_ema *e) {
  for (int i = 0; i < e->count; i++) duet_tensor_free(e->shadow[i]);
  free(e->shadow);
  memset(e, 0, sizeof *e);
}

int duet_ema_update(duet_ema *e, duet_err *err) {
  if (e->swapped) return duet_err_set(err, DUET_EINVAL, "ema: update while the EMA weights are swapped in");
  if (e->params->count != e->count)
    return duet_err_set(err, DUET_EINVAL, "ema: the parameter set changed after init");
  const float d = (float)e->decay, w = (float)(1.0 - e->decay);
  for (int i = 0; i < e->count; i++) {
    if (!e->shadow[i]) continue;
    float *s = e->shadow[i]->data;
    const float *p = e->params->items[i]->data;
    int64_t n = e->shadow[i]->numel;
#pragma omp parallel for schedule(static) if (n > OMP_MIN_ELEMS)
    for (int64_t k = 0; k < n; k++) s[k] = d * s[k] + w * p[k];
  }
  e->updates++;
  return DUET_OK;
}

void duet_ema_swap(duet_ema *e) {
  for (int i = 0; i < e->count; i++) {
    if (!e->shadow[i]) continue;
    float *s = e->shadow[i]->data, *p = e->params->items[i]->data;
    int64_t n = e->shadow[i]->numel;
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
    memcpy(duet_params_find(dst, e->params->items[i]->name)->data, src->data, duet_tensor_bytes(src));
  }
  return DUET_OK;
}
