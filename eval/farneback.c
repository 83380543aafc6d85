#include "eval/farneback.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/imgproc.h"

enum { MAX_LEVELS = 16, MIN_SIZE = 32 };

struct duet_farneback_frame {
  int levels;
  int h[MAX_LEVELS + 1], w[MAX_LEVELS + 1];
  float *r[MAX_LEVELS + 1]; /* [h, w, 5]: the expansion's linear and quadratic coefficients */
};

void duet_farneback_defaults(duet_farneback_params *p) {
  p->pyr_scale = 0.5;
  p->levels = 3;
  p->winsize = 15;
  p->iterations = 3;
  p->poly_n = 5;
  p->poly_sigma = 1.2;
}

static int check_params(const duet_farneback_params *p, duet_err *err) {
  if (!(p->pyr_scale > 0 && p->pyr_scale < 1) || p->levels < 0 || p->winsize < 1 ||
      p->iterations < 1 || p->poly_n < 1 || p->poly_n > 64)
    return duet_err_set(err, DUET_EINVAL, "farneback: bad parameters");
  return DUET_OK;
}

/* The pyramid stops before a side would drop under 32 px, as OpenCV's does. */
static int level_count(int h, int w, const duet_farneback_params *p) {
  double scale = 1.0;
  int k, levels = p->levels < MAX_LEVELS ? p->levels : MAX_LEVELS;
  for (k = 0; k < levels; k++) {
    scale *= p->pyr_scale;
    if (w * scale < MIN_SIZE || h * scale < MIN_SIZE) break;
  }
  return k;
}

static double level_scale(int k, double pyr_scale) {
  double s = 1.0;
  for (int i = 0; i < k; i++) s *= pyr_scale;
  return s;
}

/* Gaussian applicability g and the inverse-Gram entries that turn its correlations into
 * polynomial coefficients (the 6x6 normal equations of the quadratic fit have only these
 * four distinct nonzero inverse entries that matter). */
static void poly_weights(int n, double sigma, float *g, float *xg, float *xxg, double ig[4]) {
  if (sigma < FLT_EPSILON) sigma = n * 0.3;
  double s = 0.0;
  for (int x = -n; x <= n; x++) {
    g[x] = (float)exp(-x * x / (2 * sigma * sigma));
    s += g[x];
  }
  s = 1.0 / s;
  for (int x = -n; x <= n; x++) {
    g[x] = (float)(g[x] * s);
    xg[x] = (float)(x * g[x]);
    xxg[x] = (float)(x * x * g[x]);
  }
  /* Gram matrix of the basis {1, x, y, x^2, y^2, xy} under g(x) g(y): a = sum g g,
   * b = sum g g x^2, c = sum g g x^4, d = sum g g x^2 y^2. Its inverse restricted to the
   * entries we need has a closed form: the {1, x^2, y^2} block [[a b b][b c d][b d c]] and
   * the diagonal entries 1/b (x, y) and 1/d (xy). */
  double a = 0, b = 0, c = 0, d = 0;
  for (int y = -n; y <= n; y++)
    for (int x = -n; x <= n; x++) {
      double gg = (double)g[y] * g[x];
      a += gg;
      b += gg * x * x;
      c += gg * x * x * x * x;
      d += gg * x * x * y * y;
    }
  /* Invert [[a b b][b c d][b d c]]: by symmetry between x^2 and y^2, entries (0,1) and (1,1)
   * of the inverse follow from the 2x2 system on {1, x^2 + y^2} and {x^2 - y^2}. */
  double det = a * (c + d) - 2 * b * b;
  double ig03 = -b / det;
  double ig33 = 0.5 * (a / det + 1.0 / (c - d));
  ig[0] = 1.0 / b; /* ig11 */
  ig[1] = ig03;
  ig[2] = ig33;
  ig[3] = 1.0 / d; /* ig55 */
}

/* Quadratic fit of every pixel's neighbourhood (separable Gaussian-weighted correlations,
 * edges replicated). Output per pixel: [r_y, r_x, r_yy, r_xx, r_xy]. */
