#include "model/layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

void duet_layer_builder_init(duet_layer_builder *lb, duet_param_set *ps, duet_err *err) {
  memset(lb, 0, sizeof *lb);
  lb->params = ps;
  lb->err = err;
}

void duet_layer_builder_free(duet_layer_builder *lb) {
  free(lb->inits);
  lb->inits = NULL;
  lb->n_inits = lb->cap_inits = 0;
}

duet_tensor *duet_layer_param(duet_layer_builder *lb, const char *prefix, const char *name, int ndim,
                              const int64_t *shape, duet_init_kind kind, float std) {
  if (lb->failed) return NULL;
  char full[256];
  snprintf(full, sizeof full, "%s.%s", prefix, name);
  duet_tensor *t = duet_params_add(lb->params, full, DUET_F32, ndim, shape, 1, lb->err);
  if (!t) {
    lb->failed = 1;
    return NULL;
  }
  if (lb->n_inits == lb->cap_inits) {
    int cap = lb->cap_inits ? lb->cap_inits * 2 : 128;
    duet_init_spec *p = realloc(lb->inits, sizeof *p * (size_t)cap);
    if (!p) {
      lb->failed = 1;
      duet_err_set(lb->err, DUET_ENOMEM, "out of memory registering %s", full);
      return NULL;
    }
    lb->inits = p;
    lb->cap_inits = cap;
  }
  lb->inits[lb->n_inits++] = (duet_init_spec){t, kind, std};
  return t;
}

void duet_layer_builder_init_weights(const duet_layer_builder *lb, uint64_t seed) {
  for (int i = 0; i < lb->n_inits; i++) {
    const duet_init_spec *s = &lb->inits[i];
    float *p = s->param->data;
    switch (s->kind) {
      case DUET_INIT_NORMAL:
        duet_rng_fill_normal_f32(seed, (uint64_t)i, 0, p, s->param->numel, 0.0f, s->std);
        break;
      case DUET_INIT_ZERO: memset(p, 0, duet_tensor_bytes(s->param)); break;
      case DUET_INIT_ONE:
        for (int64_t j = 0; j < s->param->numel; j++) p[j] = 1.0f;
        break;
    }
  }
}

void duet_linear_layer_make(duet_layer_builder *lb, duet_linear_layer *l, const char *prefix, int in,
                            int out, int bias, int zero_init) {
  int64_t ws[2] = {out, in}, bs[1] = {out};
  l->weight = duet_layer_param(lb, prefix, "weight", 2, ws, zero_init ? DUET_INIT_ZERO : DUET_INIT_NORMAL,
                               (float)(1.0 / sqrt((double)in)));
  l->bias = bias ? duet_layer_param(lb, prefix, "bias", 1, bs, DUET_INIT_ZERO, 0) : NULL;
}

duet_tensor *duet_linear_layer_apply(duet_graph *g, const duet_linear_layer *l, duet_tensor *x) {
  return duet_linear(g, x, l->weight, l->bias);
}

void duet_mlp_make(duet_layer_builder *lb, duet_mlp *m, const char *prefix, int width, int hidden) {
  char name[256];
  snprintf(name, sizeof name, "%s.fc1", prefix);
  duet_linear_layer_make(lb, &m->fc1, name, width, hidden, 1, 0);
  snprintf(name, sizeof name, "%s.fc2", prefix);
  duet_linear_layer_make(lb, &m->fc2, name, hidden, width, 1, 0);
}

duet_tensor *duet_mlp_apply(duet_graph *g, const duet_mlp *m, duet_tensor *x) {
  return duet_linear_layer_apply(g, &m->fc2, duet_gelu(g, duet_linear_layer_apply(g, &m->fc1, x)));
}

duet_tensor *duet_head_rmsnorm(duet_graph *g, duet_tensor *x, int heads, duet_tensor *weight) {
  if (!x) return NULL;
  int64_t d = x->shape[x->ndim - 1];
  int64_t split[4] = {x->shape[0], x->shape[1], heads, d / heads};
  duet_tensor *h = duet_reshape(g, x, 4, split);
  h = duet_rmsnorm(g, h, weight, 1e-6);
  return duet_reshape(g, h, x->ndim, x->shape);
}
