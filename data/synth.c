/* Parameters of a synthetic dataset and the one-call clip generator. */
#include "data/synth.h"

#include <math.h>

void duet_synth_params_default(duet_synth_params *p) {
  p->frames = 32;
  p->height = 64;
  p->width = 64;
  p->fps = 16.0;
  p->sample_rate = 16000;
  p->max_objects = DUET_SYNTH_MAX_OBJECTS;
  p->background_noise = 0.0f;
  p->object_scale = 1.0;
  p->seed = 0;
}

int duet_synth_params_check(const duet_synth_params *p, duet_err *err) {
  if (p->frames < 1) return duet_err_set(err, DUET_EINVAL, "frames must be at least 1 (got %d)", p->frames);
  /* Below 16 pixels the smallest object is under a pixel across. */
  if (p->height < 16 || p->width < 16 || p->height > 4096 || p->width > 4096)
    return duet_err_set(err, DUET_EINVAL, "size must be 16..4096 pixels a side (got %dx%d)",
                        p->width, p->height);
  if (!(p->fps > 0.0) || !isfinite(p->fps) || p->fps > 1000.0)
    return duet_err_set(err, DUET_EINVAL, "fps must be in (0, 1000] (got %g)", p->fps);
  if (p->sample_rate < 4000 || p->sample_rate > 192000)
    return duet_err_set(err, DUET_EINVAL, "sample rate must be 4000..192000 Hz (got %d)",
                        p->sample_rate);
  if (p->max_objects < 1 || p->max_objects > DUET_SYNTH_MAX_OBJECTS)
    return duet_err_set(err, DUET_EINVAL, "objects must be 1..%d (got %d)",
                        DUET_SYNTH_MAX_OBJECTS, p->max_objects);
  if (!(p->background_noise >= 0.0f) || p->background_noise > 0.5f)
    return duet_err_set(err, DUET_EINVAL, "background noise must be 0..0.5 (got %g)",
                        (double)p->background_noise);
  /* Above 2 the largest object no longer fits between the floor and the top of the frame. */
  if (!(p->object_scale >= 0.5 && p->object_scale <= 2.0))
    return duet_err_set(err, DUET_EINVAL, "object scale must be 0.5..2 (got %g)", p->object_scale);
  return 0;
}

int64_t duet_synth_audio_samples(const duet_synth_params *p) {
  return (int64_t)llround((double)p->frames / p->fps * p->sample_rate);
}

int duet_synth_max_events(const duet_synth_params *p) {
  return p->max_objects * DUET_SYNTH_MAX_EVENTS_PER_OBJECT;
}

int duet_synth_clip(const duet_synth_params *p, int64_t index, duet_synth_scene *s,
                    uint8_t *video, float *audio, duet_err *err) {
  int rc = duet_synth_params_check(p, err);
  if (rc) return rc;
  if (index < 0) return duet_err_set(err, DUET_EINVAL, "clip index %lld is negative", (long long)index);
  duet_synth_scene_make(p, index, s);
  if (video) duet_synth_render_video(p, s, video);
  if (audio) duet_synth_render_audio(p, s, index, audio);
  return 0;
}
