#include "infer/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

void duet_sample_params_defaults(duet_sample_params *p) {
  *p = (duet_sample_params){.task = DUET_TASK_T2AV, .sampler = DUET_SAMPLER_HEUN, .steps = 25,
                            .cfg_video = 3.0, .cfg_audio = 3.0, .sync_cfg_video = 1.0, .sync_cfg_audio = 1.0,
                            .time_shift = 1.0, .seed = 0, .clamp_video = 1.0, .clamp_audio = 1.0,
                            .audio_lag = 0.0};
}

/* Velocities v of the state x at flow time t changed so that the clean estimate x - t v lies in
 * [lo, hi]. */
static void clamp_estimate(const float *x, float *v, int64_t n, float t, double lo, double hi) {
  if (t <= 0) return;
  for (int64_t i = 0; i < n; i++) {
    double x0 = x[i] - (double)t * v[i];
    if (x0 > hi) v[i] = (float)((x[i] - hi) / t);
    else if (x0 < lo) v[i] = (float)((x[i] - lo) / t);
  }
}

/* A stream's flow time at schedule position s: clamped to [0, 1], then shifted. */
static double stream_time(double s, double shift) { return duet_flow_shift(s < 0 ? 0 : s > 1 ? 1 : s, shift); }

void duet_sample_times(const duet_sample_params *p, int i, double *tv0, double *tv1, double *ta0, double *ta1) {
  /* One schedule s from 1 + |lag| down to 0; the stream ahead runs |lag| in front of the other
   * (with no lag both follow 1 - i / steps). A positive lag puts the audio behind. */
  double lag = fabs(p->audio_lag);
  double s0 = (1.0 + lag) * (1.0 - (double)i / p->steps), s1 = (1.0 + lag) * (1.0 - (double)(i + 1) / p->steps);
  double lv = p->audio_lag > 0 ? lag : 0, la = p->audio_lag < 0 ? lag : 0;
  *tv0 = stream_time(s0 - lv, p->time_shift);
  *tv1 = stream_time(s1 - lv, p->time_shift);
  *ta0 = stream_time(s0 - la, p->time_shift);
  *ta1 = stream_time(s1 - la, p->time_shift);
}

/* Keep masks per task, unless the caller gave explicit ones (inpainting, editing). */
static void fill_keep(const duet_model_config *c, const duet_sample_params *p, const duet_sample_condition *cond,
                      float *vkeep, float *akeep) {
  int T = c->video_frames, HW = c->video_height * c->video_width, F = c->audio_frames;
  int keep_v = 0, keep_a = 0, all_v = 0, all_a = 0;
  switch (p->task) {
    case DUET_TASK_I2AV: keep_v = 1; break;
    case DUET_TASK_EXTEND:
      keep_v = cond->keep_frames;
      keep_a = (int)(cond->keep_frames * c->audio_rate / c->fps);
      break;
    case DUET_TASK_V2A: all_v = 1; break;
    case DUET_TASK_A2V: all_a = 1; break;
    default: break;
  }
  for (int t = 0; t < T; t++)
    for (int i = 0; i < HW; i++) {
      int64_t k = (int64_t)t * HW + i;
      vkeep[k] = cond->video_keep ? cond->video_keep[k] : (float)(all_v || t < keep_v);
    }
  for (int f = 0; f < F; f++) akeep[f] = cond->audio_keep ? cond->audio_keep[f] : (float)(all_a || f < keep_a);
}

typedef struct sample_state {
  duet_mmdit *m;
  const duet_model_config *c;
  const duet_sample_params *p;
  /* Row 0 is the conditional pass; the others exist only when their guidance is on (-1 when
   * not): the empty caption, the audio without the video, the video without the audio. */
  int row_uncond, row_no_video, row_no_audio;
  int rows;
  int64_t vn, an, vpix;
  float *vcond, *vmask, *acond, *amask; /* [rows, ...] model inputs */
  int32_t *ids;
  float *emb;
  uint8_t *tmask;
  float *vin, *ain;           /* [rows, ...] x_t copies */
  const float *v_left_out, *a_left_out; /* a stream left out: its initial noise, at t = 1 */
  duet_graph g;
} sample_state;

