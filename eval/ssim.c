#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/quality.h"

enum { RADIUS = 5 }; /* int(3.5 * 1.5 + 0.5): scipy's truncation of a sigma-1.5 Gaussian */

/* scipy.ndimage's "reflect" edge: d c b a | a b c d | d c b a */
static inline int reflect(int i, int n) {
  while (i < 0 || i >= n) {
    if (i < 0) i = -i - 1;
    if (i >= n) i = 2 * n - 1 - i;
  }
  return i;
}

/* Separable Gaussian, axis 0 then axis 1, as scipy.ndimage.gaussian_filter runs it. */
static void gauss2d(const double *src, double *dst, double *tmp, int h, int w, const double *k,
                    double *line) {
  for (int x = 0; x < w; x++) {
    for (int i = -RADIUS; i < h + RADIUS; i++)
      line[i + RADIUS] = src[(size_t)reflect(i, h) * w + x];
    for (int y = 0; y < h; y++) {
      double acc = 0.0;
      for (int j = 0; j <= 2 * RADIUS; j++) acc += k[j] * line[y + j];
      tmp[(size_t)y * w + x] = acc;
    }
  }
  for (int y = 0; y < h; y++) {
    const double *s = tmp + (size_t)y * w;
    for (int i = -RADIUS; i < w + RADIUS; i++) line[i + RADIUS] = s[reflect(i, w)];
    for (int x = 0; x < w; x++) {
      double acc = 0.0;
      for (int j = 0; j <= 2 * RADIUS; j++) acc += k[j] * line[x + j];
      dst[(size_t)y * w + x] = acc;
    }
  }
}

int duet_ssim_rgb(const uint8_t *a, const uint8_t *b, int height, int width, double *ssim,
                  duet_err *err) {
  *ssim = NAN;
  if (height < 2 * RADIUS + 1 || width < 2 * RADIUS + 1)
    return duet_err_set(err, DUET_EINVAL, "SSIM: %dx%d is smaller than its 11x11 window", width,
                        height);
  size_t n = (size_t)height * width;
  double k[2 * RADIUS + 1], ksum = 0.0;
  for (int i = -RADIUS; i <= RADIUS; i++) ksum += k[i + RADIUS] = exp(-0.5 * i * i / (1.5 * 1.5));
  for (int i = 0; i <= 2 * RADIUS; i++) k[i] /= ksum;
  double *buf = malloc(sizeof(double) * n * 7);
  double *line = malloc(sizeof(double) * (size_t)((height > width ? height : width) + 2 * RADIUS));
  if (!buf || !line) {
    free(buf);
    free(line);
    return duet_err_set(err, DUET_ENOMEM, "SSIM: out of memory (%dx%d)", width, height);
  }
  double *src = buf, *tmp = buf + n, *mu = buf + 2 * n; /* mu: ux, uy, uxx, uyy, uxy */
  const double c1 = (0.01 * 255) * (0.01 * 255), c2 = (0.03 * 255) * (0.03 * 255);
  double total = 0.0;
  for (int c = 0; c < 3; c++) {
    for (int q = 0; q < 5; q++) {
      for (size_t i = 0; i < n; i++) {
        double x = a[3 * i + c], y = b[3 * i + c];
        src[i] = q == 0 ? x : q == 1 ? y : q == 2 ? x * x : q == 3 ? y * y : x * y;
      }
      gauss2d(src, mu + q * n, tmp, height, width, k, line);
    }
    double sum = 0.0;
    for (int y = RADIUS; y < height - RADIUS; y++)
      for (int x = RADIUS; x < width - RADIUS; x++) {
        size_t i = (size_t)y * width + x;
        double ux = mu[i], uy = mu[n + i];
        double vx = mu[2 * n + i] - ux * ux, vy = mu[3 * n + i] - uy * uy;
        double vxy = mu[4 * n + i] - ux * uy;
        sum += ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
      }
    total += sum / ((double)(height - 2 * RADIUS) * (width - 2 * RADIUS));
  }
  free(buf);
  free(line);
  *ssim = total / 3.0;
  return DUET_OK;
}

int duet_video_quality_compute(const uint8_t *a, const uint8_t *b, int frames, int height,
                               int width, duet_video_quality *out, duet_err *err) {
  memset(out, 0, sizeof *out);
  if (frames < 1) return duet_err_set(err, DUET_EINVAL, "video quality: no frames");
  size_t fsz = (size_t)height * width * 3;
  double se = 0.0, ssum = 0.0, smin = INFINITY;
  for (int t = 0; t < frames; t++) {
    const uint8_t *pa = a + fsz * t, *pb = b + fsz * t;
    uint64_t acc = 0;
    for (size_t i = 0; i < fsz; i++) {
      int d = (int)pa[i] - (int)pb[i];
      acc += (uint64_t)(d * d);
    }
    se += (double)acc;
    double s;
    int rc = duet_ssim_rgb(pa, pb, height, width, &s, err);
    if (rc) return rc;
    ssum += s;
    if (s < smin) smin = s;
  }
  out->frames = frames;
  out->mse = se / ((double)fsz * frames);
  out->psnr = out->mse > 0 ? 10.0 * log10(255.0 * 255.0 / out->mse) : INFINITY;
  out->ssim = ssum / frames;
  out->ssim_min = smin;
  return DUET_OK;
}
