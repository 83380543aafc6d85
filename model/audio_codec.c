/* The audio codec object: config checks, window, filterbank and its pseudo-inverse, FFTW plans,
 * encode and decode. The STFT pair and Griffin-Lim are in audio_codec_stft.c. */
#include "model/audio_codec.h"

#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/audio_codec_stft.h"

void duet_audio_codec_config_default(duet_audio_codec_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->sample_rate = 16000;
  cfg->n_fft = 1024;
  cfg->hop = 250;
  cfg->win_length = 1000;
  cfg->n_mels = 64;
  cfg->fmin = 0.0f;
  cfg->fmax = 0.0f;
  cfg->log_floor = 1e-5f;
  cfg->norm_mean = -4.5f;
  cfg->norm_std = 7.0f;
  cfg->mel_inverse_iters = 50;
  cfg->gl_iters = 32;
  cfg->gl_momentum = 0.99f;
  cfg->gl_seed = 0x6475657467ull;
}

static int check_config(duet_audio_codec_config *c, duet_err *err) {
  const char *p = "audio codec config: ";
  if (c->sample_rate <= 0)
    return duet_err_set(err, DUET_EINVAL, "%ssample_rate %d must be positive", p, c->sample_rate);
  if (c->n_fft < 4 || c->n_fft % 2 || c->n_fft > (1 << 20))
    return duet_err_set(err, DUET_EINVAL, "%sn_fft %d must be even and in [4, 2^20]", p,
                        c->n_fft);
  if (c->win_length < 2 || c->win_length > c->n_fft)
    return duet_err_set(err, DUET_EINVAL, "%swin_length %d must be in [2, n_fft = %d]", p,
                        c->win_length, c->n_fft);
  /* Griffin-Lim needs overlapping frames, and at half a window or less every sample is covered
   * by some frame with non-zero weight, so the inverse STFT can be normalised everywhere. */
  if (c->hop < 1 || c->hop > c->win_length / 2)
    return duet_err_set(err, DUET_EINVAL, "%shop %d must be in [1, win_length / 2 = %d]", p,
                        c->hop, c->win_length / 2);
  if (c->n_mels < 1 || c->n_mels > c->n_fft / 2 + 1)
    return duet_err_set(err, DUET_EINVAL, "%sn_mels %d must be in [1, n_fft / 2 + 1 = %d]", p,
                        c->n_mels, c->n_fft / 2 + 1);
  if (!(c->fmax > 0)) c->fmax = (float)c->sample_rate / 2;
  if (!(c->fmin >= 0) || !(c->fmin < c->fmax) || c->fmax > (float)c->sample_rate / 2)
    return duet_err_set(err, DUET_EINVAL,
                        "%sneed 0 <= fmin < fmax <= sample_rate / 2, got fmin %g, fmax %g at %d Hz",
                        p, (double)c->fmin, (double)c->fmax, c->sample_rate);
  if (!(c->log_floor > 0) || !isfinite(c->log_floor))
    return duet_err_set(err, DUET_EINVAL, "%slog_floor %g must be positive", p,
                        (double)c->log_floor);
  if (!isfinite(c->norm_mean) || !(c->norm_std > 0) || !isfinite(c->norm_std))
    return duet_err_set(err, DUET_EINVAL, "%snorm_mean %g must be finite and norm_std %g positive",
                        p, (double)c->norm_mean, (double)c->norm_std);
  if (c->mel_inverse_iters < 0)
    return duet_err_set(err, DUET_EINVAL, "%smel_inverse_iters %d must be >= 0", p,
                        c->mel_inverse_iters);
  if (c->gl_iters < 0)
    return duet_err_set(err, DUET_EINVAL, "%sgl_iters %d must be >= 0", p, c->gl_iters);
  if (!(c->gl_momentum >= 0 && c->gl_momentum < 1))
    return duet_err_set(err, DUET_EINVAL, "%sgl_momentum %g must be in [0, 1)", p,
                        (double)c->gl_momentum);
  return DUET_OK;
}

