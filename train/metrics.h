/* <run_dir>/metrics.jsonl: one JSON object per line, one line per training step and one per
 * validation pass, and the loss history kept in memory for loss.png.
 *
 *   {"kind":"train","step":12,"loss":0.81,"loss_video":0.7,"loss_audio":0.92,"grad_norm":0.84,
 *    "lr":0.0003,"tokens_per_s":5120,"samples":48,"epoch":0,"time_s":6.1}
 *   {"kind":"val","step":100,"loss":0.75,"loss_video":0.66,"loss_audio":0.84,"clips":16}
 *
 * "step" is the number of optimizer updates done; a train line's losses are those of the
 * forward pass of that update. The JSON objects are built once and printed into one buffer, so
 * logging a step allocates nothing. */
#ifndef DUET_TRAIN_METRICS_H
#define DUET_TRAIN_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "core/error.h"

typedef struct duet_train_record {
  int64_t step;
  double loss, loss_video, loss_audio;
  double grad_norm, lr, tokens_per_s;
  int64_t samples; /* clips seen since the run began */
  int64_t epoch;
  double time_s;   /* training time since the run began, across resumes */
} duet_train_record;

typedef struct duet_val_record {
  int64_t step;
  double loss, loss_video, loss_audio;
  int64_t clips;
  int has_ema; /* the same pass with the EMA weights: */
  double ema_loss, ema_loss_video, ema_loss_audio;
} duet_val_record;

typedef struct duet_loss_history {
  int64_t *step;
  float *loss;
  int64_t n, cap;
} duet_loss_history;

struct cJSON;

typedef struct duet_metrics {
  FILE *f;
  char path[4096];
  struct cJSON *train, *val, *val_ema; /* one line object each; val_ema adds the EMA's losses */
  char *line;
  int line_cap;
  duet_loss_history train_hist, val_hist;
} duet_metrics;

/* Opens path for appending. keep_until < 0: a new run, the file is created empty. Otherwise a
 * resumed run at step keep_until: lines of later steps (written after the checkpoint the run
 * resumes from) and a torn last line are dropped, the file is rewritten atomically, and the
 * history is reloaded from it. capacity: history entries to reserve (the run's steps). */
int duet_metrics_open(duet_metrics *m, const char *path, int64_t keep_until, int64_t capacity,
                      duet_err *err);
int duet_metrics_log_train(duet_metrics *m, const duet_train_record *r, duet_err *err);
int duet_metrics_log_val(duet_metrics *m, const duet_val_record *r, duet_err *err);
void duet_metrics_close(duet_metrics *m);

#endif
