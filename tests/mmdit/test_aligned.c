/* The time-aligned exchange (model.aligned_width): an audio token takes in the video of its own
 * instant and nothing else, and a video token the audio of its own instant.
 *
 * At initialisation every adaLN-Zero gate is 0, so each block's attentions and MLPs leave the
 * tokens as they are; with the exchange's outputs and the final layers given random weights,
 * the exchange is the only path between the branches. Changing the video of one video token
 * step must then change the predicted audio of exactly that step's audio frames, and changing
 * the audio of one step the predicted video of exactly that step's frames. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

typedef struct host_inputs {
  float *vxt, *vcond, *vmask, *axt, *acond, *amask, tv[B], ta[B];
  int32_t *ids;
  uint8_t *tmask;
} host_inputs;

/* Runs the model on h; copies the predicted velocities out. */
static void predict(duet_mmdit *m, duet_graph *g, const host_inputs *h, float *vout, float *aout) {
  const duet_model_config *c = &m->cfg;
  duet_graph_reset(g);
  int64_t vs[5] = {B, c->video_frames, c->video_height, c->video_width, c->video_channels};
  int64_t vm[5] = {B, c->video_frames, c->video_height, c->video_width, 1};
  int64_t as[3] = {B, c->audio_frames, c->audio_channels}, am[3] = {B, c->audio_frames, 1};
  int64_t ts[1] = {B}, ls[2] = {B, c->text_len};
  duet_mmdit_inputs in = {
      duet_graph_from_host(g, DUET_F32, DUET_CPU, 5, vs, h->vxt), duet_graph_from_host(g, DUET_F32, DUET_CPU, 5, vs, h->vcond),
      duet_graph_from_host(g, DUET_F32, DUET_CPU, 5, vm, h->vmask), duet_graph_from_host(g, DUET_F32, DUET_CPU, 3, as, h->axt),
      duet_graph_from_host(g, DUET_F32, DUET_CPU, 3, as, h->acond), duet_graph_from_host(g, DUET_F32, DUET_CPU, 3, am, h->amask),
      duet_graph_from_host(g, DUET_F32, DUET_CPU, 1, ts, h->tv), duet_graph_from_host(g, DUET_F32, DUET_CPU, 1, ts, h->ta),
      duet_graph_from_host(g, DUET_I32, DUET_CPU, 2, ls, h->ids), duet_graph_from_host(g, DUET_U8, DUET_CPU, 2, ls, h->tmask),
      NULL, NULL};
  duet_mmdit_outputs o;
  duet_err err;
  int rc = duet_mmdit_forward(m, g, &in, &o, &err);
  CHECK_MSG(rc == DUET_OK, "forward: %s", err.msg);
  if (rc) return;
  memcpy(vout, o.video_v->data, sizeof(float) * (size_t)o.video_v->numel);
  memcpy(aout, o.audio_v->data, sizeof(float) * (size_t)o.audio_v->numel);
}

/* Largest change per frame (video: over H, W, C; audio: over mel bands) of sample b. */
static double frame_change(const float *x, const float *y, int b, int frames, int64_t per_frame, int f) {
  double worst = 0;
  const float *px = x + ((int64_t)b * frames + f) * per_frame, *py = y + ((int64_t)b * frames + f) * per_frame;
  for (int64_t i = 0; i < per_frame; i++) worst = fmax(worst, fabs((double)px[i] - py[i]));
  return worst;
}

