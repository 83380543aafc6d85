/* The inference pipeline on a tiny random-weight checkpoint: self-describing checkpoints,
 * determinism per seed, every task, kept regions returned exactly, clear errors, and the
 * duet-infer tool writing a playable MP4 with sound; the sampler's clean-audio clamp, audio lag
 * and cross-modal guidance. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/checkpoint.h"
#include "data/media.h"
#include "infer/pipeline.h"
#include "infer/sampler.h"
#include "model/text_encoder.h"
#include "testlib.h"

static duet_model_config tiny(void) {
  duet_model_config c;
  duet_model_config_defaults(&c);
  c.video_frames = 4; c.video_height = 16; c.video_width = 16;
  c.patch_t = 2; c.patch_h = 8; c.patch_w = 8; c.fps = 16;
  c.audio_frames = 16; c.audio_channels = 64; c.patch_a = 4; c.audio_rate = 64;
  c.width_video = 32; c.width_audio = 32; c.width_text = 32;
  c.heads_video = 2; c.heads_audio = 2; c.heads_text = 2;
  c.depth = 1; c.text_len = 16; c.text_layers = 1; c.rope_time_pairs = 4;
  return c;
}

/* Saves a checkpoint of a fresh pipeline into <dir>/step_000000 with its config metadata. */
static int save_ckpt(duet_pipeline *p, const char *dir, duet_err *err) {
  char *text = NULL;
  int rc = duet_pipeline_config_text(p, &text, err);
  if (rc) return rc;
  const char *meta[3] = {DUET_CONFIG_META_KEY, text, NULL};
  duet_train_state st;
  duet_train_state_init(&st);
  duet_ckpt c = {&p->params, NULL, NULL, &st, meta};
  rc = duet_ckpt_save(dir, &c, NULL, 0, err);
  duet_train_state_free(&st);
  free(text);
  return rc;
}

static int run(duet_pipeline *p, duet_av_request *r, duet_av_result *out, duet_err *err) {
  return duet_pipeline_run(p, r, out, NULL, NULL, err);
}

/* The clean-audio clamp: the sampler's last step lands on the clamped clean estimate, so no
 * audio latent ends above clamp_audio; without the clamp this random model leaves values above
 * it (its start is unit noise), so the check below can fail. Values below the floor stay. */
/* A t2av condition with the caption "a red ball bounces"; the caller frees *ids and *mask. */
static duet_sample_condition caption_condition(const duet_model_config *c, int32_t **ids, uint8_t **mask) {
  *ids = malloc(sizeof(int32_t) * (size_t)c->text_len);
  *mask = malloc((size_t)c->text_len);
  duet_text_tokenize(c, "a red ball bounces", *ids, *mask);
  duet_sample_condition cond = {0};
  cond.text_ids = *ids;
  cond.text_mask = *mask;
  return cond;
}

static void check_audio_clamp(duet_pipeline *q) {
  const duet_model_config *c = &q->model_cfg;
  int64_t vn = (int64_t)c->video_frames * c->video_height * c->video_width * c->video_channels;
  int64_t an = (int64_t)c->audio_frames * c->audio_channels;
  float *v = malloc(sizeof(float) * (size_t)vn), *a = malloc(sizeof(float) * (size_t)an);
  int32_t *ids;
  uint8_t *mask;
  duet_sample_condition cond = caption_condition(c, &ids, &mask);
  duet_err err;
  for (int clamp = 0; clamp < 2; clamp++) {
    duet_sample_params sp;
    duet_sample_params_defaults(&sp);
    sp.steps = 3;
    sp.cfg_audio = 4;
    sp.clamp_audio = clamp ? 0.5 : 0;
    CHECK_MSG(duet_sample(q->model, &sp, &cond, v, a, NULL, NULL, &err) == DUET_OK, "%s", err.msg);
    float hi = -1e30f, lo = 1e30f;
    for (int64_t i = 0; i < an; i++) {
      hi = a[i] > hi ? a[i] : hi;
      lo = a[i] < lo ? a[i] : lo;
    }
    if (clamp) CHECK_MSG(hi <= 0.5f + 1e-5f && lo < -0.5f, "clamped audio in [%g, %g]", lo, hi);
    else CHECK_MSG(hi > 0.5f, "unclamped audio at most %g", hi);
  }
  free(v); free(a); free(ids); free(mask);
}

