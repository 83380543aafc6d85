/* The STFT pair and fast Griffin-Lim (Perraudin, Balazs and Sondergaard, 2013).
 *
 * Frame i of a clip is centred on sample i * hop: it reads samples i * hop - n_fft / 2 + k,
 * k in [0, n_fft), with the clip extended by reflection at both ends (as numpy's 'reflect'),
 * and only the window's support [wlo, whi) is ever non-zero.
 *
 * Parallelism is over (clip, frame) rows. FFTW's execute functions are thread-safe, so all
 * threads share the codec's two plans; each thread has its own FFT buffers, allocated with
 * fftwf_malloc before the parallel region at offsets that keep the plans' alignment. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/audio_codec_stft.h"

/* Per-thread FFT buffers: n_fft reals, then bins complex values, each rounded up to 64 bytes
 * so that every thread's buffers sit at the same alignment as the ones the plans were made
 * with. */
typedef struct fft_scratch {
  char *block;
  size_t real_bytes, per_thread;
  int threads;
} fft_scratch;

static size_t round64(size_t n) { return (n + 63) / 64 * 64; }

static int scratch_alloc(const duet_audio_codec *a, fft_scratch *s, duet_err *err) {
  s->threads = omp_get_max_threads();
  s->real_bytes = round64(sizeof(float) * (size_t)a->cfg.n_fft);
  s->per_thread = s->real_bytes + round64(sizeof(fftwf_complex) * (size_t)a->bins);
  s->block = fftwf_malloc(s->per_thread * (size_t)s->threads);
  if (!s->block) return duet_err_set(err, DUET_ENOMEM, "audio codec: out of memory");
  return DUET_OK;
}

static float *scratch_real(const fft_scratch *s, int t) {
  return (float *)(void *)(s->block + (size_t)t * s->per_thread);
}

static fftwf_complex *scratch_spec(const fft_scratch *s, int t) {
  return (fftwf_complex *)(void *)(s->block + (size_t)t * s->per_thread + s->real_bytes);
}

/* Index j of the clip extended by mirror reflection without repeating the edge sample; the
 * period is 2 (n - 1), which also covers pads longer than the clip. */
static int64_t reflect_index(int64_t j, int64_t n) {
  if (j >= 0 && j < n) return j;
  if (n == 1) return 0;
  int64_t period = 2 * (n - 1);
  int64_t m = j % period;
  if (m < 0) m += period;
  return m < n ? m : period - m;
}

/* Floor division for a possibly negative numerator and a positive divisor. */
static int64_t floor_div(int64_t num, int64_t den) {
  int64_t q = num / den;
  return (num % den != 0 && num < 0) ? q - 1 : q;
}

static void frame_spectrum(const duet_audio_codec *a, const float *x, int64_t n_samples,
                           int64_t frame, float *buf, fftwf_complex *spec) {
  int n = a->cfg.n_fft;
  int64_t start = frame * a->cfg.hop - n / 2;
  memset(buf, 0, sizeof *buf * (size_t)n);
  if (start + a->wlo >= 0 && start + a->whi <= n_samples) {
    for (int k = a->wlo; k < a->whi; k++) buf[k] = a->window[k] * x[start + k];
  } else {
    for (int k = a->wlo; k < a->whi; k++)
      buf[k] = a->window[k] * x[reflect_index(start + k, n_samples)];
  }
  fftwf_execute_dft_r2c(a->r2c, buf, spec);
}

int duet_stft_magnitude(const duet_audio_codec *a, const float *wave, int64_t batch,
                        int64_t n_samples, float *mag, duet_err *err) {
  fft_scratch s;
  int rc = scratch_alloc(a, &s, err);
  if (rc) return rc;
  int64_t frames = duet_audio_codec_frames(a, n_samples), rows = batch * frames;
  int nb = a->bins;
#pragma omp parallel num_threads(s.threads)
  {
    int t = omp_get_thread_num();
    float *buf = scratch_real(&s, t);
    fftwf_complex *spec = scratch_spec(&s, t);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      int64_t b = r / frames, i = r % frames;
      frame_spectrum(a, wave + b * n_samples, n_samples, i, buf, spec);
      float *m = mag + r * nb;
      for (int k = 0; k < nb; k++) m[k] = hypotf(spec[k][0], spec[k][1]);
    }
  }
  fftwf_free(s.block);
  return DUET_OK;
}

