/* The codecs' speed and the audio codec's fidelity, as Markdown tables on stdout.
 *
 *   build/bin/bench_codec [seconds_of_audio]     (default 5)
 *
 * Fidelity: a steady three-tone chord plus impacts (decaying 180 + 523 Hz rings struck by
 * noise bursts), measured as spectral convergence ||S - S'||_F / ||S||_F of the linear STFT
 * magnitude (Griffin-Lim from the true magnitude) or of the mel energies (the whole codec:
 * encode, decode, then the decoded clip's mel energies against the original's). */
#include <fftw3.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/audio_codec.h"
#include "model/video_codec.h"

static const double PI = 3.14159265358979323846;

static void make_signal(float *x, int64_t n, int sr) {
  for (int64_t i = 0; i < n; i++) {
    double t = (double)i / sr;
    x[i] = (float)(0.15 * sin(2 * PI * 440 * t) + 0.1 * sin(2 * PI * 1250 * t + 1) +
                   0.05 * sin(2 * PI * 3100 * t));
  }
  duet_rng rng = duet_rng_make(17, 1);
  for (double onset = 0.2; onset < (double)n / sr; onset += 0.65) {
    for (int64_t i = (int64_t)(onset * sr); i < n; i++) {
      double t = (double)i / sr - onset;
      if (t > 0.5) break;
      double ring = sin(2 * PI * 180 * t) + 0.5 * sin(2 * PI * 523 * t);
      x[i] += (float)(0.4 * exp(-t / 0.04) * (ring + 0.3 * duet_rng_normal_f64(&rng) * exp(-t / 0.01)));
    }
  }
}

static double rel_err(const float *ref, const float *x, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    num += ((double)ref[i] - x[i]) * ((double)ref[i] - x[i]);
    den += (double)ref[i] * ref[i];
  }
  return sqrt(num / den);
}

static void die(const duet_err *err) {
  fprintf(stderr, "bench_codec: %s\n", err->msg);
  exit(1);
}

/* 1, 2, 4, ... below the maximum, then the maximum itself. */
static int thread_counts(int *out) {
  int max = omp_get_max_threads(), n = 0;
  for (int t = 1; t < max; t *= 2) out[n++] = t;
  out[n++] = max;
  return n;
}

static duet_audio_codec *make_codec(int gl_iters, float momentum) {
  duet_audio_codec_config cfg;
  duet_audio_codec_config_default(&cfg);
  cfg.gl_iters = gl_iters;
  cfg.gl_momentum = momentum;
  duet_audio_codec *c = NULL;
  duet_err err = {0};
  if (duet_audio_codec_create(&cfg, &c, &err)) die(&err);
  return c;
}

static void fidelity(int64_t n) {
  const int nb = 513, nm = 64;
  duet_audio_codec *ref = make_codec(32, 0.99f);
  int64_t frames = duet_audio_codec_frames(ref, n);
  float *x = malloc(sizeof *x * n), *y = malloc(sizeof *y * n);
  float *s = malloc(sizeof *s * frames * nb), *s2 = malloc(sizeof *s2 * frames * nb);
  float *mel = malloc(sizeof *mel * frames * nm), *mel2 = malloc(sizeof *mel2 * frames * nm);
  float *z = malloc(sizeof *z * frames * nm);
  duet_err err = {0};
  make_signal(x, n, 16000);
  if (duet_audio_codec_magnitude(ref, x, 1, n, s, &err)) die(&err);
  if (duet_audio_codec_encode(ref, x, 1, n, z, &err)) die(&err);
  duet_audio_codec_mel(ref, s, frames, mel);
  duet_audio_codec_free(ref);

  printf("\n### Audio fidelity, tones + impacts, %.1f s\n\n", n / 16000.0);
  printf("| GL iterations | momentum | GL spectral conv. (true magnitude) | codec mel spectral conv. | codec linear spectral conv. |\n");
  printf("| ---: | ---: | ---: | ---: | ---: |\n");
  const int iters[] = {0, 8, 16, 32, 64, 128};
  const float moms[] = {0.0f, 0.99f};
  for (int mi = 0; mi < 2; mi++)
    for (int ii = 0; ii < 6; ii++) {
      duet_audio_codec *c = make_codec(iters[ii], moms[mi]);
      if (duet_audio_codec_griffin_lim(c, s, 1, frames, y, n, &err)) die(&err);
      if (duet_audio_codec_magnitude(c, y, 1, n, s2, &err)) die(&err);
      double sc_gl = rel_err(s, s2, frames * nb);
      if (duet_audio_codec_decode(c, z, 1, frames, y, n, &err)) die(&err);
      if (duet_audio_codec_magnitude(c, y, 1, n, s2, &err)) die(&err);
      duet_audio_codec_mel(c, s2, frames, mel2);
      printf("| %d | %.2f | %.4f | %.4f | %.4f |\n", iters[ii], (double)moms[mi], sc_gl,
             rel_err(mel, mel2, frames * nm), rel_err(s, s2, frames * nb));
      duet_audio_codec_free(c);
    }
  free(x);
  free(y);
  free(s);
  free(s2);
  free(mel);
  free(mel2);
  free(z);
}

