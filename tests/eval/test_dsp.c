/* Array-level checks of eval's building blocks on signals with known answers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/avalign.h"
#include "eval/events.h"
#include "eval/librosa_onset.h"
#include "eval/offset.h"
#include "eval/resample.h"
#include "eval/stft.h"
#include "eval/sync_curves.h"
#include "eval/xcorr.h"
#include "testlib.h"

static void test_stft(void) {
  /* A sine on bin 16 of a 256-point frame: power concentrates there, and Parseval holds for
   * the windowed frame. */
  int n = 4096, n_fft = 256;
  float *x = malloc(sizeof(float) * n);
  for (int i = 0; i < n; i++) x[i] = (float)sin(2 * M_PI * 16.0 * i / n_fft);
  duet_stft s;
  duet_err err = {0};
  CHECK(duet_stft_init(&s, n_fft, &err) == 0);
  double p[129];
  duet_stft_frame(&s, x, n, 2048, p);
  int best = 0;
  for (int k = 0; k < s.n_bins; k++)
    if (p[k] > p[best]) best = k;
  CHECK_EQ_INT(best, 16);
  double e_time = 0, e_freq = 0;
  for (int j = 0; j < n_fft; j++) e_time += s.frame[j] * s.frame[j];
  for (int k = 0; k < s.n_bins; k++) e_freq += (k == 0 || k == n_fft / 2 ? 1 : 2) * p[k];
  CHECK_NEAR(e_freq / n_fft, e_time, 1e-9 * e_time);
  /* Frames off the signal's end see zeros. */
  duet_stft_frame(&s, x, n, n + n_fft, p);
  CHECK_NEAR(p[16], 0.0, 0.0);
  duet_stft_free(&s);
  CHECK_EQ_INT(duet_stft_frames(22050, 512), 44);
  free(x);
}

static void test_resample(void) {
  /* 1 kHz at 48 kHz -> 22050 Hz: same frequency and amplitude, librosa's output length. */
  int64_t n = 48000;
  float *x = malloc(sizeof(float) * n);
  for (int64_t i = 0; i < n; i++) x[i] = (float)(0.5 * sin(2 * M_PI * 1000.0 * i / 48000));
  float *y;
  int64_t m;
  duet_err err = {0};
  CHECK(duet_resample(x, n, 48000, 22050, &y, &m, &err) == 0);
  CHECK_EQ_INT(m, 22050);
  double worst = 0;
  for (int64_t i = 2000; i < m - 2000; i++)
    worst = fmax(worst, fabs(y[i] - 0.5 * sin(2 * M_PI * 1000.0 * i / 22050)));
  CHECK_MSG(worst < 1e-4, "resampled sine off by %g", worst);
  free(y);
  /* Content above the new Nyquist is removed: 15 kHz at 48 kHz -> 22050 Hz. */
  for (int64_t i = 0; i < n; i++) x[i] = (float)(0.5 * sin(2 * M_PI * 15000.0 * i / 48000));
  CHECK(duet_resample(x, n, 48000, 22050, &y, &m, &err) == 0);
  worst = 0;
  for (int64_t i = 2000; i < m - 2000; i++) worst = fmax(worst, fabs(y[i]));
  CHECK_MSG(worst < 1e-4, "alias of 15 kHz left at %g", worst);
  free(y);
  /* Upsampling 16 kHz -> 22050 Hz keeps a 3 kHz tone. */
  CHECK(duet_resample(x, 16000, 16000, 22050, &y, &m, &err) == 0);
  CHECK_EQ_INT(m, 22050);
  free(y);
  CHECK(duet_resample(x, n, 0, 22050, &y, &m, &err) == DUET_EINVAL);
  free(x);
}

