/* Private to the audio codec: the object's layout, shared by audio_codec.c (set-up, mel,
 * encode, decode) and audio_codec_stft.c (STFT, inverse STFT, Griffin-Lim). */
#ifndef DUET_MODEL_AUDIO_CODEC_STFT_H
#define DUET_MODEL_AUDIO_CODEC_STFT_H

#include <fftw3.h>

#include "model/audio_codec.h"

struct duet_audio_codec {
  duet_audio_codec_config cfg; /* fmax resolved */
  int bins;                    /* n_fft / 2 + 1 */
  int wlo, whi;                /* the window's support [wlo, whi) inside an FFT frame */
  float *window;               /* [n_fft], zero outside [wlo, whi) */
  float *fb;                   /* [n_mels, bins] */
  int *band_lo, *band_hi;      /* each band's non-zero bins [lo, hi) */
  float *pinv;                 /* [bins, n_mels] pseudo-inverse of fb */
  fftwf_plan r2c, c2r;         /* n_fft, executed only with fftwf_execute_dft_* */
};

/* |STFT| of wave [batch, n_samples] into mag [batch, frames, bins]. Inputs already checked. */
int duet_stft_magnitude(const duet_audio_codec *a, const float *wave, int64_t batch,
                        int64_t n_samples, float *mag, duet_err *err);

#endif