/* The Moore-Penrose pseudo-inverse of the filterbank, fb^T (fb fb^T)^-1, in double: the Gram
 * matrix of the narrow low bands and the wide high bands spans a few orders of magnitude. */
static int build_pinv(duet_audio_codec *c, duet_err *err) {
  int nm = c->cfg.n_mels, nb = c->bins;
  double *g = calloc((size_t)nm * nm, sizeof *g);
  double *col = malloc(sizeof *col * (size_t)nm);
  if (!g || !col) {
    free(g);
    free(col);
    return duet_err_set(err, DUET_ENOMEM, "audio codec: out of memory");
  }
  for (int i = 0; i < nm; i++)
    for (int j = 0; j <= i; j++) {
      double s = 0;
      for (int k = 0; k < nb; k++)
        s += (double)c->fb[(size_t)i * nb + k] * c->fb[(size_t)j * nb + k];
      g[(size_t)i * nm + j] = g[(size_t)j * nm + i] = s;
    }
  /* A relative ridge keeps Cholesky well-defined when bands nearly coincide; at 1e-10 of the
   * mean diagonal it changes no digit that survives the rounding to f32. */
  double tr = 0;
  for (int i = 0; i < nm; i++) tr += g[(size_t)i * nm + i];
  for (int i = 0; i < nm; i++) g[(size_t)i * nm + i] += 1e-10 * tr / nm;
  for (int j = 0; j < nm; j++) {
    double d = g[(size_t)j * nm + j];
    for (int k = 0; k < j; k++) d -= g[(size_t)j * nm + k] * g[(size_t)j * nm + k];
    if (!(d > 0)) {
      free(g);
      free(col);
      return duet_err_set(err, DUET_EINVAL,
                          "audio codec: mel bands are linearly dependent; use fewer mels");
    }
    d = sqrt(d);
    g[(size_t)j * nm + j] = d;
    for (int i = j + 1; i < nm; i++) {
      double s = g[(size_t)i * nm + j];
      for (int k = 0; k < j; k++) s -= g[(size_t)i * nm + k] * g[(size_t)j * nm + k];
      g[(size_t)i * nm + j] = s / d;
    }
  }
  /* Row k of the pseudo-inverse solves (fb fb^T) x = fb[:, k]. */
  for (int k = 0; k < nb; k++) {
    for (int i = 0; i < nm; i++) {
      double s = c->fb[(size_t)i * nb + k];
      for (int j = 0; j < i; j++) s -= g[(size_t)i * nm + j] * col[j];
      col[i] = s / g[(size_t)i * nm + i];
    }
    for (int i = nm - 1; i >= 0; i--) {
      double s = col[i];
      for (int j = i + 1; j < nm; j++) s -= g[(size_t)j * nm + i] * col[j];
      col[i] = s / g[(size_t)i * nm + i];
    }
    for (int i = 0; i < nm; i++) c->pinv[(size_t)k * nm + i] = (float)col[i];
  }
  free(g);
  free(col);
  return DUET_OK;
}