/* Best of a few repeats, each at least ~0.2 s, in ms per call. */
#define TIME_MS(result, stmt)                                          \
  do {                                                                 \
    double best = 1e30;                                                \
    for (int rep = 0; rep < 3; rep++) {                                \
      int calls = 0;                                                   \
      double t0 = omp_get_wtime(), t1;                                 \
      do {                                                             \
        stmt;                                                          \
        calls++;                                                       \
        t1 = omp_get_wtime();                                          \
      } while (t1 - t0 < 0.2);                                         \
      if ((t1 - t0) / calls < best) best = (t1 - t0) / calls;          \
    }                                                                  \
    result = best * 1e3;                                               \
  } while (0)

static void audio_speed(int64_t n) {
  duet_audio_codec *c = make_codec(32, 0.99f);
  const int batches[] = {1, 8};
  int max_threads = omp_get_max_threads(), counts[40], nc = thread_counts(counts);
  printf("\n### Audio codec speed, %.1f s clips (32 Griffin-Lim iterations)\n\n", n / 16000.0);
  printf("| threads | batch | encode ms | encode x realtime | decode ms | decode x realtime |\n");
  printf("| ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (int ci = 0; ci < nc; ci++) {
    int threads = counts[ci];
    omp_set_num_threads(threads);
    for (int bi = 0; bi < 2; bi++) {
      int64_t b = batches[bi], frames = duet_audio_codec_frames(c, n);
      float *x = malloc(sizeof *x * b * n), *z = malloc(sizeof *z * b * frames * 64);
      for (int64_t i = 0; i < b; i++) make_signal(x + i * n, n, 16000);
      duet_err err = {0};
      double enc, dec;
      TIME_MS(enc, if (duet_audio_codec_encode(c, x, b, n, z, &err)) die(&err));
      TIME_MS(dec, if (duet_audio_codec_decode(c, z, b, frames, x, n, &err)) die(&err));
      double audio_ms = 1e3 * (double)(b * n) / 16000.0;
      printf("| %d | %lld | %.2f | %.0f | %.2f | %.0f |\n", threads, (long long)b, enc,
             audio_ms / enc, dec, audio_ms / dec);
      free(x);
      free(z);
    }
  }
  omp_set_num_threads(max_threads);
  duet_audio_codec_free(c);
}

static void video_speed(void) {
  duet_video_codec vc;
  duet_err err = {0};
  if (duet_video_codec_init(&vc, DUET_VIDEO_CODEC_PIXELS, &err)) die(&err);
  const int64_t t = 16, h = 256, w = 256, n = t * h * w * 3;
  uint8_t *rgb = malloc((size_t)n);
  float *lat = malloc(sizeof *lat * (size_t)n);
  for (int64_t i = 0; i < n; i++) rgb[i] = (uint8_t)(i * 37);
  int max_threads = omp_get_max_threads(), counts[40], nc = thread_counts(counts);
  printf("\n### Video codec speed, 16 x 256 x 256 x 3 (one second at 16 fps)\n\n");
  printf("| threads | encode ms | encode Mpixel/s | decode ms | decode Mpixel/s |\n");
  printf("| ---: | ---: | ---: | ---: | ---: |\n");
  for (int ci = 0; ci < nc; ci++) {
    int threads = counts[ci];
    omp_set_num_threads(threads);
    double enc, dec;
    TIME_MS(enc, if (duet_video_codec_encode(&vc, rgb, t, h, w, lat, &err)) die(&err));
    TIME_MS(dec, if (duet_video_codec_decode(&vc, lat, t, h, w, rgb, &err)) die(&err));
    double mpix = (double)(t * h * w) / 1e6;
    printf("| %d | %.3f | %.0f | %.3f | %.0f |\n", threads, enc, mpix / (enc / 1e3), dec,
           mpix / (dec / 1e3));
  }
  omp_set_num_threads(max_threads);
  free(rgb);
  free(lat);
  duet_video_codec_free(&vc);
}

int main(int argc, char **argv) {
  double secs = argc > 1 ? atof(argv[1]) : 5.0;
  if (!(secs > 0.1 && secs < 600)) {
    fprintf(stderr, "bench_codec: seconds of audio must be in (0.1, 600), got '%s'\n", argv[1]);
    return 1;
  }
  int64_t n = (int64_t)(secs * 16000);
  printf("## bench_codec (max %d OpenMP threads)\n", omp_get_max_threads());
  fidelity(n);
  audio_speed(n);
  video_speed();
  fftwf_cleanup();
  return 0;
}
