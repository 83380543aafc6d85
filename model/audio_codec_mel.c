/* The Slaney mel scale and filterbank. Built in double and rounded once to f32, so the matrix
 * agrees with librosa's (which also builds in f64) to the last bit or two. */
#include <math.h>
#include <stdlib.h>

#include "model/audio_codec.h"

/* Slaney's Auditory Toolbox: linear up to 1 kHz, then 27 mels per factor 6.4 in frequency
 * (which makes the two pieces meet with the same slope at 15 mels). */
#define MEL_F_SP (200.0 / 3.0)
#define MEL_MIN_LOG_HZ 1000.0
#define MEL_MIN_LOG_MEL (MEL_MIN_LOG_HZ / MEL_F_SP)
#define MEL_LOGSTEP (log(6.4) / 27.0)

double duet_hz_to_mel(double hz) {
  if (hz >= MEL_MIN_LOG_HZ) return MEL_MIN_LOG_MEL + log(hz / MEL_MIN_LOG_HZ) / MEL_LOGSTEP;
  return hz / MEL_F_SP;
}

double duet_mel_to_hz(double mel) {
  if (mel >= MEL_MIN_LOG_MEL) return MEL_MIN_LOG_HZ * exp(MEL_LOGSTEP * (mel - MEL_MIN_LOG_MEL));
  return MEL_F_SP * mel;
}

int duet_mel_filterbank(int sample_rate, int n_fft, int n_mels, double fmin_hz, double fmax_hz,
                        float *out, duet_err *err) {
  if (sample_rate <= 0 || n_fft < 2 || n_mels < 1)
    return duet_err_set(err, DUET_EINVAL,
                        "mel filterbank: sample_rate %d, n_fft %d and n_mels %d must be positive",
                        sample_rate, n_fft, n_mels);
  int bins = n_fft / 2 + 1;
  if (n_mels > bins)
    return duet_err_set(err, DUET_EINVAL, "mel filterbank: n_mels %d exceeds n_fft / 2 + 1 = %d",
                        n_mels, bins);
  if (!(fmin_hz >= 0 && fmin_hz < fmax_hz && fmax_hz <= sample_rate / 2.0))
    return duet_err_set(err, DUET_EINVAL,
                        "mel filterbank: need 0 <= fmin < fmax <= sample_rate / 2, got fmin %g, "
                        "fmax %g at %d Hz",
                        fmin_hz, fmax_hz, sample_rate);

  double *edge = malloc(sizeof *edge * (size_t)(n_mels + 2));
  if (!edge) return duet_err_set(err, DUET_ENOMEM, "mel filterbank: out of memory");
  double mlo = duet_hz_to_mel(fmin_hz), mhi = duet_hz_to_mel(fmax_hz);
  for (int i = 0; i < n_mels + 2; i++)
    edge[i] = duet_mel_to_hz(mlo + (mhi - mlo) * i / (n_mels + 1));

  int empty = -1;
  for (int m = 0; m < n_mels; m++) {
    double lo = edge[m], mid = edge[m + 1], hi = edge[m + 2];
    /* Equal area: the triangle's peak is 2 / width, so broad high bands are not louder. */
    double enorm = 2.0 / (hi - lo);
    int any = 0;
    for (int k = 0; k < bins; k++) {
      double f = (double)k * sample_rate / n_fft;
      double rise = (f - lo) / (mid - lo), fall = (hi - f) / (hi - mid);
      double w = fmin(rise, fall);
      w = w > 0 ? w * enorm : 0;
      out[(size_t)m * bins + k] = (float)w;
      any |= w > 0;
    }
    if (!any && empty < 0) empty = m;
  }
  free(edge);
  if (empty >= 0)
    return duet_err_set(err, DUET_EINVAL,
                        "mel filterbank: band %d of %d covers no FFT bin; use fewer mels or a "
                        "larger n_fft",
                        empty, n_mels);
  return DUET_OK;
}
