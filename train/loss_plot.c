#include "train/loss_plot.h"

#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"

enum { PLOT_W = 800, PLOT_H = 480, LEFT = 64, RIGHT = 16, TOP = 28, BOTTOM = 40 };

typedef struct canvas {
  uint8_t *px; /* RGB rows */
  int w, h;
} canvas;

static void put(canvas *c, int x, int y, const uint8_t rgb[3]) {
  if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
  memcpy(c->px + ((size_t)y * c->w + x) * 3, rgb, 3);
}

static void line(canvas *c, int x0, int y0, int x1, int y1, const uint8_t rgb[3]) {
  int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, e = dx + dy;
  for (;;) {
    put(c, x0, y0, rgb);
    if (x0 == x1 && y0 == y1) return;
    int e2 = 2 * e;
    if (e2 >= dy) e += dy, x0 += sx;
    if (e2 <= dx) e += dx, y0 += sy;
  }
}

static void box(canvas *c, int x0, int y0, int x1, int y1, const uint8_t rgb[3]) {
  for (int y = y0; y <= y1; y++)
    for (int x = x0; x <= x1; x++) put(c, x, y, rgb);
}

/* 5x7 glyphs, one byte per row, bit 4 the leftmost column: just the characters that tick
 * labels ("%g" numbers) and the legend need. */
typedef struct glyph {
  char ch;
  uint8_t rows[7];
} glyph;

static const glyph glyphs[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}}, {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}}, {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}}, {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}}, {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}}, {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}}, {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
    {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}}, {'a', {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F}},
    {'e', {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E}}, {'i', {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E}},
    {'l', {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}}, {'n', {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11}},
    {'o', {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E}}, {'p', {0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10}},
    {'r', {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10}}, {'s', {0x00, 0x00, 0x0F, 0x10, 0x0E, 0x01, 0x1E}},
    {'t', {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06}}, {'v', {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04}},
};

static int text_width(const char *s, int scale) { return (int)strlen(s) * 6 * scale; }

static void text(canvas *c, int x, int y, const char *s, const uint8_t rgb[3], int scale) {
  for (; *s; s++, x += 6 * scale) {
    const glyph *g = NULL;
    for (size_t i = 0; i < sizeof glyphs / sizeof glyphs[0]; i++)
      if (glyphs[i].ch == *s) g = &glyphs[i];
    if (!g) continue; /* a space, or a character the font lacks */
    for (int r = 0; r < 7; r++)
      for (int col = 0; col < 5; col++)
        if (g->rows[r] & (0x10 >> col)) box(c, x + col * scale, y + r * scale, x + col * scale + scale - 1, y + r * scale + scale - 1, rgb);
  }
}

typedef struct axes {
  double x0, x1, ly0, ly1; /* data range; y as log10 */
} axes;

static int px_x(const axes *a, double x) {
  return LEFT + (int)lround((x - a->x0) / (a->x1 - a->x0) * (PLOT_W - LEFT - RIGHT - 1));
}
static int px_y(const axes *a, double y) {
  return PLOT_H - BOTTOM - 1 - (int)lround((log10(y) - a->ly0) / (a->ly1 - a->ly0) * (PLOT_H - TOP - BOTTOM - 1));
}

static int drawable(float y) { return isfinite(y) && y > 0; }

static void find_range(const duet_plot_series *s, int ns, axes *a) {
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (int i = 0; i < ns; i++)
    for (int64_t j = 0; j < s[i].n; j++) {
      if (!drawable(s[i].y[j])) continue;
      x0 = fmin(x0, (double)s[i].x[j]);
      x1 = fmax(x1, (double)s[i].x[j]);
      y0 = fmin(y0, s[i].y[j]);
      y1 = fmax(y1, s[i].y[j]);
    }
  if (!(x0 <= x1)) x0 = 0, x1 = 1, y0 = 0.1, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  double ly0 = log10(y0), ly1 = log10(y1), pad = fmax(0.05, 0.05 * (ly1 - ly0));
  *a = (axes){x0, x1, ly0 - pad, ly1 + pad};
}

