#include "eval/stft.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int duet_stft_init(duet_stft *s, int n_fft, duet_err *err) {
  memset(s, 0, sizeof *s);
  if (n_fft < 2) return duet_err_set(err, DUET_EINVAL, "stft: n_fft %d is too small", n_fft);
  s->n_fft = n_fft;
  s->n_bins = n_fft / 2 + 1;
  s->window = fftw_malloc(sizeof(double) * (size_t)n_fft);
  s->frame = fftw_malloc(sizeof(double) * (size_t)n_fft);
  s->spec = fftw_malloc(sizeof(fftw_complex) * (size_t)s->n_bins);
  if (!s->window || !s->frame || !s->spec) {
    duet_stft_free(s);
    return duet_err_set(err, DUET_ENOMEM, "stft: out of memory (n_fft %d)", n_fft);
  }
  for (int j = 0; j < n_fft; j++) s->window[j] = 0.5 - 0.5 * cos(2.0 * M_PI * j / n_fft);
  /* FFTW_ESTIMATE: planning must not touch the buffers and must stay cheap, because a plan
   * is made per call rather than cached in global wisdom. */
  s->plan = fftw_plan_dft_r2c_1d(n_fft, s->frame, s->spec, FFTW_ESTIMATE);
  if (!s->plan) {
    duet_stft_free(s);
    return duet_err_set(err, DUET_ENOMEM, "stft: cannot plan an FFT of size %d", n_fft);
  }
  return DUET_OK;
}

void duet_stft_free(duet_stft *s) {
  if (s->plan) fftw_destroy_plan(s->plan);
  fftw_free(s->window);
  fftw_free(s->frame);
  fftw_free(s->spec);
  memset(s, 0, sizeof *s);
}

void duet_stft_frame(duet_stft *s, const float *x, int64_t n, int64_t centre, double *power) {
  int64_t start = centre - s->n_fft / 2;
  for (int j = 0; j < s->n_fft; j++) {
    int64_t i = start + j;
    s->frame[j] = (i >= 0 && i < n) ? s->window[j] * (double)x[i] : 0.0;
  }
  fftw_execute(s->plan);
  if (power)
    for (int k = 0; k < s->n_bins; k++)
      power[k] = s->spec[k][0] * s->spec[k][0] + s->spec[k][1] * s->spec[k][1];
}

int64_t duet_stft_frames(int64_t n, int hop) { return 1 + n / hop; }
