/* The trainer's state, shared by its files (not part of the public API). */
#ifndef DUET_TRAIN_TRAINER_INTERNAL_H
#define DUET_TRAIN_TRAINER_INTERNAL_H

#include "core/ema.h"
#include "core/fileio.h"
#include "core/graph.h"
#include "core/optim.h"
#include "core/schedule.h"
#include "data/loader.h"
#include "model/audio_codec.h"
#include "model/flow.h"
#include "model/mmdit.h"
#include "model/video_codec.h"
#include "train/metrics.h"
#include "train/trainer.h"

/* The flow "step" of validation draws: a constant no training step reaches, so every pass
 * draws the same times and noise and its losses are comparable across the run. */
#define DUET_VAL_FLOW_STEP UINT64_MAX

/* Latents of one micro-batch, sized for a full batch once. */
typedef struct duet_latent_batch {
  float *video;     /* [B, T, H, W, C] */
  float *audio;     /* [B, F, M] */
  int32_t *text_ids; /* [B, L] (byte encoder) */
  uint8_t *text_mask; /* [B, L] */
  duet_flow_batch flow;
  int64_t sample_base; /* global index of the batch's first clip in the data order */
} duet_latent_batch;

/* Sums over the micro-batches (and ranks) of one step or validation pass. */
typedef struct duet_loss_sums {
  double loss, loss_video, loss_audio, weight;
} duet_loss_sums;

/* train.precision = bf16 (trainer_precision.c): a bf16 copy of every parameter (with a bf16
 * gradient) that the forward and backward compute with, exchanged into the parameters' own
 * tensors between duet_mixed_begin and duet_mixed_end. */
typedef struct duet_mixed {
  duet_tensor **copies; /* [count], parallel to the param set's items */
  int count;
  duet_tensor *scratch; /* f32, as large as the largest gradient */
  int swapped;          /* the parameters hold the bf16 copies now */
} duet_mixed;

struct duet_trainer {
  duet_train_config cfg;
  duet_train_dist dist;
  duet_train_log_fn log;
  void *log_ctx;
  int is_main; /* rank 0: writes the run folder */
  char run_dir[DUET_PATH_MAX];

  duet_param_set params;
  duet_mmdit *model;
  duet_adamw opt;
  duet_ema ema;
  int have_opt, have_ema;
  duet_mixed mixed; /* empty (no copies) with train.precision = f32 */
  duet_graph graph;
  int have_graph;
  duet_lr_schedule sched;
  duet_flow_config val_flow; /* the training mixture without text dropout */

  duet_loader *train_loader, *val_loader;
  int64_t n_train, n_val;
  duet_audio_codec *audio_codec;
  duet_video_codec video_codec;
  duet_latent_batch lat;

  duet_metrics metrics;
  int have_metrics;
  char *config_text; /* the resolved config, stored in every checkpoint's model metadata */
  char param_count_text[32];

  int64_t step;         /* updates done */
  duet_loader_pos step_pos; /* where the step under way started reading (for its diagnostic) */
  int64_t samples_seen; /* clips, all ranks */
  double train_seconds; /* time spent in steps, across resumes */
  int64_t tokens_per_sample;
  int64_t last_ckpt_step;

  /* The log window: steps and tokens since the last progress line. */
  double window_seconds;
  int64_t window_tokens, window_steps;
};

/* trainer_batch.c: a loader batch -> latents and the flow batch over them. */
int duet_latent_batch_alloc(duet_trainer *t, duet_err *err);
void duet_latent_batch_free(duet_latent_batch *lb);
int duet_latent_batch_fill(duet_trainer *t, int64_t split_size, const duet_batch *b, duet_err *err);

/* trainer_precision.c. init: the copies of ps's (f32, on the device) parameters (on failure
 * duet_mixed_free still frees what was made). begin: refreshes the copies from the masters
 * and exchanges them in. end: exchanges them back and, when rc is DUET_OK, adds the bf16
 * gradients (as f32) into the masters' and zeroes them; returns rc, or its own failure. All
 * three are no-ops on an empty duet_mixed (train.precision = f32). */
int duet_mixed_init(duet_mixed *mx, const duet_param_set *ps, duet_err *err);
void duet_mixed_free(duet_mixed *mx);
int duet_mixed_begin(duet_mixed *mx, duet_param_set *ps, duet_err *err);
int duet_mixed_end(duet_mixed *mx, duet_param_set *ps, int rc, duet_err *err);

/* trainer_ckpt.c */
int duet_trainer_ckpt_save(duet_trainer *t, duet_err *err);
int duet_trainer_ckpt_resume(duet_trainer *t, duet_loader_pos *pos, duet_err *err);
int duet_trainer_init_weights(duet_trainer *t, const char *init_dir, duet_err *err);
/* Saves what a failed step started from into <run_dir>/diag_step_<step + 1>; dir gets its
 * path. Gradients are included, as they were when the failure was seen. */
int duet_trainer_diag_save(duet_trainer *t, char *dir, size_t size, duet_err *err);
int duet_trainer_plot(duet_trainer *t, duet_err *err);
/* trainer_prune.c: deletes the oldest step_N/ beyond train.keep_checkpoints. */
int duet_trainer_prune(duet_trainer *t, duet_err *err);

/* trainer_log.c */
void duet_trainer_logf(duet_trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void duet_trainer_log_progress(duet_trainer *t, const duet_train_stats *s);
double duet_trainer_now(void);

/* trainer_dist.c: sums across ranks (no-ops for one process). */
int duet_dist_sum(const duet_train_dist *d, double *v, int64_t n, duet_err *err);
int duet_dist_average_grads(const duet_train_dist *d, duet_param_set *ps, duet_err *err);
int duet_dist_world(const duet_train_dist *d);
/* The optimizer step and the gather of its state around a checkpoint (dist hooks when set). */
int duet_dist_opt_step(const duet_train_dist *d, duet_adamw *opt, double lr, duet_err *err);
int duet_dist_opt_gather(const duet_train_dist *d, duet_adamw *opt, int gather, duet_err *err);
/* DUET_EINVAL on every rank when any rank's n values (n <= 8) differ from rank 0's. */
int duet_dist_check_same(const duet_train_dist *d, const int64_t *v, int n, const char *what, duet_err *err);

#endif
