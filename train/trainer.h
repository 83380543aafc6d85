/* The training loop: joint video-audio flow matching on a clip file, with AdamW, a
 * learning-rate schedule, gradient clipping and accumulation, an EMA of the weights,
 * validation on held-out clips, checkpoints that resume bit for bit, and logs.
 *
 * A trainer owns everything a run needs (model, optimizer, EMA, loaders, codecs, the step's
 * graph and buffers) and the run folder (layout in docs/train.md):
 *
 *   <run_dir>/config.ini      the resolved config (what --resume reads back)
 *   <run_dir>/metrics.jsonl   one JSON line per step and per validation pass
 *   <run_dir>/loss.png        training and validation loss curves
 *   <run_dir>/step_NNNNNN/    checkpoints (core/checkpoint.h); <run_dir>/last -> the newest
 *   <run_dir>/diag_step_N/    the state a NaN/Inf step started from, when one happens
 *
 * One step: for each of train.accum micro-batches, a loader batch is turned into latents
 * (pixels -> [-1, 1], waveform -> normalised log-mel, captions -> byte ids or the file's
 * text_emb), the flow-matching loss is built with draws that depend on (seed, step, the
 * clip's place in the epoch) only, and its gradient accumulated; then gradients are averaged
 * (over micro-batches and, through the dist seam, over ranks), clipped by global norm, and
 * AdamW and the EMA update the weights. After the first step a step allocates nothing.
 *
 * The library prints nothing: progress and notices go through the log callback. */
#ifndef DUET_TRAIN_TRAINER_H
#define DUET_TRAIN_TRAINER_H

#include <stdint.h>

#include "core/params.h"
#include "train/train_config.h"

struct duet_adamw; /* core/optim.h */

/* The data-parallel seam. A single process leaves it zeroed (rank 0 of 1, no reduction).
 * A multi-process launcher fills rank, world and allreduce_sum; everything else (sharding the
 * loader, averaging gradients and losses, only rank 0 writing files) follows from them. */
typedef struct duet_train_dist {
  int rank, world; /* world 0 is taken as 1 */
  /* Sums n values in place across every rank (every rank calls it with the same n, in the
   * same order). NULL: one process, nothing to do. */
  int (*allreduce_sum)(void *ctx, double *values, int64_t n, duet_err *err);
  int (*allreduce_sum_f32)(void *ctx, float *values, int64_t n, duet_err *err);
  /* Optional: sums every trainable gradient of ps across ranks in place in one call (e.g.
   * bucketed); NULL: allreduce_sum_f32 once per parameter. */
  int (*allreduce_grads)(void *ctx, duet_param_set *ps, duet_err *err);
  /* Optional: overlap of the gradient reduction with the backward pass that finishes the
   * gradients (the step's last micro-batch). Every rank calls grads_begin right before that
   * backward (it may agree on status, like allreduce_sum), passes grad_ready to
   * duet_graph_set_grad_ready for it (ctx as its ctx), and calls grads_end after it, whether or
   * not it succeeded, so that every rank makes the same collectives; allreduce_grads then finds
   * the work done. All three or none; NULL: reduce after backward only. */
  int (*grads_begin)(void *ctx, duet_param_set *ps, duet_err *err);
  void (*grad_ready)(void *ctx, duet_tensor *param);
  int (*grads_end)(void *ctx, duet_param_set *ps, duet_err *err);
  /* Optional, for optimizer state sharded across ranks (ZeRO-1): opt_step replaces
   * duet_adamw_step; opt_gather(ctx, opt, 1), called on every rank before a checkpoint, gives
   * rank 0 the full state to write, and opt_gather(ctx, opt, 0) drops it again afterwards. */
  int (*opt_step)(void *ctx, struct duet_adamw *opt, double lr, duet_err *err);
  int (*opt_gather)(void *ctx, struct duet_adamw *opt, int gather, duet_err *err);
  void *ctx;
} duet_train_dist;

/* One line of progress (no trailing newline). */
typedef void (*duet_train_log_fn)(void *ctx, const char *line);

typedef struct duet_trainer_opts {
  const duet_train_config *cfg; /* resolved and validated; copied */
  /* Continue the run in cfg->train.run_dir from its `last` checkpoint (the config must be
   * the run's own config.ini; see duet_train_config_set_on_resume). */
  int resume;
  /* A checkpoint directory whose model weights start a new run (fine-tuning); NULL: none.
   * The optimizer and the step start afresh. */
  const char *init_dir;
  duet_train_dist dist;
  duet_train_log_fn log;
  void *log_ctx;
} duet_trainer_opts;

/* What the last step did. */
typedef struct duet_train_stats {
  int64_t step; /* updates done, after this one */
  double loss, loss_video, loss_audio;
  double grad_norm; /* before clipping */
  double lr;
  int samples; /* clips in the step, all micro-batches and ranks */
  double step_seconds;
} duet_train_stats;

typedef struct duet_trainer duet_trainer;

/* Builds or restores everything: checks the config and the data against each other, creates
 * the run folder (a fresh run refuses a folder that already holds a run), writes config.ini
 * (again on resume, where train.steps may have changed), loads a checkpoint (resume) or
 * initial weights (init). */
int duet_trainer_create(duet_trainer **out, const duet_trainer_opts *opts, duet_err *err);
void duet_trainer_free(duet_trainer *t);

/* One optimizer step, then whatever is due after it: the metrics line, a progress line, a
 * validation pass, a checkpoint. A NaN or Inf loss or gradient norm saves the state the step
 * started from into <run_dir>/diag_step_N and returns DUET_ENUMERIC naming the step and the
 * loss. */
int duet_trainer_step(duet_trainer *t, duet_train_stats *stats, duet_err *err);

/* Steps until train.steps, then saves the final checkpoint and plot. */
int duet_trainer_run(duet_trainer *t, duet_err *err);

/* A checkpoint of the current state (and loss.png) now. */
int duet_trainer_save(duet_trainer *t, duet_err *err);

/* The mean validation loss over the held-out clips with fixed draws (the same every time it
 * is called with the same weights); also logged when log_it. DUET_EINVAL without held-out
 * clips. */
int duet_trainer_validate(duet_trainer *t, int log_it, double *loss, duet_err *err);

int64_t duet_trainer_steps_done(const duet_trainer *t);
const duet_param_set *duet_trainer_params(const duet_trainer *t);
const duet_train_config *duet_trainer_config(const duet_trainer *t);
/* Heap blocks the step arena has allocated so far (constant after the first step). */
int64_t duet_trainer_arena_allocs(const duet_trainer *t);

/* Parameters of a model config, counted by building the model. */
int duet_train_count_params(const duet_model_config *mc, int64_t *count, duet_err *err);

/* Reads a run's config.ini into c (over the defaults) and points train.run_dir at run_dir, so
 * a moved run folder still resumes. */
int duet_train_config_load_run(duet_train_config *c, const char *run_dir, duet_err *err);

#endif