/* Inverse FFT of mag * phase for every row, windowed again (the synthesis window) and kept only
 * on the window's support: td [rows, win_length]. */
static void synthesise(const duet_audio_codec *a, const fft_scratch *s, const float *mag,
                       const float *phase, int64_t rows, float *td) {
  int nb = a->bins, win = a->cfg.win_length;
  /* FFTW's inverse is unnormalised: it returns n_fft times the signal. */
  const float scale = 1.0f / (float)a->cfg.n_fft;
#pragma omp parallel num_threads(s->threads)
  {
    int t = omp_get_thread_num();
    float *buf = scratch_real(s, t);
    fftwf_complex *spec = scratch_spec(s, t);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      const float *m = mag + r * nb, *p = phase + 2 * r * nb;
      for (int k = 0; k < nb; k++) {
        spec[k][0] = m[k] * p[2 * k];
        spec[k][1] = m[k] * p[2 * k + 1];
      }
      fftwf_execute_dft_c2r(a->c2r, spec, buf);
      float *out = td + r * win;
      for (int j = 0; j < win; j++) out[j] = buf[a->wlo + j] * a->window[a->wlo + j] * scale;
    }
  }
}

/* Overlap-add of the synthesised frames, divided by the sum of squared windows over the same
 * frames: the least-squares signal whose STFT is closest to the given one (Griffin and Lim,
 * 1984). Written as a gather over output samples so threads never write the same sample. */
static void overlap_add(const duet_audio_codec *a, const float *td, int64_t batch,
                        int64_t frames, int64_t n_samples, float *wave) {
  int win = a->cfg.win_length, hop = a->cfg.hop, half = a->cfg.n_fft / 2;
  /* Near the clip's ends fewer frames overlap; where their squared windows add up to almost
   * nothing, dividing would blow up rounding noise, so the divisor is held at a small fraction
   * of its mean value instead. */
  double mean_wss = 0;
  for (int k = a->wlo; k < a->whi; k++) mean_wss += (double)a->window[k] * a->window[k];
  mean_wss /= hop;
  const float min_wss = (float)(1e-3 * mean_wss);
#pragma omp parallel for schedule(static) if (batch * n_samples > 8192)
  for (int64_t bn = 0; bn < batch * n_samples; bn++) {
    int64_t b = bn / n_samples, n = bn % n_samples, p = n + half;
    int64_t ilo = floor_div(p - a->whi, hop) + 1, ihi = floor_div(p - a->wlo, hop);
    if (ilo < 0) ilo = 0;
    if (ihi > frames - 1) ihi = frames - 1;
    float y = 0, wss = 0;
    for (int64_t i = ilo; i <= ihi; i++) {
      int64_t k = p - i * hop; /* position inside frame i's FFT buffer */
      y += td[(b * frames + i) * win + (k - a->wlo)];
      wss += a->window[k] * a->window[k];
    }
    wave[bn] = y / (wss > min_wss ? wss : min_wss);
  }
}

