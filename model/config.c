#include "model/config.h"

#include <math.h>

void duet_model_config_defaults(duet_model_config *c) {
  *c = (duet_model_config){
      .video_frames = 32, .video_height = 32, .video_width = 32, .video_channels = 3,
      .patch_t = 2, .patch_h = 4, .patch_w = 4, .fps = 16,
      .audio_frames = 128, .audio_channels = 64, .patch_a = 4, .audio_rate = 64,
      .width_video = 128, .width_audio = 128, .width_text = 128,
      .heads_video = 4, .heads_audio = 4, .heads_text = 4,
      .depth = 4, .single_depth = 0, .mlp_ratio = 4.0, .fusion = DUET_FUSION_CROSS,
      .text_source = DUET_TEXT_BYTES, .text_len = 64, .text_vocab = 4096, .text_layers = 2, .text_emb_dim = 0,
      .rope_time_pairs = 8, .rope_theta = 10000.0, .rope_time_scale = 16.0, .aligned_width = 0,
      .video_prediction = DUET_PREDICT_VELOCITY, .audio_prediction = DUET_PREDICT_VELOCITY,
      .ref_video_frames = 0, .ref_audio_frames = 0,
  };
}

static int div_check(duet_err *err, const char *what, int n, const char *pname, int p) {
  if (p <= 0) return duet_err_set(err, DUET_EINVAL, "model.%s must be positive, got %d", pname, p);
  if (n % p) return duet_err_set(err, DUET_EINVAL, "model.%s=%d does not divide %s=%d", pname, p, what, n);
  return DUET_OK;
}

static int heads_check(duet_err *err, const char *wname, int w, const char *hname, int h, int time_pairs) {
  if (w <= 0 || h <= 0 || w % h)
    return duet_err_set(err, DUET_EINVAL, "model.%s=%d must be a positive multiple of model.%s=%d", wname, w, hname, h);
  int dh = w / h;
  if (dh % 2) return duet_err_set(err, DUET_EINVAL, "model.%s/%s = %d: head size must be even (rotary pairs)", wname, hname, dh);
  if (time_pairs > dh / 2)
    return duet_err_set(err, DUET_EINVAL, "model.rope_time_pairs=%d exceeds the %d rotary pairs of a %s head", time_pairs, dh / 2, wname);
  return DUET_OK;
}

int duet_model_config_validate(const duet_model_config *c, duet_err *err) {
  int rc;
  if (c->video_frames <= 0 || c->video_height <= 0 || c->video_width <= 0 || c->video_channels <= 0)
    return duet_err_set(err, DUET_EINVAL, "model: video size must be positive");
  if (c->audio_frames <= 0 || c->audio_channels <= 0)
    return duet_err_set(err, DUET_EINVAL, "model: audio size must be positive");
  if ((rc = div_check(err, "video_frames", c->video_frames, "patch_t", c->patch_t)) ||
      (rc = div_check(err, "video_height", c->video_height, "patch_h", c->patch_h)) ||
      (rc = div_check(err, "video_width", c->video_width, "patch_w", c->patch_w)) ||
      (rc = div_check(err, "audio_frames", c->audio_frames, "patch_a", c->patch_a)))
    return rc;
  if (c->fps <= 0 || c->audio_rate <= 0)
    return duet_err_set(err, DUET_EINVAL, "model.fps and model.audio_rate must be positive");
  if (c->rope_time_pairs < 1) return duet_err_set(err, DUET_EINVAL, "model.rope_time_pairs must be >= 1");
  if ((rc = heads_check(err, "width_video", c->width_video, "heads_video", c->heads_video, c->rope_time_pairs)) ||
      (rc = heads_check(err, "width_audio", c->width_audio, "heads_audio", c->heads_audio, c->rope_time_pairs)) ||
      (rc = heads_check(err, "width_text", c->width_text, "heads_text", c->heads_text, 0)))
    return rc;
  if (c->depth < 0 || c->single_depth < 0 || c->depth + c->single_depth < 1)
    return duet_err_set(err, DUET_EINVAL, "model.depth + model.single_depth must be >= 1");
  if ((c->single_depth > 0 || c->fusion == DUET_FUSION_JOINT) &&
      (c->width_video != c->width_audio || c->heads_video != c->heads_audio))
    return duet_err_set(err, DUET_EINVAL,
                        "model: fusion=joint and single_depth>0 need width_video == width_audio and heads_video == heads_audio");
  if (c->fusion == DUET_FUSION_JOINT && c->width_text != c->width_video)
    return duet_err_set(err, DUET_EINVAL, "model: fusion=joint needs width_text == width_video");
  if (c->mlp_ratio <= 0) return duet_err_set(err, DUET_EINVAL, "model.mlp_ratio must be positive");
  if (c->text_len < 1) return duet_err_set(err, DUET_EINVAL, "model.text_len must be >= 1");
  if (c->text_source == DUET_TEXT_PRECOMPUTED && c->text_emb_dim < 1)
    return duet_err_set(err, DUET_EINVAL, "model.text_emb_dim must be set for text_source=precomputed");
  if (c->ref_video_frames < 0 || c->ref_audio_frames < 0)
    return duet_err_set(err, DUET_EINVAL, "model: reference lengths must be >= 0");
  if (c->ref_video_frames % c->patch_t) return div_check(err, "ref_video_frames", c->ref_video_frames, "patch_t", c->patch_t);
  if (c->ref_audio_frames % c->patch_a) return div_check(err, "ref_audio_frames", c->ref_audio_frames, "patch_a", c->patch_a);
  if (c->aligned_width < 0) return duet_err_set(err, DUET_EINVAL, "model.aligned_width must be >= 0");
  if (c->aligned_width > 0 && c->fusion != DUET_FUSION_CROSS)
    return duet_err_set(err, DUET_EINVAL, "model.aligned_width needs fusion = cross");
  if (c->aligned_width > 0 && !duet_model_audio_per_video_step(c))
    return duet_err_set(err, DUET_EINVAL,
                        "model.aligned_width: a video token's time (patch_t/fps = %g s) must hold a whole number of "
                        "audio tokens (patch_a/audio_rate = %g s) and video and audio must last equally long",
                        c->patch_t / c->fps, c->patch_a / c->audio_rate);
  return DUET_OK;
}

int duet_model_audio_per_video_step(const duet_model_config *c) {
  int gt = c->video_frames / c->patch_t, na = c->audio_frames / c->patch_a;
  if (gt < 1 || na % gt) return 0;
  int r = na / gt;
  /* The durations of one video token step and of r audio tokens agree (to rounding). */
  double dv = c->patch_t / c->fps, da = r * c->patch_a / c->audio_rate;
  return fabs(dv - da) <= 1e-9 * dv ? r : 0;
}

int duet_model_video_tokens(const duet_model_config *c) {
  return (c->video_frames / c->patch_t) * (c->video_height / c->patch_h) * (c->video_width / c->patch_w);
}
int duet_model_audio_tokens(const duet_model_config *c) { return c->audio_frames / c->patch_a; }
int duet_model_video_patch_dim(const duet_model_config *c) {
  return c->patch_t * c->patch_h * c->patch_w * c->video_channels;
}
int duet_model_audio_patch_dim(const duet_model_config *c) { return c->patch_a * c->audio_channels; }

int duet_text_reads_ids(duet_text_source source) { return source != DUET_TEXT_PRECOMPUTED; }