static void test_xcorr(void) {
  /* Sparse spikes, b delayed copy of a: lag recovered with its sign. */
  int n = 600;
  double *a = calloc(n, sizeof(double)), *b = calloc(n, sizeof(double));
  int ev[] = {50, 130, 170, 260, 333, 420, 470};
  for (int lag = -37; lag <= 37; lag += 37) {
    memset(a, 0, sizeof(double) * n);
    memset(b, 0, sizeof(double) * n);
    for (size_t i = 0; i < sizeof ev / sizeof ev[0]; i++) {
      b[ev[i]] = 1.0;
      a[ev[i] + lag] = 1.0;
    }
    duet_xcorr x;
    duet_err err = {0};
    CHECK(duet_xcorr_lags(a, n, b, n, 100, &x, &err) == 0);
    CHECK_EQ_INT(x.peak, lag);
    CHECK(x.peak_r > 0.99);
    CHECK(x.confidence > 10);
    duet_xcorr_free(&x);
  }
  /* A sampled parabola's vertex is found between samples. */
  CHECK_NEAR(duet_parabolic_peak(-(1.3 * 1.3), -(0.3 * 0.3), -(0.7 * 0.7)), 0.3, 1e-12);
  CHECK_NEAR(duet_parabolic_peak(1, 1, 1), 0.0, 0.0);
  /* Flat curves cannot be correlated. */
  duet_xcorr x;
  duet_err err = {0};
  memset(a, 0, sizeof(double) * n);
  CHECK(duet_xcorr_lags(a, n, b, n, 100, &x, &err) == DUET_EINVAL);
  CHECK(strstr(err.msg, "flat") != NULL);
  free(a);
  free(b);
}

static void test_motion(void) {
  /* Luma equals OpenCV's fixed-point formula at the corners of the cube. */
  CHECK_EQ_INT(duet_luma(255, 255, 255), 255);
  CHECK_EQ_INT(duet_luma(0, 0, 0), 0);
  CHECK_EQ_INT(duet_luma(255, 0, 0), 76);
  CHECK_EQ_INT(duet_luma(0, 255, 0), 150);
  CHECK_EQ_INT(duet_luma(0, 0, 255), 29);
  /* Box downscale of a 128-row frame to 64 rows averages 2x2 cells. */
  int gh, gw;
  CHECK_EQ_INT(duet_grey_box_size(128, 96, 64, &gh, &gw), 2);
  CHECK_EQ_INT(gh, 64);
  CHECK_EQ_INT(gw, 48);
  CHECK_EQ_INT(duet_grey_box_size(1080, 1920, 64, &gh, &gw), 17);
  CHECK_EQ_INT(gh, 63);
  /* Box downscale equals the per-cell definition, also for boxes over 257 rows tall. */
  static const int cases[][3] = {{300, 200, 64}, {600, 310, 2}};
  for (int k = 0; k < 2; k++) {
    int hh = cases[k][0], ww = cases[k][1], th = cases[k][2];
    uint8_t *rgb = malloc((size_t)hh * ww * 3);
    for (size_t i = 0; i < (size_t)hh * ww * 3; i++) rgb[i] = (uint8_t)((i * 2654435761u) >> 24);
    int f = duet_grey_box_size(hh, ww, th, &gh, &gw);
    uint8_t *g = malloc((size_t)gh * gw);
    duet_err err = {0};
    CHECK(duet_grey_box(rgb, hh, ww, th, g, &err) == 0);
    int bad = 0;
    for (int y = 0; y < gh; y++)
      for (int x = 0; x < gw; x++) {
        uint64_t acc = 0;
        for (int dy = 0; dy < f; dy++)
          for (int dx = 0; dx < f; dx++) {
            const uint8_t *p = rgb + (((size_t)y * f + dy) * ww + (size_t)x * f + dx) * 3;
            acc += p[0] * 4899u + p[1] * 9617u + p[2] * 1868u;
          }
        bad += g[y * gw + x] != (uint8_t)((acc / ((uint64_t)f * f) + 8192) >> 14);
      }
    CHECK_EQ_INT(bad, 0);
    free(g);
    free(rgb);
  }
  /* Three frames: black, black, half white: energy 0, 0, 127.5 (mean |diff| on 0..255). */
  int h = 8, w = 8;
  uint8_t *v = calloc((size_t)3 * h * w * 3, 1);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w / 2; x++) memset(v + (((size_t)2 * h + y) * w + x) * 3, 255, 3);
  double *e;
  duet_err err = {0};
  CHECK(duet_motion_energy(v, 3, h, w, 64, &e, &err) == 0);
  CHECK_NEAR(e[0], 0, 0);
  CHECK_NEAR(e[1], 0, 0);
  CHECK_NEAR(e[2], 127.5, 1e-12);
  /* On a 10 ms grid at 25 fps the value at 40 ms steps is kept, in between interpolated. */
  double *g;
  int ng;
  CHECK(duet_curve_to_grid(e, 3, 25.0, 0.01, &g, &ng, &err) == 0);
  CHECK_EQ_INT(ng, 9);
  CHECK_NEAR(g[4], 0.0, 1e-12);
  CHECK_NEAR(g[6], 63.75, 1e-9);
  CHECK_NEAR(g[8], 127.5, 1e-12);
  free(g);
  free(e);
  free(v);
}

