#include "model/flow.h"

#include "core/params.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

const char *const duet_task_names[DUET_TASK_COUNT + 1] = {"t2av", "i2av", "extend", "inpaint",
                                                          "v2a",  "a2v",  "t2v",    "t2a", NULL};

/* RNG streams of one sample: each purpose has its own so adding one does not shift others. */
enum { STREAM_TASK = 1, STREAM_NOISE_V = 2, STREAM_NOISE_A = 3 };

void duet_flow_config_defaults(duet_flow_config *c) {
  memset(c, 0, sizeof *c);
  c->time_sampling = DUET_TIME_LOGIT_NORMAL;
  c->logit_mean = 0.0;
  c->logit_std = 1.0;
  c->time_shift = 1.0;
  c->weight_video = 1.0;
  c->weight_audio = 1.0;
  c->text_dropout = 0.1;
  c->task_prob[DUET_TASK_T2AV] = 1.0;
  c->clean_loss_floor = DUET_CLEAN_MIN_TIME;
}

int duet_flow_config_validate(const duet_flow_config *c, duet_err *err) {
  double total = 0;
  for (int i = 0; i < DUET_TASK_COUNT; i++) {
    if (c->task_prob[i] < 0) return duet_err_set(err, DUET_EINVAL, "flow: task weight %s is negative", duet_task_names[i]);
    total += c->task_prob[i];
  }
  if (total <= 0) return duet_err_set(err, DUET_EINVAL, "flow: every task weight is zero");
  if (c->time_shift <= 0) return duet_err_set(err, DUET_EINVAL, "flow: time_shift must be positive");
  if (c->text_dropout < 0 || c->text_dropout > 1) return duet_err_set(err, DUET_EINVAL, "flow: text_dropout must lie in [0, 1]");
  if (c->weight_video < 0 || c->weight_audio < 0) return duet_err_set(err, DUET_EINVAL, "flow: loss weights must be >= 0");
  if (c->logit_std <= 0) return duet_err_set(err, DUET_EINVAL, "flow: logit_std must be positive");
  if (!(c->audio_lag_prob >= 0 && c->audio_lag_prob <= 1) || !(c->audio_lag_max >= -1 && c->audio_lag_max <= 1))
    return duet_err_set(err, DUET_EINVAL, "flow: audio_lag_prob must lie in [0, 1] and audio_lag_max in [-1, 1]");
  if (!(c->clean_loss_floor >= DUET_CLEAN_MIN_TIME && c->clean_loss_floor <= 1))
    return duet_err_set(err, DUET_EINVAL, "flow: clean_loss_floor must lie in [%g, 1]", DUET_CLEAN_MIN_TIME);
  return DUET_OK;
}

/* The weight of a sample's velocity loss at time t for a branch that predicts `pred`. */
static double loss_weight(const duet_flow_config *c, duet_prediction pred, double t) {
  if (pred != DUET_PREDICT_CLEAN) return 1.0;
  double r = fmax(t, DUET_CLEAN_MIN_TIME) / fmax(t, c->clean_loss_floor);
  return r * r;
}

double duet_flow_shift(double t, double shift) { return shift * t / (1.0 + (shift - 1.0) * t); }

double duet_flow_sample_time(const duet_flow_config *c, double u, double n) {
  double t = c->time_sampling == DUET_TIME_LOGIT_NORMAL ? 1.0 / (1.0 + exp(-(c->logit_mean + c->logit_std * n))) : u;
  return duet_flow_shift(t, c->time_shift);
}

static int draw_task(const duet_flow_config *c, double u) {
  double total = 0;
  for (int i = 0; i < DUET_TASK_COUNT; i++) total += c->task_prob[i];
  double x = u * total, acc = 0;
  for (int i = 0; i < DUET_TASK_COUNT; i++) {
    acc += c->task_prob[i];
    if (x < acc && c->task_prob[i] > 0) return i;
  }
  for (int i = DUET_TASK_COUNT - 1; i >= 0; i--)
    if (c->task_prob[i] > 0) return i;
  return 0;
}

/* Per-sample plan: which regions are generated and at what times. */
typedef struct sample_plan {
  int task;
  double t_v, t_a;
  int drop_text;
  int video_on, audio_on; /* carries loss */
  int keep_frames;        /* video frames [0, keep) kept (i2av, extend) */
  int keep_audio;         /* audio frames [0, keep) kept */
  int box[6];             /* inpaint: t0, t1, y0, y1, x0, x1 generated (video) */
  int abox[2];            /* inpaint: audio frames generated */
  int video_kept_all, audio_kept_all;
} sample_plan;

