/* Parameterised building blocks shared by the text encoder and the MMDiT. Each registers its
 * parameters in a duet_param_set under a dotted name (PyTorch-style, e.g.
 * "video.blocks.0.attn.qkv.weight") so checkpoints read naturally from Python. */
#ifndef DUET_MODEL_LAYERS_H
#define DUET_MODEL_LAYERS_H

#include "core/ops.h"
#include "core/params.h"

/* Initialisation of a weight: normal(0, std), or constant. */
typedef enum { DUET_INIT_NORMAL, DUET_INIT_ZERO, DUET_INIT_ONE } duet_init_kind;

/* How each parameter starts; kept beside the set so initialisation is one deterministic pass. */
typedef struct duet_init_spec {
  duet_tensor *param;
  duet_init_kind kind;
  float std;
} duet_init_spec;

typedef struct duet_layer_builder {
  duet_param_set *params;
  duet_init_spec *inits;
  int n_inits, cap_inits;
  duet_err *err;
  int failed;
} duet_layer_builder;

void duet_layer_builder_init(duet_layer_builder *lb, duet_param_set *ps, duet_err *err);
void duet_layer_builder_free(duet_layer_builder *lb);

/* Adds "<prefix>.<name>" with shape and its initialisation; records the first failure. */
duet_tensor *duet_layer_param(duet_layer_builder *lb, const char *prefix, const char *name, int ndim,
                              const int64_t *shape, duet_init_kind kind, float std);

/* Fills every parameter from its spec; parameter i draws from RNG stream i of seed, so the
 * values do not depend on anything but the seed and the model's layout. */
void duet_layer_builder_init_weights(const duet_layer_builder *lb, uint64_t seed);

typedef struct duet_linear_layer {
  duet_tensor *weight; /* [out, in] */
  duet_tensor *bias;   /* [out] or NULL */
} duet_linear_layer;

/* Weight normal(0, 1/sqrt(in)) and zero bias, or all zero when zero_init (adaLN-Zero and
 * output layers start as the identity / zero map). */
void duet_linear_layer_make(duet_layer_builder *lb, duet_linear_layer *l, const char *prefix, int in,
                            int out, int bias, int zero_init);
duet_tensor *duet_linear_layer_apply(duet_graph *g, const duet_linear_layer *l, duet_tensor *x);

/* x -> fc2(gelu(fc1(x))) */
typedef struct duet_mlp {
  duet_linear_layer fc1, fc2;
} duet_mlp;
void duet_mlp_make(duet_layer_builder *lb, duet_mlp *m, const char *prefix, int width, int hidden);
duet_tensor *duet_mlp_apply(duet_graph *g, const duet_mlp *m, duet_tensor *x);

/* RMS-norm of each head's Dh features of x [B, L, H*Dh] (QK-norm), weight [Dh]. */
duet_tensor *duet_head_rmsnorm(duet_graph *g, duet_tensor *x, int heads, duet_tensor *weight);

#endif