enum { MAX_ROWS = 4 };

/* What guidance of scale s adds to a conditional velocity v_c: v_x + s (v_c - v_x) is
 * v_c + (s - 1)(v_c - v_x), so s = 1 adds nothing. */
static double guide(double vc, double vx, double s) { return (s - 1.0) * (vc - vx); }

/* Velocity at (x_v, x_a, t_v, t_a) with guidance applied: the conditional velocity v_c plus
 * (s - 1)(v_c - v_x) for every guidance that is on, v_x being the pass without the caption
 * (scale cfg_*) or without the other stream (scale sync_cfg_*). */
static int velocity(sample_state *s, const float *xv, const float *xa, float tv, float ta, float *vv, float *va,
                    duet_err *err) {
  const duet_model_config *c = s->c;
  duet_graph *g = &s->g;
  duet_graph_reset(g);
  int R = s->rows, L = c->text_len;
  float tvs[MAX_ROWS], tas[MAX_ROWS];
  for (int r = 0; r < R; r++) {
    /* A left-out stream is what t2a and t2v train: its noise at flow time 1. */
    int no_v = r == s->row_no_video, no_a = r == s->row_no_audio;
    memcpy(s->vin + r * s->vn, no_v ? s->v_left_out : xv, sizeof(float) * (size_t)s->vn);
    memcpy(s->ain + r * s->an, no_a ? s->a_left_out : xa, sizeof(float) * (size_t)s->an);
    tvs[r] = no_v ? 1.0f : tv;
    tas[r] = no_a ? 1.0f : ta;
  }
  int64_t vs[5] = {R, c->video_frames, c->video_height, c->video_width, c->video_channels};
  int64_t vm[5] = {R, c->video_frames, c->video_height, c->video_width, 1};
  int64_t as[3] = {R, c->audio_frames, c->audio_channels}, am[3] = {R, c->audio_frames, 1};
  int64_t ts[1] = {R}, ls[2] = {R, L}, es[3] = {R, L, c->text_emb_dim};
  duet_mmdit_inputs in = {
      duet_graph_from_host(g, DUET_F32, DUET_CPU, 5, vs, s->vin),
      duet_graph_from_host(g, DUET_F32, DUET_CPU, 5, vs, s->vcond),
      duet_graph_from_host(g, DUET_F32, DUET_CPU, 5, vm, s->vmask),
      duet_graph_from_host(g, DUET_F32, DUET_CPU, 3, as, s->ain),
      duet_graph_from_host(g, DUET_F32, DUET_CPU, 3, as, s->acond),
      duet_graph_from_host(g, DUET_F32, DUET_CPU, 3, am, s->amask),
      duet_graph_from_host(g, DUET_F32, DUET_CPU, 1, ts, tvs),
      duet_graph_from_host(g, DUET_F32, DUET_CPU, 1, ts, tas),
      s->ids ? duet_graph_from_host(g, DUET_I32, DUET_CPU, 2, ls, s->ids)
             : duet_graph_from_host(g, DUET_F32, DUET_CPU, 3, es, s->emb),
      duet_graph_from_host(g, DUET_U8, DUET_CPU, 2, ls, s->tmask),
      NULL,
      NULL,
  };
  duet_mmdit_outputs out;
  int rc = duet_mmdit_forward(s->m, g, &in, &out, err);
  if (rc) return rc;
  const float *ov = out.video_v->data, *oa = out.audio_v->data;
  const float *vu = s->row_uncond >= 0 ? ov + s->row_uncond * s->vn : NULL;
  const float *au = s->row_uncond >= 0 ? oa + s->row_uncond * s->an : NULL;
  const float *vx = s->row_no_audio >= 0 ? ov + s->row_no_audio * s->vn : NULL;
  const float *ax = s->row_no_video >= 0 ? oa + s->row_no_video * s->an : NULL;
  const duet_sample_params *p = s->p;
  for (int64_t i = 0; i < s->vn; i++) {
    double v = ov[i];
    if (vu) v += guide(ov[i], vu[i], p->cfg_video);
    if (vx) v += guide(ov[i], vx[i], p->sync_cfg_video);
    vv[i] = (float)v;
  }
  for (int64_t i = 0; i < s->an; i++) {
    double v = oa[i];
    if (au) v += guide(oa[i], au[i], p->cfg_audio);
    if (ax) v += guide(oa[i], ax[i], p->sync_cfg_audio);
    va[i] = (float)v;
  }
  /* A clean estimate outside the codec's range is off the data for sure (guidance and an
   * imperfect network both push there); pulling it back keeps the path where the network was
   * trained instead of letting saturated pixels grow into grain, or log-mel energies above
   * full scale into a clipped roar (guided audio did exactly that). */
  double lv = s->p->clamp_video, la = s->p->clamp_audio;
  if (lv > 0) clamp_estimate(xv, vv, s->vn, tv, -lv, lv);
  /* Audio from above only: anything at or below the codec's floor (-1) decodes to silence. */
  if (la > 0) clamp_estimate(xa, va, s->an, ta, -INFINITY, la);
  return DUET_OK;
}

