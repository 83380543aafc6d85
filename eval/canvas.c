#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/figure.h"

int duet_canvas_init(duet_canvas *c, int width, int height, duet_rgb fill, duet_err *err) {
  c->width = width;
  c->height = height;
  c->rgb = malloc((size_t)width * height * 3);
  if (!c->rgb)
    return duet_err_set(err, DUET_ENOMEM, "figure: out of memory (%dx%d)", width, height);
  for (size_t i = 0; i < (size_t)width * height; i++) {
    c->rgb[3 * i] = fill.r;
    c->rgb[3 * i + 1] = fill.g;
    c->rgb[3 * i + 2] = fill.b;
  }
  return DUET_OK;
}

void duet_canvas_free(duet_canvas *c) {
  free(c->rgb);
  c->rgb = NULL;
}

static inline void put(duet_canvas *c, int x, int y, duet_rgb col) {
  if (x < 0 || y < 0 || x >= c->width || y >= c->height) return;
  uint8_t *p = c->rgb + ((size_t)y * c->width + x) * 3;
  p[0] = col.r;
  p[1] = col.g;
  p[2] = col.b;
}

void duet_canvas_fill_rect(duet_canvas *c, int x0, int y0, int x1, int y1, duet_rgb col) {
  for (int y = y0; y < y1; y++)
    for (int x = x0; x < x1; x++) put(c, x, y, col);
}

void duet_canvas_line(duet_canvas *c, double x0, double y0, double x1, double y1, duet_rgb col) {
  double dx = x1 - x0, dy = y1 - y0;
  int steps = (int)ceil(fmax(fabs(dx), fabs(dy)));
  if (steps < 1) steps = 1;
  if (steps > 100000) steps = 100000;
  for (int i = 0; i <= steps; i++) {
    double t = (double)i / steps;
    put(c, (int)lround(x0 + t * dx), (int)lround(y0 + t * dy), col);
  }
}

/* 3x5 glyphs, one row per entry, bit 2 = left column. */
static const struct {
  char ch;
  uint8_t rows[5];
} glyphs[] = {
    {'0', {7, 5, 5, 5, 7}}, {'1', {2, 6, 2, 2, 7}}, {'2', {7, 1, 7, 4, 7}},
    {'3', {7, 1, 7, 1, 7}}, {'4', {5, 5, 7, 1, 1}}, {'5', {7, 4, 7, 1, 7}},
    {'6', {7, 4, 7, 5, 7}}, {'7', {7, 1, 1, 1, 1}}, {'8', {7, 5, 7, 5, 7}},
    {'9', {7, 5, 7, 1, 7}}, {'-', {0, 0, 7, 0, 0}}, {'+', {0, 2, 7, 2, 0}},
    {'.', {0, 0, 0, 0, 2}}, {' ', {0, 0, 0, 0, 0}}, {'s', {0, 3, 6, 1, 6}},
    {'m', {0, 0, 7, 7, 5}}, {'k', {4, 5, 6, 5, 5}}, {'H', {5, 5, 7, 5, 5}},
    {'z', {0, 7, 1, 4, 7}}, {'x', {0, 5, 2, 2, 5}}, {'p', {0, 7, 5, 7, 4}},
    {'l', {4, 4, 4, 4, 6}}, {'a', {0, 6, 1, 7, 7}}, {'g', {0, 7, 5, 7, 1}},
    {'t', {2, 7, 2, 2, 3}}, {'r', {0, 6, 5, 4, 4}}, {'f', {3, 4, 6, 4, 4}},
};

void duet_canvas_text(duet_canvas *c, int x, int y, const char *s, int scale, duet_rgb col) {
  for (; *s; s++) {
    for (size_t g = 0; g < sizeof glyphs / sizeof glyphs[0]; g++) {
      if (glyphs[g].ch != *s) continue;
      for (int r = 0; r < 5; r++)
        for (int b = 0; b < 3; b++)
          if (glyphs[g].rows[r] & (4 >> b))
            duet_canvas_fill_rect(c, x + b * scale, y + r * scale, x + (b + 1) * scale,
                                  y + (r + 1) * scale, col);
      break;
    }
    x += 4 * scale;
  }
}

