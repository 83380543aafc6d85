#include "eval/imgproc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void duet_cv_gaussian_kernel(int ksize, double sigma, float *k) {
  static const float fixed[4][7] = {
      {1.f},
      {0.25f, 0.5f, 0.25f},
      {0.0625f, 0.25f, 0.375f, 0.25f, 0.0625f},
      {0.03125f, 0.109375f, 0.21875f, 0.28125f, 0.21875f, 0.109375f, 0.03125f}};
  const float *tab = (ksize % 2 == 1 && ksize <= 7 && sigma <= 0) ? fixed[ksize / 2] : NULL;
  double s = sigma > 0 ? sigma : ((ksize - 1) * 0.5 - 1) * 0.3 + 0.8;
  double scale2 = -0.5 / (s * s), sum = 0.0;
  for (int i = 0; i < ksize; i++) {
    double x = i - (ksize - 1) * 0.5;
    k[i] = tab ? tab[i] : (float)exp(scale2 * x * x);
    sum += k[i];
  }
  sum = 1.0 / sum;
  for (int i = 0; i < ksize; i++) k[i] = (float)(k[i] * sum);
}

/* BORDER_REFLECT_101: ... 2 1 | 0 1 2 ... n-1 | n-2 n-3 ... */
static inline int reflect101(int i, int n) {
  if (n == 1) return 0;
  while (i < 0 || i >= n) {
    if (i < 0) i = -i;
    if (i >= n) i = 2 * n - 2 - i;
  }
  return i;
}

int duet_cv_gaussian_blur(const float *src, int h, int w, int ksize, double sigma, float *dst,
                          duet_err *err) {
  if (ksize < 1 || ksize % 2 == 0)
    return duet_err_set(err, DUET_EINVAL, "gaussian blur: bad kernel size %d", ksize);
  int r = ksize / 2;
  float *k = malloc(sizeof(float) * (size_t)ksize);
  float *tmp = malloc(sizeof(float) * (size_t)h * w);
  float *line = malloc(sizeof(float) * (size_t)((w > h ? w : h) + 2 * r));
  if (!k || !tmp || !line) {
    free(k);
    free(tmp);
    free(line);
    return duet_err_set(err, DUET_ENOMEM, "gaussian blur: out of memory (%dx%d)", w, h);
  }
  duet_cv_gaussian_kernel(ksize, sigma, k);
  for (int y = 0; y < h; y++) { /* rows */
    const float *s = src + (size_t)y * w;
    for (int i = -r; i < w + r; i++) line[i + r] = s[reflect101(i, w)];
    float *d = tmp + (size_t)y * w;
    for (int x = 0; x < w; x++) {
      float acc = 0.f;
      for (int j = 0; j < ksize; j++) acc += k[j] * line[x + j];
      d[x] = acc;
    }
  }
  for (int x = 0; x < w; x++) { /* columns */
    for (int i = -r; i < h + r; i++) line[i + r] = tmp[(size_t)reflect101(i, h) * w + x];
    for (int y = 0; y < h; y++) {
      float acc = 0.f;
      for (int j = 0; j < ksize; j++) acc += k[j] * line[y + j];
      dst[(size_t)y * w + x] = acc;
    }
  }
  free(k);
  free(tmp);
  free(line);
  return DUET_OK;
}

/* Source index and weight of the right neighbour for each output coordinate, as OpenCV's
 * linear resize computes them (float weights, clamped at both edges). */
static void linear_taps(int src, int dst, int *i0, float *f) {
  double scale = (double)src / dst;
  for (int d = 0; d < dst; d++) {
    float fx = (float)((d + 0.5) * scale - 0.5);
    int sx = (int)floorf(fx);
    fx -= (float)sx;
    if (sx < 0) {
      fx = 0.f;
      sx = 0;
    }
    if (sx >= src - 1) {
      fx = 0.f;
      sx = src - 1;
    }
    i0[d] = sx;
    f[d] = fx;
  }
}

int duet_cv_resize_linear(const float *src, int sh, int sw, int cn, float *dst, int dh, int dw,
                          duet_err *err) {
  if (sh == dh && sw == dw) {
    memmove(dst, src, sizeof(float) * (size_t)sh * sw * cn);
    return DUET_OK;
  }
  int *xi = malloc(sizeof(int) * (size_t)dw), *yi = malloc(sizeof(int) * (size_t)dh);
  float *xf = malloc(sizeof(float) * (size_t)dw), *yf = malloc(sizeof(float) * (size_t)dh);
  float *rows = malloc(sizeof(float) * (size_t)dw * cn * 2);
  if (!xi || !yi || !xf || !yf || !rows) {
    free(xi);
    free(yi);
    free(xf);
    free(yf);
    free(rows);
    return duet_err_set(err, DUET_ENOMEM, "resize: out of memory");
  }
  linear_taps(sw, dw, xi, xf);
  linear_taps(sh, dh, yi, yf);
  for (int y = 0; y < dh; y++) {
    /* Horizontal pass on the two source rows, then the vertical blend, like OpenCV. */
    for (int r = 0; r < 2; r++) {
      int sy = yi[y] + r;
      if (sy > sh - 1) sy = sh - 1;
      const float *s = src + (size_t)sy * sw * cn;
      float *o = rows + (size_t)r * dw * cn;
      for (int x = 0; x < dw; x++) {
        int a = xi[x], b = a + 1 < sw ? a + 1 : a;
        float w1 = xf[x], w0 = 1.f - w1;
        for (int c = 0; c < cn; c++) o[x * cn + c] = s[a * cn + c] * w0 + s[b * cn + c] * w1;
      }
    }
    float b1 = yf[y], b0 = 1.f - b1;
    float *d = dst + (size_t)y * dw * cn;
    for (int i = 0; i < dw * cn; i++) d[i] = rows[i] * b0 + rows[dw * cn + i] * b1;
  }
  free(xi);
  free(yi);
  free(xf);
  free(yf);
  free(rows);
  return DUET_OK;
}
