/* Joint video-audio flow matching: the training objective and its task mixture.
 *
 * x_t = (1 - t) x_0 + t eps, target v = eps - x_0, per modality with its own time. Each
 * sample of a batch draws a task; the task decides which regions are kept (given to the
 * network as [condition, mask] channels) and which are generated, and the loss is a masked
 * MSE on v over the generated region only, summed over modalities with per-modality weights.
 *
 * Tasks: t2av (nothing kept), i2av (first video frame kept), extend (first k frames of both
 * kept), inpaint (a space-time box of video and the same span of audio generated), v2a
 * (t_v = 0, video kept), a2v (t_a = 0, audio kept), t2v and t2a (the other modality is left
 * out: it stays pure noise at t = 1 and carries no loss). */
#ifndef DUET_MODEL_FLOW_H
#define DUET_MODEL_FLOW_H

#include "model/mmdit.h"

typedef enum duet_task {
  DUET_TASK_T2AV, DUET_TASK_I2AV, DUET_TASK_EXTEND, DUET_TASK_INPAINT,
  DUET_TASK_V2A, DUET_TASK_A2V, DUET_TASK_T2V, DUET_TASK_T2A, DUET_TASK_COUNT
} duet_task;

extern const char *const duet_task_names[DUET_TASK_COUNT + 1]; /* NULL-terminated */

typedef enum duet_time_sampling {
  DUET_TIME_UNIFORM = 0,
  DUET_TIME_LOGIT_NORMAL = 1, /* sigmoid(N(mean, std)) */
} duet_time_sampling;

typedef struct duet_flow_config {
  duet_time_sampling time_sampling;
  double logit_mean, logit_std;
  double time_shift;      /* t' = s t / (1 + (s - 1) t); 1 = none (higher for larger grids) */
  double weight_video, weight_audio;
  double text_dropout;    /* probability of an empty caption (classifier-free guidance) */
  double task_prob[DUET_TASK_COUNT]; /* relative weights; need not sum to 1 */
  /* Audio behind the video: with probability audio_lag_prob a t2av or i2av sample draws its
   * audio time as min(1, t_v + u audio_lag_max), u ~ U(0, 1), instead of sharing t_v, so the
   * network learns to make sound for a partly resolved video (the sampler's --audio-lag). A
   * negative audio_lag_max puts the video behind instead: t_v = min(1, t_a + u |max|). */
  double audio_lag_prob, audio_lag_max;
  /* For a branch with model.*_prediction = clean: the loss of a sample is its x_0 error over
   * max(t, clean_loss_floor)^2 instead of max(t, DUET_CLEAN_MIN_TIME)^2, i.e. the velocity
   * error scaled by (max(t, 0.05) / max(t, floor))^2. The default, 0.05, keeps the plain
   * velocity loss; 1 is the plain x_0 loss. A floor above 0.05 takes weight off the nearly
   * clean times, whose x_0 errors a velocity loss multiplies by up to 400. */
  double clean_loss_floor;
} duet_flow_config;

void duet_flow_config_defaults(duet_flow_config *c);
int duet_flow_config_validate(const duet_flow_config *c, duet_err *err);

/* A batch in latent space (host memory, f32). */
typedef struct duet_flow_batch {
  int batch;
  const float *video;         /* [B, T, H, W, C] clean latents */
  const float *audio;         /* [B, F, M] */
  const int32_t *text_ids;    /* [B, L] (byte encoder) or NULL */
  const float *text_emb;      /* [B, L, D] (precomputed) or NULL */
  const uint8_t *text_mask;   /* [B, L] */
} duet_flow_batch;

typedef struct duet_flow_loss {
  duet_tensor *loss;                /* scalar to call backward on */
  duet_tensor *mse_video, *mse_audio; /* the unweighted masked MSEs, on the model's device */
  double loss_video, loss_audio;    /* their values: NaN until duet_flow_loss_read */
  int task_count[DUET_TASK_COUNT];
  const duet_tensor *t_video, *t_audio; /* [B] host f32: each sample's flow times */
} duet_flow_loss;

/* Draws tasks, times and noise for each sample from (seed, step, sample_base + b) — so a
 * sample's draws do not depend on how a global batch is split over ranks — builds the inputs
 * and the loss in g. force_task >= 0 overrides the mixture (tests). */
int duet_flow_loss_build(duet_graph *g, duet_mmdit *m, const duet_flow_config *fc, const duet_flow_batch *b,
                         uint64_t seed, uint64_t step, int64_t sample_base, int force_task, duet_flow_loss *out,
                         duet_err *err);

/* Reads loss_video and loss_audio from the graph. On a GPU that waits for the device, so a
 * training step calls it after queueing the backward, not between forward and backward. */
void duet_flow_loss_read(duet_flow_loss *fl);

/* The time of a sample from u ~ U(0,1) and n ~ N(0,1) under the config's sampling and shift. */
double duet_flow_sample_time(const duet_flow_config *c, double u, double n);
/* Applies the resolution shift to a time (also used by samplers for their schedule). */
double duet_flow_shift(double t, double shift);

#endif