static void test_onset_flux(void) {
  /* A tone switched on at 0.503 s: the flux peak sits on the grid point nearest to it. */
  int sr = 48000;
  int64_t n = sr;
  float *x = calloc((size_t)n, sizeof(float));
  for (int64_t i = (int64_t)(0.503 * sr); i < n; i++)
    x[i] = (float)(0.3 * sin(2 * M_PI * 700.0 * i / sr));
  double *env;
  int ne;
  duet_err err = {0};
  CHECK(duet_onset_flux(x, n, sr, 0.01, &env, &ne, &err) == 0);
  CHECK_EQ_INT(ne, 101);
  int best = 0;
  for (int i = 0; i < ne; i++)
    if (env[i] > env[best]) best = i;
  CHECK_EQ_INT(best, 50);
  free(env);
  memset(x, 0, sizeof(float) * (size_t)n);
  CHECK(duet_onset_flux(x, n, sr, 0.01, &env, &ne, &err) == 0);
  double s = 0;
  for (int i = 0; i < ne; i++) s += env[i];
  CHECK_NEAR(s, 0.0, 0.0);
  free(env);
  free(x);
}

static void test_peak_pick(void) {
  duet_peak_pick p;
  duet_librosa_peak_pick_defaults(22050, 512, &p);
  CHECK_EQ_INT(p.pre_max, 1);
  CHECK_EQ_INT(p.post_max, 1);
  CHECK_EQ_INT(p.pre_avg, 4);
  CHECK_EQ_INT(p.post_avg, 5);
  CHECK_EQ_INT(p.wait, 1);
  /* Peaks must clear the local mean by delta and respect the wait. */
  double x[] = {0, 0.5, 0, 0, 0.05, 0, 0, 1.0, 0.9, 0, 0, 0};
  int peaks[12];
  int n = duet_librosa_peak_pick(x, 12, &p, peaks);
  CHECK_EQ_INT(n, 2);
  CHECK_EQ_INT(peaks[0], 1);
  CHECK_EQ_INT(peaks[1], 7);
  /* The first frame can be a peak. */
  double y[] = {1.0, 0.2, 0.1, 0, 0, 0};
  n = duet_librosa_peak_pick(y, 6, &p, peaks);
  CHECK_EQ_INT(n, 1);
  CHECK_EQ_INT(peaks[0], 0);
  /* A flat envelope has no onsets. */
  double z[8] = {3, 3, 3, 3, 3, 3, 3, 3};
  duet_err err = {0};
  CHECK_EQ_INT(duet_librosa_onset_detect(z, 8, 22050, 512, peaks, &err), 0);
}

