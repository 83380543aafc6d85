#include "infer/pipeline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"
#include "model/config_keys.h"

int duet_pipeline_config_text(const duet_pipeline *p, char **text, duet_err *err) {
  return duet_model_config_text(&p->model_cfg, &p->flow_cfg, &p->audio_settings, text, err);
}

int duet_pipeline_create(duet_pipeline **out, const duet_model_config *mc, const duet_flow_config *fc,
                         const duet_audio_settings *as, duet_err *err) {
  *out = NULL;
  duet_audio_codec_config codec_cfg;
  duet_audio_settings_to_codec(as, &codec_cfg);
  const duet_audio_codec_config *ac = &codec_cfg;
  int rc = duet_model_config_validate(mc, err);
  if (rc) return rc;
  if (mc->video_channels != 3)
    return duet_err_set(err, DUET_EINVAL, "model.video_channels=%d, but the pixel codec gives 3", mc->video_channels);
  if (ac->n_mels != mc->audio_channels)
    return duet_err_set(err, DUET_EINVAL, "audio.n_mels=%d does not match model.audio_channels=%d", ac->n_mels,
                        mc->audio_channels);
  double rate = (double)ac->sample_rate / ac->hop;
  if (fabs(rate - mc->audio_rate) > 1e-9 * rate)
    return duet_err_set(err, DUET_EINVAL, "audio.sample_rate / audio.hop = %g frames/s but model.audio_rate=%g", rate,
                        mc->audio_rate);
  duet_pipeline *p = calloc(1, sizeof *p);
  if (!p) return duet_err_set(err, DUET_ENOMEM, "out of memory for the pipeline");
  p->model_cfg = *mc;
  p->flow_cfg = *fc;
  p->audio_settings = *as;
  p->audio_cfg = *ac;
  duet_params_init(&p->params);
  if ((rc = duet_video_codec_init(&p->video, DUET_VIDEO_CODEC_PIXELS, err)) ||
      (rc = duet_audio_codec_create(ac, &p->audio, err)) ||
      (rc = duet_mmdit_create(&p->model, mc, &p->params, 0, err))) {
    duet_pipeline_free(p);
    return rc;
  }
  *out = p;
  return DUET_OK;
}

void duet_pipeline_free(duet_pipeline *p) {
  if (!p) return;
  duet_mmdit_free(p->model);
  duet_audio_codec_free(p->audio);
  duet_video_codec_free(&p->video);
  duet_params_free(&p->params);
  free(p);
}

int duet_pipeline_open(duet_pipeline **out, const char *ckpt_dir, int use_ema, duet_err *err) {
  *out = NULL;
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", ckpt_dir, use_ema ? "ema.safetensors" : "model.safetensors");
  duet_st_file *f = NULL;
  int rc = duet_st_open(&f, path, err);
  if (rc && use_ema) { /* a run without EMA: fall back to the raw weights */
    snprintf(path, sizeof path, "%s/model.safetensors", ckpt_dir);
    rc = duet_st_open(&f, path, err);
  }
  if (rc) return rc;
  /* The config lives in model.safetensors; EMA files carry the same weights' names only. */
  duet_st_file *meta_file = f;
  char mpath[4096];
  snprintf(mpath, sizeof mpath, "%s/model.safetensors", ckpt_dir);
  if (strcmp(mpath, path) != 0 && (rc = duet_st_open(&meta_file, mpath, err))) {
    duet_st_close(f);
    return rc;
  }
  const char *text = duet_st_meta(meta_file, DUET_CONFIG_META_KEY);
  duet_model_config mc;
  duet_flow_config fc;
  duet_audio_settings as;
  if (!text)
    rc = duet_err_set(err, DUET_EFORMAT, "%s: no '%s' metadata: not a duet checkpoint", mpath, DUET_CONFIG_META_KEY);
  else
    rc = duet_model_config_parse(text, mpath, &mc, &fc, &as, err);
  duet_pipeline *p = NULL;
  if (!rc) rc = duet_pipeline_create(&p, &mc, &fc, &as, err);
  if (!rc) {
    duet_st_load_opts opts = {NULL, 0, 0, 1, 0};
    rc = duet_st_load_params(f, &p->params, &opts, NULL, err);
  }
  if (meta_file != f) duet_st_close(meta_file);
  duet_st_close(f);
  if (rc) {
    duet_pipeline_free(p);
    return rc;
  }
  *out = p;
  return DUET_OK;
}

void duet_av_result_free(duet_av_result *r) {
  free(r->video);
  free(r->audio);
  memset(r, 0, sizeof *r);
}

static const char *const task_names_ext[] = {"t2av", "i2av", "extend", "inpaint", "v2a", "a2v", "t2v", "t2a", "edit"};

int duet_pipeline_task_parse(const char *name, int *task, int *is_edit) {
  for (int i = 0; i < 9; i++)
    if (strcmp(name, task_names_ext[i]) == 0) {
      *is_edit = i == 8;
      *task = i == 8 ? DUET_TASK_INPAINT : i;
      return DUET_OK;
    }
  return DUET_EINVAL;
}

