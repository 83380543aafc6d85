/* model.video_prediction / audio_prediction = clean: the network's output is read as x_0 and
 * the model returns the velocity it implies, v = (x_t - x_0_hat) / max(t, DUET_CLEAN_MIN_TIME).
 *
 * The prediction mode adds no parameter, so one set of weights serves both readings: the
 * velocity model's output is the raw network output, and the clean model's must be exactly
 * the formula applied to it, sample by sample (one time below the floor, one above). The
 * flow loss is then quadratic in the video output bias, so a central difference in f32 must
 * match the gradient backward computes through the conversion. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "batch_fixture.h"
#include "core/rng.h"
#include "model/mmdit.h"
#include "testlib.h"
#include "tiny_config.h"

enum { B = 2 };

static void fill_random(duet_tensor *t, uint64_t seed, float scale) {
  float *p = t->data;
  duet_rng r = duet_rng_make(seed, 0);
  for (int64_t i = 0; i < t->numel; i++) p[i] = scale * (float)duet_rng_normal_f64(&r);
}

/* A model whose output layers are random (at initialisation they are zero, and every raw
 * output would be 0). NULL after a failed check. */
static duet_mmdit *model_with_outputs(const duet_model_config *c, duet_param_set *ps, uint64_t seed) {
  duet_params_init(ps);
  duet_mmdit *m = NULL;
  duet_err err;
  CHECK_MSG(duet_mmdit_create(&m, c, ps, seed, &err) == DUET_OK, "create: %s", err.msg);
  if (!m) return NULL;
  fill_random(m->video.final_out.weight, 3, 0.3f);
  fill_random(m->video.final_out.bias, 4, 0.3f);
  fill_random(m->audio.final_out.weight, 5, 0.3f);
  fill_random(m->audio.final_out.bias, 6, 0.3f);
  return m;
}

typedef struct prediction_run {
  float *video, *audio; /* the model's outputs */
} prediction_run;

/* One forward on fixed inputs; the outputs are copied into run. */
static void forward(duet_mmdit *m, const float *vxt, const float *axt, const float *tv, const float *ta,
                    const int32_t *ids, const uint8_t *tmask, prediction_run *run) {
  const duet_model_config *c = &m->cfg;
  duet_graph g;
  duet_graph_init(&g, 1 << 20);
  int64_t vs[5] = {B, c->video_frames, c->video_height, c->video_width, c->video_channels};
  int64_t vm[5] = {B, c->video_frames, c->video_height, c->video_width, 1};
  int64_t as[3] = {B, c->audio_frames, c->audio_channels}, am[3] = {B, c->audio_frames, 1};
  int64_t ts[1] = {B}, ls[2] = {B, c->text_len};
  int64_t vn = vs[0] * vs[1] * vs[2] * vs[3] * vs[4], an = as[0] * as[1] * as[2];
  float *zeros_v = calloc((size_t)vn, sizeof(float)), *zeros_a = calloc((size_t)an, sizeof(float));
  float *ones_v = malloc(sizeof(float) * (size_t)(vn / c->video_channels)), *ones_a = malloc(sizeof(float) * (size_t)(B * c->audio_frames));
  for (int64_t i = 0; i < vn / c->video_channels; i++) ones_v[i] = 1;
  for (int64_t i = 0; i < B * c->audio_frames; i++) ones_a[i] = 1;
  duet_mmdit_inputs in = {
      duet_graph_from_host(&g, DUET_F32, DUET_CPU, 5, vs, vxt), duet_graph_from_host(&g, DUET_F32, DUET_CPU, 5, vs, zeros_v),
      duet_graph_from_host(&g, DUET_F32, DUET_CPU, 5, vm, ones_v), duet_graph_from_host(&g, DUET_F32, DUET_CPU, 3, as, axt),
      duet_graph_from_host(&g, DUET_F32, DUET_CPU, 3, as, zeros_a), duet_graph_from_host(&g, DUET_F32, DUET_CPU, 3, am, ones_a),
      duet_graph_from_host(&g, DUET_F32, DUET_CPU, 1, ts, tv), duet_graph_from_host(&g, DUET_F32, DUET_CPU, 1, ts, ta),
      duet_graph_from_host(&g, DUET_I32, DUET_CPU, 2, ls, ids), duet_graph_from_host(&g, DUET_U8, DUET_CPU, 2, ls, tmask),
      NULL, NULL};
  duet_mmdit_outputs o;
  duet_err err;
  int rc = duet_mmdit_forward(m, &g, &in, &o, &err);
  CHECK_MSG(rc == DUET_OK, "forward: %s", err.msg);
  if (rc == DUET_OK) {
    run->video = malloc(sizeof(float) * (size_t)vn);
    run->audio = malloc(sizeof(float) * (size_t)an);
    memcpy(run->video, o.video_v->data, sizeof(float) * (size_t)vn);
    memcpy(run->audio, o.audio_v->data, sizeof(float) * (size_t)an);
  }
  duet_graph_free(&g);
  free(zeros_v);
  free(zeros_a);
  free(ones_v);
  free(ones_a);
}

