/* Finite-difference gradient checks in f64 for the ops of core/ops.h.
 *
 * A check builds an expression from heap tensors (the inputs), reduces its output to a scalar
 * loss = sum(out * R) with a fixed random R (so every output element matters with a different
 * weight), runs backward, and compares each input's analytic gradient with central
 * differences (x +- h). */
#ifndef DUET_TESTS_GRADCHECK_H
#define DUET_TESTS_GRADCHECK_H

#include "core/ops.h"

typedef duet_tensor *(*gc_build_fn)(duet_graph *g, duet_tensor *const *inputs, void *ctx);

typedef struct gc_options {
  double h;            /* step; default 1e-6 */
  double rtol, atol;   /* |analytic - numeric| <= atol + rtol * max(|a|, |n|); 1e-5, 1e-7 */
  int max_elements;    /* per input, a random subset when larger; default 200 */
} gc_options;

/* Returns the number of mismatching elements (0 = pass) and prints the worst; inputs that
 * have requires_grad set are checked. A build that fails (graph error) counts as 1. */
int gradcheck(const char *name, gc_build_fn build, void *ctx, duet_tensor *const *inputs, int n,
              const gc_options *opts);

/* A heap f64 tensor filled with uniform values in [lo, hi) from seed (requires_grad set). */
duet_tensor *gc_rand(int ndim, const int64_t *shape, uint64_t seed, double lo, double hi);
/* Runs the op in f32 and in f64 on the same (f32-rounded) inputs and CHECKs that outputs and
 * the gradients of the inputs that require one agree to 1e-5 of the largest f64 magnitude.
 * At most 8 inputs. */
void gc_check_f32_f64(const char *name, gc_build_fn build, void *ctx, duet_tensor *const *src, int n);

/* Frees tensors made by gc_rand (and their gradients). */
void gc_free(duet_tensor *const *ts, int n);

#endif
