/* AdamW over a parameter set, and the gradient utilities that run before it (global-norm
 * clipping, scaling).
 *
 * Parameters are the f32 master weights; the moments m and v are f32 tensors of the same
 * shapes, allocated once at init. The update follows PyTorch's torch.optim.AdamW (decoupled
 * decay multiplied by lr, bias-corrected moments, eps added after the square root), so a twin
 * in PyTorch reproduces duet's numbers.
 *
 * The update of one element depends only on (p, g, m, v) and the step's hyperparameters
 * (duet_adamw_hparams), so any contiguous range of a parameter can be updated on its own:
 * duet_adamw_update_range() is the building block for sharding the optimizer state across
 * ranks (ZeRO-1) and the specification a GPU kernel must match. */
#ifndef DUET_CORE_OPTIM_H
#define DUET_CORE_OPTIM_H

#include <math.h>

#include "core/params.h"

typedef struct duet_adamw_config {
  double beta1;        /* 0.9 */
  double beta2;        /* 0.999 */
  double eps;          /* 1e-8 */
  double weight_decay; /* applied as p -= lr * weight_decay * p, to decaying parameters only */
} duet_adamw_config;

duet_adamw_config duet_adamw_defaults(void);

/* Whether a parameter's weights decay; evaluated once per parameter at init. */
typedef int (*duet_decay_rule)(const duet_tensor *param, void *ctx);

/* The default rule: matrices and higher decay; vectors and scalars (biases, norm gains,
 * modulation offsets) do not, nor do embedding tables, recognised by a dot-separated name
 * component ending in "emb", "embed", "embedding" or "embeddings" ("text.tok_emb.weight",
 * "pos_embed"; not "t_embedder.mlp.0.weight"). */
int duet_decay_default(const duet_tensor *param, void *ctx);

/* The constants of one step for one parameter. bc1 and bc2 are the bias corrections
 * 1 - beta^step; weight_decay is already 0 for a parameter that does not decay. */
typedef struct duet_adamw_hparams {
  float lr, beta1, beta2, eps, weight_decay;
  float one_minus_beta1, one_minus_beta2; /* from double: 1 - 0.999f is 1.3e-5 off in float */
  float step_size;     /* lr / bc1 */
  float bc2_sqrt;      /* sqrt(bc2) */
  float decay_factor;  /* 1 - lr * weight_decay */
} duet_adamw_hparams;

/* step counts from 1 (the first update). */
duet_adamw_hparams duet_adamw_hparams_make(const duet_adamw_config *cfg, double lr, int64_t step,
                                           int decay);

static inline void duet_adamw_update_elem(float *p, float g, float *m, float *v,
                                          const duet_adamw_hparams *h) {
  float mi = h->beta1 * *m + h->one_minus_beta1 * g;
  float vi = h->beta2 * *v + h->one_minus_beta2 * g * g;
  *m = mi;
  *v = vi;
  float denom = sqrtf(vi) / h->bc2_sqrt + h->eps;
  *p = *p * h->decay_factor - h->step_size * mi / denom;
}

/* Elements [lo, hi) of one parameter, its gradient and its moments (OpenMP over elements). */
void duet_adamw_update_range(float *p, const float *g, float *m, float *v, int64_t lo, int64_t hi,
                             const duet_adamw_hparams *h);

/* Whether parameters on dev can be optimised here: the CPU always, the GPU in a CUDA build
 * (fused kernels of core/cuda/cuda_optim.h, bit for bit the CPU's arithmetic). */
int duet_optim_device_ok(duet_device dev);
/* duet_adamw_update_range() on tensors of any supported device (all four on the same one). */
int duet_adamw_update_tensor(duet_tensor *p, const duet_tensor *g, duet_tensor *m, duet_tensor *v, int64_t lo,
                             int64_t hi, const duet_adamw_hparams *h, duet_err *err);

typedef struct duet_adamw {
  duet_adamw_config cfg;
  duet_param_set *params; /* borrowed; its parameters must not change after init */
  int count;
  /* Per parameter, in the set's order. m[i] and v[i] are NULL for a frozen parameter
   * (requires_grad == 0), which the optimizer never touches. */
  duet_tensor **m, **v;
  uint8_t *decay;
  int64_t step; /* updates taken; the next one is step + 1 */
} duet_adamw;

/* Allocates zeroed moments for every trainable parameter (all must be f32, on the CPU or, in
 * a CUDA build, the GPU; the moments live beside their parameter).
 * rule NULL means duet_decay_default. */
int duet_adamw_init(duet_adamw *opt, duet_param_set *ps, const duet_adamw_config *cfg,
                    duet_decay_rule rule, void *rule_ctx, duet_err *err);
void duet_adamw_free(duet_adamw *opt);

/* Overrides the rule for one parameter by name. */
int duet_adamw_set_decay(duet_adamw *opt, const char *name, int decay, duet_err *err);

/* One update of every trainable parameter from its .grad with learning rate lr (the caller
 * takes it from a schedule), then step += 1. Gradients are left as they are. */
int duet_adamw_step(duet_adamw *opt, double lr, duet_err *err);

/* Index of name in the optimizer (and parameter set), or -1. */
int duet_adamw_index(const duet_adamw *opt, const char *name);

/* Sum of squares of every gradient, accumulated in double in fixed-size blocks that are added
 * in a fixed order, so the result does not depend on the number of threads. Device gradients
 * are reduced on their device (deterministically too; the sum is read back). */
double duet_grad_sumsq(const duet_param_set *ps);

/* Computes the global L2 norm of all gradients into *norm (always, when norm is not NULL).
 * A NaN or Inf norm returns DUET_ENUMERIC, names the first parameter with a non-finite
 * gradient and leaves the gradients untouched, so the caller can skip the step. Otherwise,
 * when max_norm > 0 and the norm exceeds it, every gradient is multiplied by max_norm / norm
 * (no epsilon: the clipped norm is max_norm up to rounding). */
int duet_grad_clip(duet_param_set *ps, double max_norm, double *norm, duet_err *err);

/* Multiplies every gradient by s (e.g. 1 / micro-batches when accumulating). */
void duet_grad_scale(duet_param_set *ps, double s);

#endif