/* Largest difference, relative to the size of the terms, between a clean model's output and the formula applied to the
 * raw output, over one modality's [B, n] values. */
static double worst_formula_error(const float *clean, const float *raw, const float *xt, const float *t, int64_t n) {
  double worst = 0;
  for (int b = 0; b < B; b++) {
    double s = 1.0 / fmax(t[b], DUET_CLEAN_MIN_TIME);
    for (int64_t i = b * n; i < (b + 1) * n; i++) {
      double want = s * ((double)xt[i] - raw[i]);
      /* Relative to the terms' size: s x_t and s x_0 may cancel. */
      worst = fmax(worst, fabs(clean[i] - want) / (1e-3 + s * (fabs(xt[i]) + fabs(raw[i]))));
    }
  }
  return worst;
}

static void check_formula(void) {
  duet_model_config c = tiny_model_config();
  duet_param_set ps;
  duet_mmdit *m = model_with_outputs(&c, &ps, 5);
  if (!m) return;

  int64_t vn = (int64_t)c.video_frames * c.video_height * c.video_width * c.video_channels;
  int64_t an = (int64_t)c.audio_frames * c.audio_channels;
  float *vxt = malloc(sizeof(float) * (size_t)(B * vn)), *axt = malloc(sizeof(float) * (size_t)(B * an));
  duet_rng_fill_normal_f32(11, 1, 0, vxt, B * vn, 0, 1);
  duet_rng_fill_normal_f32(11, 2, 0, axt, B * an, 0, 1);
  float tv[B] = {0.7f, 0.01f}, ta[B] = {0.02f, 0.4f}; /* one of each below the floor */
  int32_t ids[B * 12];
  uint8_t tmask[B * 12];
  for (int b = 0; b < B; b++) duet_text_tokenize(&c, b ? "a bell rings" : "a red ball", ids + b * 12, tmask + b * 12);

  prediction_run raw = {0}, clean = {0}, audio_only = {0};
  forward(m, vxt, axt, tv, ta, ids, tmask, &raw);
  m->cfg.video_prediction = m->cfg.audio_prediction = DUET_PREDICT_CLEAN;
  forward(m, vxt, axt, tv, ta, ids, tmask, &clean);
  m->cfg.video_prediction = DUET_PREDICT_VELOCITY;
  forward(m, vxt, axt, tv, ta, ids, tmask, &audio_only);
  if (raw.video && clean.video && audio_only.video) {
    double ev = worst_formula_error(clean.video, raw.video, vxt, tv, vn);
    double ea = worst_formula_error(clean.audio, raw.audio, axt, ta, an);
    CHECK_MSG(ev < 1e-6, "clean video: off the formula by %g (relative)", ev);
    CHECK_MSG(ea < 1e-6, "clean audio: off the formula by %g (relative)", ea);
    /* The two settings are independent: velocity video stays raw beside clean audio. */
    CHECK(memcmp(audio_only.video, raw.video, sizeof(float) * (size_t)(B * vn)) == 0);
    CHECK(memcmp(audio_only.audio, clean.audio, sizeof(float) * (size_t)(B * an)) == 0);
    /* And the outputs do differ (a formula test on equal outputs would prove nothing). */
    CHECK(fabs(clean.video[0] - raw.video[0]) > 1e-3);
  }
  free(raw.video), free(raw.audio), free(clean.video), free(clean.audio), free(audio_only.video), free(audio_only.audio);
  free(vxt);
  free(axt);
  duet_mmdit_free(m);
  duet_params_free(&ps);
}

static double flow_loss(duet_mmdit *m, const duet_flow_config *fc, const duet_flow_batch *b, int backward) {
  duet_graph g;
  duet_graph_init(&g, 1 << 20);
  duet_flow_loss fl;
  duet_err err;
  double loss = NAN;
  if (duet_flow_loss_build(&g, m, fc, b, 1, 3, 0, DUET_TASK_T2AV, &fl, &err) == DUET_OK &&
      (!backward || duet_backward(&g, fl.loss, &err) == DUET_OK))
    loss = duet_tensor_get(fl.loss, 0);
  else
    CHECK_MSG(0, "loss: %s", err.msg);
  duet_graph_free(&g);
  return loss;
}