static sample_plan plan_sample(const duet_flow_config *fc, const duet_model_config *mc, duet_rng *r, int force_task) {
  sample_plan p;
  memset(&p, 0, sizeof p);
  p.task = force_task >= 0 ? force_task : draw_task(fc, duet_rng_uniform_f64(r));
  double t = duet_flow_sample_time(fc, duet_rng_uniform_f64(r), duet_rng_normal_f64(r));
  p.t_v = p.t_a = t;
  p.drop_text = duet_rng_uniform_f64(r) < fc->text_dropout;
  p.video_on = p.audio_on = 1;
  int T = mc->video_frames, F = mc->audio_frames;
  double a_per_v = mc->audio_rate / mc->fps;
  switch (p.task) {
    case DUET_TASK_I2AV: p.keep_frames = 1; break;
    case DUET_TASK_EXTEND:
      p.keep_frames = 1 + (int)duet_rng_below(r, (uint64_t)(T / 2 > 1 ? T / 2 : 1));
      p.keep_audio = (int)(p.keep_frames * a_per_v);
      if (p.keep_audio > F) p.keep_audio = F;
      break;
    case DUET_TASK_INPAINT: {
      int H = mc->video_height, W = mc->video_width;
      int lt = 1 + (int)duet_rng_below(r, (uint64_t)T), lh = 1 + (int)duet_rng_below(r, (uint64_t)H);
      int lw = 1 + (int)duet_rng_below(r, (uint64_t)W);
      p.box[0] = (int)duet_rng_below(r, (uint64_t)(T - lt + 1));
      p.box[1] = p.box[0] + lt;
      p.box[2] = (int)duet_rng_below(r, (uint64_t)(H - lh + 1));
      p.box[3] = p.box[2] + lh;
      p.box[4] = (int)duet_rng_below(r, (uint64_t)(W - lw + 1));
      p.box[5] = p.box[4] + lw;
      p.abox[0] = (int)(p.box[0] * a_per_v);
      p.abox[1] = (int)(p.box[1] * a_per_v);
      if (p.abox[1] > F) p.abox[1] = F;
      if (p.abox[1] <= p.abox[0]) p.abox[1] = p.abox[0] + 1 <= F ? p.abox[0] + 1 : F;
      break;
    }
    case DUET_TASK_V2A: p.t_v = 0; p.video_kept_all = 1; p.video_on = 0; break;
    case DUET_TASK_A2V: p.t_a = 0; p.audio_kept_all = 1; p.audio_on = 0; break;
    case DUET_TASK_T2V: p.t_a = 1; p.audio_on = 0; break;
    case DUET_TASK_T2A: p.t_v = 1; p.video_on = 0; break;
    default: break;
  }
  /* Drawn last, and only when enabled, so that configs without a lag keep their draws. */
  if (fc->audio_lag_prob > 0 && (p.task == DUET_TASK_T2AV || p.task == DUET_TASK_I2AV) &&
      duet_rng_uniform_f64(r) < fc->audio_lag_prob) {
    /* A negative maximum puts the video behind the audio instead. */
    double lag = fabs(fc->audio_lag_max) * duet_rng_uniform_f64(r);
    double *behind = fc->audio_lag_max >= 0 ? &p.t_a : &p.t_v;
    *behind = t + lag < 1 ? t + lag : 1;
  }
  return p;
}

static int video_generated(const sample_plan *p, int t, int y, int x) {
  if (p->video_kept_all) return 0;
  if (p->task == DUET_TASK_INPAINT)
    return t >= p->box[0] && t < p->box[1] && y >= p->box[2] && y < p->box[3] && x >= p->box[4] && x < p->box[5];
  return t >= p->keep_frames;
}

static int audio_generated(const sample_plan *p, int f) {
  if (p->audio_kept_all) return 0;
  if (p->task == DUET_TASK_INPAINT) return f >= p->abox[0] && f < p->abox[1];
  return f >= p->keep_audio;
}

