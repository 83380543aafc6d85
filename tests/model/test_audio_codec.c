/* The audio codec: framing arithmetic, config checks, the Slaney filterbank against its closed
 * form and against librosa, tones landing in their band, Griffin-Lim's spectral convergence,
 * the whole encode -> decode -> encode loop, silence, lengths, batching and bad input. */
#include <fftw3.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/audio_codec.h"
#include "testlib.h"

static const double PI = 3.14159265358979323846;

/* Independent of the library: Slaney's scale written from its definition (linear at 200/3 Hz
 * per mel up to 1 kHz = 15 mels, then 27 mels per factor 6.4). */
static double ref_hz_to_mel(double f) {
  return f < 1000 ? f * 3.0 / 200.0 : 15.0 + 27.0 * log(f / 1000.0) / log(6.4);
}
static double ref_mel_to_hz(double m) {
  return m < 15 ? m * 200.0 / 3.0 : 1000.0 * pow(6.4, (m - 15.0) / 27.0);
}
/* Band m's weight at bin k by the closed form: a triangle over edges m, m+1, m+2 of n_mels + 2
 * mel-equispaced points, peak 2 / (upper edge - lower edge). */
static double ref_weight(int sr, int n_fft, int n_mels, double fmax, int m, int k) {
  double top = ref_hz_to_mel(fmax);
  double lo = ref_mel_to_hz(top * m / (n_mels + 1));
  double mid = ref_mel_to_hz(top * (m + 1) / (n_mels + 1));
  double hi = ref_mel_to_hz(top * (m + 2) / (n_mels + 1));
  double f = (double)k * sr / n_fft;
  double w = f <= mid ? (f - lo) / (mid - lo) : (hi - f) / (hi - mid);
  return w > 0 ? w * 2.0 / (hi - lo) : 0.0;
}

static double norm2(const float *x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  return sqrt(s);
}
static double diff_norm2(const float *x, const float *y, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
  return sqrt(s);
}

/* Three steady tones and three impacts: a 180 Hz + 523 Hz ring decaying over 40 ms, struck by
 * a 10 ms noise burst, the kind of sound duet-synth makes when a ball hits the floor. */
static void make_tones_and_impacts(float *x, int64_t n, int sr) {
  for (int64_t i = 0; i < n; i++) {
    double t = (double)i / sr;
    x[i] = (float)(0.15 * sin(2 * PI * 440 * t) + 0.1 * sin(2 * PI * 1250 * t + 1) +
                   0.05 * sin(2 * PI * 3100 * t));
  }
  const double onsets[3] = {0.2, 0.9, 1.5};
  duet_rng rng = duet_rng_make(17, 1);
  for (int e = 0; e < 3; e++) {
    for (int64_t i = (int64_t)(onsets[e] * sr); i < n; i++) {
      double t = (double)i / sr - onsets[e];
      double ring = sin(2 * PI * 180 * t) + 0.5 * sin(2 * PI * 523 * t);
      double burst = 0.3 * duet_rng_normal_f64(&rng) * exp(-t / 0.01);
      x[i] += (float)(0.4 * exp(-t / 0.04) * (ring + burst));
    }
  }
}

static void test_framing(const duet_audio_codec *c) {
  CHECK_EQ_INT(duet_audio_codec_frames(c, 0), 0);
  CHECK_EQ_INT(duet_audio_codec_frames(c, 1), 1);
  CHECK_EQ_INT(duet_audio_codec_frames(c, 250), 1);
  CHECK_EQ_INT(duet_audio_codec_frames(c, 251), 2);
  CHECK_EQ_INT(duet_audio_codec_frames(c, 16000), 64); /* 64 frames/s: 4 per 16 fps frame */
  CHECK_EQ_INT(duet_audio_codec_samples(c, 64), 16000);
  CHECK_EQ_INT(duet_audio_codec_bins(c), 513);
  int ok = 1;
  for (int64_t f = 1; f <= 300; f++) ok &= duet_audio_codec_frames(c, duet_audio_codec_samples(c, f)) == f;
  for (int64_t s = 1; s <= 3000; s++) {
    int64_t back = duet_audio_codec_samples(c, duet_audio_codec_frames(c, s));
    ok &= back >= s && back - s < 250;
  }
  CHECK(ok);
}

