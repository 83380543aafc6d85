#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/sync_curves.h"

int duet_grey_box_size(int height, int width, int target_height, int *gh, int *gw) {
  int f = 1;
  if (target_height > 0 && height > target_height) f = (height + target_height - 1) / target_height;
  *gh = height / f;
  *gw = width / f;
  return f;
}

/* Working memory of one downscale: 16-bit column sums of a run of rows, and 64-bit channel
 * totals per output cell. */
typedef struct box_scratch {
  uint16_t *rows; /* [3 * width] */
  uint64_t *cells; /* [3 * output width] */
} box_scratch;

static int scratch_init(box_scratch *s, int width) {
  s->rows = malloc(sizeof(uint16_t) * 3 * (size_t)width);
  s->cells = malloc(sizeof(uint64_t) * 3 * (size_t)width);
  return s->rows && s->cells;
}

static void scratch_free(box_scratch *s) {
  free(s->rows);
  free(s->cells);
}

static void grey_box(const uint8_t *rgb, int height, int width, int target_height, uint8_t *grey,
                     box_scratch *s) {
  int gh, gw;
  int f = duet_grey_box_size(height, width, target_height, &gh, &gw);
  if (f == 1) {
    for (size_t i = 0; i < (size_t)height * width; i++)
      grey[i] = duet_luma(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]);
    return;
  }
  /* Channel sums first, luma weights once per cell: sum(4899 r + 9617 g + 1868 b) equals
   * 4899 sum r + 9617 sum g + 1868 sum b, so a cell still rounds once like one OpenCV pixel,
   * while the hot loop is a byte-wise add down the rows into 16-bit sums, which the compiler
   * vectorises. Runs of at most 257 rows keep those sums from overflowing. */
  size_t used = (size_t)gw * f * 3;
  uint64_t denom = (uint64_t)f * f;
  for (int y = 0; y < gh; y++) {
    memset(s->cells, 0, sizeof(uint64_t) * 3 * (size_t)gw);
    for (int d0 = 0; d0 < f; d0 += 257) {
      int d1 = d0 + 257 < f ? d0 + 257 : f;
      memset(s->rows, 0, sizeof(uint16_t) * used);
      for (int dy = d0; dy < d1; dy++) {
        const uint8_t *row = rgb + (size_t)(y * f + dy) * width * 3;
        for (size_t i = 0; i < used; i++) s->rows[i] = (uint16_t)(s->rows[i] + row[i]);
      }
      for (int x = 0; x < gw; x++) {
        const uint16_t *c = s->rows + (size_t)x * f * 3;
        uint64_t *t = s->cells + 3 * x;
        for (int dx = 0; dx < f; dx++) {
          t[0] += c[3 * dx];
          t[1] += c[3 * dx + 1];
          t[2] += c[3 * dx + 2];
        }
      }
    }
    for (int x = 0; x < gw; x++) {
      const uint64_t *t = s->cells + 3 * x;
      grey[(size_t)y * gw + x] =
          (uint8_t)(((t[0] * 4899 + t[1] * 9617 + t[2] * 1868) / denom + 8192) >> 14);
    }
  }
}

int duet_grey_box(const uint8_t *rgb, int height, int width, int target_height, uint8_t *grey,
                  duet_err *err) {
  box_scratch s;
  if (!scratch_init(&s, width)) {
    scratch_free(&s);
    return duet_err_set(err, DUET_ENOMEM, "grey downscale: out of memory");
  }
  grey_box(rgb, height, width, target_height, grey, &s);
  scratch_free(&s);
  return DUET_OK;
}

int duet_motion_energy(const uint8_t *video, int frames, int height, int width,
                       int target_height, double **energy, duet_err *err) {
  *energy = NULL;
  if (frames < 1 || height < 1 || width < 1)
    return duet_err_set(err, DUET_EINVAL, "motion energy: empty video (%d frames of %dx%d)",
                        frames, width, height);
  int gh, gw;
  duet_grey_box_size(height, width, target_height, &gh, &gw);
  size_t npx = (size_t)gh * gw;
  uint8_t *a = malloc(npx), *b = malloc(npx);
  double *e = calloc((size_t)frames, sizeof(double));
  box_scratch sc;
  int ok = scratch_init(&sc, width);
  if (!a || !b || !e || !ok) {
    free(a);
    free(b);
    free(e);
    scratch_free(&sc);
    return duet_err_set(err, DUET_ENOMEM, "motion energy: out of memory");
  }
  size_t fsz = (size_t)height * width * 3;
  grey_box(video, height, width, target_height, a, &sc);
  for (int i = 1; i < frames; i++) {
    grey_box(video + fsz * i, height, width, target_height, b, &sc);
    uint64_t sum = 0;
    for (size_t j = 0; j < npx; j++) sum += (uint64_t)abs((int)b[j] - (int)a[j]);
    e[i] = (double)sum / (double)npx;
    uint8_t *t = a;
    a = b;
    b = t;
  }
  free(a);
  free(b);
  scratch_free(&sc);
  *energy = e;
  return DUET_OK;
}

int duet_curve_to_grid(const double *v, int frames, double fps, double step, double **out,
                       int *n_out, duet_err *err) {
  *out = NULL;
  *n_out = 0;
  if (frames < 1 || fps <= 0 || step <= 0)
    return duet_err_set(err, DUET_EINVAL, "curve to grid: bad frames %d, fps %g or step %g",
                        frames, fps, step);
  int n = (int)floor((frames - 1) / fps / step + 1e-9) + 1;
  double *g = malloc(sizeof(double) * (size_t)n);
  if (!g) return duet_err_set(err, DUET_ENOMEM, "curve to grid: out of memory");
  for (int k = 0; k < n; k++) {
    double pos = k * step * fps;
    int i = (int)floor(pos);
    if (i >= frames - 1) {
      g[k] = v[frames - 1];
      continue;
    }
    double f = pos - i;
    g[k] = v[i] + f * (v[i + 1] - v[i]);
  }
  *out = g;
  *n_out = n;
  return DUET_OK;
}