int main(void) {
  duet_model_config c = tiny_model_config();
  c.depth = 1;
  c.aligned_width = 2;
  duet_param_set ps;
  duet_params_init(&ps);
  duet_mmdit *m = NULL;
  duet_err err;
  CHECK_MSG(duet_mmdit_create(&m, &c, &ps, 5, &err) == DUET_OK, "create: %s", err.msg);
  if (!m) return test_finish("mmdit_aligned");
  const duet_aligned_weights *w = &m->blocks[0].aligned;
  fill_random(w->audio_from_video.weight, 1, 0.3f);
  fill_random(w->video_from_audio.weight, 2, 0.3f);
  fill_random(m->video.final_out.weight, 3, 0.3f);
  fill_random(m->audio.final_out.weight, 4, 0.3f);

  const int T = c.video_frames, F = c.audio_frames, gt = T / c.patch_t;
  const int64_t vframe = (int64_t)c.video_height * c.video_width * c.video_channels, aframe = c.audio_channels;
  const int64_t vn = B * T * vframe, an = (int64_t)B * F * aframe;
  const int a_per_step = F / gt; /* audio frames per video token step */
  host_inputs h = {0};
  h.vxt = calloc((size_t)vn, sizeof(float));
  h.vcond = calloc((size_t)vn, sizeof(float));
  h.vmask = calloc((size_t)(B * T * c.video_height * c.video_width), sizeof(float));
  h.axt = calloc((size_t)an, sizeof(float));
  h.acond = calloc((size_t)an, sizeof(float));
  h.amask = calloc((size_t)(B * F), sizeof(float));
  h.ids = calloc((size_t)(B * c.text_len), sizeof(int32_t));
  h.tmask = calloc((size_t)(B * c.text_len), 1);
  float *v0 = malloc(sizeof(float) * (size_t)vn), *a0 = malloc(sizeof(float) * (size_t)an);
  float *v1 = malloc(sizeof(float) * (size_t)vn), *a1 = malloc(sizeof(float) * (size_t)an);
  duet_rng r = duet_rng_make(9, 0);
  for (int64_t i = 0; i < vn; i++) h.vxt[i] = (float)duet_rng_normal_f64(&r);
  for (int64_t i = 0; i < an; i++) h.axt[i] = (float)duet_rng_normal_f64(&r);
  for (int i = 0; i < B; i++) h.tv[i] = h.ta[i] = 0.5f;
  for (int i = 0; i < B * c.text_len; i++) {
    h.ids[i] = 'a' + i % 7;
    h.tmask[i] = 1;
  }
  duet_graph g;
  duet_graph_init(&g, 1 << 20);
  predict(m, &g, &h, v0, a0);
  float *vxt_kept = malloc(sizeof(float) * (size_t)vn);
  memcpy(vxt_kept, h.vxt, sizeof(float) * (size_t)vn);

  /* The video of the second video token step (its patch_t frames), in sample 1 only. */
  for (int f = c.patch_t; f < 2 * c.patch_t; f++)
    for (int64_t i = 0; i < vframe; i++) h.vxt[((int64_t)1 * T + f) * vframe + i] += 1.0f;
  predict(m, &g, &h, v1, a1);
  for (int b = 0; b < B; b++)
    for (int f = 0; f < F; f++) {
      double d = frame_change(a0, a1, b, F, aframe, f);
      int inside = b == 1 && f / a_per_step == 1;
      if (inside) CHECK_MSG(d > 1e-4, "audio frame %d of sample %d did not follow its instant's video", f, b);
      else CHECK_MSG(d == 0, "audio frame %d of sample %d changed by %g with another instant's video", f, b, d);
    }
  memcpy(h.vxt, vxt_kept, sizeof(float) * (size_t)vn); /* back exactly: x + 1 - 1 may round */

  /* The audio of the first step, in sample 0 only. */
  for (int f = 0; f < a_per_step; f++)
    for (int64_t i = 0; i < aframe; i++) h.axt[((int64_t)0 * F + f) * aframe + i] += 1.0f;
  predict(m, &g, &h, v1, a1);
  for (int b = 0; b < B; b++)
    for (int f = 0; f < T; f++) {
      double d = frame_change(v0, v1, b, T, vframe, f);
      int inside = b == 0 && f / c.patch_t == 0;
      if (inside) CHECK_MSG(d > 1e-4, "video frame %d of sample %d did not follow its instant's audio", f, b);
      else CHECK_MSG(d == 0, "video frame %d of sample %d changed by %g with another instant's audio", f, b, d);
    }

  /* A config the exchange cannot serve is refused, naming the key. */
  duet_model_config bad = c;
  bad.audio_frames = 12; /* 3 audio tokens over 2 video token steps */
  duet_mmdit *mb = NULL;
  duet_param_set pb;
  duet_params_init(&pb);
  CHECK(duet_mmdit_create(&mb, &bad, &pb, 1, &err) == DUET_EINVAL && strstr(err.msg, "aligned_width"));
  bad = c;
  bad.fusion = DUET_FUSION_JOINT;
  bad.width_audio = bad.width_text = bad.width_video;
  bad.heads_audio = bad.heads_video;
  CHECK(duet_mmdit_create(&mb, &bad, &pb, 1, &err) == DUET_EINVAL && strstr(err.msg, "aligned_width"));
  duet_params_free(&pb);

  duet_graph_free(&g);
  duet_mmdit_free(m);
  duet_params_free(&ps);
  free(h.vxt); free(h.vcond); free(h.vmask); free(h.axt); free(h.acond); free(h.amask); free(h.ids); free(h.tmask);
  free(v0); free(a0); free(v1); free(a1); free(vxt_kept);
  return test_finish("mmdit_aligned");
}
