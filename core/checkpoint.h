/* Checkpoints: everything a run needs to continue bit for bit, in one directory per save.
 *
 *   <run>/step_000100/model.safetensors   the weights (keys: parameter names)
 *   <run>/step_000100/ema.safetensors     EMA weights, same keys (a complete model on its own)
 *   <run>/step_000100/optim.safetensors   AdamW moments "m.<name>", "v.<name>"; its step and
 *                                         hyperparameters in __metadata__
 *   <run>/step_000100/state.json          step, RNG, loader position, trainer scalars
 *   <run>/last -> step_000100             relative symlink to the newest complete checkpoint
 *
 * A save writes into a hidden temporary directory (".step_000100.tmp-<pid>"), flushes it,
 * renames it into place and only then repoints `last` (a new symlink renamed over the old).
 * A save that fails or is interrupted leaves the previous checkpoints and `last` as they were
 * and nothing under the final name. `last` is a symlink rather than a file naming the step so
 * that every tool can be given <run>/last as if it were the directory itself.
 *
 * Integers in state.json are JSON strings of decimal digits (JSON numbers lose precision
 * beyond 2^53 in most readers); doubles are JSON numbers with as many significant digits as
 * reading them back to the same bits takes (at most 17), and non-finite ones are the strings
 * "nan", "inf", "-inf" (a NaN's payload is not kept). */
#ifndef DUET_CORE_CHECKPOINT_H
#define DUET_CORE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "core/ema.h"
#include "core/optim.h"
#include "core/params.h"
#include "core/rng.h"

/* The shortest "%.<N>g" text (N = 1..17) that strtod reads back to the same bits, so that
 * 0.1 is written "0.1" and still round-trips exactly. Returns buf. */
const char *duet_format_double(char *buf, size_t size, double v);

/* ---- trainer scalars: a small ordered key -> int64 | double dictionary ---- */

typedef enum duet_scalar_kind { DUET_SCALAR_I64 = 0, DUET_SCALAR_F64 = 1 } duet_scalar_kind;

typedef struct duet_scalar {
  char *key;
  duet_scalar_kind kind;
  int64_t i;
  double f;
} duet_scalar;

typedef struct duet_scalars {
  duet_scalar *items;
  int count, capacity;
} duet_scalars;

void duet_scalars_init(duet_scalars *s);
void duet_scalars_free(duet_scalars *s);
/* Sets (adds or replaces, also changing the kind) key. */
int duet_scalars_set_i64(duet_scalars *s, const char *key, int64_t v, duet_err *err);
int duet_scalars_set_f64(duet_scalars *s, const char *key, double v, duet_err *err);
const duet_scalar *duet_scalars_find(const duet_scalars *s, const char *key);
/* DUET_EINVAL naming the key when it is absent or of the other kind. */
int duet_scalars_get_i64(const duet_scalars *s, const char *key, int64_t *v, duet_err *err);
int duet_scalars_get_f64(const duet_scalars *s, const char *key, double *v, duet_err *err);

/* ---- the training state of state.json ---- */

typedef struct duet_train_state {
  int64_t step;             /* optimizer updates taken */
  duet_rng rng;             /* the run's generator (seed, stream, offset) */
  int64_t epoch;            /* loader position: epoch ... */
  int64_t samples_consumed; /* ... and samples taken from it */
  duet_scalars scalars;     /* whatever else the trainer needs back */
} duet_train_state;

void duet_train_state_init(duet_train_state *s);
void duet_train_state_free(duet_train_state *s);
/* Writes / reads one state.json (atomically; strict on read: format, version, every field). */
int duet_train_state_write(const char *path, const duet_train_state *s, duet_err *err);
int duet_train_state_read(const char *path, duet_train_state *s, duet_err *err);

/* ---- single-part files ---- */

/* optim.safetensors: every trainable parameter's moments and the optimizer's step. */
int duet_optim_save(const char *path, const duet_adamw *opt, duet_err *err);
/* Restores moments and step (hyperparameters stay as configured: a resumed run may change
 * them). The file must hold exactly the optimizer's trainable parameters, with their shapes. */
int duet_optim_load(const char *path, duet_adamw *opt, duet_err *err);
/* ema.safetensors: the EMA weights of every parameter (frozen ones as they are). */
int duet_ema_save(const char *path, const duet_ema *ema, duet_err *err);
/* Restores the shadows and the update count; refused while the EMA weights are swapped in. */
int duet_ema_load(const char *path, duet_ema *ema, duet_err *err);

/* ---- checkpoint directories ---- */

typedef struct duet_ckpt {
  duet_param_set *model;   /* required */
  duet_ema *ema;           /* optional: ema.safetensors */
  duet_adamw *optim;       /* optional: optim.safetensors */
  duet_train_state *state; /* required: state.json; its step names the directory */
  /* Optional NULL-terminated key, value, key, value, ... list for model.safetensors'
   * __metadata__ (e.g. the model's config, so that inference can rebuild it). */
  const char *const *model_meta;
} duet_ckpt;

/* Saves into <run_dir>/step_<step, 6 digits>/ and repoints <run_dir>/last. A checkpoint of
 * the same step already there is replaced. The final directory's path goes to out_dir (may be
 * NULL). Nothing the save reads is modified. */
int duet_ckpt_save(const char *run_dir, const duet_ckpt *c, char *out_dir, size_t out_size, duet_err *err);

/* Loads from a checkpoint directory (e.g. "<run>/last" or "<run>/step_000100") into every
 * part that c names. All files are opened and checked (keys, shapes, dtypes, state fields)
 * before any part is modified. */
int duet_ckpt_load(const char *ckpt_dir, const duet_ckpt *c, duet_err *err);

/* The directory <run_dir>/last points at, as a path; DUET_EIO when the run has none. */
int duet_ckpt_last(const char *run_dir, char *out, size_t size, duet_err *err);

#endif