int duet_audio_codec_create(const duet_audio_codec_config *cfg, duet_audio_codec **out,
                            duet_err *err) {
  *out = NULL;
  duet_audio_codec_config c = *cfg;
  int rc = check_config(&c, err);
  if (rc) return rc;
  duet_audio_codec *a = calloc(1, sizeof *a);
  if (!a) return duet_err_set(err, DUET_ENOMEM, "audio codec: out of memory");
  a->cfg = c;
  a->bins = c.n_fft / 2 + 1;
  a->wlo = (c.n_fft - c.win_length) / 2;
  a->whi = a->wlo + c.win_length;
  a->window = calloc((size_t)c.n_fft, sizeof *a->window);
  a->fb = malloc(sizeof *a->fb * (size_t)c.n_mels * a->bins);
  a->band_lo = malloc(sizeof *a->band_lo * (size_t)c.n_mels);
  a->band_hi = malloc(sizeof *a->band_hi * (size_t)c.n_mels);
  a->pinv = malloc(sizeof *a->pinv * (size_t)c.n_mels * a->bins);
  float *fin = fftwf_malloc(sizeof(float) * (size_t)c.n_fft);
  fftwf_complex *fout = fftwf_malloc(sizeof(fftwf_complex) * (size_t)a->bins);
  if (!a->window || !a->fb || !a->band_lo || !a->band_hi || !a->pinv || !fin || !fout) {
    rc = duet_err_set(err, DUET_ENOMEM, "audio codec: out of memory");
    goto fail;
  }

  /* Periodic Hann (the DFT-even one): with hop = win_length / 4 its square sums to a constant
   * over frames, so the inverse STFT's normalisation is flat away from the clip's ends. */
  for (int j = 0; j < c.win_length; j++)
    a->window[a->wlo + j] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * j / c.win_length));

  rc = duet_mel_filterbank(c.sample_rate, c.n_fft, c.n_mels, c.fmin, c.fmax, a->fb, err);
  if (rc) {
    duet_err_prefix(err, "audio codec: ");
    goto fail;
  }
  for (int m = 0; m < c.n_mels; m++) {
    const float *row = a->fb + (size_t)m * a->bins;
    int lo = 0, hi = a->bins;
    while (lo < hi && row[lo] == 0) lo++;
    while (hi > lo && row[hi - 1] == 0) hi--;
    a->band_lo[m] = lo;
    a->band_hi[m] = hi;
  }
  rc = build_pinv(a, err);
  if (rc) goto fail;

  /* FFTW_ESTIMATE: planning is instant and touches no data, and the plans do not depend on
   * timing, so every run computes the same numbers. The plans are executed only through the
   * new-array interface, on buffers from fftwf_malloc (the alignment these were made with). */
  a->r2c = fftwf_plan_dft_r2c_1d(c.n_fft, fin, fout, FFTW_ESTIMATE);
  a->c2r = fftwf_plan_dft_c2r_1d(c.n_fft, fout, fin, FFTW_ESTIMATE);
  if (!a->r2c || !a->c2r) {
    rc = duet_err_set(err, DUET_ENOMEM, "audio codec: FFTW could not plan an FFT of size %d",
                      c.n_fft);
    goto fail;
  }
  fftwf_free(fin);
  fftwf_free(fout);
  *out = a;
  return DUET_OK;

fail:
  fftwf_free(fin);
  fftwf_free(fout);
  duet_audio_codec_free(a);
  return rc;
}

void duet_audio_codec_free(duet_audio_codec *a) {
  if (!a) return;
  if (a->r2c) fftwf_destroy_plan(a->r2c);
  if (a->c2r) fftwf_destroy_plan(a->c2r);
  free(a->window);
  free(a->fb);
  free(a->band_lo);
  free(a->band_hi);
  free(a->pinv);
  free(a);
}

const duet_audio_codec_config *duet_audio_codec_config_get(const duet_audio_codec *a) {
  return &a->cfg;
}

int64_t duet_audio_codec_frames(const duet_audio_codec *a, int64_t n_samples) {
  if (n_samples <= 0) return 0;
  return (n_samples + a->cfg.hop - 1) / a->cfg.hop;
}

int64_t duet_audio_codec_samples(const duet_audio_codec *a, int64_t n_frames) {
  return n_frames <= 0 ? 0 : n_frames * a->cfg.hop;
}

int duet_audio_codec_bins(const duet_audio_codec *a) { return a->bins; }

const float *duet_audio_codec_filterbank(const duet_audio_codec *a) { return a->fb; }