static int poly_expand(const float *src, int h, int w, int n, double sigma, float *dst,
                       duet_err *err) {
  float kbuf[3 * (2 * 64 + 1)];
  float *g = kbuf + n, *xg = g + 2 * n + 1, *xxg = xg + 2 * n + 1;
  double ig[4];
  poly_weights(n, sigma, g, xg, xxg, ig);
  float *rowbuf = malloc(sizeof(float) * (size_t)(w + 2 * n) * 3);
  if (!rowbuf) return duet_err_set(err, DUET_ENOMEM, "farneback: out of memory");
  float *row = rowbuf + 3 * n;
  for (int y = 0; y < h; y++) {
    const float *s0 = src + (size_t)y * w;
    for (int x = 0; x < w; x++) {
      row[3 * x] = s0[x] * g[0];
      row[3 * x + 1] = row[3 * x + 2] = 0.f;
    }
    for (int k = 1; k <= n; k++) {
      const float *up = src + (size_t)(y - k > 0 ? y - k : 0) * w;
      const float *dn = src + (size_t)(y + k < h - 1 ? y + k : h - 1) * w;
      float g0 = g[k], g1 = xg[k], g2 = xxg[k];
      for (int x = 0; x < w; x++) {
        float p = up[x] + dn[x];
        row[3 * x] = row[3 * x] + g0 * p;
        row[3 * x + 1] = row[3 * x + 1] + g1 * (dn[x] - up[x]);
        row[3 * x + 2] = row[3 * x + 2] + g2 * p;
      }
    }
    for (int k = 1; k <= n; k++)
      for (int c = 0; c < 3; c++) {
        row[-3 * k + c] = row[c];
        row[3 * (w - 1 + k) + c] = row[3 * (w - 1) + c];
      }
    float *d = dst + (size_t)y * w * 5;
    for (int x = 0; x < w; x++) {
      const float *r = row + 3 * x;
      double b1 = r[0] * g[0], b2 = 0, b3 = r[1] * g[0], b4 = 0, b5 = r[2] * g[0], b6 = 0;
      for (int k = 1; k <= n; k++) {
        const float *rp = r + 3 * k, *rm = r - 3 * k;
        double tg = rp[0] + rm[0];
        b1 += tg * g[k];
        b4 += tg * xxg[k];
        b2 += (rp[0] - rm[0]) * xg[k];
        b3 += (rp[1] + rm[1]) * g[k];
        b6 += (rp[1] - rm[1]) * xg[k];
        b5 += (rp[2] + rm[2]) * g[k];
      }
      d[5 * x + 0] = (float)(b3 * ig[0]);
      d[5 * x + 1] = (float)(b2 * ig[0]);
      d[5 * x + 2] = (float)(b1 * ig[1] + b5 * ig[2]);
      d[5 * x + 3] = (float)(b1 * ig[1] + b4 * ig[2]);
      d[5 * x + 4] = (float)(b6 * ig[3]);
    }
  }
  free(rowbuf);
  return DUET_OK;
}

int duet_farneback_prepare(const uint8_t *grey, int height, int width,
                           const duet_farneback_params *p, duet_farneback_frame **out,
                           duet_err *err) {
  *out = NULL;
  int rc = check_params(p, err);
  if (rc) return rc;
  if (height < 1 || width < 1)
    return duet_err_set(err, DUET_EINVAL, "farneback: empty image %dx%d", width, height);
  duet_farneback_frame *f = calloc(1, sizeof *f);
  size_t npx = (size_t)height * width;
  float *img = malloc(sizeof(float) * npx), *blur = malloc(sizeof(float) * npx);
  float *lvl = malloc(sizeof(float) * npx);
  if (!f || !img || !blur || !lvl) {
    rc = duet_err_set(err, DUET_ENOMEM, "farneback: out of memory (%dx%d)", width, height);
    goto done;
  }
  for (size_t i = 0; i < npx; i++) img[i] = grey[i];
  f->levels = level_count(height, width, p);
  for (int k = 0; k <= f->levels; k++) {
    /* Each level blurs the full image for its scale, then resamples it, rather than
     * building the pyramid recursively. */
    double scale = level_scale(k, p->pyr_scale);
    double sigma = (1.0 / scale - 1) * 0.5;
    int ksize = (int)lrint(sigma * 5) | 1;
    if (ksize < 3) ksize = 3;
    int w = (int)lrint(width * scale), h = (int)lrint(height * scale);
    f->w[k] = w;
    f->h[k] = h;
    f->r[k] = malloc(sizeof(float) * (size_t)w * h * 5);
    if (!f->r[k]) {
      rc = duet_err_set(err, DUET_ENOMEM, "farneback: out of memory");
      goto done;
    }
    if ((rc = duet_cv_gaussian_blur(img, height, width, ksize, sigma, blur, err))) goto done;
    if ((rc = duet_cv_resize_linear(blur, height, width, 1, lvl, h, w, err))) goto done;
    if ((rc = poly_expand(lvl, h, w, p->poly_n, p->poly_sigma, f->r[k], err))) goto done;
  }
done:
  free(img);
  free(blur);
  free(lvl);
  if (rc) {
    duet_farneback_frame_free(f);
    return rc;
  }
  *out = f;
  return DUET_OK;
}