/* A 1, 2 or 5 times a power of ten giving about `want` intervals over span. */
static double nice_step(double span, int want) {
  double raw = span / want, p = pow(10, floor(log10(raw))), m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static int decade_ticks(const axes *a, const double *mult, int nm, double *out, int cap) {
  int n = 0;
  for (int d = (int)floor(a->ly0); d <= (int)ceil(a->ly1); d++)
    for (int k = 0; k < nm; k++) {
      double v = mult[k] * pow(10, d), lv = log10(v);
      if (lv >= a->ly0 && lv <= a->ly1 && n < cap) out[n++] = v;
    }
  return n;
}

static int y_ticks(const axes *a, double *out, int cap) {
  static const double ones[1] = {1}, nice[3] = {1, 2, 5};
  int n = decade_ticks(a, ones, 1, out, cap);
  if (n >= 3) return n;
  n = decade_ticks(a, nice, 3, out, cap);
  if (n >= 3) return n;
  double v0 = pow(10, a->ly0), v1 = pow(10, a->ly1), step = nice_step(v1 - v0, 5);
  n = 0;
  for (double v = ceil(v0 / step) * step; v <= v1 && n < cap; v += step) out[n++] = v;
  return n;
}

static void draw_axes(canvas *c, const axes *a) {
  static const uint8_t grid[3] = {225, 225, 225}, ink[3] = {60, 60, 60};
  char buf[32];
  int bottom = PLOT_H - BOTTOM - 1, right = PLOT_W - RIGHT - 1;
  /* y: decades; 2x and 5x a decade when that gives too few lines; and for a range narrower
   * than that, evenly spaced values (still on the log scale). */
  double ticks[64];
  int nt = y_ticks(a, ticks, 64);
  for (int i = 0; i < nt; i++) {
    int y = px_y(a, ticks[i]);
    line(c, LEFT, y, right, y, grid);
    snprintf(buf, sizeof buf, "%.3g", ticks[i]);
    text(c, LEFT - 6 - text_width(buf, 1), y - 3, buf, ink, 1);
  }
  double step = nice_step(a->x1 - a->x0, 6);
  for (double x = ceil(a->x0 / step) * step; x <= a->x1 + 1e-9; x += step) {
    int px = px_x(a, x);
    line(c, px, TOP, px, bottom, grid);
    snprintf(buf, sizeof buf, "%.0f", x);
    text(c, px - text_width(buf, 1) / 2, bottom + 6, buf, ink, 1);
  }
  line(c, LEFT, TOP, LEFT, bottom, ink);
  line(c, LEFT, bottom, right, bottom, ink);
  text(c, LEFT, 8, "loss", ink, 2);
  text(c, (LEFT + right) / 2 - text_width("step", 1) / 2, PLOT_H - 14, "step", ink, 1);
}

static uint8_t faint(uint8_t v) { return (uint8_t)(v + (255 - v) * 3 / 5); }

static void polyline(canvas *c, const axes *a, const duet_plot_series *s, const float *y, const uint8_t rgb[3], int dots) {
  int have = 0, px0 = 0, py0 = 0;
  for (int64_t j = 0; j < s->n; j++) {
    if (!drawable(y[j])) continue;
    int px = px_x(a, (double)s->x[j]), py = px_y(a, y[j]);
    if (have) {
      line(c, px0, py0, px, py, rgb);
      line(c, px0, py0 + 1, px, py + 1, rgb);
    }
    if (dots) box(c, px - 2, py - 2, px + 2, py + 2, rgb);
    have = 1, px0 = px, py0 = py;
  }
}

/* A centred moving average over the drawable points, in log space so that a spike does not
 * dominate the curve of a loss that spans decades; prefix sums keep it linear in n. */
static int smooth(const duet_plot_series *s, float *out) {
  int64_t w = s->n / 60 + 1;
  double *sum = malloc(sizeof *sum * (size_t)(s->n + 1));
  int64_t *cnt = malloc(sizeof *cnt * (size_t)(s->n + 1));
  if (!sum || !cnt) {
    free(sum);
    free(cnt);
    return -1;
  }
  sum[0] = 0, cnt[0] = 0;
  for (int64_t j = 0; j < s->n; j++) {
    int ok = drawable(s->y[j]);
    sum[j + 1] = sum[j] + (ok ? log(s->y[j]) : 0);
    cnt[j + 1] = cnt[j] + ok;
  }
  for (int64_t j = 0; j < s->n; j++) {
    /* Symmetric, narrowing at the ends, so the curve starts and ends where the data do. */
    int64_t h = w < j ? w : j;
    if (h > s->n - 1 - j) h = s->n - 1 - j;
    int64_t lo = j - h, hi = j + h + 1;
    int64_t n = cnt[hi] - cnt[lo];
    out[j] = drawable(s->y[j]) && n ? (float)exp((sum[hi] - sum[lo]) / (double)n) : NAN;
  }
  free(sum);
  free(cnt);
  return 0;
}

typedef struct membuf {
  unsigned char *p;
  size_t len, cap;
  int failed;
} membuf;

static void mem_write(png_structp png, png_bytep data, png_size_t n) {
  membuf *b = png_get_io_ptr(png);
  if (b->failed) return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 65536;
    while (cap < b->len + n) cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (!p) {
      b->failed = 1;
      return;
    }
    b->p = p, b->cap = cap;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
}

static void mem_flush(png_structp png) { (void)png; }

static int encode_png(const canvas *c, membuf *out) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!info) {
    png_destroy_write_struct(&png, NULL);
    return -1;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return -1;
  }
  png_set_write_fn(png, out, mem_write, mem_flush);
  png_set_IHDR(png, info, (png_uint_32)c->w, (png_uint_32)c->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < c->h; y++) png_write_row(png, c->px + (size_t)y * c->w * 3);
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  return out->failed ? -1 : 0;
}