static void expect_bad(void (*edit)(duet_audio_codec_config *), const char *what) {
  duet_audio_codec_config cfg;
  duet_audio_codec_config_default(&cfg);
  edit(&cfg);
  duet_err err = {0};
  duet_audio_codec *c = (duet_audio_codec *)&err; /* must be reset to NULL on failure */
  int rc = duet_audio_codec_create(&cfg, &c, &err);
  CHECK_MSG(rc == DUET_EINVAL && c == NULL && err.msg[0] && !strchr(err.msg, '\n'),
            "%s: rc %d, msg '%s'", what, rc, err.msg);
}
static void bad_fft_small(duet_audio_codec_config *c) { c->n_fft = 512; } /* < win_length */
static void bad_fft_odd(duet_audio_codec_config *c) { c->n_fft = 1023; }
static void bad_hop(duet_audio_codec_config *c) { c->hop = 600; }
static void bad_hop_zero(duet_audio_codec_config *c) { c->hop = 0; }
static void bad_mels(duet_audio_codec_config *c) { c->n_mels = 514; }
static void bad_fmax(duet_audio_codec_config *c) { c->fmax = 9000; }
static void bad_fmin(duet_audio_codec_config *c) { c->fmin = 8000; }
static void bad_floor(duet_audio_codec_config *c) { c->log_floor = 0; }
static void bad_std(duet_audio_codec_config *c) { c->norm_std = -1; }
static void bad_momentum(duet_audio_codec_config *c) { c->gl_momentum = 1.0f; }
static void bad_empty_band(duet_audio_codec_config *c) {
  c->n_fft = 256;
  c->win_length = 256;
  c->hop = 64;
  c->n_mels = 128; /* the lowest bands are narrower than one 62.5 Hz bin */
}

static void test_bad_configs(void) {
  expect_bad(bad_fft_small, "n_fft < win_length");
  expect_bad(bad_fft_odd, "odd n_fft");
  expect_bad(bad_hop, "hop > win_length / 2");
  expect_bad(bad_hop_zero, "hop 0");
  expect_bad(bad_mels, "n_mels > bins");
  expect_bad(bad_fmax, "fmax above Nyquist");
  expect_bad(bad_fmin, "fmin >= fmax");
  expect_bad(bad_floor, "log_floor 0");
  expect_bad(bad_std, "norm_std < 0");
  expect_bad(bad_momentum, "momentum 1");
  expect_bad(bad_empty_band, "empty mel band");
}

static void test_filterbank(const duet_audio_codec *c) {
  const float *fb = duet_audio_codec_filterbank(c);
  const int nm = 64, nb = 513, sr = 16000, n_fft = 1024;
  CHECK_NEAR(duet_hz_to_mel(500), 7.5, 1e-12);
  CHECK_NEAR(duet_hz_to_mel(1000), 15.0, 1e-12);
  CHECK_NEAR(duet_hz_to_mel(4000), 35.16376031, 1e-8);
  CHECK_NEAR(duet_mel_to_hz(30), 2804.64413074, 1e-7);
  CHECK_NEAR(duet_mel_to_hz(duet_hz_to_mel(2345.6)), 2345.6, 1e-9);

  /* Every entry against the closed form, every band non-empty, and equal area: the
   * triangle's integral over Hz is 1, so sum_k w_k * (Hz per bin) is 1 up to sampling. */
  double worst = 0, worst_area = 0;
  int nonneg = 1, nonempty = 1;
  for (int m = 0; m < nm; m++) {
    double area = 0, rowmax = 0;
    for (int k = 0; k < nb; k++) {
      float w = fb[m * nb + k];
      double r = ref_weight(sr, n_fft, nm, 8000, m, k);
      double e = fabs(w - r);
      if (e > worst) worst = e;
      nonneg &= w >= 0;
      area += w * (double)sr / n_fft;
      if (w > rowmax) rowmax = w;
    }
    nonempty &= rowmax > 0;
    /* Bands under ~8 bins wide are sampled too coarsely for the area to be exact. */
    if (m >= 8 && fabs(area - 1) > worst_area) worst_area = fabs(area - 1);
  }
  CHECK_MSG(worst < 1e-7, "filterbank vs closed form: max |diff| %.3g", worst);
  CHECK(nonneg);
  CHECK(nonempty);
  CHECK_MSG(worst_area < 0.03, "band area off by %.3g", worst_area);

  /* librosa.filters.mel(sr=16000, n_fft=1024, n_mels=64, htk=False, norm='slaney'), librosa
   * 0.11.0, a few entries across the range. */
  static const struct { int m, k; double w; } lib[] = {
      {0, 1, 0.007255640812218189},    {0, 3, 0.021331151947379112},
      {0, 5, 0.006819870322942734},    {10, 30, 0.0021788510493934155},
      {10, 32, 0.01669013313949108},   {31, 104, 0.008725856430828571},
      {31, 110, 0.0017329930560663342}, {63, 466, 8.809219434624538e-05},
      {63, 496, 0.0018316158093512058}, {63, 511, 0.00011447598808445036},
  };
  for (size_t i = 0; i < sizeof lib / sizeof lib[0]; i++)
    CHECK_NEAR(fb[lib[i].m * nb + lib[i].k], lib[i].w, 1e-6 * lib[i].w + 1e-12);
  CHECK_EQ_INT(fb[0 * nb + 0], 0);  /* band 0 starts at 0 Hz, weight 0 there */
  CHECK_EQ_INT(fb[63 * nb + 512], 0); /* band 63 ends at Nyquist */
}