/* Sparse: each band touches only its own few bins. */
static void mel_row(const duet_audio_codec *a, const float *mag, float *mel) {
  for (int m = 0; m < a->cfg.n_mels; m++) {
    const float *w = a->fb + (size_t)m * a->bins;
    float s = 0;
    for (int k = a->band_lo[m]; k < a->band_hi[m]; k++) s += w[k] * mag[k];
    mel[m] = s;
  }
}

static void mel_transpose_row(const duet_audio_codec *a, const float *mel, float *mag) {
  memset(mag, 0, sizeof *mag * (size_t)a->bins);
  for (int m = 0; m < a->cfg.n_mels; m++) {
    const float *w = a->fb + (size_t)m * a->bins;
    for (int k = a->band_lo[m]; k < a->band_hi[m]; k++) mag[k] += w[k] * mel[m];
  }
}

void duet_audio_codec_mel(const duet_audio_codec *a, const float *mag, int64_t rows, float *mel) {
  int nm = a->cfg.n_mels, nb = a->bins;
#pragma omp parallel for schedule(static) if (rows > 16)
  for (int64_t r = 0; r < rows; r++) mel_row(a, mag + r * nb, mel + r * nm);
}

/* scratch: 2 * bins + n_mels floats. */
static void mel_inverse_row(const duet_audio_codec *a, const float *mel, float *mag,
                            float *scratch) {
  int nm = a->cfg.n_mels, nb = a->bins;
  float *target = scratch, *back = scratch + nb, *fwd = scratch + 2 * nb;
  for (int k = 0; k < nb; k++) {
    const float *p = a->pinv + (size_t)k * nm;
    float s = 0;
    for (int m = 0; m < nm; m++) s += p[m] * mel[m];
    mag[k] = s > 0 ? s : 0;
  }
  /* Lee-Seung multiplicative updates for min ||fb s - mel|| over s >= 0: each step keeps s
   * non-negative and never increases the residual, with no step size to tune. The clamped
   * pseudo-inverse is a good start; the updates win back what the clamping lost. */
  mel_transpose_row(a, mel, target);
  for (int it = 0; it < a->cfg.mel_inverse_iters; it++) {
    mel_row(a, mag, fwd);
    mel_transpose_row(a, fwd, back);
    for (int k = 0; k < nb; k++) mag[k] = back[k] > 0 ? mag[k] * target[k] / back[k] : 0;
  }
}

void duet_audio_codec_mel_inverse(const duet_audio_codec *a, const float *mel, int64_t rows,
                                  float *mag) {
  int nm = a->cfg.n_mels, nb = a->bins;
#pragma omp parallel if (rows > 4)
  {
    float *scratch = malloc(sizeof *scratch * (size_t)(2 * nb + nm));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      if (scratch) {
        mel_inverse_row(a, mel + r * nm, mag + r * nb, scratch);
      } else {
        /* Out of memory for scratch: fall back to the clamped pseudo-inverse alone. */
        for (int k = 0; k < nb; k++) {
          float s = 0;
          for (int m = 0; m < nm; m++) s += a->pinv[(size_t)k * nm + m] * mel[r * nm + m];
          mag[r * nb + k] = s > 0 ? s : 0;
        }
      }
    }
    free(scratch);
  }
}

static int check_finite(const float *x, int64_t n, const char *what, duet_err *err) {
  int64_t bad = -1;
  for (int64_t i = 0; i < n && bad < 0; i++)
    if (!isfinite(x[i])) bad = i;
  if (bad >= 0)
    return duet_err_set(err, DUET_ENUMERIC, "audio codec: %s value %lld is not finite", what,
                        (long long)bad);
  return DUET_OK;
}

int duet_audio_codec_magnitude(const duet_audio_codec *a, const float *wave, int64_t batch,
                               int64_t n_samples, float *mag, duet_err *err) {
  if (batch < 1 || n_samples < 1)
    return duet_err_set(err, DUET_EINVAL, "audio codec: batch %lld and n_samples %lld must be >= 1",
                        (long long)batch, (long long)n_samples);
  int rc = check_finite(wave, batch * n_samples, "waveform", err);
  if (rc) return rc;
  return duet_stft_magnitude(a, wave, batch, n_samples, mag, err);
}