void duet_farneback_frame_free(duet_farneback_frame *f) {
  if (!f) return;
  for (int k = 0; k <= MAX_LEVELS; k++) free(f->r[k]);
  free(f);
}

/* floorf without a libm call (baseline x86-64 has no rounding instruction); flows are far
 * inside int range. */
static inline int floor_int(float v) {
  int i = (int)v;
  return i - (v < (float)i);
}

/* Per pixel, the normal equations of the displacement: with A the mean of both frames'
 * quadratic terms (prev at x, next at x + flow) and b the change of linear terms, store
 * A^T A (3 values) and A^T b (2). Rows [y0, y1). */
static void update_matrices(const float *r0, const float *r1, const float *flow, float *m, int h,
                            int w, int y0, int y1) {
  static const float border[5] = {0.14f, 0.14f, 0.4472f, 0.4472f, 0.4472f};
  for (int y = y0; y < y1; y++)
    for (int x = 0; x < w; x++) {
      const float *a = r0 + ((size_t)y * w + x) * 5;
      float dx = flow[((size_t)y * w + x) * 2], dy = flow[((size_t)y * w + x) * 2 + 1];
      float fx = x + dx, fy = y + dy;
      int x1 = floor_int(fx), y1i = floor_int(fy);
      float r2, r3, r4, r5, r6;
      fx -= x1;
      fy -= y1i;
      if ((unsigned)x1 < (unsigned)(w - 1) && (unsigned)y1i < (unsigned)(h - 1)) {
        const float *p = r1 + ((size_t)y1i * w + x1) * 5, *q = p + (size_t)w * 5;
        float a00 = (1.f - fx) * (1.f - fy), a01 = fx * (1.f - fy), a10 = (1.f - fx) * fy,
              a11 = fx * fy;
        r2 = a00 * p[0] + a01 * p[5] + a10 * q[0] + a11 * q[5];
        r3 = a00 * p[1] + a01 * p[6] + a10 * q[1] + a11 * q[6];
        r4 = a00 * p[2] + a01 * p[7] + a10 * q[2] + a11 * q[7];
        r5 = a00 * p[3] + a01 * p[8] + a10 * q[3] + a11 * q[8];
        r6 = a00 * p[4] + a01 * p[9] + a10 * q[4] + a11 * q[9];
        r4 = (a[2] + r4) * 0.5f;
        r5 = (a[3] + r5) * 0.5f;
        r6 = (a[4] + r6) * 0.25f;
      } else {
        r2 = r3 = 0.f;
        r4 = a[2];
        r5 = a[3];
        r6 = a[4] * 0.5f;
      }
      r2 = (a[0] - r2) * 0.5f;
      r3 = (a[1] - r3) * 0.5f;
      r2 += r4 * dy + r6 * dx;
      r3 += r6 * dy + r5 * dx;
      /* Damp the equations near the image edge, where the expansion saw replicated pixels. */
      if (x < 5 || x >= w - 5 || y < 5 || y >= h - 5) {
        float s = (x < 5 ? border[x] : 1.f) * (x >= w - 5 ? border[w - x - 1] : 1.f) *
                  (y < 5 ? border[y] : 1.f) * (y >= h - 5 ? border[h - y - 1] : 1.f);
        r2 *= s;
        r3 *= s;
        r4 *= s;
        r5 *= s;
        r6 *= s;
      }
      float *o = m + ((size_t)y * w + x) * 5;
      o[0] = r4 * r4 + r6 * r6;
      o[1] = (r4 + r5) * r6;
      o[2] = r5 * r5 + r6 * r6;
      o[3] = r4 * r2 + r6 * r3;
      o[4] = r6 * r2 + r5 * r3;
    }
}

/* Solves the box-averaged (winsize x winsize, edges replicated) normal equations for the
 * flow. Running sums in double in the same order as OpenCV, so results agree to rounding. */