/* --audio-lag: the schedule and a run. */
static void check_audio_lag(duet_pipeline *q) {
  duet_sample_params sp;
  duet_sample_params_defaults(&sp);
  sp.steps = 13;
  sp.time_shift = 1.0;
  double tv0, tv1, ta0, ta1;
  for (int i = 0; i < sp.steps; i++) { /* no lag: shared times 1 - i / steps */
    duet_sample_times(&sp, i, &tv0, &tv1, &ta0, &ta1);
    CHECK(tv0 == 1.0 - (double)i / 13 && ta0 == tv0 && tv1 == 1.0 - (double)(i + 1) / 13 && ta1 == tv1);
  }
  sp.audio_lag = 0.3;
  double prev_v = 1, prev_a = 1;
  int apart = 0;
  for (int i = 0; i < sp.steps; i++) {
    duet_sample_times(&sp, i, &tv0, &tv1, &ta0, &ta1);
    CHECK(tv0 == prev_v && ta0 == prev_a && tv1 <= tv0 && ta1 <= ta0 && tv0 <= ta0);
    /* While neither stream is clamped, the audio is exactly the lag behind. */
    if (tv0 > 0 && ta0 < 1) {
      CHECK_MSG(fabs(ta0 - tv0 - 0.3) < 1e-12, "step %d: t_v %g, t_a %g", i, tv0, ta0);
      apart++;
    }
    prev_v = tv1;
    prev_a = ta1;
  }
  duet_sample_times(&sp, 0, &tv0, &tv1, &ta0, &ta1);
  CHECK(ta1 == 1.0 && tv1 < 1.0); /* the video starts first */
  CHECK(prev_v == 0 && prev_a == 0 && apart >= 6);
  /* A negative lag mirrors it: the video behind the audio. */
  for (int i = 0; i < sp.steps; i++) {
    double v0, v1, a0, a1;
    duet_sample_times(&sp, i, &tv0, &tv1, &ta0, &ta1);
    sp.audio_lag = -0.3;
    duet_sample_times(&sp, i, &v0, &v1, &a0, &a1);
    sp.audio_lag = 0.3;
    CHECK(v0 == ta0 && v1 == ta1 && a0 == tv0 && a1 == tv1);
  }

  const duet_model_config *c = &q->model_cfg;
  int64_t vn = (int64_t)c->video_frames * c->video_height * c->video_width * c->video_channels;
  int64_t an = (int64_t)c->audio_frames * c->audio_channels;
  float *v[2], *a[2];
  int32_t *ids;
  uint8_t *mask;
  duet_sample_condition cond = caption_condition(c, &ids, &mask);
  duet_err err;
  for (int k = 0; k < 2; k++) {
    v[k] = malloc(sizeof(float) * (size_t)vn);
    a[k] = malloc(sizeof(float) * (size_t)an);
    duet_sample_params_defaults(&sp);
    sp.steps = 4;
    sp.audio_lag = k ? 0.5 : 0;
    CHECK_MSG(duet_sample(q->model, &sp, &cond, v[k], a[k], NULL, NULL, &err) == DUET_OK, "%s", err.msg);
  }
  int finite = 1;
  for (int64_t i = 0; i < an; i++) finite &= isfinite(a[1][i]);
  CHECK(finite && memcmp(a[0], a[1], sizeof(float) * (size_t)an) != 0);
  sp.audio_lag = 1.5;
  CHECK(duet_sample(q->model, &sp, &cond, v[0], a[0], NULL, NULL, &err) == DUET_EINVAL && strstr(err.msg, "lag"));
  for (int k = 0; k < 2; k++) {
    free(v[k]);
    free(a[k]);
  }
  free(ids);
  free(mask);
}

/* Largest |x - y| over n values, relative to the largest |y|. */
static double rel_diff(const float *x, const float *y, int64_t n) {
  double d = 0, m = 0;
  for (int64_t i = 0; i < n; i++) {
    d = fmax(d, fabs((double)x[i] - y[i]));
    m = fmax(m, fabs((double)y[i]));
  }
  return d / (m > 0 ? m : 1);
}

/* Cross-modal guidance (sync_cfg_*). With two Euler steps and no clamp, the first step is the
 * same with or without it (at t = 1 the stream being left out is its own initial noise either
 * way), and the second moves the audio by -0.5 (v_c + (s - 1)(v_c - v_x)), where v_x is exactly
 * what t2a's second step uses. So the guided audio must equal a1 + (s - 1)(a1 - a_t2a), a1 being
 * the unguided audio; the same for the video with t2v. */