int duet_audio_codec_encode(const duet_audio_codec *a, const float *wave, int64_t batch,
                            int64_t n_samples, float *latent, duet_err *err) {
  int64_t frames = duet_audio_codec_frames(a, n_samples);
  int nb = a->bins, nm = a->cfg.n_mels;
  if (batch < 1 || n_samples < 1)
    return duet_err_set(err, DUET_EINVAL, "audio codec: batch %lld and n_samples %lld must be >= 1",
                        (long long)batch, (long long)n_samples);
  float *mag = malloc(sizeof *mag * (size_t)(batch * frames) * (size_t)nb);
  if (!mag) return duet_err_set(err, DUET_ENOMEM, "audio codec: out of memory");
  int rc = duet_audio_codec_magnitude(a, wave, batch, n_samples, mag, err);
  if (rc) {
    free(mag);
    return rc;
  }
  const float floor_v = a->cfg.log_floor, mean = a->cfg.norm_mean, inv_std = 1.0f / a->cfg.norm_std;
  int64_t rows = batch * frames;
#pragma omp parallel for schedule(static) if (rows > 16)
  for (int64_t r = 0; r < rows; r++) {
    float *z = latent + r * nm;
    mel_row(a, mag + r * nb, z);
    for (int m = 0; m < nm; m++) z[m] = (logf(z[m] > floor_v ? z[m] : floor_v) - mean) * inv_std;
  }
  free(mag);
  return DUET_OK;
}

int duet_audio_codec_decode(const duet_audio_codec *a, const float *latent, int64_t batch,
                            int64_t n_frames, float *wave, int64_t n_samples, duet_err *err) {
  int nb = a->bins, nm = a->cfg.n_mels;
  if (batch < 1 || n_frames < 1)
    return duet_err_set(err, DUET_EINVAL, "audio codec: batch %lld and n_frames %lld must be >= 1",
                        (long long)batch, (long long)n_frames);
  if (duet_audio_codec_frames(a, n_samples) != n_frames)
    return duet_err_set(err, DUET_EINVAL,
                        "audio codec: %lld samples make %lld frames, not %lld (hop %d)",
                        (long long)n_samples, (long long)duet_audio_codec_frames(a, n_samples),
                        (long long)n_frames, a->cfg.hop);
  int64_t rows = batch * n_frames;
  int rc = check_finite(latent, rows * nm, "latent", err);
  if (rc) return rc;
  float *mel = malloc(sizeof *mel * (size_t)rows * nm);
  float *mag = malloc(sizeof *mag * (size_t)rows * nb);
  if (!mel || !mag) {
    free(mel);
    free(mag);
    return duet_err_set(err, DUET_ENOMEM, "audio codec: out of memory");
  }
  /* At or below the floor the encoder had clamped: that energy is unknown but below the floor,
   * and zero is what makes an encoded silence decode to silence. The margin absorbs the f32
   * rounding of the normalisation (about 1e-6 of the log). At the other end, a log energy of 30
   * is some 120 dB above full scale; holding wilder values (a diverged sampler's) there keeps
   * the arithmetic below finite. */
  const float cut = logf(a->cfg.log_floor) + 1e-4f, top = 30.0f, mean = a->cfg.norm_mean,
              std = a->cfg.norm_std;
#pragma omp parallel for schedule(static) if (rows * nm > 4096)
  for (int64_t i = 0; i < rows * nm; i++) {
    float v = latent[i] * std + mean;
    mel[i] = v > cut ? expf(v < top ? v : top) : 0.0f;
  }
  duet_audio_codec_mel_inverse(a, mel, rows, mag);
  free(mel);
  rc = duet_audio_codec_griffin_lim(a, mag, batch, n_frames, wave, n_samples, err);
  free(mag);
  return rc;
}
