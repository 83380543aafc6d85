/* The model's hyper-parameters: the [model] section of a config (see configs/). */
#ifndef DUET_MODEL_CONFIG_H
#define DUET_MODEL_CONFIG_H

#include "core/error.h"

typedef enum duet_fusion {
  DUET_FUSION_CROSS = 0, /* per-branch joint attention with its text, then A->V and V->A cross-attention */
  DUET_FUSION_JOINT = 1, /* one attention over text, video and audio together (ablation) */
} duet_fusion;

typedef enum duet_text_source {
  DUET_TEXT_BYTES = 0,       /* built-in byte-level transformer, trained with the model */
  DUET_TEXT_PRECOMPUTED = 1, /* the dataset's /text_emb, projected */
  DUET_TEXT_WORDS = 2,       /* built-in transformer on hashed words, trained with the model */
} duet_text_source;

/* What a branch's output layer predicts. The model's output is always a velocity: with clean,
 * the network predicts x_0 and the forward turns it into the velocity it implies,
 * v = (x_t - x_0_hat) / max(t, DUET_CLEAN_MIN_TIME), so the loss and the samplers are the same
 * for both. In pixel space the clean image is the easier target: a velocity carries the noise,
 * which the network must pass through its width, while a clean frame lies near the data. */
typedef enum duet_prediction {
  DUET_PREDICT_VELOCITY = 0,
  DUET_PREDICT_CLEAN = 1,
} duet_prediction;
/* The floor of t in that division: below it the implied velocity would amplify the network's
 * error without bound (1/t); 0.05 is the floor of Li & He, "Back to Basics: Let Denoising
 * Generative Models Denoise" (2025). */
#define DUET_CLEAN_MIN_TIME 0.05

/* True when the text encoder reads token ids (bytes or words) rather than precomputed embeddings. */
int duet_text_reads_ids(duet_text_source source);

typedef struct duet_model_config {
  /* Video latent grid (pixels in [-1, 1] by default) and its patches. */
  int video_frames, video_height, video_width, video_channels;
  int patch_t, patch_h, patch_w;
  double fps; /* video latent frames per second */
  /* Audio latent (normalised log-mel frames) and its patches. */
  int audio_frames, audio_channels;
  int patch_a;
  double audio_rate; /* audio latent frames per second */

  int width_video, width_audio, width_text;
  int heads_video, heads_audio, heads_text;
  int depth;        /* dual-stream blocks */
  int single_depth; /* single-stream tail blocks (need width_video == width_audio) */
  double mlp_ratio;
  duet_fusion fusion;

  duet_text_source text_source;
  int text_len;    /* tokens (bytes or words) per caption */
  int text_vocab;  /* words: hash buckets (ids 1..text_vocab-1; 0 is padding) */
  int text_layers; /* built-in encoder depth */
  int text_emb_dim; /* precomputed embedding width D */

  /* Rotary positions: each head's Dh/2 rotation pairs start with rope_time_pairs pairs on the
   * shared time axis (measured in seconds times rope_time_scale), the rest on the branch's
   * own axes (video: h, w; audio: its fine time index). Both branches use the same time
   * pairs, so a video and an audio token at the same instant share their temporal phase. */
  int rope_time_pairs;
  double rope_theta;
  double rope_time_scale;

  /* Time-aligned exchange after each dual-stream block's cross-attentions (0 = off): every
   * audio token adds a projection of the video tokens of its instant (each first reduced to
   * aligned_width features), and every video token a projection of the audio tokens of its
   * instant. Needs fusion = cross and a whole number of audio tokens per video token time. */
  int aligned_width;

  duet_prediction video_prediction, audio_prediction;

  int ref_video_frames; /* reference frames prepended at negative times (0 = none) */
  int ref_audio_frames; /* reference audio latent frames (0 = none) */
} duet_model_config;

void duet_model_config_defaults(duet_model_config *c);
/* Checks divisibility, widths and head sizes; one line naming the first bad key. */
int duet_model_config_validate(const duet_model_config *c, duet_err *err);

/* Derived sizes. */
int duet_model_video_tokens(const duet_model_config *c);
int duet_model_audio_tokens(const duet_model_config *c);
int duet_model_video_patch_dim(const duet_model_config *c); /* features per video token */
int duet_model_audio_patch_dim(const duet_model_config *c);
/* Audio tokens per video token time step (patch_t / fps seconds); 0 when that is not a whole
 * number or the clip lengths differ. */
int duet_model_audio_per_video_step(const duet_model_config *c);

#endif