/* A tone at the centre of band m peaks in band m. */
static void test_tone_peaks(const duet_audio_codec *c) {
  const int sr = 16000, n = 16000, nm = 64;
  int64_t frames = duet_audio_codec_frames(c, n);
  float *x = malloc(sizeof *x * n), *z = malloc(sizeof *z * (size_t)(frames * nm));
  const int bands[] = {3, 12, 25, 40, 52, 62};
  double top = ref_hz_to_mel(8000);
  for (size_t b = 0; b < sizeof bands / sizeof bands[0]; b++) {
    int m = bands[b];
    double f = ref_mel_to_hz(top * (m + 1) / (nm + 1));
    for (int i = 0; i < n; i++) x[i] = (float)(0.5 * sin(2 * PI * f * i / sr));
    duet_err err = {0};
    CHECK(duet_audio_codec_encode(c, x, 1, n, z, &err) == DUET_OK);
    int agree = 1;
    for (int64_t t = 4; t < frames - 4; t++) {
      int best = 0;
      for (int k = 1; k < nm; k++)
        if (z[t * nm + k] > z[t * nm + best]) best = k;
      agree &= best == m;
    }
    CHECK_MSG(agree, "tone %.1f Hz does not peak in band %d", f, m);
  }
  free(x);
  free(z);
}

static void test_silence(const duet_audio_codec *c) {
  const int n = 8000, nm = 64;
  int64_t frames = duet_audio_codec_frames(c, n);
  float *x = calloc(n, sizeof *x), *y = malloc(sizeof *y * n);
  float *z = malloc(sizeof *z * (size_t)(frames * nm));
  duet_err err = {0};
  CHECK(duet_audio_codec_encode(c, x, 1, n, z, &err) == DUET_OK);
  double expect = (log(1e-5) - (-4.5)) / 7.0;
  double worst = 0;
  for (int64_t i = 0; i < frames * nm; i++)
    if (fabs(z[i] - expect) > worst) worst = fabs(z[i] - expect);
  CHECK_MSG(worst < 1e-5, "silence latent off the floor value %.6f by %.3g", expect, worst);
  for (int i = 0; i < n; i++) y[i] = 1.0f;
  CHECK(duet_audio_codec_decode(c, z, 1, frames, y, n, &err) == DUET_OK);
  CHECK_NEAR(norm2(y, n), 0.0, 1e-6);
  free(x);
  free(y);
  free(z);
}

