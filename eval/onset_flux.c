#include <math.h>
#include <stdlib.h>

#include "eval/stft.h"
#include "eval/sync_curves.h"

/* Flux rises once a new sound has entered the analysis window, and through the Hann taper it
 * shows once it is about a fifth of the window in (measured on tones and noise bursts at 16 to
 * 48 kHz). So frame t's window ends half a step plus that fifth after t * step: an onset in
 * ((t - 1/2) step, (t + 1/2) step] then lands on frame t, with no bias on average. */
static int64_t window_end(int t, double step, int sample_rate, int n_fft) {
  return (int64_t)llround((t + 0.5) * step * sample_rate + 0.2 * n_fft);
}

int duet_onset_flux(const float *audio, int64_t n, int sample_rate, double step, double **env,
                    int *n_env, duet_err *err) {
  *env = NULL;
  *n_env = 0;
  if (sample_rate <= 0 || step <= 0)
    return duet_err_set(err, DUET_EINVAL, "onset flux: bad sample rate %d or step %g",
                        sample_rate, step);
  if (n < 1) return duet_err_set(err, DUET_EINVAL, "onset flux: no audio samples");
  int n_fft = 16;
  while (n_fft < 0.016 * sample_rate) n_fft *= 2;
  double duration = (double)n / sample_rate;
  int frames = (int)floor(duration / step + 1e-9) + 1;

  duet_stft s;
  int rc = duet_stft_init(&s, n_fft, err);
  if (rc) return rc;
  int nb = s.n_bins;
  double *buf = malloc(sizeof(double) * 2 * (size_t)nb);
  double *out = calloc((size_t)frames, sizeof(double));
  if (!buf || !out) {
    free(buf);
    free(out);
    duet_stft_free(&s);
    return duet_err_set(err, DUET_ENOMEM, "onset flux: out of memory (%d frames)", frames);
  }
  double *prev = buf, *cur = buf + nb;
  /* Two passes, so that memory stays O(window) for any length: the loudest bin first, then the
   * flux frame by frame. */
  double pmax = 0.0;
  for (int t = 0; t < frames; t++) {
    duet_stft_frame(&s, audio, n, window_end(t, step, sample_rate, n_fft) - n_fft / 2, cur);
    for (int k = 0; k < nb; k++)
      if (cur[k] > pmax) pmax = cur[k];
  }
  if (pmax > 0.0) {
    /* dB floored 80 dB under the loudest bin: level changes, not absolute level, count, and
     * near-silent bins cannot produce huge log jumps. */
    double floor_db = 10.0 * log10(pmax) - 80.0;
    for (int t = 0; t < frames; t++) {
      duet_stft_frame(&s, audio, n, window_end(t, step, sample_rate, n_fft) - n_fft / 2, cur);
      for (int k = 0; k < nb; k++) {
        double db = cur[k] > 0.0 ? 10.0 * log10(cur[k]) : floor_db;
        cur[k] = db > floor_db ? db : floor_db;
      }
      /* A window hanging over either end of the signal sees an abrupt cut to zeros, whose
       * broadband leakage would read as an onset; those frames are left at 0. */
      if (t > 0 && window_end(t - 1, step, sample_rate, n_fft) - n_fft >= 0 &&
          window_end(t, step, sample_rate, n_fft) <= n) {
        double acc = 0.0;
        for (int k = 0; k < nb; k++) {
          double d = cur[k] - prev[k];
          if (d > 0) acc += d;
        }
        out[t] = acc / nb;
      }
      double *tmp = prev;
      prev = cur;
      cur = tmp;
    }
  }
  free(buf);
  duet_stft_free(&s);
  *env = out;
  *n_env = frames;
  return DUET_OK;
}
