/* Short-time Fourier analysis shared by the audio metrics. Frames are centred on a sample and
 * see zeros outside the signal (librosa's center=True, pad_mode="constant"); the window is a
 * periodic Hann, as scipy.signal.get_window("hann", n, fftbins=True) makes it. */
#ifndef DUET_EVAL_STFT_H
#define DUET_EVAL_STFT_H

#include <stdint.h>

#include <fftw3.h>

#include "core/error.h"

typedef struct duet_stft {
  int n_fft, n_bins; /* n_bins = n_fft / 2 + 1 */
  double *window;    /* [n_fft] */
  double *frame;     /* [n_fft] windowed samples, FFTW input */
  fftw_complex *spec;/* [n_bins] FFTW output */
  fftw_plan plan;
} duet_stft;

int duet_stft_init(duet_stft *s, int n_fft, duet_err *err);
void duet_stft_free(duet_stft *s);

/* Spectrum of the window centred on sample `centre` of x[0..n); s->spec holds it afterwards.
 * power, when not NULL, receives |X_k|^2 for the n_bins bins. */
void duet_stft_frame(duet_stft *s, const float *x, int64_t n, int64_t centre, double *power);

/* Frame count of a centred STFT with this hop: 1 + n / hop, as librosa counts. */
int64_t duet_stft_frames(int64_t n, int hop);

#endif
