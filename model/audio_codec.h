/* The audio branch's codec: 16 kHz mono waveform <-> normalised log-mel frames.
 *
 * Encode: Hann-window STFT with centre (reflect) padding, magnitude, Slaney mel filterbank
 * (the same matrix as librosa.filters.mel(htk=False, norm='slaney')), natural log with a floor,
 * then a fixed affine normalisation, giving float [frames, n_mels] per clip.
 * Decode: undo the normalisation and the log, project mel energies back onto non-negative
 * linear magnitudes, and recover a phase by fast Griffin-Lim (momentum), giving a waveform of
 * the requested length.
 *
 * Framing: frame i is centred on sample i * hop, and a clip of S samples has one frame for every
 * centre inside it, frames = ceil(S / hop). With the default hop of 250 samples at 16 kHz that
 * is 64 frames per second, exactly 4 per video frame at 16 fps, and a clip of whole video frames
 * has exactly 4 audio frames per video frame, with audio frame 4k at the same instant as video
 * frame k. (librosa's centred framing has one frame more, S / hop + 1; the last one would be
 * centred on the first sample after the clip.)
 *
 * Thread safety: once created, a codec is read-only; encode, decode and the other functions
 * taking a const codec may run at the same time on one codec from any number of threads.
 * Creating and freeing a codec runs FFTW's planner, whose state is global to the process and
 * not thread-safe: create and free codecs from one thread at a time (and not while other code in
 * the process plans FFTW transforms), unless the program has called
 * fftwf_make_planner_thread_safe(). The library never calls fftwf_cleanup(), which is only safe
 * once every plan in the process is gone. */
#ifndef DUET_MODEL_AUDIO_CODEC_H
#define DUET_MODEL_AUDIO_CODEC_H

#include <stdint.h>

#include "core/error.h"

typedef struct duet_audio_codec_config {
  int sample_rate; /* Hz; 16000 */
  int n_fft;       /* FFT size; 1024 */
  int hop;         /* samples between frame centres; 250 (64 frames/s) */
  int win_length;  /* Hann window length, centred in the FFT frame; 1000 = 4 * hop */
  int n_mels;      /* mel bands; 64 */
  float fmin;      /* Hz; 0 */
  float fmax;      /* Hz; 0 or less means sample_rate / 2 */
  float log_floor; /* mel energies below this are clamped before the log; 1e-5 */
  /* latent = (log(max(mel, log_floor)) - norm_mean) / norm_std; -4.5 and 7.0 by default, so
   * that the floor (silence) lands at -1.00 and the loudest frames of full-scale material near
   * +1 (see docs/model.md, "Codecs"). */
  float norm_mean;
  float norm_std;
  int mel_inverse_iters; /* non-negative least-squares refinements of mel -> linear; 50 */
  int gl_iters;      /* Griffin-Lim iterations in decode; 32 */
  float gl_momentum; /* fast Griffin-Lim momentum; 0.99 (0 is plain Griffin-Lim) */
  uint64_t gl_seed;  /* initial random phases; decode is a pure function of its input */
} duet_audio_codec_config;

typedef struct duet_audio_codec duet_audio_codec;

/* The defaults above. */
void duet_audio_codec_config_default(duet_audio_codec_config *cfg);

/* Checks the config, builds the filterbank, its pseudo-inverse and the FFTW plans. A bad config
 * (n_fft < win_length, win_length < hop, n_mels > n_fft / 2 + 1, fmax above Nyquist, an empty
 * mel band, ...) is DUET_EINVAL with a message naming the field. */
int duet_audio_codec_create(const duet_audio_codec_config *cfg, duet_audio_codec **out,
                            duet_err *err);
void duet_audio_codec_free(duet_audio_codec *codec);

/* The config in use (fmax resolved to a number). */
const duet_audio_codec_config *duet_audio_codec_config_get(const duet_audio_codec *codec);

/* Frames for a clip of n_samples, ceil(n_samples / hop); and the longest clip that has
 * n_frames, n_frames * hop. frames(samples(F)) == F. Negative input gives 0. */
int64_t duet_audio_codec_frames(const duet_audio_codec *codec, int64_t n_samples);
int64_t duet_audio_codec_samples(const duet_audio_codec *codec, int64_t n_frames);
/* n_fft / 2 + 1: the linear magnitude bins per frame. */
int duet_audio_codec_bins(const duet_audio_codec *codec);

/* wave f32 [batch, n_samples] -> latent f32 [batch, frames, n_mels]. Non-finite samples are
 * DUET_ENUMERIC. */
int duet_audio_codec_encode(const duet_audio_codec *codec, const float *wave, int64_t batch,
                            int64_t n_samples, float *latent, duet_err *err);

/* latent f32 [batch, n_frames, n_mels] -> wave f32 [batch, n_samples]. n_samples must have
 * n_frames frames (n_frames * hop is the natural choice). Latent values at or below the
 * normalised floor decode to zero energy, so an encoded silence decodes to silence. Non-finite
 * latent values are DUET_ENUMERIC. */
int duet_audio_codec_decode(const duet_audio_codec *codec, const float *latent, int64_t batch,
                            int64_t n_frames, float *wave, int64_t n_samples, duet_err *err);

/* The linear STFT magnitude encode starts from: wave [batch, n_samples] -> mag f32
 * [batch, frames, bins]. For spectral distances and tests. */
int duet_audio_codec_magnitude(const duet_audio_codec *codec, const float *wave, int64_t batch,
                               int64_t n_samples, float *mag, duet_err *err);

/* Mel energies (before the log) of a magnitude: mag [rows, bins] -> mel [rows, n_mels]. */
void duet_audio_codec_mel(const duet_audio_codec *codec, const float *mag, int64_t rows,
                          float *mel);

/* Non-negative linear magnitudes whose mel energies are as close as can be found to the given
 * ones: mel [rows, n_mels] -> mag [rows, bins]. Starts from the pseudo-inverse, clamped at 0,
 * and refines it by multiplicative non-negative least-squares updates. */
void duet_audio_codec_mel_inverse(const duet_audio_codec *codec, const float *mel, int64_t rows,
                                  float *mag);

/* Phase recovery: magnitude [batch, n_frames, bins] -> wave [batch, n_samples] by the codec's
 * fast Griffin-Lim (gl_iters, gl_momentum, gl_seed), ending with an inverse STFT normalised by
 * the squared-window sum. */
int duet_audio_codec_griffin_lim(const duet_audio_codec *codec, const float *mag, int64_t batch,
                                 int64_t n_frames, float *wave, int64_t n_samples,
                                 duet_err *err);

/* The filterbank in use, f32 [n_mels, bins], row-major. */
const float *duet_audio_codec_filterbank(const duet_audio_codec *codec);

/* Slaney's mel scale (linear below 1 kHz at 3 mels per 200 Hz, logarithmic above, 27 mels per
 * factor 6.4), as librosa's hz_to_mel / mel_to_hz with htk=False. */
double duet_hz_to_mel(double hz);
double duet_mel_to_hz(double mel);

/* A Slaney mel filterbank, f32 [n_mels, n_fft / 2 + 1]: triangles between n_mels + 2 points
 * equally spaced in mel from fmin to fmax, each scaled by 2 / (its width in Hz) so that every
 * band has the same area. Same matrix as librosa.filters.mel(sr=sample_rate, n_fft=n_fft,
 * n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False, norm='slaney'). DUET_EINVAL on bad arguments
 * or an empty band (too many mels for n_fft). */
int duet_mel_filterbank(int sample_rate, int n_fft, int n_mels, double fmin, double fmax,
                        float *out, duet_err *err);

#endif
