/* Drawing a scene: a wall (plain or a vertical gradient), a floor band, and the objects with
 * analytic anti-aliasing (coverage from the signed distance to the shape's edge, in pixels). */
#include "data/synth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double clamp01(double v) { return v < 0.0 ? 0.0 : (v > 1.0 ? 1.0 : v); }

static void draw_background(const duet_synth_params *p, const duet_synth_scene *s, uint8_t *bg) {
  const int H = p->height, W = p->width;
  const double floor_row = (1.0 - DUET_SYNTH_FLOOR_Y) * H; /* floor surface, in pixel rows */
  for (int y = 0; y < H; y++) {
    double g = H > 1 ? (double)y / (H - 1) : 0.0;
    /* The share of this row under the floor line: anti-aliases the floor edge too. */
    double f = clamp01(y + 1.0 - floor_row);
    uint8_t px[3];
    for (int c = 0; c < 3; c++) {
      double wall = s->wall_top[c] + (s->wall_bottom[c] - s->wall_top[c]) * g;
      px[c] = (uint8_t)lround(wall * (1.0 - f) + s->floor_rgb[c] * f);
    }
    for (int x = 0; x < W; x++) memcpy(bg + ((size_t)y * W + x) * 3, px, 3);
  }
}

/* Signed distance (pixels, negative inside) from pixel centre (px, py) to a shape centred at
 * (cx, cy) with half extent R; y grows downwards. */
static double shape_distance(int shape, double px, double py, double cx, double cy, double R) {
  double dx = px - cx, dy = py - cy;
  switch (shape) {
  case DUET_SYNTH_BALL: return sqrt(dx * dx + dy * dy) - R;
  case DUET_SYNTH_SQUARE: {
    double qx = fabs(dx) - R, qy = fabs(dy) - R;
    double ox = qx > 0 ? qx : 0, oy = qy > 0 ? qy : 0;
    double in = qx > qy ? qx : qy;
    return sqrt(ox * ox + oy * oy) + (in < 0 ? in : 0);
  }
  default: {
    /* Upright triangle: base from (cx - R, cy + R) to (cx + R, cy + R), apex (cx, cy - R). The
     * largest of the three edge distances is exact near the edges, which is all the
     * anti-aliasing looks at. */
    const double k = 1.0 / sqrt(5.0);
    double base = dy - R;
    double left = (-2.0 * (dx + R) - (dy - R)) * k;
    double right = (2.0 * (dx - R) - (dy - R)) * k;
    double d = base > left ? base : left;
    return d > right ? d : right;
  }
  }
}

static void draw_object(const duet_synth_params *p, const duet_synth_object *o, double x,
                        double y, uint8_t *frame) {
  const int H = p->height, W = p->width;
  const double cx = x * H, cy = (1.0 - y) * H, R = o->radius * H;
  const uint8_t *rgb = duet_synth_colour_rgb(o->colour);
  int x0 = (int)floor(cx - R - 1), x1 = (int)ceil(cx + R + 1);
  int y0 = (int)floor(cy - R - 1), y1 = (int)ceil(cy + R + 1);
  if (x0 < 0) x0 = 0;
  if (y0 < 0) y0 = 0;
  if (x1 > W) x1 = W;
  if (y1 > H) y1 = H;
  for (int py = y0; py < y1; py++)
    for (int px = x0; px < x1; px++) {
      double cov = clamp01(0.5 - shape_distance(o->shape, px + 0.5, py + 0.5, cx, cy, R));
      if (cov <= 0.0) continue;
      uint8_t *d = frame + ((size_t)py * W + px) * 3;
      for (int c = 0; c < 3; c++) d[c] = (uint8_t)lround(d[c] + (rgb[c] - d[c]) * cov);
    }
}

void duet_synth_render_video(const duet_synth_params *p, const duet_synth_scene *s,
                             uint8_t *video) {
  const size_t fb = (size_t)p->height * p->width * 3;
  /* The background goes into frame 0 and is copied from there. */
  draw_background(p, s, video);
  for (int t = 1; t < p->frames; t++) memcpy(video + (size_t)t * fb, video, fb);
  for (int t = 0; t < p->frames; t++) {
    double time = t / p->fps;
    for (int j = 0; j < s->n_objects; j++) {
      double x, y;
      duet_synth_object_at(s, j, time, &x, &y);
      draw_object(p, &s->objects[j], x, y, video + (size_t)t * fb);
    }
  }
}
