/* Offset estimation on clips synthesised in memory (no codec): a white flash on black and a
 * beep of the same length at irregular times, the audio shifted by a known amount. Also the
 * per-clip API's failure messages on clips that cannot be measured. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"
#include "testlib.h"

static const double EVENTS[] = {0.52, 1.31, 1.77, 2.63, 3.18};
enum { N_EVENTS = 5 };

typedef struct clip {
  uint8_t *video;
  float *audio;
  int frames, h, w, sr;
  int64_t samples;
  double fps;
} clip;

/* Flash for two frames from the first frame at or after each event; beep of the same length
 * starting `shift` seconds after the flash. */
static void make_clip(clip *c, double fps, int h, int w, double shift, double seconds) {
  c->fps = fps;
  c->h = h;
  c->w = w;
  c->sr = 48000;
  c->frames = (int)(seconds * fps);
  c->samples = (int64_t)(seconds * c->sr);
  c->video = calloc((size_t)c->frames * h * w * 3, 1);
  c->audio = calloc((size_t)c->samples, sizeof(float));
  for (int e = 0; e < N_EVENTS; e++) {
    int f0 = (int)ceil(EVENTS[e] * fps - 1e-9);
    for (int f = f0; f < f0 + 2 && f < c->frames; f++)
      for (int y = h / 4; y < 3 * h / 4; y++)
        memset(c->video + (((size_t)f * h + y) * w + w / 4) * 3, 255, (size_t)w / 2 * 3);
    int64_t s0 = llround((f0 / fps + shift) * c->sr), len = llround(2 / fps * c->sr);
    for (int64_t s = s0; s < s0 + len; s++)
      if (s >= 0 && s < c->samples)
        c->audio[s] = (float)(0.5 * sin(2 * M_PI * 880.0 * (s - s0) / c->sr));
  }
}

static void free_clip(clip *c) {
  free(c->video);
  free(c->audio);
}

static void test_known_offsets(void) {
  const double fps_list[] = {25.0, 30.0};
  int total = 0, within = 0;
  double worst = 0;
  for (int k = 0; k < 2; k++)
    for (int ms = -200; ms <= 200; ms += 25) {
      double shift = (ms + 3.7) / 1000.0; /* off the 10 ms grid on purpose */
      clip c;
      make_clip(&c, fps_list[k], 48, 64, shift, 4.0);
      duet_offset o;
      duet_err err = {0};
      int rc = duet_offset_estimate(c.video, c.frames, c.h, c.w, c.fps, c.audio, c.samples, c.sr,
                                    NULL, &o, &err);
      CHECK_MSG(rc == 0, "%s", err.msg);
      if (!rc) {
        double e = o.offset_ms - shift * 1000;
        total++;
        within += fabs(e) <= 1000 / c.fps;
        worst = fmax(worst, fabs(e));
        CHECK_MSG(fabs(e) <= 1000 / c.fps, "fps %g, truth %.1f ms, estimate %.1f ms", c.fps,
                  shift * 1000, o.offset_ms);
        CHECK_MSG((o.offset_ms > 0) == (shift > 0), "sign wrong at %.1f ms", shift * 1000);
        CHECK(o.confidence > 2);
        CHECK_EQ_INT(o.within_bt1359, o.offset_ms >= -45 && o.offset_ms <= 125);
        duet_offset_free(&o);
      }
      free_clip(&c);
    }
  printf("in-memory clips: %d/%d within one frame, worst error %.1f ms\n", within, total, worst);
}

static void test_large_frames(void) {
  /* 270 rows are box-averaged to 67 for motion energy; the result must not change. */
  clip c;
  make_clip(&c, 25.0, 270, 480, -0.080, 4.0);
  duet_offset o;
  duet_err err = {0};
  CHECK(duet_offset_estimate(c.video, c.frames, c.h, c.w, c.fps, c.audio, c.samples, c.sr, NULL,
                             &o, &err) == 0);
  CHECK_NEAR(o.offset_ms, -80.0, 1000 / 25.0);
  duet_offset_free(&o);
  free_clip(&c);
}

static void test_clip_api(void) {
  clip c;
  make_clip(&c, 25.0, 48, 64, 0.0, 4.0);
  double truth[N_EVENTS];
  for (int e = 0; e < N_EVENTS; e++) truth[e] = ceil(EVENTS[e] * 25.0 - 1e-9) / 25.0;
  duet_eval_clip in = {c.video, c.frames, c.h, c.w, c.fps, c.audio, c.samples, c.sr, truth,
                       N_EVENTS};
  duet_eval_result r;
  duet_err err = {0};
  int rc = duet_eval_clip_run(&in, NULL, &r, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  CHECK(r.has_avalign && r.has_events);
  CHECK_NEAR(r.offset.offset_ms, 0.0, 40.0);
  CHECK(r.avalign.n_video >= N_EVENTS);
  CHECK(r.avalign.score > 0);
  CHECK(r.events.recall >= 0.8);
  printf("clip API: offset %.1f ms, AV-Align %.3f, events P %.2f R %.2f\n", r.offset.offset_ms,
         r.avalign.score, r.events.precision, r.events.recall);
  duet_eval_result_free(&r);

  /* What cannot be measured fails with a message that says why. */
  in.frames = 1;
  CHECK(duet_eval_clip_run(&in, NULL, &r, &err) == DUET_EINVAL);
  CHECK(strstr(err.msg, "1 frame") != NULL);
  duet_eval_result_free(&r);
  in.frames = c.frames;
  memset(c.audio, 0, sizeof(float) * (size_t)c.samples);
  CHECK(duet_eval_clip_run(&in, NULL, &r, &err) == DUET_EINVAL);
  CHECK(strstr(err.msg, "silent") != NULL);
  duet_eval_result_free(&r);
  free_clip(&c);

  make_clip(&c, 25.0, 48, 64, 0.0, 4.0);
  memset(c.video, 90, (size_t)c.frames * c.h * c.w * 3);
  in.video = c.video;
  in.audio = c.audio;
  CHECK(duet_eval_clip_run(&in, NULL, &r, &err) == DUET_EINVAL);
  CHECK(strstr(err.msg, "no motion") != NULL);
  duet_eval_result_free(&r);
  in.audio = NULL;
  CHECK(duet_eval_clip_run(&in, NULL, &r, &err) == DUET_EINVAL);
  CHECK(strstr(err.msg, "no audio") != NULL);
  duet_eval_result_free(&r);
  free_clip(&c);
}

int main(void) {
  test_known_offsets();
  test_large_frames();
  test_clip_api();
  return test_finish("eval_offset_arrays");
}
