/* The two curves that offset estimation cross-correlates, both on one time grid (10 ms by
 * default): the audio onset strength (spectral flux) and the video motion energy (frame
 * difference). Sample k of either curve describes time k * step seconds. */
#ifndef DUET_EVAL_SYNC_CURVES_H
#define DUET_EVAL_SYNC_CURVES_H

#include <stdint.h>

#include "core/error.h"

/* Half-wave rectified spectral flux of the log-power STFT (dB, floored 80 dB below the
 * clip's loudest bin), mean over bins, at frames every `step` seconds. The window is the
 * power of two >= 16 ms of samples and is placed so that an onset within half a step of
 * k * step peaks at frame k (docs/eval.md). Frames whose window would reach past either end
 * of the audio stay 0. *env (malloc'd) gets floor(duration / step) + 1 values; all zero for
 * silence. */
int duet_onset_flux(const float *audio, int64_t n, int sample_rate, double step, double **env,
                    int *n_env, duet_err *err);

/* BT.601 luma exactly as OpenCV's COLOR_RGB2GRAY computes it for 8-bit pixels. */
static inline uint8_t duet_luma(uint8_t r, uint8_t g, uint8_t b) {
  return (uint8_t)((r * 4899 + g * 9617 + b * 1868 + 8192) >> 14);
}

/* Grey image of an RGB frame averaged over f x f boxes (f = ceil(height / target_height),
 * at least 1), so that motion energy costs about the same at any resolution. The output is
 * (height / f) x (width / f), returned in *gh, *gw with f as the result; grey must hold that
 * many bytes. A cell's value is the luma of its mean colour, rounded once, which for f = 1 is
 * exactly OpenCV's grey pixel. */
int duet_grey_box_size(int height, int width, int target_height, int *gh, int *gw);
int duet_grey_box(const uint8_t *rgb, int height, int width, int target_height, uint8_t *grey,
                  duet_err *err);

/* Motion energy per frame: mean absolute difference of consecutive box-downscaled grey frames
 * (0..255 scale); energy[0] = 0, energy[i] compares frame i with frame i - 1. */
int duet_motion_energy(const uint8_t *video, int frames, int height, int width,
                       int target_height, double **energy, duet_err *err);

/* Resamples a per-frame curve (frame i at time i / fps) onto the grid k * step by linear
 * interpolation; *out gets floor((frames - 1) / fps / step) + 1 values. */
int duet_curve_to_grid(const double *v, int frames, double fps, double step, double **out,
                       int *n_out, duet_err *err);

#endif
