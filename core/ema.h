/* Exponential moving average of the trainable weights, for evaluation and release.
 *
 * After each optimizer step: shadow = decay * shadow + (1 - decay) * param. The shadows start
 * as copies of the parameters. Frozen parameters have no shadow: their EMA is themselves. */
#ifndef DUET_CORE_EMA_H
#define DUET_CORE_EMA_H

#include "core/params.h"

typedef struct duet_ema {
  double decay;           /* may be changed between updates (e.g. a warmup of the decay) */
  duet_param_set *params; /* borrowed; must not change after init */
  int count;
  duet_tensor **shadow;   /* per parameter; NULL for frozen ones */
  int64_t updates;
  int swapped;            /* the parameters currently hold the EMA weights */
} duet_ema;

/* Shadows for every trainable parameter (f32, on the parameter's device: the CPU or, in a CUDA
 * build, the GPU, where update and swap are kernels), initialised to their values. */
int duet_ema_init(duet_ema *e, duet_param_set *ps, double decay, duet_err *err);
void duet_ema_free(duet_ema *e);

/* Refused while swapped (the parameters hold the EMA weights then). */
int duet_ema_update(duet_ema *e, duet_err *err);

/* Exchanges the values of the parameters and their shadows in place (pointers stay put, so
 * views of the parameter storage stay valid): call once to evaluate with the EMA weights and
 * once more to get the training weights back. */
void duet_ema_swap(duet_ema *e);

/* The EMA value of parameter i (the shadow, or the parameter itself when frozen), whatever the
 * swap state: what a saved EMA model holds. */
const duet_tensor *duet_ema_weights(const duet_ema *e, int i);

/* Copies the EMA weights into dst by name (e.g. a separate model used for evaluation or
 * export). Every parameter of the EMA must exist in dst as f32 with the same shape. */
int duet_ema_copy_to(const duet_ema *e, duet_param_set *dst, duet_err *err);

/* Index of name, or -1. */
int duet_ema_index(const duet_ema *e, const char *name);

#endif