int duet_flow_loss_build(duet_graph *g, duet_mmdit *m, const duet_flow_config *fc, const duet_flow_batch *b,
                         uint64_t seed, uint64_t step, int64_t sample_base, int force_task, duet_flow_loss *out,
                         duet_err *err) {
  memset(out, 0, sizeof *out);
  const duet_model_config *mc = &m->cfg;
  int B = b->batch, T = mc->video_frames, H = mc->video_height, W = mc->video_width, C = mc->video_channels;
  int F = mc->audio_frames, M = mc->audio_channels, L = mc->text_len;
  if (B < 1) return duet_err_set(err, DUET_EINVAL, "flow: empty batch");
  int64_t vsz = (int64_t)T * H * W * C, asz = (int64_t)F * M, vpix = (int64_t)T * H * W;
  int64_t vs[5] = {B, T, H, W, C}, vm[5] = {B, T, H, W, 1}, vl[4] = {B, T, H, W};
  int64_t as[3] = {B, F, M}, am[3] = {B, F, 1}, al[2] = {B, F}, ts[1] = {B};
  duet_tensor *vxt = duet_graph_new(g, DUET_F32, DUET_CPU, 5, vs), *vcond = duet_graph_new(g, DUET_F32, DUET_CPU, 5, vs);
  duet_tensor *vmask = duet_graph_new(g, DUET_F32, DUET_CPU, 5, vm), *vtarget = duet_graph_new(g, DUET_F32, DUET_CPU, 5, vs);
  duet_tensor *vloss_mask = duet_graph_new(g, DUET_F32, DUET_CPU, 4, vl);
  duet_tensor *axt = duet_graph_new(g, DUET_F32, DUET_CPU, 3, as), *acond = duet_graph_new(g, DUET_F32, DUET_CPU, 3, as);
  duet_tensor *amask = duet_graph_new(g, DUET_F32, DUET_CPU, 3, am), *atarget = duet_graph_new(g, DUET_F32, DUET_CPU, 3, as);
  duet_tensor *aloss_mask = duet_graph_new(g, DUET_F32, DUET_CPU, 2, al);
  duet_tensor *tv = duet_graph_new(g, DUET_F32, DUET_CPU, 1, ts), *ta = duet_graph_new(g, DUET_F32, DUET_CPU, 1, ts);
  int64_t tmshape[2] = {B, L};
  duet_tensor *tmask = duet_graph_new(g, DUET_U8, DUET_CPU, 2, tmshape);
  duet_tensor *text = NULL;
  if (duet_text_reads_ids(mc->text_source)) {
    if (!b->text_ids) return duet_err_set(err, DUET_EINVAL, "flow: the model reads caption ids but the batch has none");
    text = duet_graph_new(g, DUET_I32, DUET_CPU, 2, tmshape);
  } else {
    if (!b->text_emb) return duet_err_set(err, DUET_EINVAL, "flow: the model reads precomputed text embeddings but the batch has none");
    int64_t es[3] = {B, L, mc->text_emb_dim};
    text = duet_graph_new(g, DUET_F32, DUET_CPU, 3, es);
  }
  if (!duet_graph_ok(g)) return duet_graph_status(g, err);

  /* With loss weights below 1 (clean_loss_floor) the masks carry them; the MSE divides by the
   * mask's sum, so its weight puts back the count of generated values: the loss stays a mean
   * over what is generated. */
  double vsum[2] = {0, 0}, asum[2] = {0, 0}; /* weighted, unweighted mask sums */
  for (int i = 0; i < B; i++) {
    uint64_t id = (uint64_t)(sample_base + i);
    duet_rng r = duet_rng_make(seed, duet_rng_stream_id(STREAM_TASK, step, id));
    sample_plan p = plan_sample(fc, mc, &r, force_task);
    out->task_count[p.task]++;
    ((float *)tv->data)[i] = (float)p.t_v;
    ((float *)ta->data)[i] = (float)p.t_a;

    /* Video: noise, x_t, target, masks. */
    float *xt = (float *)vxt->data + i * vsz, *cond = (float *)vcond->data + i * vsz;
    float *tgt = (float *)vtarget->data + i * vsz, *mask = (float *)vmask->data + i * vpix;
    float *lmask = (float *)vloss_mask->data + i * vpix;
    const float *x0 = b->video + i * vsz;
    duet_rng_fill_normal_f32(seed, duet_rng_stream_id(STREAM_NOISE_V, step, id), 0, tgt, vsz, 0, 1);
    float t = (float)p.t_v;
    const float wv = (float)loss_weight(fc, mc->video_prediction, p.t_v);
    /* Element-wise, so threads give the same bits; a 256x256 clip is millions of values. */
#pragma omp parallel for schedule(static) if (vsz > 65536)
    for (int64_t j = 0; j < vsz; j++) {
      float eps = tgt[j];
      xt[j] = (1 - t) * x0[j] + t * eps;
      tgt[j] = eps - x0[j];
    }
#pragma omp parallel for collapse(2) schedule(static) if (vsz > 65536)
    for (int tt = 0; tt < T; tt++)
      for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
          int64_t pix = ((int64_t)tt * H + y) * W + x;
          int gen = video_generated(&p, tt, y, x);
          mask[pix] = (float)gen;
          lmask[pix] = (float)(gen && p.video_on) * wv;
          for (int ch = 0; ch < C; ch++) cond[pix * C + ch] = gen ? 0.0f : x0[pix * C + ch];
        }
    for (int64_t pix = 0; pix < vpix; pix++) {
      vsum[0] += lmask[pix];
      vsum[1] += mask[pix] != 0 && p.video_on;
    }
    /* Audio. */
    xt = (float *)axt->data + i * asz;
    cond = (float *)acond->data + i * asz;
    tgt = (float *)atarget->data + i * asz;
    mask = (float *)amask->data + (int64_t)i * F;
    lmask = (float *)aloss_mask->data + (int64_t)i * F;
    x0 = b->audio + i * asz;
    duet_rng_fill_normal_f32(seed, duet_rng_stream_id(STREAM_NOISE_A, step, id), 0, tgt, asz, 0, 1);
    t = (float)p.t_a;
    for (int64_t j = 0; j < asz; j++) {
      float eps = tgt[j];
      xt[j] = (1 - t) * x0[j] + t * eps;
      tgt[j] = eps - x0[j];
    }
    const float wa = (float)loss_weight(fc, mc->audio_prediction, p.t_a);
    for (int f = 0; f < F; f++) {
      int gen = audio_generated(&p, f);
      mask[f] = (float)gen;
      lmask[f] = (float)(gen && p.audio_on) * wa;
      asum[0] += lmask[f];
      asum[1] += gen && p.audio_on;
      for (int ch = 0; ch < M; ch++) cond[(int64_t)f * M + ch] = gen ? 0.0f : x0[(int64_t)f * M + ch];
    }
    /* Text, dropped to the empty caption with probability text_dropout. */
    uint8_t *tm = (uint8_t *)tmask->data + (int64_t)i * L;
    if (p.drop_text) memset(tm, 0, (size_t)L);
    else memcpy(tm, b->text_mask + (int64_t)i * L, (size_t)L);
    if (duet_text_reads_ids(mc->text_source)) {
      int32_t *ids = (int32_t *)text->data + (int64_t)i * L;
      for (int l = 0; l < L; l++) ids[l] = p.drop_text ? 0 : b->text_ids[(int64_t)i * L + l];
    } else {
      int64_t n = (int64_t)L * mc->text_emb_dim;
      float *e = (float *)text->data + i * n;
      if (p.drop_text) memset(e, 0, sizeof(float) * (size_t)n);
      else memcpy(e, b->text_emb + i * n, sizeof(float) * (size_t)n);
    }
  }

  /* Targets and masks go where the predictions will be (the model's device), and go before
   * the forward is queued: an upload waits for the device's queue to drain, so after the
   * forward it would stall the host until the whole forward had run. */
  duet_device dev = m->params->device;
  if (dev != DUET_CPU) {
    vtarget = duet_graph_from_host(g, DUET_F32, dev, vtarget->ndim, vtarget->shape, vtarget->data);
    vloss_mask = duet_graph_from_host(g, DUET_F32, dev, vloss_mask->ndim, vloss_mask->shape, vloss_mask->data);
    atarget = duet_graph_from_host(g, DUET_F32, dev, atarget->ndim, atarget->shape, atarget->data);
    aloss_mask = duet_graph_from_host(g, DUET_F32, dev, aloss_mask->ndim, aloss_mask->shape, aloss_mask->data);
    if (!duet_graph_ok(g)) return duet_graph_status(g, err);
  }
  out->t_video = tv;
  out->t_audio = ta;
  duet_mmdit_inputs in = {vxt, vcond, vmask, axt, acond, amask, tv, ta, text, tmask, NULL, NULL};
  duet_mmdit_outputs o;
  int rc = duet_mmdit_forward(m, g, &in, &o, err);
  if (rc) return rc;
  out->mse_video = duet_mse(g, o.video_v, vtarget, vloss_mask, vsum[1] > 0 ? vsum[0] / vsum[1] : 1.0);
  out->mse_audio = duet_mse(g, o.audio_v, atarget, aloss_mask, asum[1] > 0 ? asum[0] / asum[1] : 1.0);
  out->loss = duet_add(g, duet_scale(g, out->mse_video, fc->weight_video), duet_scale(g, out->mse_audio, fc->weight_audio));
  if (!duet_graph_ok(g)) return duet_graph_status(g, err);
  out->loss_video = out->loss_audio = NAN;
  return DUET_OK;
}

void duet_flow_loss_read(duet_flow_loss *fl) {
  fl->loss_video = duet_tensor_scalar(fl->mse_video);
  fl->loss_audio = duet_tensor_scalar(fl->mse_audio);
}
