/* A training run's settings: the [model], [flow], [audio], [data] and [train] sections of a
 * config file (every key is listed in docs/configs.md and by `duet-train --help`).
 *
 * The tables that read them are core/config tables, so loading, --set overrides, writing the
 * resolved config into the run folder and --help all walk the same description. */
#ifndef DUET_TRAIN_TRAIN_CONFIG_H
#define DUET_TRAIN_TRAIN_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"
#include "core/schedule.h"
#include "data/clips.h"
#include "model/audio_codec.h"
#include "model/config.h"
#include "model/config_keys.h"
#include "model/flow.h"


typedef struct duet_data_settings {
  char path[DUET_CFG_STRING_MAX];
  int64_t val_clips; /* the last val_clips clips of the file are held out; 0: no validation */
  int batch;         /* clips per micro-batch (per rank) */
  int read_ahead;    /* batches the loader prepares ahead of the step */
  int threads;       /* loader threads (I/O + decoding) */
  int crop_height, crop_width; /* 0, 0: frames as stored */
  bool random_crop;
  bool flip;
} duet_data_settings;

typedef struct duet_train_settings {
  int64_t steps;
  double lr, min_lr;
  int64_t warmup;
  duet_lr_kind schedule;
  double weight_decay, beta1, beta2, eps;
  double grad_clip; /* 0: no clipping (the norm is still computed and logged) */
  double ema_decay;
  int accum;        /* micro-batches per optimizer step */
  int64_t seed;
  int64_t log_every, val_every, ckpt_every; /* 0: never (checkpoints: only at the end) */
  int keep_checkpoints; /* newest step_N/ folders kept; 0: all */
  bool zero1;           /* under mpirun: shard the AdamW moments across ranks (ZeRO-1) */
  bool overlap_allreduce; /* under mpirun: reduce gradients while backward still runs */
  int val_batches;
  char run_dir[DUET_CFG_STRING_MAX];
  int threads; /* compute threads (OpenMP, BLAS); 0: the runtime's default */
  int device;  /* a duet_device: where parameters, optimizer state and the step live */
  int precision; /* a duet_train_precision: what the forward and backward compute in */
  int matmul_precision; /* a duet_matmul_precision: the inputs of the CPU backend's f32 products */
} duet_train_settings;

/* train.precision. bf16: f32 master weights, gradients and AdamW moments; each micro-batch's
 * forward and backward run on bf16 copies of the weights (train.device = cuda only). */
typedef enum duet_train_precision { DUET_PRECISION_F32 = 0, DUET_PRECISION_BF16 = 1 } duet_train_precision;

typedef struct duet_train_config {
  duet_model_config model;
  duet_flow_config flow;
  duet_audio_settings audio;
  duet_data_settings data;
  duet_train_settings train;
} duet_train_config;

#define DUET_TRAIN_CFG_GROUPS 5

void duet_train_config_defaults(duet_train_config *c);

/* The five groups (one per section) over c, for the core/config functions. */
void duet_train_config_groups(duet_train_config *c, duet_cfg_group groups[DUET_TRAIN_CFG_GROUPS]);

/* Loads a file over the current values (the defaults, or an earlier file). */
int duet_train_config_load(duet_train_config *c, const char *path, duet_err *err);
/* Applies one "section.key=value". */
int duet_train_config_set(duet_train_config *c, const char *assignment, duet_err *err);
/* The same on a resumed run, where only train.steps, the logging and checkpoint intervals and
 * train.keep_checkpoints may change: anything else is an error naming the key. */
int duet_train_config_set_on_resume(duet_train_config *c, const char *assignment, duet_err *err);

/* Consistency of the settings among themselves (model, flow, schedule, and the audio codec
 * against the model: n_mels == audio_channels, sample_rate / hop == audio_rate). */
int duet_train_config_validate(const duet_train_config *c, duet_err *err);

/* Whether a clip file of this shape fits the model and the codecs; the message names both
 * sides ("data/x.h5: clips have 48 frames but model.video_frames = 32"). */
/* A warning (1, message in buf) when a branch is narrower than the numbers its token carries. */
int duet_train_capacity_warning(const duet_model_config *m, char *buf, size_t size);
int duet_train_check_data(const duet_train_config *c, const duet_clip_shape *shape,
                          int has_text_emb, const char *path, duet_err *err);

/* The codec config the [audio] section describes. */
void duet_train_audio_codec_config(const duet_train_config *c, duet_audio_codec_config *out);

/* The resolved config as INI text (heap; the caller frees), and written atomically. */
int duet_train_config_format(const duet_train_config *c, char **text, duet_err *err);
int duet_train_config_write(const duet_train_config *c, const char *path, duet_err *err);
/* Reads a config back from INI text (e.g. a checkpoint's "duet.config" metadata) over the
 * defaults; name stands for the source in messages. */
int duet_train_config_parse(duet_train_config *c, const char *text, const char *name, duet_err *err);

/* One line per key of every section. */
void duet_train_config_print_help(FILE *f);

#endif