static void check_sync_guidance(duet_pipeline *q) {
  const duet_model_config *c = &q->model_cfg;
  int64_t vn = (int64_t)c->video_frames * c->video_height * c->video_width * c->video_channels;
  int64_t an = (int64_t)c->audio_frames * c->audio_channels;
  enum { PLAIN, SYNC_AUDIO, SYNC_VIDEO, T2A, T2V, RUNS };
  float *v[RUNS], *a[RUNS];
  int32_t *ids;
  uint8_t *mask;
  duet_sample_condition cond = caption_condition(c, &ids, &mask);
  duet_err err;
  duet_sample_params sp;
  for (int k = 0; k < RUNS; k++) {
    v[k] = malloc(sizeof(float) * (size_t)vn);
    a[k] = malloc(sizeof(float) * (size_t)an);
    duet_sample_params_defaults(&sp);
    sp.steps = 2;
    sp.sampler = DUET_SAMPLER_EULER;
    sp.cfg_video = sp.cfg_audio = 1;
    sp.clamp_video = sp.clamp_audio = 0;
    sp.time_shift = 1;
    if (k == SYNC_AUDIO) sp.sync_cfg_audio = 3;
    if (k == SYNC_VIDEO) sp.sync_cfg_video = 3;
    if (k == T2A) sp.task = DUET_TASK_T2A;
    if (k == T2V) sp.task = DUET_TASK_T2V;
    CHECK_MSG(duet_sample(q->model, &sp, &cond, v[k], a[k], NULL, NULL, &err) == DUET_OK, "%s", err.msg);
  }
  float *want_a = malloc(sizeof(float) * (size_t)an), *want_v = malloc(sizeof(float) * (size_t)vn);
  for (int64_t i = 0; i < an; i++) want_a[i] = a[PLAIN][i] + 2.0f * (a[PLAIN][i] - a[T2A][i]);
  for (int64_t i = 0; i < vn; i++) want_v[i] = v[PLAIN][i] + 2.0f * (v[PLAIN][i] - v[T2V][i]);
  double da = rel_diff(a[SYNC_AUDIO], want_a, an), dv = rel_diff(v[SYNC_VIDEO], want_v, vn);
  CHECK_MSG(da < 1e-4 && dv < 1e-4, "guided audio off by %g, guided video by %g", da, dv);
  /* It does move the guided stream, and leaves the other one alone. */
  CHECK(rel_diff(a[SYNC_AUDIO], a[PLAIN], an) > 1e-3 && rel_diff(v[SYNC_VIDEO], v[PLAIN], vn) > 1e-3);
  CHECK(rel_diff(v[SYNC_AUDIO], v[PLAIN], vn) < 1e-5 && rel_diff(a[SYNC_VIDEO], a[PLAIN], an) < 1e-5);

  /* With text guidance on as well, and in v2a (a video given), it runs and changes the audio. */
  duet_sample_params_defaults(&sp);
  sp.steps = 2;
  sp.sync_cfg_audio = 2;
  sp.sync_cfg_video = 2;
  CHECK_MSG(duet_sample(q->model, &sp, &cond, v[0], a[0], NULL, NULL, &err) == DUET_OK, "%s", err.msg);
  sp.task = DUET_TASK_V2A;
  cond.video = v[0];
  for (int k = 0; k < 2; k++) {
    sp.sync_cfg_audio = k ? 2 : 1;
    CHECK_MSG(duet_sample(q->model, &sp, &cond, v[1 + k], a[1 + k], NULL, NULL, &err) == DUET_OK, "%s", err.msg);
  }
  CHECK(memcmp(v[1], v[0], sizeof(float) * (size_t)vn) == 0 && memcmp(v[2], v[0], sizeof(float) * (size_t)vn) == 0);
  CHECK(rel_diff(a[2], a[1], an) > 1e-3);
  sp.sync_cfg_audio = NAN;
  CHECK(duet_sample(q->model, &sp, &cond, v[1], a[1], NULL, NULL, &err) == DUET_EINVAL && strstr(err.msg, "guidance"));
  for (int k = 0; k < RUNS; k++) {
    free(v[k]);
    free(a[k]);
  }
  free(want_a); free(want_v); free(ids); free(mask);
}