/* Griffin-Lim alone, from the true magnitude, and the whole codec, for tones + impacts. */
static void test_round_trip(const duet_audio_codec *c) {
  const int sr = 16000, n = 2 * sr, nm = 64, nb = 513;
  int64_t frames = duet_audio_codec_frames(c, n), cells = frames * nb;
  float *x = malloc(sizeof *x * n), *y = malloc(sizeof *y * (n + 16));
  float *s = malloc(sizeof *s * (size_t)cells), *s2 = malloc(sizeof *s2 * (size_t)cells);
  float *z = malloc(sizeof *z * (size_t)(frames * nm)), *z2 = malloc(sizeof *z2 * (size_t)(frames * nm));
  float *mel = malloc(sizeof *mel * (size_t)(frames * nm)), *mel2 = malloc(sizeof *mel2 * (size_t)(frames * nm));
  make_tones_and_impacts(x, n, sr);
  duet_err err = {0};
  CHECK(duet_audio_codec_magnitude(c, x, 1, n, s, &err) == DUET_OK);

  /* Canaries after the requested length: the output is exactly n samples. */
  for (int i = n; i < n + 16; i++) y[i] = 12345.0f;
  CHECK(duet_audio_codec_griffin_lim(c, s, 1, frames, y, n, &err) == DUET_OK);
  int canary = 1;
  for (int i = n; i < n + 16; i++) canary &= y[i] == 12345.0f;
  CHECK(canary);
  CHECK(duet_audio_codec_magnitude(c, y, 1, n, s2, &err) == DUET_OK);
  double sc_gl = diff_norm2(s, s2, cells) / norm2(s, cells);
  printf("Griffin-Lim (32 iterations, momentum 0.99) spectral convergence: %.4f\n", sc_gl);
  CHECK_MSG(sc_gl < 0.10, "Griffin-Lim spectral convergence %.4f", sc_gl);

  /* The codec: encode, decode, encode again. The mel bottleneck keeps 64 of 513 numbers per
   * frame, so the linear spectrum cannot come back exactly; the mel spectrum should. */
  CHECK(duet_audio_codec_encode(c, x, 1, n, z, &err) == DUET_OK);
  CHECK(duet_audio_codec_decode(c, z, 1, frames, y, n, &err) == DUET_OK);
  canary = 1;
  for (int i = n; i < n + 16; i++) canary &= y[i] == 12345.0f;
  CHECK(canary);
  CHECK(duet_audio_codec_encode(c, y, 1, n, z2, &err) == DUET_OK);
  CHECK(duet_audio_codec_magnitude(c, y, 1, n, s2, &err) == DUET_OK);
  duet_audio_codec_mel(c, s, frames, mel);
  duet_audio_codec_mel(c, s2, frames, mel2);
  double sc_mel = diff_norm2(mel, mel2, frames * nm) / norm2(mel, frames * nm);
  double sc_lin = diff_norm2(s, s2, cells) / norm2(s, cells);
  double zerr = 0;
  for (int64_t i = 0; i < frames * nm; i++) zerr += fabs(z[i] - z2[i]);
  zerr /= (double)(frames * nm);
  printf("codec round trip: mel spectral convergence %.4f, linear %.4f, mean |latent diff| "
         "%.4f\n",
         sc_mel, sc_lin, zerr);
  CHECK_MSG(sc_mel < 0.15, "codec mel spectral convergence %.4f", sc_mel);
  CHECK_MSG(sc_lin < 0.6, "codec linear spectral convergence %.4f", sc_lin);
  CHECK_MSG(zerr < 0.08, "codec mean latent error %.4f", zerr);

  /* Two clips in one batch decode as they do alone: every value depends on its own clip. */
  float *zz = malloc(sizeof *zz * (size_t)(2 * frames * nm)), *yy = malloc(sizeof *yy * 2 * n);
  for (int i = 0; i < n; i++) y[i] = 0.5f * x[n - 1 - i];
  memcpy(yy, x, sizeof *x * n);
  memcpy(yy + n, y, sizeof *y * n);
  CHECK(duet_audio_codec_encode(c, yy, 2, n, zz, &err) == DUET_OK);
  CHECK(memcmp(zz, z, sizeof *z * (size_t)(frames * nm)) == 0);
  CHECK(duet_audio_codec_encode(c, y, 1, n, z2, &err) == DUET_OK);
  CHECK(memcmp(zz + frames * nm, z2, sizeof *z2 * (size_t)(frames * nm)) == 0);
  CHECK(duet_audio_codec_decode(c, zz, 2, frames, yy, n, &err) == DUET_OK);
  CHECK(duet_audio_codec_decode(c, z2, 1, frames, y, n, &err) == DUET_OK);
  CHECK(memcmp(yy + n, y, sizeof *y * n) == 0);

  /* Nor does the thread count change a bit of the output. */
  int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  CHECK(duet_audio_codec_decode(c, z2, 1, frames, yy, n, &err) == DUET_OK);
  omp_set_num_threads(3);
  CHECK(duet_audio_codec_decode(c, z2, 1, frames, yy + n, n, &err) == DUET_OK);
  omp_set_num_threads(threads);
  CHECK(memcmp(yy, y, sizeof *y * n) == 0 && memcmp(yy + n, y, sizeof *y * n) == 0);

  free(zz);
  free(yy);
  free(x);
  free(y);
  free(s);
  free(s2);
  free(z);
  free(z2);
  free(mel);
  free(mel2);
}

