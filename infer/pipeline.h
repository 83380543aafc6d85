/* The inference pipeline: one checkpoint in, one clip (video frames + waveform) out, for every
 * task. duet-infer and the benchmark suites both call duet_pipeline_run.
 *
 * A checkpoint directory is self-describing: its model.safetensors carries the resolved
 * [model], [flow] and [audio] config in the "duet.config" metadata entry, so the network and
 * its codecs are rebuilt from the weights file alone. */
#ifndef DUET_INFER_PIPELINE_H
#define DUET_INFER_PIPELINE_H

#include "infer/sampler.h"
#include "model/audio_codec.h"
#include "model/config_keys.h"
#include "model/video_codec.h"

typedef struct duet_pipeline {
  duet_model_config model_cfg;
  duet_flow_config flow_cfg;
  duet_audio_settings audio_settings;
  duet_audio_codec_config audio_cfg;
  duet_param_set params;
  duet_mmdit *model;
  duet_audio_codec *audio;
  duet_video_codec video;
} duet_pipeline;

/* Builds the model and codecs from configs (random weights until loaded). */
int duet_pipeline_create(duet_pipeline **out, const duet_model_config *mc, const duet_flow_config *fc,
                         const duet_audio_settings *as, duet_err *err);
/* Opens <ckpt_dir>/model.safetensors (or ema.safetensors when use_ema and present), reads the
 * config it carries, builds the pipeline and loads the weights. */
int duet_pipeline_open(duet_pipeline **out, const char *ckpt_dir, int use_ema, duet_err *err);
void duet_pipeline_free(duet_pipeline *p);

/* The config text a checkpoint made from this pipeline would carry (duet_model_config_text). */
int duet_pipeline_config_text(const duet_pipeline *p, char **text, duet_err *err);

/* A request in pixels and samples. Every input must have the model's frame size, rate and
 * length (frames up to the model's; audio up to its samples); shorter inputs are allowed
 * where the task keeps only a prefix (extend). */
typedef struct duet_av_request {
  duet_sample_params sample;
  const char *prompt;          /* UTF-8 caption; NULL or "" = unconditional */
  const uint8_t *image;        /* i2av: first frame [H, W, 3] */
  const uint8_t *video;        /* extend, inpaint, edit, v2a: [video_frames, H, W, 3] */
  int video_frames;
  const uint8_t *mask;         /* inpaint, edit: [T, H, W], non-zero = regenerate */
  const float *audio;          /* a2v, extend, inpaint: [audio_samples] mono at the codec rate */
  int64_t audio_samples;
  int keep_frames;             /* extend: video frames kept from the start */
  int is_edit;                 /* edit: like inpaint, but the audio is kept ... */
  int edit_audio;              /* ... unless this asks to regenerate it over the mask's time span */
} duet_av_request;

typedef struct duet_av_result {
  uint8_t *video; /* [frames, height, width, 3] */
  int frames, height, width;
  double fps;
  float *audio;   /* [samples] */
  int64_t samples;
  int sample_rate;
} duet_av_result;

void duet_av_result_free(duet_av_result *r);

/* Which tasks the pipeline accepts by name: t2av, i2av, extend, inpaint, edit, v2a, a2v, t2v, t2a. */
int duet_pipeline_task_parse(const char *name, int *task, int *is_edit);

int duet_pipeline_run(duet_pipeline *p, const duet_av_request *r, duet_av_result *out,
                      duet_sample_progress progress, void *progress_ctx, duet_err *err);

#endif