int main(void) {
  duet_err err = {0};
  duet_model_config mc = tiny();
  duet_flow_config fc;
  duet_flow_config_defaults(&fc);
  duet_audio_settings ac;
  duet_audio_settings_default(&ac);
  ac.gl_iters = 4;
  duet_pipeline *p = NULL;
  CHECK_MSG(duet_pipeline_create(&p, &mc, &fc, &ac, &err) == DUET_OK, "%s", err.msg);
  /* Non-zero output layers so the sample depends on the weights and the prompt. */
  for (int i = 0; i < p->params.count; i++) {
    float *d = p->params.items[i]->data;
    for (int64_t j = 0; j < p->params.items[i]->numel; j++)
      if (d[j] == 0.0f) d[j] = 0.01f * (float)((j * 7 + i) % 13 - 6);
  }
  char run_dir[512], ckpt[600];
  snprintf(run_dir, sizeof run_dir, "%s/run", test_tmpdir());
  CHECK_MSG(save_ckpt(p, run_dir, &err) == DUET_OK, "%s", err.msg);
  snprintf(ckpt, sizeof ckpt, "%s/last", run_dir);

  duet_pipeline *q = NULL;
  CHECK_MSG(duet_pipeline_open(&q, ckpt, 1, &err) == DUET_OK, "%s", err.msg);
  if (!q) return test_finish("infer_pipeline");
  /* Same config (compared as text: the structs have padding). */
  char *tp = NULL, *tq = NULL;
  duet_pipeline_config_text(p, &tp, &err);
  duet_pipeline_config_text(q, &tq, &err);
  CHECK(tp && tq && strcmp(tp, tq) == 0 && strstr(tp, "width_video = 32"));
  free(tp);
  free(tq);
  CHECK_EQ_INT(q->audio_cfg.gl_iters, 4);
  int same = 1;
  for (int i = 0; i < p->params.count; i++)
    same &= memcmp(p->params.items[i]->data, q->params.items[i]->data, duet_tensor_bytes(p->params.items[i])) == 0;
  CHECK(same);

  duet_av_request r;
  memset(&r, 0, sizeof r);
  duet_sample_params_defaults(&r.sample);
  r.sample.steps = 3;
  r.prompt = "a red ball bounces";
  duet_av_result a, b, c;
  CHECK_MSG(run(q, &r, &a, &err) == DUET_OK, "%s", err.msg);
  CHECK_MSG(run(q, &r, &b, &err) == DUET_OK, "%s", err.msg);
  CHECK(a.frames == 4 && a.height == 16 && a.width == 16 && a.samples == 16 * 250 && a.sample_rate == 16000);
  CHECK(memcmp(a.video, b.video, (size_t)4 * 16 * 16 * 3) == 0);
  CHECK(memcmp(a.audio, b.audio, sizeof(float) * (size_t)a.samples) == 0);
  r.sample.seed = 1;
  CHECK(run(q, &r, &c, &err) == DUET_OK);
  CHECK(memcmp(a.video, c.video, (size_t)4 * 16 * 16 * 3) != 0);
  duet_av_result_free(&b);
  duet_av_result_free(&c);

  /* i2av keeps the first frame exactly; extend keeps the first frames. */
  uint8_t image[16 * 16 * 3];
  for (int i = 0; i < 16 * 16 * 3; i++) image[i] = (uint8_t)(i * 37);
  r.sample.task = DUET_TASK_I2AV;
  r.image = image;
  CHECK_MSG(run(q, &r, &b, &err) == DUET_OK, "%s", err.msg);
  CHECK(memcmp(b.video, image, sizeof image) == 0);
  duet_av_result_free(&b);
  r.image = NULL;

  r.sample.task = DUET_TASK_EXTEND;
  r.video = a.video;
  r.video_frames = 4;
  r.audio = a.audio;
  r.audio_samples = a.samples;
  r.keep_frames = 2;
  CHECK_MSG(run(q, &r, &b, &err) == DUET_OK, "%s", err.msg);
  CHECK(memcmp(b.video, a.video, (size_t)2 * 16 * 16 * 3) == 0);
  duet_av_result_free(&b);

  /* inpaint: outside the box stays. */
  uint8_t mask[4 * 16 * 16] = {0};
  for (int t = 2; t < 4; t++)
    for (int y = 0; y < 8; y++)
      for (int x = 0; x < 8; x++) mask[(t * 16 + y) * 16 + x] = 1;
  r.sample.task = DUET_TASK_INPAINT;
  r.mask = mask;
  CHECK_MSG(run(q, &r, &b, &err) == DUET_OK, "%s", err.msg);
  int outside_same = 1;
  for (int i = 0; i < 4 * 16 * 16; i++)
    if (!mask[i]) outside_same &= memcmp(b.video + i * 3, a.video + i * 3, 3) == 0;
  CHECK(outside_same);
  duet_av_result_free(&b);

  check_audio_clamp(q);
  check_audio_lag(q);
  check_sync_guidance(q);

  /* v2a keeps the video; a2v, t2v, t2a run. */
  int tasks[4] = {DUET_TASK_V2A, DUET_TASK_A2V, DUET_TASK_T2V, DUET_TASK_T2A};
  for (int i = 0; i < 4; i++) {
    r.sample.task = (duet_task)tasks[i];
    r.sample.sampler = i % 2 ? DUET_SAMPLER_EULER : DUET_SAMPLER_HEUN;
    CHECK_MSG(run(q, &r, &b, &err) == DUET_OK, "%s: %s", duet_task_names[tasks[i]], err.msg);
    if (tasks[i] == DUET_TASK_V2A) CHECK(memcmp(b.video, a.video, (size_t)4 * 16 * 16 * 3) == 0);
    duet_av_result_free(&b);
  }

  /* Clear errors. */
  memset(&r, 0, sizeof r);
  duet_sample_params_defaults(&r.sample);
  r.sample.task = DUET_TASK_I2AV;
  CHECK(run(q, &r, &b, &err) == DUET_EINVAL && strstr(err.msg, "image"));
  r.sample.task = DUET_TASK_A2V;
  CHECK(run(q, &r, &b, &err) == DUET_EINVAL && strstr(err.msg, "audio"));
  duet_pipeline *none = NULL;
  CHECK(duet_pipeline_open(&none, "/nonexistent/ckpt", 1, &err) != DUET_OK && strstr(err.msg, "/nonexistent/ckpt"));

  /* The tool: an MP4 with H.264 + AAC that decodes back to the right shape. */
  char cmd[2048], mp4[600];
  snprintf(mp4, sizeof mp4, "%s/out.mp4", test_tmpdir());
  snprintf(cmd, sizeof cmd, "%s --ckpt %s --out %s --prompt 'a bell' --steps 2 --seed 3 2>/dev/null", DUET_INFER_BIN,
           ckpt, mp4);
  CHECK(system(cmd) == 0);
  duet_media m = {0};
  duet_media_opts mo = {0};
  CHECK_MSG(duet_media_read(mp4, &mo, &m, &err) == DUET_OK, "%s", err.msg);
  CHECK(m.frames == 4 && m.width == 16 && m.height == 16 && m.has_audio);
  duet_media_free(&m);
  /* Refuses to overwrite; unknown option and missing checkpoint fail. */
  CHECK(system(cmd) != 0);
  snprintf(cmd, sizeof cmd, "%s --ckpt %s --out %s --bogus 2>/dev/null", DUET_INFER_BIN, ckpt, mp4);
  CHECK(system(cmd) != 0);
  snprintf(cmd, sizeof cmd, "%s --ckpt /nonexistent --out %s.x.mp4 2>/dev/null", DUET_INFER_BIN, mp4);
  CHECK(system(cmd) != 0);
  snprintf(cmd, sizeof cmd, "%s --ckpt %s --out %s.y.mp4 --matmul-precision fp8 2>/dev/null", DUET_INFER_BIN, ckpt, mp4);
  CHECK(system(cmd) != 0);
  /* bf16 products: a clip, where the processor runs them (else one line and status 1). */
  snprintf(cmd, sizeof cmd, "%s --ckpt %s --out %s.bf16.mp4 --prompt 'a bell' --steps 2 --matmul-precision bf16 2>&1",
           DUET_INFER_BIN, ckpt, mp4);
  FILE *pipe = popen(cmd, "r");
  char said[4096] = "";
  size_t got = pipe ? fread(said, 1, sizeof said - 1, pipe) : 0;
  said[got] = '\0';
  int status = pipe ? pclose(pipe) : -1;
  if (strstr(said, "--matmul-precision bf16: ")) {
    CHECK(status != 0 && strchr(said, '\n') == said + strlen(said) - 1);
  } else {
    CHECK_MSG(status == 0, "%s", said);
    snprintf(mp4 + strlen(mp4), sizeof mp4 - strlen(mp4), ".bf16.mp4");
    CHECK_MSG(duet_media_read(mp4, &mo, &m, &err) == DUET_OK, "%s", err.msg);
    CHECK(m.frames == 4 && m.has_audio);
    duet_media_free(&m);
  }

  duet_av_result_free(&a);
  duet_pipeline_free(q);
  duet_pipeline_free(p);
  return test_finish("infer_pipeline");
}
