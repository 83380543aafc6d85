#include "model/positions.h"

#include <stdlib.h>
#include <string.h>

/* Token time = centre of its patch; index may be negative for reference tokens. */
double duet_video_token_time(const duet_model_config *cfg, int time_index) {
  return (time_index * cfg->patch_t + 0.5 * (cfg->patch_t - 1)) / cfg->fps;
}

double duet_audio_token_time(const duet_model_config *cfg, int time_index) {
  return (time_index * cfg->patch_a + 0.5 * (cfg->patch_a - 1)) / cfg->audio_rate;
}

static void spec_add(duet_rope_spec *s, int pairs) {
  if (pairs > 0) s->pairs_per_axis[s->n_axes++] = pairs;
}

int duet_positions_make(duet_positions *p, const duet_model_config *cfg, duet_err *err) {
  memset(p, 0, sizeof *p);
  int tp = cfg->rope_time_pairs;
  double scale = cfg->rope_time_scale;

  /* Video: time, then the rest split between h and w. */
  int pv = cfg->width_video / cfg->heads_video / 2;
  int rest = pv - tp, ph = (rest + 1) / 2, pw = rest / 2;
  duet_branch_positions *v = &p->video;
  v->self_spec.theta = v->cross_spec.theta = cfg->rope_theta;
  spec_add(&v->self_spec, tp);
  spec_add(&v->self_spec, ph);
  spec_add(&v->self_spec, pw);
  spec_add(&v->cross_spec, tp);
  spec_add(&v->cross_spec, rest);
  int gt = cfg->video_frames / cfg->patch_t, gh = cfg->video_height / cfg->patch_h, gw = cfg->video_width / cfg->patch_w;
  int rt = cfg->ref_video_frames / cfg->patch_t;
  v->ref_tokens = rt * gh * gw;
  v->tokens = v->ref_tokens + gt * gh * gw;
  v->self_axes = v->self_spec.n_axes;

  /* Audio: time, then its own fine index. */
  int pa = cfg->width_audio / cfg->heads_audio / 2;
  duet_branch_positions *a = &p->audio;
  a->self_spec.theta = a->cross_spec.theta = cfg->rope_theta;
  spec_add(&a->self_spec, tp);
  spec_add(&a->self_spec, pa - tp);
  spec_add(&a->cross_spec, tp);
  spec_add(&a->cross_spec, pa - tp);
  int ra = cfg->ref_audio_frames / cfg->patch_a;
  a->ref_tokens = ra;
  a->tokens = ra + cfg->audio_frames / cfg->patch_a;
  a->self_axes = a->self_spec.n_axes;

  v->self_pos = calloc((size_t)v->tokens * (size_t)v->self_axes, sizeof(float));
  v->times = calloc((size_t)v->tokens, sizeof(float));
  a->self_pos = calloc((size_t)a->tokens * (size_t)a->self_axes, sizeof(float));
  a->times = calloc((size_t)a->tokens, sizeof(float));
  if (!v->self_pos || !v->times || !a->self_pos || !a->times) {
    duet_positions_free(p);
    return duet_err_set(err, DUET_ENOMEM, "out of memory for position tables");
  }
  /* Video tokens in (t, h, w) order, references first at times before 0. */
  int i = 0;
  for (int t = -rt; t < gt; t++)
    for (int y = 0; y < gh; y++)
      for (int x = 0; x < gw; x++, i++) {
        float time = (float)(duet_video_token_time(cfg, t) * scale);
        float *s = v->self_pos + (size_t)i * (size_t)v->self_axes;
        s[0] = time;
        if (v->self_axes > 1) s[1] = (float)y;
        if (v->self_axes > 2) s[2] = (float)x;
        v->times[i] = time;
      }
  for (int t = -ra, j = 0; t < a->tokens - ra; t++, j++) {
    float time = (float)(duet_audio_token_time(cfg, t) * scale);
    float *s = a->self_pos + (size_t)j * (size_t)a->self_axes;
    s[0] = time;
    if (a->self_axes > 1) s[1] = (float)t;
    a->times[j] = time;
  }
  return DUET_OK;
}

void duet_positions_free(duet_positions *p) {
  free(p->video.self_pos);
  free(p->video.times);
  free(p->audio.self_pos);
  free(p->audio.times);
  memset(p, 0, sizeof *p);
}

duet_tensor *duet_positions_tensor(duet_graph *g, const float *table, int axes, int first, int n) {
  int64_t shape[2] = {n, axes};
  return duet_graph_from_host(g, DUET_F32, DUET_CPU, 2, shape, table + (size_t)first * (size_t)axes);
}

duet_tensor *duet_positions_cross_tensor(duet_graph *g, const float *times, int first, int n, int axes) {
  int64_t shape[2] = {n, axes};
  duet_tensor *t = duet_graph_zeros(g, DUET_F32, DUET_CPU, 2, shape);
  if (!t) return NULL;
  float *d = t->data;
  for (int i = 0; i < n; i++) d[(size_t)i * (size_t)axes] = times[first + i];
  return t;
}