/* What the request must bring, per task. */
static int check_request(const duet_pipeline *p, const duet_av_request *r, int64_t samples, duet_err *err) {
  const duet_model_config *c = &p->model_cfg;
  duet_task t = r->sample.task;
  const char *name = duet_task_names[t];
  if (t == DUET_TASK_I2AV && !r->image) return duet_err_set(err, DUET_EINVAL, "task i2av needs an image");
  int needs_video = t == DUET_TASK_EXTEND || t == DUET_TASK_INPAINT || t == DUET_TASK_V2A;
  if (needs_video && !r->video) return duet_err_set(err, DUET_EINVAL, "task %s needs a video", name);
  if (r->video && (r->video_frames < 1 || r->video_frames > c->video_frames))
    return duet_err_set(err, DUET_EINVAL, "the input video has %d frames; the model makes %d", r->video_frames,
                        c->video_frames);
  if ((t == DUET_TASK_INPAINT || t == DUET_TASK_V2A) && r->video_frames != c->video_frames)
    return duet_err_set(err, DUET_EINVAL, "task %s needs all %d frames, the input video has %d", name, c->video_frames,
                        r->video_frames);
  if (t == DUET_TASK_INPAINT && !r->mask) return duet_err_set(err, DUET_EINVAL, "task %s needs a mask", name);
  if ((t == DUET_TASK_A2V || t == DUET_TASK_EXTEND || t == DUET_TASK_INPAINT) && !r->audio)
    return duet_err_set(err, DUET_EINVAL, "task %s needs audio", name);
  if (r->audio && r->audio_samples < 1) return duet_err_set(err, DUET_EINVAL, "the input audio is empty");
  if (r->audio && r->audio_samples > samples)
    return duet_err_set(err, DUET_EINVAL, "the input audio has %lld samples; the model makes %lld",
                        (long long)r->audio_samples, (long long)samples);
  if (t == DUET_TASK_EXTEND) {
    if (r->keep_frames < 1 || r->keep_frames >= c->video_frames || r->keep_frames > r->video_frames)
      return duet_err_set(err, DUET_EINVAL, "extend: keep_frames=%d must lie in [1, %d) and within the input video",
                          r->keep_frames, c->video_frames);
  }
  return DUET_OK;
}

int duet_pipeline_run(duet_pipeline *p, const duet_av_request *r, duet_av_result *out,
                      duet_sample_progress progress, void *progress_ctx, duet_err *err) {
  memset(out, 0, sizeof *out);
  const duet_model_config *c = &p->model_cfg;
  int T = c->video_frames, H = c->video_height, W = c->video_width, C = c->video_channels;
  int F = c->audio_frames, M = c->audio_channels, L = c->text_len;
  int64_t samples = duet_audio_codec_samples(p->audio, F);
  int rc = check_request(p, r, samples, err);
  if (rc) return rc;
  int64_t vpix = (int64_t)T * H * W, vn = vpix * C, an = (int64_t)F * M, fpix = (int64_t)H * W;
  duet_task t = r->sample.task;
  float *vlat = calloc((size_t)vn, sizeof(float)), *alat = calloc((size_t)an, sizeof(float));
  float *vkeep = calloc((size_t)vpix, sizeof(float)), *akeep = calloc((size_t)F, sizeof(float));
  float *wave = calloc((size_t)samples, sizeof(float));
  float *vout = malloc(sizeof(float) * (size_t)vn), *aout = malloc(sizeof(float) * (size_t)an);
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)L);
  uint8_t *tmask = malloc((size_t)L);
  out->video = malloc((size_t)(vpix * 3));
  out->audio = malloc(sizeof(float) * (size_t)samples);
  if (!vlat || !alat || !vkeep || !akeep || !wave || !vout || !aout || !ids || !tmask || !out->video || !out->audio) {
    rc = duet_err_set(err, DUET_ENOMEM, "pipeline: out of memory");
    goto done;
  }
  /* Inputs into latents. */
  if (r->image) rc = duet_video_codec_encode(&p->video, r->image, 1, H, W, vlat, err);
  if (!rc && r->video) rc = duet_video_codec_encode(&p->video, r->video, r->video_frames, H, W, vlat, err);
  if (!rc && r->audio) {
    memcpy(wave, r->audio, sizeof(float) * (size_t)r->audio_samples);
    rc = duet_audio_codec_encode(p->audio, wave, 1, samples, alat, err);
  }
  if (rc) goto done;
  duet_text_tokenize(c, r->prompt, ids, tmask);
  duet_sample_condition cond = {0};
  cond.video = (r->image || r->video) ? vlat : NULL;
  cond.audio = r->audio ? alat : NULL;
  cond.keep_frames = r->keep_frames;
  cond.text_ids = ids;
  cond.text_mask = tmask;
  if (t == DUET_TASK_INPAINT) {
    /* Keep what the mask leaves alone; audio is regenerated over the frames the mask touches
     * (inpaint) or kept whole (edit, unless asked). */
    for (int64_t i = 0; i < vpix; i++) vkeep[i] = r->mask[i] ? 0.0f : 1.0f;
    for (int f = 0; f < F; f++) {
      int frame = (int)(f * c->fps / c->audio_rate);
      if (frame >= T) frame = T - 1;
      int touched = 0;
      for (int64_t i = 0; i < fpix && !touched; i++) touched = r->mask[frame * fpix + i] != 0;
      akeep[f] = touched && (!r->is_edit || r->edit_audio) ? 0.0f : 1.0f;
    }
    cond.video_keep = vkeep;
    cond.audio_keep = akeep;
  }
  rc = duet_sample(p->model, &r->sample, &cond, vout, aout, progress, progress_ctx, err);
  if (rc) goto done;
  if ((rc = duet_video_codec_decode(&p->video, vout, T, H, W, out->video, err)) ||
      (rc = duet_audio_codec_decode(p->audio, aout, 1, F, out->audio, samples, err)))
    goto done;
  out->frames = T;
  out->height = H;
  out->width = W;
  out->fps = c->fps;
  out->samples = samples;
  out->sample_rate = p->audio_cfg.sample_rate;
done:
  free(vlat); free(alat); free(vkeep); free(akeep); free(wave); free(vout); free(aout); free(ids); free(tmask);
  if (rc) duet_av_result_free(out);
  return rc;
}
