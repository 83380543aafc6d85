/* Sampling the flow in latent space: Euler or Heun steps from t = 1 (noise) to t = 0, with
 * per-modality classifier-free guidance, for every task of the training mixture.
 *
 * Kept regions (the first frame of i2av, the first k frames of an extension, the outside of an
 * inpainting mask, the whole video of v2a, ...) reach the network as [condition, mask]
 * channels exactly as in training, and are copied into the result at the end. A modality that
 * is left out (t2v's audio, t2a's video) stays pure noise at t = 1, as in training. */
#ifndef DUET_INFER_SAMPLER_H
#define DUET_INFER_SAMPLER_H

#include "model/flow.h"

typedef enum duet_sampler_kind { DUET_SAMPLER_EULER = 0, DUET_SAMPLER_HEUN = 1 } duet_sampler_kind;

typedef struct duet_sample_params {
  duet_task task;
  duet_sampler_kind sampler;
  int steps;
  double cfg_video, cfg_audio; /* 1 = no guidance (one pass); > 1 adds an unconditional pass */
  double sync_cfg_video;       /* cross-modal guidance of the video by the audio: the video's
                                  velocity is pushed away from the one it has with the audio left
                                  out (pure noise at t_a = 1, as the t2v task trains) by this
                                  scale; 1 = off. Only where the audio is present */
  double sync_cfg_audio;       /* the same for the audio, guided by the video (t2a left-out
                                  rows); also in v2a, where it strengthens the sound's reading of
                                  the given video */
  double time_shift;           /* schedule shift (>= 1 spends more steps at high noise) */
  uint64_t seed;
  double clamp_video;          /* > 0: each step's clean-video estimate x_t - t v is held within
                                  [-clamp_video, clamp_video] (the pixel codec's range is 1) */
  double clamp_audio;          /* > 0: the clean-audio estimate is held at or below clamp_audio
                                  (the log-mel codec puts silence at -1, full-scale sound near +1;
                                  the synthetic clips' loudest value is 0.66) */
  double audio_lag;            /* in [-1, 1]: the audio runs this far behind the video in flow
                                  time (t2av, i2av, inpaint, extend): video and audio follow one
                                  schedule s from 1 + lag to 0 with t_v = clamp(s - lag) and
                                  t_a = clamp(s), so the sound is made for a video that is
                                  already partly resolved; negative: the video behind the audio.
                                  Models trained with flow.audio_lag_prob > 0 (and a lag of the
                                  same sign) know such pairs; 0 = shared times. Ignored by
                                  tasks that keep or leave out a whole stream */
} duet_sample_params;

void duet_sample_params_defaults(duet_sample_params *p);

/* Flow times of step i (of p->steps) for a generated stream: from (tv0, ta0) to (tv1, ta1). */
void duet_sample_times(const duet_sample_params *p, int i, double *tv0, double *tv1, double *ta0, double *ta1);

/* Conditions in latent space (host, f32); NULL where the task keeps nothing of a modality. */
typedef struct duet_sample_condition {
  const float *video;      /* [T,H,W,C] clean latent of what is kept */
  const float *video_keep; /* [T,H,W] 1 = keep, 0 = generate (NULL: derived from the task) */
  const float *audio;      /* [F,M] */
  const float *audio_keep; /* [F] */
  int keep_frames;         /* extend: video frames kept from the start (audio follows) */
  const int32_t *text_ids; /* [L] caption bytes (byte encoder) */
  const float *text_emb;   /* [L,D] (precomputed encoder) */
  const uint8_t *text_mask;/* [L] */
} duet_sample_condition;

/* Called after each step with (step, steps); may be NULL. */
typedef void (*duet_sample_progress)(int step, int steps, void *ctx);

/* Writes video latent [T,H,W,C] and audio latent [F,M]. Deterministic in params->seed. */
int duet_sample(duet_mmdit *m, const duet_sample_params *p, const duet_sample_condition *cond, float *video_out,
                float *audio_out, duet_sample_progress progress, void *progress_ctx, duet_err *err);

#endif
