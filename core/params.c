#include "core/params.h"

#include <stdlib.h>
#include <string.h>

void duet_params_init(duet_param_set *ps) { memset(ps, 0, sizeof *ps); }

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
  duet_tensor *t = duet_tensor_new(dt, ndim, shape, err);
  char *copy = strdup(name);
  if (!t || !copy) {
    duet_tensor_free(t);
    free(copy);
    if (t || !err || !err->code) duet_err_set(err, DUET_ENOMEM, "out of memory for parameter '%s'", name);
    return NULL;
  }
  t->name = copy;
  t->is_param = 1;
  t->requires_grad = (uint8_t)(requires_grad != 0);
  if (requires_grad) {
    t->grad = duet_tensor_new(dt, ndim, shape, err);
    if (!t->grad) {
      free(copy);
      duet_tensor_free(t);
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

void duet_params_zero_grad(duet_param_set *ps) {
  for (int i = 0; i < ps->count; i++)
    if (ps->items[i]->grad) memset(ps->items[i]->grad->data, 0, duet_tensor_bytes(ps->items[i]->grad));
}

void duet_params_free(duet_param_set *ps) {
  for (int i = 0; i < ps->count; i++) {
    duet_tensor *t = ps->items[i];
    duet_tensor_free(t->grad);
    free((char *)t->name);
    duet_tensor_free(t);
  }
  free(ps->items);
  memset(ps, 0, sizeof *ps);
}
