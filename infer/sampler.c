#include "infer/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

void duet_sample_params_defaults(duet_sample_params *p) {
  *p = (duet_sample_params){DUET_TASK_T2AV, DUET_SAMPLER_HEUN, 25, 3.0, 3.0, 1.0, 0, 1.0, 1.0, 0.0};
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
  int guided;     /* two rows: conditional, unconditional */
  int rows;
  int64_t vn, an, vpix;
  float *vcond, *vmask, *acond, *amask; /* [rows, ...] model inputs */
  int32_t *ids;
  float *emb;
  uint8_t *tmask;
  float *vin, *ain; /* [rows, ...] x_t copies */
  duet_graph g;
} sample_state;

/* Velocity at (x_v, x_a, t_v, t_a) with guidance applied: v = v_u + s (v_c - v_u). */
static int velocity(sample_state *s, const float *xv, const float *xa, float tv, float ta, float *vv, float *va,
                    duet_err *err) {
  const duet_model_config *c = s->c;
  duet_graph *g = &s->g;
  duet_graph_reset(g);
  int R = s->rows, L = c->text_len;
  for (int r = 0; r < R; r++) {
    memcpy(s->vin + r * s->vn, xv, sizeof(float) * (size_t)s->vn);
    memcpy(s->ain + r * s->an, xa, sizeof(float) * (size_t)s->an);
  }
  int64_t vs[5] = {R, c->video_frames, c->video_height, c->video_width, c->video_channels};
  int64_t vm[5] = {R, c->video_frames, c->video_height, c->video_width, 1};
  int64_t as[3] = {R, c->audio_frames, c->audio_channels}, am[3] = {R, c->audio_frames, 1};
  int64_t ts[1] = {R}, ls[2] = {R, L}, es[3] = {R, L, c->text_emb_dim};
  float tvs[2] = {tv, tv}, tas[2] = {ta, ta};
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
  double gv = s->p->cfg_video, ga = s->p->cfg_audio;
  for (int64_t i = 0; i < s->vn; i++)
    vv[i] = s->guided ? (float)(ov[s->vn + i] + gv * (ov[i] - ov[s->vn + i])) : ov[i];
  for (int64_t i = 0; i < s->an; i++)
    va[i] = s->guided ? (float)(oa[s->an + i] + ga * (oa[i] - oa[s->an + i])) : oa[i];
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
  s.guided = p->cfg_video != 1.0 || p->cfg_audio != 1.0;
  s.rows = s.guided ? 2 : 1;
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
  int rc = DUET_OK;
  if (!vkeep || !akeep || !s.vcond || !s.vmask || !s.acond || !s.amask || !s.vin || !s.ain || !s.tmask ||
      (!s.ids && !s.emb) || !xv || !xa || !v1 || !v2 || !xv2 || !xa2) {
    rc = duet_err_set(err, DUET_ENOMEM, "sampler: out of memory");
    goto done;
  }
  fill_keep(c, p, cond, vkeep, akeep);
  /* Row 0 conditional; row 1 (guidance) the same with an empty caption. */
  for (int r = 0; r < R; r++) {
    for (int64_t i = 0; i < s.vpix; i++) {
      s.vmask[r * s.vpix + i] = 1.0f - vkeep[i];
      for (int ch = 0; ch < C; ch++)
        s.vcond[r * s.vn + i * C + ch] = vkeep[i] > 0 && cond->video ? cond->video[i * C + ch] : 0.0f;
    }
    for (int f = 0; f < c->audio_frames; f++) {
      s.amask[r * c->audio_frames + f] = 1.0f - akeep[f];
      for (int ch = 0; ch < M; ch++)
        s.acond[r * s.an + (int64_t)f * M + ch] = akeep[f] > 0 && cond->audio ? cond->audio[(int64_t)f * M + ch] : 0.0f;
    }
  }
  memcpy(s.tmask, cond->text_mask, (size_t)L);
  if (s.ids) memcpy(s.ids, cond->text_ids, sizeof(int32_t) * (size_t)L);
  else memcpy(s.emb, cond->text_emb, sizeof(float) * (size_t)(L * c->text_emb_dim));

  /* Initial noise, from the seed alone. */
  duet_rng_fill_normal_f32(p->seed, 1, 0, xv, s.vn, 0, 1);
  duet_rng_fill_normal_f32(p->seed, 2, 0, xa, s.an, 0, 1);
  int video_fixed = p->task == DUET_TASK_V2A, audio_fixed = p->task == DUET_TASK_A2V;
  int video_noise_only = p->task == DUET_TASK_T2A, audio_noise_only = p->task == DUET_TASK_T2V;
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
    int move_v = !video_fixed && !video_noise_only, move_a = !audio_fixed && !audio_noise_only;
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
  free(xv); free(xa); free(v1); free(v2); free(xv2); free(xa2);
  return rc;
}
