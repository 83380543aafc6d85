#include <math.h>

#include "data/clips.h"

int duet_clip_shape_check(const duet_clip_shape *s, const char *path, duet_err *err) {
  if (!(s->fps > 0) || !isfinite(s->fps))
    return duet_err_set(err, DUET_EINVAL, "%s: fps must be positive (is %g)", path, s->fps);
  if (s->sample_rate <= 0)
    return duet_err_set(err, DUET_EINVAL, "%s: sample_rate must be positive (is %d)", path,
                        s->sample_rate);
  if (s->frames <= 0 || s->height <= 0 || s->width <= 0)
    return duet_err_set(err, DUET_EINVAL,
                        "%s: frames, height and width must be positive (are %d, %d, %d)", path,
                        s->frames, s->height, s->width);
  if (s->audio_samples <= 0)
    return duet_err_set(err, DUET_EINVAL, "%s: audio_samples must be positive (is %lld)", path,
                        (long long)s->audio_samples);
  if (s->text_len < 0 || s->text_dim < 0 || (s->text_len > 0) != (s->text_dim > 0))
    return duet_err_set(err, DUET_EINVAL,
                        "%s: text_len and text_dim must both be positive or both 0 (are %d, %d)",
                        path, s->text_len, s->text_dim);
  if (s->max_events < 0)
    return duet_err_set(err, DUET_EINVAL, "%s: max_events must not be negative (is %d)", path,
                        s->max_events);
  double video_s = s->frames / s->fps;
  double audio_s = (double)s->audio_samples / s->sample_rate;
  if (fabs(video_s - audio_s) >= 1.0 / s->fps)
    return duet_err_set(err, DUET_EINVAL,
                        "%s: audio lasts %.4g s (%lld samples at %d Hz) but video %.4g s (%d "
                        "frames at %g fps); they must agree to within one frame",
                        path, audio_s, (long long)s->audio_samples, s->sample_rate, video_s,
                        s->frames, s->fps);
  return 0;
}