/* The mel inverse is non-negative and reproduces the mel energies of a smooth spectrum. */
static void test_mel_inverse(const duet_audio_codec *c) {
  const int nm = 64, nb = 513, rows = 8;
  float *s = malloc(sizeof *s * rows * nb), *s2 = malloc(sizeof *s2 * rows * nb);
  float *mel = malloc(sizeof *mel * rows * nm), *mel2 = malloc(sizeof *mel2 * rows * nm);
  for (int r = 0; r < rows; r++)
    for (int k = 0; k < nb; k++)
      s[r * nb + k] = (float)(exp(-k / (40.0 + 30 * r)) * (1.2 + sin(k * 0.05 * (r + 1))));
  duet_audio_codec_mel(c, s, rows, mel);
  duet_audio_codec_mel_inverse(c, mel, rows, s2);
  duet_audio_codec_mel(c, s2, rows, mel2);
  int nonneg = 1;
  for (int i = 0; i < rows * nb; i++) nonneg &= s2[i] >= 0;
  CHECK(nonneg);
  double res = diff_norm2(mel, mel2, rows * nm) / norm2(mel, rows * nm);
  CHECK_MSG(res < 0.01, "mel inverse residual %.4g", res);
  free(s);
  free(s2);
  free(mel);
  free(mel2);
}

static void test_bad_calls(const duet_audio_codec *c) {
  float x[1000] = {0}, z[4 * 64] = {0};
  duet_err err = {0};
  x[10] = NAN;
  CHECK(duet_audio_codec_encode(c, x, 1, 1000, z, &err) == DUET_ENUMERIC);
  x[10] = 0;
  CHECK(duet_audio_codec_encode(c, x, 1, 0, z, &err) == DUET_EINVAL);
  /* 1000 samples are 4 frames; 5 frames need more. */
  CHECK(duet_audio_codec_decode(c, z, 1, 4, x, 1000, &err) == DUET_OK);
  CHECK(duet_audio_codec_decode(c, z, 1, 5, x, 1000, &err) == DUET_EINVAL);
  CHECK(duet_audio_codec_decode(c, z, 1, 4, x, 750, &err) == DUET_EINVAL);
  CHECK(duet_audio_codec_decode(c, z, 1, 4, x, 751, &err) == DUET_OK); /* still 4 frames */
  /* Absurdly loud latents still decode to finite samples. */
  for (int i = 0; i < 4 * 64; i++) z[i] = 1e6f;
  CHECK(duet_audio_codec_decode(c, z, 1, 4, x, 1000, &err) == DUET_OK);
  int finite = 1;
  for (int i = 0; i < 1000; i++) finite &= isfinite(x[i]);
  CHECK(finite);
  z[7] = INFINITY;
  CHECK(duet_audio_codec_decode(c, z, 1, 4, x, 1000, &err) == DUET_ENUMERIC);
}

/* Short clips (shorter than the reflection pad) and an odd window still work. */
static void test_short_and_odd(void) {
  duet_audio_codec_config cfg;
  duet_audio_codec_config_default(&cfg);
  cfg.n_fft = 512;
  cfg.win_length = 401;
  cfg.hop = 160;
  cfg.n_mels = 40;
  cfg.gl_iters = 8;
  duet_audio_codec *c = NULL;
  duet_err err = {0};
  CHECK(duet_audio_codec_create(&cfg, &c, &err) == DUET_OK);
  if (!c) return;
  float x[3], y[3], z[1 * 40];
  x[0] = 0.5f, x[1] = -0.25f, x[2] = 0.1f;
  for (int n = 1; n <= 3; n++) {
    CHECK_EQ_INT(duet_audio_codec_frames(c, n), 1);
    CHECK(duet_audio_codec_encode(c, x, 1, n, z, &err) == DUET_OK);
    CHECK(duet_audio_codec_decode(c, z, 1, 1, y, n, &err) == DUET_OK);
    int finite = 1;
    for (int i = 0; i < n; i++) finite &= isfinite(y[i]);
    CHECK(finite);
  }
  duet_audio_codec_free(c);
}

int main(void) {
  duet_audio_codec_config cfg;
  duet_audio_codec_config_default(&cfg);
  CHECK_EQ_INT(cfg.sample_rate, 16000);
  CHECK_EQ_INT(cfg.hop, 250);
  duet_audio_codec *c = NULL;
  duet_err err = {0};
  int rc = duet_audio_codec_create(&cfg, &c, &err);
  CHECK_MSG(rc == DUET_OK, "%s", err.msg);
  if (!c) return test_finish("model_audio_codec");
  CHECK_NEAR(duet_audio_codec_config_get(c)->fmax, 8000, 0);

  test_framing(c);
  test_bad_configs();
  test_filterbank(c);
  test_tone_peaks(c);
  test_silence(c);
  test_round_trip(c);
  test_mel_inverse(c);
  test_bad_calls(c);
  test_short_and_odd();

  duet_audio_codec_free(c);
  /* Every plan is gone, so FFTW's planner memory can go too (keeps the leak checker quiet). */
  fftwf_cleanup();
  return test_finish("model_audio_codec");
}
