/* Audio-video offset: cross-correlate the audio onset strength with the video motion energy
 * over +-max_lag and report where they line up best. Positive offset = audio late. */
#ifndef DUET_EVAL_OFFSET_H
#define DUET_EVAL_OFFSET_H

#include <stdint.h>

#include "core/error.h"

typedef struct duet_offset_opts {
  double step;       /* grid of both curves, seconds (0.01) */
  double max_lag;    /* search range, seconds (2.0) */
  int motion_height; /* frames are box-averaged to about this many rows (64) */
} duet_offset_opts;

void duet_offset_opts_default(duet_offset_opts *o);

typedef struct duet_offset {
  double offset_ms;  /* positive: audio late */
  double confidence; /* correlation peak over median |correlation| across lags */
  double peak_r;     /* correlation at the peak, in [-1, 1] */
  double frame_ms;   /* one video frame */
  int within_frame;  /* |offset| <= one frame */
  int within_bt1359; /* audio early <= 45 ms and late <= 125 ms (ITU-R BT.1359) */
  /* Curves for figures, on the grid k * step, each scaled to a maximum of 1. */
  double step;
  double *onset;
  int n_onset;
  double *motion;
  int n_motion;
  double *xcorr;     /* [2 * max_lag + 1], lag L (grid steps) at xcorr[max_lag + L] */
  int max_lag;
} duet_offset;

/* video: [frames, height, width, 3] RGB; audio: mono, any rate. Fails (DUET_EINVAL, with a
 * message saying which) for fewer than 2 frames, less than 0.5 s, audio without any onset and
 * video without any change. */
int duet_offset_estimate(const uint8_t *video, int frames, int height, int width, double fps,
                         const float *audio, int64_t samples, int sample_rate,
                         const duet_offset_opts *opts, duet_offset *out, duet_err *err);

/* The same from curves already on one grid (onset = audio, motion = video). */
int duet_offset_from_curves(const double *onset, int n_onset, const double *motion,
                            int n_motion, double fps, const duet_offset_opts *opts,
                            duet_offset *out, duet_err *err);

void duet_offset_free(duet_offset *o);

/* ITU-R BT.1359 detectability window: audio early by at most 45 ms, late by at most 125 ms. */
static inline int duet_bt1359_ok(double offset_ms) {
  return offset_ms >= -45.0 && offset_ms <= 125.0;
}

#endif