static void test_mel(void) {
  /* Slaney mel filters at 22050 / 2048: 128 triangles, each with area-normalised height. */
  double *w;
  duet_err err = {0};
  CHECK(duet_librosa_mel(22050, 2048, 128, 0, 11025, &w, &err) == 0);
  int nb = 1025;
  for (int m = 0; m < 128; m += 31) {
    double mx = 0;
    for (int k = 0; k < nb; k++) mx = fmax(mx, w[(size_t)m * nb + k]);
    CHECK(mx > 0);
  }
  /* The first filter rises from 0 Hz to its peak at 2/3 * 200/3 ... its weight at bin 0 is 0. */
  CHECK_NEAR(w[0], 0.0, 0.0);
  free(w);
}

static void test_video_peaks_and_iou(void) {
  double flow[] = {0.05, 0.05, 0.3, 0.1, 0.09, 0.095, 0.09, 2.0, 2.0, 0.5, 0.7, 0.2};
  double t[12];
  int n = duet_avalign_video_peaks(flow, 12, 10.0, t);
  /* 0.3 at 2 (yes), 0.095 at 5 (below 0.1), plateau 2.0 (not strict), 0.7 at 10 (yes). */
  CHECK_EQ_INT(n, 2);
  CHECK_NEAR(t[0], 0.2, 1e-12);
  CHECK_NEAR(t[1], 1.0, 1e-12);
  /* Two onsets near one flow peak: one-to-one counts one, the reference both. */
  double audio[] = {0.19, 0.22, 0.6};
  double video[] = {0.2, 1.0};
  int matched;
  double ref;
  double iou = duet_avalign_iou(audio, 3, video, 2, 10.0, &matched, &ref);
  CHECK_EQ_INT(matched, 1);
  CHECK_NEAR(iou, 1.0 / 4.0, 1e-12);
  CHECK_NEAR(ref, 2.0 / 3.0, 1e-12);
  /* The window is open: exactly one frame away does not match (times exact in binary). */
  double a2[] = {0.375}, v2[] = {0.25};
  iou = duet_avalign_iou(a2, 1, v2, 1, 8.0, &matched, NULL);
  CHECK_EQ_INT(matched, 0);
  CHECK(isnan(duet_avalign_iou(NULL, 0, NULL, 0, 10.0, &matched, NULL)));
}

static void test_events(void) {
  double truth[] = {0.5, 1.0, 1.5, 2.0};
  double det[] = {1.52, 0.49, 3.0, 1.01, 0.51};
  duet_event_score s;
  duet_err err = {0};
  CHECK(duet_events_match(det, 5, truth, 4, 0.04, &s, &err) == 0);
  CHECK_EQ_INT(s.n_matched, 3);
  CHECK_NEAR(s.precision, 3.0 / 5.0, 1e-12);
  CHECK_NEAR(s.recall, 3.0 / 4.0, 1e-12);
  CHECK_NEAR(s.f1, 2 * 0.6 * 0.75 / 1.35, 1e-12);
  CHECK_NEAR(s.mean_offset_ms, 1000.0 * (-0.01 + 0.01 + 0.02) / 3, 1e-9);
  CHECK(duet_events_match(NULL, 0, truth, 4, 0.04, &s, &err) == 0);
  CHECK_NEAR(s.f1, 0.0, 0.0);
  CHECK(isnan(s.mean_offset_ms));
}

static void test_bt1359(void) {
  CHECK(duet_bt1359_ok(0));
  CHECK(duet_bt1359_ok(125));
  CHECK(!duet_bt1359_ok(125.1));
  CHECK(duet_bt1359_ok(-45));
  CHECK(!duet_bt1359_ok(-45.1));
}

int main(void) {
  test_stft();
  test_resample();
  test_xcorr();
  test_motion();
  test_onset_flux();
  test_peak_pick();
  test_mel();
  test_video_peaks_and_iou();
  test_events();
  test_bt1359();
  return test_finish("eval_dsp");
}
