#include "eval/offset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/sync_curves.h"
#include "eval/xcorr.h"

void duet_offset_opts_default(duet_offset_opts *o) {
  o->step = 0.01;
  o->max_lag = 2.0;
  o->motion_height = 64;
}

static double *scaled_copy(const double *v, int n) {
  double *c = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
  if (!c) return NULL;
  double m = 0;
  for (int i = 0; i < n; i++)
    if (v[i] > m) m = v[i];
  for (int i = 0; i < n; i++) c[i] = m > 0 ? v[i] / m : 0.0;
  return c;
}

static int all_zero(const double *v, int n) {
  for (int i = 0; i < n; i++)
    if (v[i] != 0.0) return 0;
  return 1;
}

int duet_offset_from_curves(const double *onset, int n_onset, const double *motion,
                            int n_motion, double fps, const duet_offset_opts *opts,
                            duet_offset *out, duet_err *err) {
  memset(out, 0, sizeof *out);
  duet_offset_opts def;
  if (!opts) {
    duet_offset_opts_default(&def);
    opts = &def;
  }
  if (fps <= 0) return duet_err_set(err, DUET_EINVAL, "offset: bad frame rate %g", fps);
  int shorter = n_onset < n_motion ? n_onset : n_motion;
  if ((shorter - 1) * opts->step < 0.5)
    return duet_err_set(err, DUET_EINVAL, "offset: the clip is %.2f s long, at least 0.5 s needed",
                        (shorter - 1) * opts->step);
  if (all_zero(onset, n_onset))
    return duet_err_set(err, DUET_EINVAL, "offset: the audio has no onsets (silent or unchanging)");
  if (all_zero(motion, n_motion))
    return duet_err_set(err, DUET_EINVAL, "offset: the video has no motion (still image?)");
  duet_xcorr xc;
  int max_lag = (int)lround(opts->max_lag / opts->step);
  int rc = duet_xcorr_lags(onset, n_onset, motion, n_motion, max_lag, &xc, err);
  if (rc) {
    duet_err_prefix(err, "offset: ");
    return rc;
  }
  out->offset_ms = xc.lag * opts->step * 1000.0;
  out->confidence = xc.confidence;
  out->peak_r = xc.peak_r;
  out->frame_ms = 1000.0 / fps;
  out->within_frame = fabs(out->offset_ms) <= out->frame_ms;
  out->within_bt1359 = duet_bt1359_ok(out->offset_ms);
  out->step = opts->step;
  out->xcorr = xc.r;
  out->max_lag = xc.max_lag;
  out->onset = scaled_copy(onset, n_onset);
  out->motion = scaled_copy(motion, n_motion);
  out->n_onset = n_onset;
  out->n_motion = n_motion;
  if (!out->onset || !out->motion) {
    duet_offset_free(out);
    return duet_err_set(err, DUET_ENOMEM, "offset: out of memory");
  }
  return DUET_OK;
}

int duet_offset_estimate(const uint8_t *video, int frames, int height, int width, double fps,
                         const float *audio, int64_t samples, int sample_rate,
                         const duet_offset_opts *opts, duet_offset *out, duet_err *err) {
  memset(out, 0, sizeof *out);
  duet_offset_opts def;
  if (!opts) {
    duet_offset_opts_default(&def);
    opts = &def;
  }
  if (frames < 2)
    return duet_err_set(err, DUET_EINVAL, "offset: the video has %d frame(s), at least 2 needed",
                        frames);
  if (fps <= 0) return duet_err_set(err, DUET_EINVAL, "offset: bad frame rate %g", fps);
  if (!audio || samples < 1 || sample_rate <= 0)
    return duet_err_set(err, DUET_EINVAL, "offset: no audio");
  double *onset = NULL, *energy = NULL, *motion = NULL;
  int n_onset = 0, n_motion = 0;
  int rc = duet_onset_flux(audio, samples, sample_rate, opts->step, &onset, &n_onset, err);
  if (!rc)
    rc = duet_motion_energy(video, frames, height, width, opts->motion_height, &energy, err);
  if (!rc) rc = duet_curve_to_grid(energy, frames, fps, opts->step, &motion, &n_motion, err);
  if (!rc)
    rc = duet_offset_from_curves(onset, n_onset, motion, n_motion, fps, opts, out, err);
  free(onset);
  free(energy);
  free(motion);
  return rc;
}

void duet_offset_free(duet_offset *o) {
  free(o->onset);
  free(o->motion);
  free(o->xcorr);
  memset(o, 0, sizeof *o);
}
