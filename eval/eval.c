#include "eval/eval.h"

#include <math.h>
#include <string.h>
#include <time.h>

void duet_eval_opts_default(duet_eval_opts *o) {
  duet_offset_opts_default(&o->offset);
  o->avalign = 1;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int is_silent(const float *a, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (a[i] != 0.0f) return 0;
  return 1;
}

int duet_eval_clip_run(const duet_eval_clip *c, const duet_eval_opts *opts, duet_eval_result *r,
                       duet_err *err) {
  memset(r, 0, sizeof *r);
  duet_eval_opts def;
  if (!opts) {
    duet_eval_opts_default(&def);
    opts = &def;
  }
  double t0 = now_s();
  if (!c->video || c->frames < 2)
    return duet_err_set(err, DUET_EINVAL, "the video has %d frame(s); sync needs at least 2",
                        c->video ? c->frames : 0);
  if (!(c->fps > 0) || c->height < 1 || c->width < 1)
    return duet_err_set(err, DUET_EINVAL, "bad video geometry %dx%d at %g fps", c->width,
                        c->height, c->fps);
  if (!c->audio || c->samples < 1 || c->sample_rate <= 0)
    return duet_err_set(err, DUET_EINVAL, "no audio");
  if (is_silent(c->audio, c->samples)) return duet_err_set(err, DUET_EINVAL, "the audio is silent");
  int rc = duet_offset_estimate(c->video, c->frames, c->height, c->width, c->fps, c->audio,
                                c->samples, c->sample_rate, &opts->offset, &r->offset, err);
  if (rc) return rc;
  if (opts->avalign) {
    rc = duet_avalign_clip(c->video, c->frames, c->height, c->width, c->fps, c->audio, c->samples,
                           c->sample_rate, &r->avalign, err);
    if (rc) return rc;
    r->has_avalign = 1;
    if (c->events && c->n_events > 0) {
      rc = duet_events_match(r->avalign.audio_peaks, r->avalign.n_audio, c->events, c->n_events,
                             1.0 / c->fps, &r->events, err);
      if (rc) return rc;
      r->has_events = 1;
    }
  }
  r->seconds = now_s() - t0;
  return DUET_OK;
}

void duet_eval_result_free(duet_eval_result *r) {
  duet_offset_free(&r->offset);
  duet_avalign_free(&r->avalign);
  memset(r, 0, sizeof *r);
}
