/* train.precision = bf16: the forward and backward of each micro-batch run on bf16 copies of
 * the weights, while the master weights, their gradients, AdamW's moments and the EMA stay
 * f32 (docs/train.md, "Precision").
 *
 * The model holds pointers to its parameter tensors, so the copies are exchanged into those
 * tensors for the micro-batch (dtype, storage and gradient; names and shapes are the same)
 * and exchanged back after its backward. Each micro-batch first refreshes the copies from the
 * masters (so weights loaded or updated by anything are always the ones computed with), and
 * afterwards adds the bf16 gradients, converted to f32, into the f32 gradients and zeroes
 * them: accumulation over micro-batches, clipping and AdamW see f32 only. */
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/kernels_elementwise.h"
#include "train/trainer_internal.h"

int duet_mixed_init(duet_mixed *mx, const duet_param_set *ps, duet_err *err) {
  memset(mx, 0, sizeof *mx);
  mx->copies = calloc((size_t)ps->count + 1, sizeof *mx->copies);
  if (!mx->copies) return duet_err_set(err, DUET_ENOMEM, "train.precision = bf16: out of memory");
  mx->count = ps->count;
  int64_t largest = 1;
  for (int i = 0; i < ps->count; i++) {
    const duet_tensor *p = ps->items[i];
    if (p->dtype != DUET_F32)
      return duet_err_set(err, DUET_EINVAL, "train.precision = bf16: parameter '%s' is %s, expected f32 masters",
                          p->name, duet_dtype_name(p->dtype));
    duet_tensor *c = duet_tensor_new_on(DUET_BF16, ps->device, p->ndim, p->shape, err);
    if (!c) return duet_err_prefix(err, "train.precision = bf16: ");
    mx->copies[i] = c;
    c->name = p->name; /* borrowed */
    c->is_param = 1;
    c->requires_grad = p->requires_grad;
    if (p->grad) {
      if (!(c->grad = duet_tensor_new_on(DUET_BF16, ps->device, p->ndim, p->shape, err)))
        return duet_err_prefix(err, "train.precision = bf16: ");
      if (p->numel > largest) largest = p->numel;
    }
  }
  /* One f32 buffer that each bf16 gradient is converted into before it is added. */
  if (!(mx->scratch = duet_tensor_new_on(DUET_F32, ps->device, 1, &largest, err)))
    return duet_err_prefix(err, "train.precision = bf16: ");
  return DUET_OK;
}

void duet_mixed_free(duet_mixed *mx) {
  for (int i = 0; mx->copies && i < mx->count; i++) {
    duet_tensor *c = mx->copies[i];
    if (!c) continue;
    duet_tensor_free_any(c->grad);
    c->name = NULL;
    duet_tensor_free_any(c);
  }
  free(mx->copies);
  duet_tensor_free_any(mx->scratch);
  memset(mx, 0, sizeof *mx);
}

/* Exchanges what the model computes with: dtype, storage and gradient. */
static void exchange(duet_tensor *a, duet_tensor *b) {
  duet_dtype dt = a->dtype;
  void *data = a->data;
  duet_tensor *grad = a->grad;
  a->dtype = b->dtype;
  a->data = b->data;
  a->grad = b->grad;
  b->dtype = dt;
  b->data = data;
  b->grad = grad;
}

int duet_mixed_begin(duet_mixed *mx, duet_param_set *ps, duet_err *err) {
  if (!mx->copies || mx->swapped) return DUET_OK;
  for (int i = 0; i < mx->count; i++) {
    int rc = duet_tensor_convert_any(mx->copies[i], ps->items[i], err);
    if (rc) return duet_err_prefix(err, "train.precision = bf16: '%s': ", ps->items[i]->name);
  }
  for (int i = 0; i < mx->count; i++) exchange(ps->items[i], mx->copies[i]);
  mx->swapped = 1;
  return DUET_OK;
}

int duet_mixed_end(duet_mixed *mx, duet_param_set *ps, int rc, duet_err *err) {
  if (!mx->copies || !mx->swapped) return rc;
  for (int i = 0; i < mx->count; i++) exchange(ps->items[i], mx->copies[i]);
  mx->swapped = 0;
  if (rc) return rc; /* the step fails anyway: its gradients are not used */
  const duet_backend *be = duet_backend_get(ps->device);
  for (int i = 0; i < mx->count; i++) {
    duet_tensor *p = ps->items[i], *c = mx->copies[i];
    if (!p->grad || !c->grad) continue;
    duet_tensor g32;
    if ((rc = duet_tensor_init_header(&g32, DUET_F32, ps->device, c->grad->ndim, c->grad->shape, err))) return rc;
    g32.data = mx->scratch->data;
    if ((rc = duet_tensor_convert_any(&g32, c->grad, err)))
      return duet_err_prefix(err, "train.precision = bf16: gradient of '%s': ", p->name);
    be->elementwise->axpy(1.0, &g32, p->grad);
    duet_tensor_zero(c->grad);
  }
  return DUET_OK;
}