int duet_audio_codec_griffin_lim(const duet_audio_codec *a, const float *mag, int64_t batch,
                                 int64_t n_frames, float *wave, int64_t n_samples,
                                 duet_err *err) {
  if (batch < 1 || n_frames < 1)
    return duet_err_set(err, DUET_EINVAL, "audio codec: batch %lld and n_frames %lld must be >= 1",
                        (long long)batch, (long long)n_frames);
  if (duet_audio_codec_frames(a, n_samples) != n_frames)
    return duet_err_set(err, DUET_EINVAL,
                        "audio codec: %lld samples make %lld frames, not %lld (hop %d)",
                        (long long)n_samples, (long long)duet_audio_codec_frames(a, n_samples),
                        (long long)n_frames, a->cfg.hop);
  int nb = a->bins;
  int64_t rows = batch * n_frames, cells = rows * nb;
  for (int64_t i = 0; i < cells; i++)
    if (!isfinite(mag[i]) || mag[i] < 0)
      return duet_err_set(err, DUET_ENUMERIC,
                          "audio codec: magnitude value %lld is %g, not finite and >= 0",
                          (long long)i, (double)mag[i]);

  fft_scratch s;
  int rc = scratch_alloc(a, &s, err);
  if (rc) return rc;
  float *phase = malloc(sizeof *phase * 2 * (size_t)cells);
  float *prev = calloc(2 * (size_t)cells, sizeof *prev);
  float *td = malloc(sizeof *td * (size_t)rows * a->cfg.win_length);
  if (!phase || !prev || !td) {
    fftwf_free(s.block);
    free(phase);
    free(prev);
    free(td);
    return duet_err_set(err, DUET_ENOMEM, "audio codec: out of memory");
  }

  /* Random initial phases: zero phase would start every frame as a symmetric pulse centred on
   * its frame, which Griffin-Lim is slow to undo. Each value depends only on (seed, frame, bin),
   * so a clip decodes the same whatever its place in the batch and the thread count. */
  const uint64_t seed = a->cfg.gl_seed;
#pragma omp parallel for schedule(static) if (rows > 16)
  for (int64_t r = 0; r < rows; r++) {
    uint64_t stream = duet_rng_stream_id(0x47726966u /* "Grif" */, (uint64_t)(r % n_frames), 0);
    uint32_t u[4];
    for (int k = 0; k < nb; k++) {
      if (k % 4 == 0) duet_philox4x32(seed, stream, (uint64_t)(k / 4), u);
      double ang = 2.0 * M_PI * (u[k % 4] * (1.0 / 4294967296.0));
      phase[2 * (r * nb + k)] = (float)cos(ang);
      phase[2 * (r * nb + k) + 1] = (float)sin(ang);
    }
  }

  /* Fast Griffin-Lim: t_n is the STFT of the signal that best matches mag with the current
   * phases; the next phases are those of t_n + alpha (t_n - t_{n-1}). prev starts at zero,
   * which makes the first step plain Griffin-Lim. */
  const float alpha = a->cfg.gl_momentum;
  for (int it = 0; it < a->cfg.gl_iters; it++) {
    synthesise(a, &s, mag, phase, rows, td);
    overlap_add(a, td, batch, n_frames, n_samples, wave);
#pragma omp parallel num_threads(s.threads)
    {
      int t = omp_get_thread_num();
      float *buf = scratch_real(&s, t);
      fftwf_complex *spec = scratch_spec(&s, t);
#pragma omp for schedule(static)
      for (int64_t r = 0; r < rows; r++) {
        int64_t b = r / n_frames, i = r % n_frames;
        frame_spectrum(a, wave + b * n_samples, n_samples, i, buf, spec);
        float *ph = phase + 2 * r * nb, *pv = prev + 2 * r * nb;
        for (int k = 0; k < nb; k++) {
          float re = spec[k][0], im = spec[k][1];
          float cre = re + alpha * (re - pv[2 * k]), cim = im + alpha * (im - pv[2 * k + 1]);
          pv[2 * k] = re;
          pv[2 * k + 1] = im;
          float norm = hypotf(cre, cim);
          if (norm > 0) {
            ph[2 * k] = cre / norm;
            ph[2 * k + 1] = cim / norm;
          } else {
            ph[2 * k] = 1;
            ph[2 * k + 1] = 0;
          }
        }
      }
    }
  }
  synthesise(a, &s, mag, phase, rows, td);
  overlap_add(a, td, batch, n_frames, n_samples, wave);

  fftwf_free(s.block);
  free(phase);
  free(prev);
  free(td);
  return DUET_OK;
}
