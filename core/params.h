/* A model's parameters: named tensors that own their storage and their gradient, allocated
 * once. The names are the keys of the safetensors checkpoint. */
#ifndef DUET_CORE_PARAMS_H
#define DUET_CORE_PARAMS_H

#include "core/tensor.h"

typedef struct duet_param_set {
  duet_tensor **items;
  int count, capacity;
} duet_param_set;

void duet_params_init(duet_param_set *ps);
/* Creates a zeroed parameter (and its zeroed gradient when requires_grad). Names are unique. */
duet_tensor *duet_params_add(duet_param_set *ps, const char *name, duet_dtype dt, int ndim,
                             const int64_t *shape, int requires_grad, duet_err *err);
duet_tensor *duet_params_find(const duet_param_set *ps, const char *name);
int64_t duet_params_numel(const duet_param_set *ps);
void duet_params_zero_grad(duet_param_set *ps);
void duet_params_free(duet_param_set *ps);

#endif