/* d loss / d (video output bias) through the conversion, against central differences. */
static void check_gradient(void) {
  duet_model_config c = tiny_model_config();
  c.video_prediction = DUET_PREDICT_CLEAN;
  duet_param_set ps;
  duet_mmdit *m = model_with_outputs(&c, &ps, 8);
  if (!m) return;
  duet_flow_config fc;
  duet_flow_config_defaults(&fc);
  fc.text_dropout = 0;
  fc.weight_audio = 0;
  batch_fixture bf;
  batch_fixture_make(&bf, &c, B, 4);
  duet_tensor *bias = m->video.final_out.bias;
  duet_params_zero_grad(&ps);
  flow_loss(m, &fc, &bf.batch, 1);
  float *grad = malloc(sizeof(float) * (size_t)bias->numel);
  memcpy(grad, bias->grad->data, sizeof(float) * (size_t)bias->numel);
  double worst = 0, largest = 0;
  const float h = 1e-2f;
  for (int64_t i = 0; i < bias->numel; i += 7) {
    float *p = (float *)bias->data + i, keep = *p;
    *p = keep + h;
    double up = flow_loss(m, &fc, &bf.batch, 0);
    *p = keep - h;
    double down = flow_loss(m, &fc, &bf.batch, 0);
    *p = keep;
    double fd = (up - down) / (2 * h);
    worst = fmax(worst, fabs(fd - grad[i]));
    largest = fmax(largest, fabs(fd));
  }
  CHECK_MSG(largest > 1e-3, "the video bias barely moves the loss (%g)", largest);
  CHECK_MSG(worst < 2e-3 * largest + 1e-5, "bias gradient off central differences by %g (largest %g)", worst, largest);
  free(grad);
  batch_fixture_free(&bf);
  duet_mmdit_free(m);
  duet_params_free(&ps);
}

/* flow.clean_loss_floor scales a clean branch's loss by (max(t, 0.05) / max(t, floor))^2 and
 * leaves a velocity branch's alone. One clip per batch, so the scale is one number. */
static void check_loss_floor(void) {
  duet_model_config c = tiny_model_config();
  c.video_prediction = DUET_PREDICT_CLEAN;
  duet_param_set ps;
  duet_mmdit *m = model_with_outputs(&c, &ps, 9);
  if (!m) return;
  duet_err err;
  batch_fixture bf;
  batch_fixture_make(&bf, &c, 1, 5);
  double smallest = 1; /* the smallest scale met: the check must see one well below 1 */
  for (uint64_t step = 0; step < 8; step++) {
    double lv[2], la[2], t = 0;
    for (int k = 0; k < 2; k++) {
      duet_flow_config fc;
      duet_flow_config_defaults(&fc);
      fc.clean_loss_floor = k ? 0.6 : DUET_CLEAN_MIN_TIME;
      CHECK(duet_flow_config_validate(&fc, &err) == DUET_OK);
      duet_graph g;
      duet_graph_init(&g, 1 << 20);
      duet_flow_loss fl;
      int rc = duet_flow_loss_build(&g, m, &fc, &bf.batch, 2, step, 0, DUET_TASK_T2AV, &fl, &err);
      CHECK_MSG(rc == DUET_OK, "loss: %s", err.msg);
      if (rc == DUET_OK) {
        duet_flow_loss_read(&fl);
        lv[k] = fl.loss_video;
        la[k] = fl.loss_audio;
        t = ((const float *)fl.t_video->data)[0];
      }
      duet_graph_free(&g);
    }
    double r = fmax(t, DUET_CLEAN_MIN_TIME) / fmax(t, 0.6), want = lv[0] * r * r;
    smallest = fmin(smallest, r * r);
    CHECK_MSG(fabs(lv[1] - want) <= 1e-5 * want, "t = %.3f: video loss %g with the floor, want %g", t, lv[1], want);
    CHECK_MSG(la[1] == la[0], "the velocity-predicting audio's loss moved with the floor (%g -> %g)", la[0], la[1]);
  }
  CHECK_MSG(smallest < 0.5, "no flow time below the floor was drawn (smallest scale %g)", smallest);
  duet_flow_config bad;
  duet_flow_config_defaults(&bad);
  bad.clean_loss_floor = 0.01;
  CHECK(duet_flow_config_validate(&bad, &err) == DUET_EINVAL && strstr(err.msg, "clean_loss_floor"));
  batch_fixture_free(&bf);
  duet_mmdit_free(m);
  duet_params_free(&ps);
}

int main(void) {
  check_loss_floor();
  check_formula();
  check_gradient();
  return test_finish("mmdit_prediction");
}