int duet_sample(duet_mmdit *m, const duet_sample_params *p, const duet_sample_condition *cond, float *video_out,
                float *audio_out, duet_sample_progress progress, void *progress_ctx, duet_err *err) {
  const duet_model_config *c = &m->cfg;
  if (p->steps < 1) return duet_err_set(err, DUET_EINVAL, "sampler: steps must be >= 1");
  if (p->time_shift <= 0) return duet_err_set(err, DUET_EINVAL, "sampler: time shift must be positive");
  if (!(p->audio_lag >= -1 && p->audio_lag <= 1)) return duet_err_set(err, DUET_EINVAL, "sampler: audio lag must lie in [-1, 1]");
  if (!isfinite(p->cfg_video) || !isfinite(p->cfg_audio) || !isfinite(p->sync_cfg_video) || !isfinite(p->sync_cfg_audio))
    return duet_err_set(err, DUET_EINVAL, "sampler: guidance scales must be finite numbers");
  int needs_video = p->task == DUET_TASK_I2AV || p->task == DUET_TASK_EXTEND || p->task == DUET_TASK_V2A ||
                    (p->task == DUET_TASK_INPAINT);
  int needs_audio = p->task == DUET_TASK_A2V || p->task == DUET_TASK_EXTEND || p->task == DUET_TASK_INPAINT;
  if (needs_video && !cond->video) return duet_err_set(err, DUET_EINVAL, "sampler: task %s needs a video condition", duet_task_names[p->task]);
  if (needs_audio && !cond->audio) return duet_err_set(err, DUET_EINVAL, "sampler: task %s needs an audio condition", duet_task_names[p->task]);
  if (!cond->text_mask || (!cond->text_ids && !cond->text_emb))
    return duet_err_set(err, DUET_EINVAL, "sampler: no caption (an empty one is fine, a missing one is not)");

  sample_state s;
  memset(&s, 0, sizeof s);
  s.m = m;
  s.c = c;
  s.p = p;
  int video_fixed = p->task == DUET_TASK_V2A, audio_fixed = p->task == DUET_TASK_A2V;
  int video_noise_only = p->task == DUET_TASK_T2A, audio_noise_only = p->task == DUET_TASK_T2V;
  int move_v = !video_fixed && !video_noise_only, move_a = !audio_fixed && !audio_noise_only;
  s.rows = 1;
  s.row_uncond = p->cfg_video != 1.0 || p->cfg_audio != 1.0 ? s.rows++ : -1;
  /* Guiding a stream by the other needs the stream to move and the other to be there. */
  s.row_no_video = p->sync_cfg_audio != 1.0 && move_a && !video_noise_only ? s.rows++ : -1;
  s.row_no_audio = p->sync_cfg_video != 1.0 && move_v && !audio_noise_only ? s.rows++ : -1;
  int L = c->text_len, C = c->video_channels, M = c->audio_channels;
  s.vpix = (int64_t)c->video_frames * c->video_height * c->video_width;
  s.vn = s.vpix * C;
  s.an = (int64_t)c->audio_frames * M;
  int R = s.rows;
  float *vkeep = malloc(sizeof(float) * (size_t)s.vpix), *akeep = malloc(sizeof(float) * (size_t)c->audio_frames);
  s.vcond = calloc((size_t)(R * s.vn), sizeof(float));
  s.vmask = calloc((size_t)(R * s.vpix), sizeof(float));
  s.acond = calloc((size_t)(R * s.an), sizeof(float));
  s.amask = calloc((size_t)(R * c->audio_frames), sizeof(float));
  s.vin = malloc(sizeof(float) * (size_t)(R * s.vn));
  s.ain = malloc(sizeof(float) * (size_t)(R * s.an));
  s.tmask = calloc((size_t)(R * L), 1);
  if (cond->text_ids) s.ids = calloc((size_t)(R * L), sizeof(int32_t));
  else s.emb = calloc((size_t)(R * L * c->text_emb_dim), sizeof(float));
  float *xv = malloc(sizeof(float) * (size_t)s.vn), *xa = malloc(sizeof(float) * (size_t)s.an);
  float *v1 = malloc(sizeof(float) * (size_t)(s.vn + s.an)), *v2 = malloc(sizeof(float) * (size_t)(s.vn + s.an));
  float *xv2 = malloc(sizeof(float) * (size_t)s.vn), *xa2 = malloc(sizeof(float) * (size_t)s.an);
  float *v_noise = malloc(sizeof(float) * (size_t)s.vn), *a_noise = malloc(sizeof(float) * (size_t)s.an);
  int rc = DUET_OK;
  if (!vkeep || !akeep || !s.vcond || !s.vmask || !s.acond || !s.amask || !s.vin || !s.ain || !s.tmask ||
      (!s.ids && !s.emb) || !xv || !xa || !v1 || !v2 || !xv2 || !xa2 || !v_noise || !a_noise) {
    rc = duet_err_set(err, DUET_ENOMEM, "sampler: out of memory");
    goto done;
  }
  fill_keep(c, p, cond, vkeep, akeep);
  /* Every row keeps what the task keeps and reads the caption, except that the unconditional row
   * reads an empty one and a row that leaves a stream out keeps nothing of it (as t2a and t2v
   * train: mask "generate", no condition). */
  for (int r = 0; r < R; r++) {
    int no_v = r == s.row_no_video, no_a = r == s.row_no_audio;
    for (int64_t i = 0; i < s.vpix; i++) {
      int keep = vkeep[i] > 0 && !no_v;
      s.vmask[r * s.vpix + i] = no_v ? 1.0f : 1.0f - vkeep[i];
      for (int ch = 0; ch < C; ch++)
        s.vcond[r * s.vn + i * C + ch] = keep && cond->video ? cond->video[i * C + ch] : 0.0f;
    }
    for (int f = 0; f < c->audio_frames; f++) {
      int keep = akeep[f] > 0 && !no_a;
      s.amask[r * c->audio_frames + f] = no_a ? 1.0f : 1.0f - akeep[f];
      for (int ch = 0; ch < M; ch++)
        s.acond[r * s.an + (int64_t)f * M + ch] = keep && cond->audio ? cond->audio[(int64_t)f * M + ch] : 0.0f;
    }
    if (r == s.row_uncond) continue;
    memcpy(s.tmask + (size_t)r * L, cond->text_mask, (size_t)L);
    if (s.ids) memcpy(s.ids + (size_t)r * L, cond->text_ids, sizeof(int32_t) * (size_t)L);
    else memcpy(s.emb + (size_t)r * L * c->text_emb_dim, cond->text_emb, sizeof(float) * (size_t)(L * c->text_emb_dim));
  }

  /* Initial noise, from the seed alone; a stream's own noise also stands in for it where a
   * guidance row leaves it out. */
  duet_rng_fill_normal_f32(p->seed, 1, 0, xv, s.vn, 0, 1);
  duet_rng_fill_normal_f32(p->seed, 2, 0, xa, s.an, 0, 1);
  memcpy(v_noise, xv, sizeof(float) * (size_t)s.vn);
  memcpy(a_noise, xa, sizeof(float) * (size_t)s.an);
  s.v_left_out = v_noise;
  s.a_left_out = a_noise;
  if (video_fixed) memcpy(xv, cond->video, sizeof(float) * (size_t)s.vn);
  if (audio_fixed) memcpy(xa, cond->audio, sizeof(float) * (size_t)s.an);

  /* A lag only means something when both streams are generated; with one kept or left out it
   * would just leave the other waiting at t = 1 for part of the steps. */
  duet_sample_params sched = *p;
  if (video_fixed || audio_fixed || video_noise_only || audio_noise_only) sched.audio_lag = 0;

  duet_graph_init(&s.g, 1 << 24);
  for (int i = 0; i < p->steps && rc == DUET_OK; i++) {
    double tv0s, tv1s, ta0s, ta1s;
    duet_sample_times(&sched, i, &tv0s, &tv1s, &ta0s, &ta1s);
    double dtv = tv1s - tv0s, dta = ta1s - ta0s;
    /* Times as in training: a kept modality at 0, a left-out one at 1. */
    float tv0 = video_fixed ? 0.0f : video_noise_only ? 1.0f : (float)tv0s;
    float ta0 = audio_fixed ? 0.0f : audio_noise_only ? 1.0f : (float)ta0s;
    float tv1 = video_fixed ? 0.0f : video_noise_only ? 1.0f : (float)tv1s;
    float ta1 = audio_fixed ? 0.0f : audio_noise_only ? 1.0f : (float)ta1s;
    rc = velocity(&s, xv, xa, tv0, ta0, v1, v1 + s.vn, err);
    if (rc) break;
    int heun = p->sampler == DUET_SAMPLER_HEUN && i + 1 < p->steps; /* last step: Euler to t = 0 */
    if (heun) {
      for (int64_t j = 0; j < s.vn; j++) xv2[j] = move_v ? xv[j] + (float)dtv * v1[j] : xv[j];
      for (int64_t j = 0; j < s.an; j++) xa2[j] = move_a ? xa[j] + (float)dta * v1[s.vn + j] : xa[j];
      rc = velocity(&s, xv2, xa2, tv1, ta1, v2, v2 + s.vn, err);
      if (rc) break;
      for (int64_t j = 0; j < s.vn + s.an; j++) v1[j] = 0.5f * (v1[j] + v2[j]);
    }
    if (move_v)
      for (int64_t j = 0; j < s.vn; j++) xv[j] += (float)dtv * v1[j];
    if (move_a)
      for (int64_t j = 0; j < s.an; j++) xa[j] += (float)dta * v1[s.vn + j];
    if (progress) progress(i + 1, p->steps, progress_ctx);
  }
  if (rc == DUET_OK) {
    /* Kept regions come back exactly as given. */
    for (int64_t i = 0; i < s.vpix; i++)
      for (int ch = 0; ch < C; ch++)
        video_out[i * C + ch] = vkeep[i] > 0 && cond->video ? cond->video[i * C + ch] : xv[i * C + ch];
    for (int f = 0; f < c->audio_frames; f++)
      for (int ch = 0; ch < M; ch++) {
        int64_t k = (int64_t)f * M + ch;
        audio_out[k] = akeep[f] > 0 && cond->audio ? cond->audio[k] : xa[k];
      }
  }
  duet_graph_free(&s.g);
done:
  free(vkeep); free(akeep); free(s.vcond); free(s.vmask); free(s.acond); free(s.amask);
  free(s.vin); free(s.ain); free(s.tmask); free(s.ids); free(s.emb);
  free(xv); free(xa); free(v1); free(v2); free(xv2); free(xa2); free(v_noise); free(a_noise);
  return rc;
}