int duet_loss_plot_write(const char *path, const duet_plot_series *series, int n_series, duet_err *err) {
  canvas c = {malloc((size_t)PLOT_W * PLOT_H * 3), PLOT_W, PLOT_H};
  int64_t most = 1;
  for (int i = 0; i < n_series; i++) most = series[i].n > most ? series[i].n : most;
  float *sm = malloc(sizeof *sm * (size_t)most);
  if (!c.px || !sm) {
    free(c.px);
    free(sm);
    return duet_err_set(err, DUET_ENOMEM, "%s: out of memory for the plot", path);
  }
  memset(c.px, 255, (size_t)PLOT_W * PLOT_H * 3);
  axes a;
  find_range(series, n_series, &a);
  draw_axes(&c, &a);
  int legend_y = 10;
  for (int i = 0; i < n_series; i++) {
    const duet_plot_series *s = &series[i];
    int any = 0;
    for (int64_t j = 0; j < s->n && !any; j++) any = drawable(s->y[j]);
    if (!any) continue;
    if (s->smooth) {
      uint8_t light[3] = {faint(s->rgb[0]), faint(s->rgb[1]), faint(s->rgb[2])};
      polyline(&c, &a, s, s->y, light, 0);
      if (smooth(s, sm) == 0) polyline(&c, &a, s, sm, s->rgb, 0);
    } else {
      polyline(&c, &a, s, s->y, s->rgb, 1);
    }
    if (s->label) {
      int x = PLOT_W - RIGHT - 8 - text_width(s->label, 1);
      box(&c, x - 22, legend_y + 2, x - 6, legend_y + 4, s->rgb);
      static const uint8_t ink[3] = {60, 60, 60};
      text(&c, x, legend_y, s->label, ink, 1);
      legend_y += 12;
    }
  }
  membuf png = {0};
  int rc = encode_png(&c, &png);
  free(c.px);
  free(sm);
  if (rc) {
    free(png.p);
    return duet_err_set(err, DUET_ENOMEM, "%s: PNG encoding failed", path);
  }
  rc = duet_write_file_atomic(path, png.p, png.len, err);
  free(png.p);
  return rc;
}