static void update_flow_box(const float *m, float *flow, int h, int w, int block,
                            double *vsum) {
  int r = block / 2;
  double scale = 1.0 / ((double)block * block);
  size_t row5 = (size_t)w * 5;
  for (size_t i = 0; i < row5; i++) vsum[i] = m[i] * (double)(r + 2);
  for (int y = 1; y < r; y++) {
    const float *s = m + (size_t)(y < h - 1 ? y : h - 1) * row5;
    for (size_t i = 0; i < row5; i++) vsum[i] += s[i];
  }
  for (int y = 0; y < h; y++) {
    const float *out = m + (size_t)(y - r - 1 > 0 ? y - r - 1 : 0) * row5;
    const float *in = m + (size_t)(y + r < h - 1 ? y + r : h - 1) * row5;
    for (size_t i = 0; i < row5; i++) vsum[i] += in[i] - out[i];
    double s[5];
    for (int c = 0; c < 5; c++) s[c] = vsum[c] * (r + 2);
    for (int x = 1; x < r; x++)
      for (int c = 0; c < 5; c++) s[c] += vsum[(size_t)(x < w - 1 ? x : w - 1) * 5 + c];
    float *f = flow + (size_t)y * w * 2;
    for (int x = 0; x < w; x++) {
      int xi = x + r < w - 1 ? x + r : w - 1, xo = x - r - 1 > 0 ? x - r - 1 : 0;
      for (int c = 0; c < 5; c++) s[c] += vsum[(size_t)xi * 5 + c] - vsum[(size_t)xo * 5 + c];
      double g11 = s[0] * scale, g12 = s[1] * scale, g22 = s[2] * scale, h1 = s[3] * scale,
             h2 = s[4] * scale;
      double idet = 1.0 / (g11 * g22 - g12 * g12 + 1e-3);
      f[2 * x] = (float)((g11 * h2 - g12 * h1) * idet);
      f[2 * x + 1] = (float)((g22 * h1 - g12 * h2) * idet);
    }
  }
}

int duet_farneback_flow(const duet_farneback_frame *prev, const duet_farneback_frame *next,
                        const duet_farneback_params *p, float *flow, duet_err *err) {
  int rc = check_params(p, err);
  if (rc) return rc;
  if (prev->levels != next->levels || prev->w[0] != next->w[0] || prev->h[0] != next->h[0])
    return duet_err_set(err, DUET_EINVAL, "farneback: frames of different sizes");
  int L = prev->levels;
  size_t maxpx = (size_t)prev->w[0] * prev->h[0];
  float *fa = malloc(sizeof(float) * maxpx * 2), *fb = malloc(sizeof(float) * maxpx * 2);
  float *m = malloc(sizeof(float) * maxpx * 5);
  double *vsum = malloc(sizeof(double) * (size_t)prev->w[0] * 5);
  if (!fa || !fb || !m || !vsum) {
    rc = duet_err_set(err, DUET_ENOMEM, "farneback: out of memory");
    goto done;
  }
  float *cur = fa, *up = fb;
  for (int k = L; k >= 0; k--) {
    int w = prev->w[k], h = prev->h[k];
    if (k == L) {
      memset(cur, 0, sizeof(float) * (size_t)w * h * 2);
    } else {
      /* Coarser level's flow, upsampled and rescaled to this level's pixels. */
      if ((rc = duet_cv_resize_linear(up, prev->h[k + 1], prev->w[k + 1], 2, cur, h, w, err)))
        goto done;
      float s = (float)(1.0 / p->pyr_scale);
      for (size_t i = 0; i < (size_t)w * h * 2; i++) cur[i] *= s;
    }
    update_matrices(prev->r[k], next->r[k], cur, m, h, w, 0, h);
    for (int it = 0; it < p->iterations; it++) {
      update_flow_box(m, cur, h, w, p->winsize, vsum);
      if (it < p->iterations - 1) update_matrices(prev->r[k], next->r[k], cur, m, h, w, 0, h);
    }
    float *t = cur;
    cur = up;
    up = t;
  }
  memcpy(flow, up, sizeof(float) * maxpx * 2);
done:
  free(fa);
  free(fb);
  free(m);
  free(vsum);
  return rc;
}

double duet_flow_mean_magnitude(const float *flow, int height, int width) {
  size_t n = (size_t)height * width;
  double acc = 0.0;
  for (size_t i = 0; i < n; i++) {
    float dx = flow[2 * i], dy = flow[2 * i + 1];
    acc += sqrtf(dx * dx + dy * dy);
  }
  return n ? acc / (double)n : 0.0;
}
