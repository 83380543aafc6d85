#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/figure.h"
#include "eval/stft.h"

static const duet_rgb WHITE = {255, 255, 255}, AXIS = {90, 90, 90}, GRID = {225, 225, 225},
                      BLUE = {31, 119, 180}, ORANGE = {255, 127, 14}, RED = {214, 39, 40},
                      GREEN = {44, 160, 44}, GREY = {150, 150, 150}, TEXT = {40, 40, 40};

int duet_figure_contact_sheet(const uint8_t *video, int frames, int height, int width, int count,
                              int columns, int thumb_height, duet_canvas *out, duet_err *err) {
  if (frames < 1 || height < 1 || width < 1)
    return duet_err_set(err, DUET_EINVAL, "contact sheet: empty video");
  if (count > frames) count = frames;
  if (count < 1) count = 1;
  if (columns > count) columns = count;
  if (columns < 1) columns = 1;
  int th = thumb_height, tw = (int)lround((double)width * th / height);
  if (tw < 1) tw = 1;
  const int gap = 4;
  int rows = (count + columns - 1) / columns;
  int rc = duet_canvas_init(out, columns * (tw + gap) + gap, rows * (th + gap) + gap, WHITE, err);
  if (rc) return rc;
  size_t fsz = (size_t)height * width * 3;
  for (int i = 0; i < count; i++) {
    int f = count > 1 ? (int)lround((double)i * (frames - 1) / (count - 1)) : 0;
    const uint8_t *src = video + fsz * f;
    int ox = gap + (i % columns) * (tw + gap), oy = gap + (i / columns) * (th + gap);
    /* Box average over each thumbnail pixel's footprint, so that fine detail does not alias. */
    for (int y = 0; y < th; y++) {
      int y0 = y * height / th, y1 = (y + 1) * height / th;
      if (y1 <= y0) y1 = y0 + 1;
      for (int x = 0; x < tw; x++) {
        int x0 = x * width / tw, x1 = (x + 1) * width / tw;
        if (x1 <= x0) x1 = x0 + 1;
        unsigned acc[3] = {0, 0, 0}, n = 0;
        for (int yy = y0; yy < y1; yy++)
          for (int xx = x0; xx < x1; xx++, n++)
            for (int ch = 0; ch < 3; ch++) acc[ch] += src[((size_t)yy * width + xx) * 3 + ch];
        uint8_t *d = out->rgb + ((size_t)(oy + y) * out->width + ox + x) * 3;
        for (int ch = 0; ch < 3; ch++) d[ch] = (uint8_t)((acc[ch] + n / 2) / n);
      }
    }
  }
  return DUET_OK;
}

/* A dark-to-bright colour map (black, purple, orange, pale yellow) for dB values in [0, 1]. */
static duet_rgb heat(double v) {
  static const double stops[5][3] = {
      {0, 0, 4}, {87, 16, 110}, {188, 55, 84}, {249, 142, 9}, {252, 255, 164}};
  if (!(v > 0)) v = 0;
  if (v > 1) v = 1;
  double p = v * 4;
  int i = (int)p;
  if (i > 3) i = 3;
  double f = p - i;
  duet_rgb c;
  c.r = (uint8_t)lround(stops[i][0] + f * (stops[i + 1][0] - stops[i][0]));
  c.g = (uint8_t)lround(stops[i][1] + f * (stops[i + 1][1] - stops[i][1]));
  c.b = (uint8_t)lround(stops[i][2] + f * (stops[i + 1][2] - stops[i][2]));
  return c;
}

int duet_figure_spectrogram(const float *audio, int64_t samples, int sample_rate, int width,
                            int height, duet_canvas *out, duet_err *err) {
  if (samples < 1 || sample_rate <= 0)
    return duet_err_set(err, DUET_EINVAL, "spectrogram: no audio");
  int n_fft = 16;
  while (n_fft < 0.032 * sample_rate) n_fft *= 2;
  duet_stft s;
  int rc = duet_stft_init(&s, n_fft, err);
  if (rc) return rc;
  double *col = malloc(sizeof(double) * (size_t)width * s.n_bins);
  if (!col) {
    duet_stft_free(&s);
    return duet_err_set(err, DUET_ENOMEM, "spectrogram: out of memory");
  }
  double loudest = -INFINITY;
  for (int x = 0; x < width; x++) {
    int64_t centre = (int64_t)((x + 0.5) * samples / width);
    double *p = col + (size_t)x * s.n_bins;
    duet_stft_frame(&s, audio, samples, centre, p);
    for (int k = 0; k < s.n_bins; k++) {
      p[k] = 10.0 * log10(p[k] + 1e-12);
      if (p[k] > loudest) loudest = p[k];
    }
  }
  int nb = s.n_bins;
  duet_stft_free(&s);
  const int pad = 20, top = 6;
  rc = duet_canvas_init(out, width + pad, height + pad + top, WHITE, err);
  if (rc) {
    free(col);
    return rc;
  }
  for (int x = 0; x < width; x++)
    for (int y = 0; y < height; y++) {
      double fbin = (double)(height - 1 - y) * (nb - 1) / (height - 1 > 0 ? height - 1 : 1);
      int k0 = (int)fbin;
      int k1 = k0 + 1 < nb ? k0 + 1 : k0;
      const double *cx = col + (size_t)x * nb;
      double v = cx[k0] + (fbin - k0) * (cx[k1] - cx[k0]);
      duet_rgb c = heat((v - (loudest - 80.0)) / 80.0);
      uint8_t *d = out->rgb + ((size_t)(y + top) * out->width + pad + x) * 3;
      d[0] = c.r;
      d[1] = c.g;
      d[2] = c.b;
    }
  free(col);
  /* Ticks: every second along time, every kHz (or 4 kHz above 16 kHz Nyquist) up the side. */
  double dur = (double)samples / sample_rate;
  for (int sec = 0; sec <= (int)dur; sec++) {
    int x = pad + (int)lround(sec / dur * (width - 1));
    duet_canvas_line(out, x, top + height, x, top + height + 4, AXIS);
    char lab[16];
    snprintf(lab, sizeof lab, "%d", sec);
    duet_canvas_text(out, x - 2, top + height + 7, lab, 2, TEXT);
  }
  double nyq = sample_rate / 2.0;
  int khz_step = nyq > 16000 ? 4 : nyq > 6000 ? 2 : 1;
  for (int k = 0; k * 1000.0 <= nyq; k += khz_step) {
    int y = top + height - 1 - (int)lround(k * 1000.0 / nyq * (height - 1));
    duet_canvas_line(out, pad - 4, y, pad - 1, y, AXIS);
    char lab[16];
    snprintf(lab, sizeof lab, "%d", k);
    duet_canvas_text(out, 1, y - 5, lab, 2, TEXT);
  }
  return DUET_OK;
}

enum { RIGHT = 36 }; /* right margin, where the axis unit goes */

typedef struct panel {
  int x0, y0, w, h;     /* plot area in pixels */
  double t0, t1, v0, v1;/* data range */
} panel;

static double px(const panel *p, double t) {
  return p->x0 + (t - p->t0) / (p->t1 - p->t0) * (p->w - 1);
}
static double py(const panel *p, double v) {
  return p->y0 + p->h - 1 - (v - p->v0) / (p->v1 - p->v0) * (p->h - 1);
}

static void frame_panel(duet_canvas *c, const panel *p, double tick, const char *unit) {
  for (double t = ceil(p->t0 / tick) * tick; t <= p->t1 + 1e-9; t += tick) {
    int x = (int)lround(px(p, t));
    duet_canvas_line(c, x, p->y0, x, p->y0 + p->h - 1, GRID);
    duet_canvas_line(c, x, p->y0 + p->h, x, p->y0 + p->h + 3, AXIS);
    char lab[32];
    snprintf(lab, sizeof lab, fabs(tick - round(tick)) < 1e-9 ? "%.0f" : "%.1f", t);
    duet_canvas_text(c, x - 3, p->y0 + p->h + 6, lab, 2, TEXT);
  }
  duet_canvas_text(c, p->x0 + p->w + 8, p->y0 + p->h + 6, unit, 2, TEXT);
  duet_canvas_line(c, p->x0, p->y0 + p->h, p->x0 + p->w - 1, p->y0 + p->h, AXIS);
  duet_canvas_line(c, p->x0 - 1, p->y0, p->x0 - 1, p->y0 + p->h, AXIS);
}

static void plot_curve(duet_canvas *c, const panel *p, const double *v, int n, double step,
                       double shift, duet_rgb col) {
  for (int i = 1; i < n; i++) {
    double ta = (i - 1) * step + shift, tb = i * step + shift;
    if (tb < p->t0 || ta > p->t1) continue;
    duet_canvas_line(c, px(p, ta), py(p, v[i - 1]), px(p, tb), py(p, v[i]), col);
  }
}

int duet_figure_offset(const duet_offset *o, int width, duet_canvas *out, duet_err *err) {
  if (!o->onset || !o->motion || !o->xcorr)
    return duet_err_set(err, DUET_EINVAL, "offset figure: no curves");
  const int ph = 140, gap = 34, left = 12;
  int rc = duet_canvas_init(out, width, 3 * ph + 3 * gap + 8, WHITE, err);
  if (rc) return rc;
  int n = o->n_onset > o->n_motion ? o->n_onset : o->n_motion;
  double dur = (n - 1) * o->step;
  if (dur <= 0) dur = o->step;
  double tick = dur > 20 ? 5 : dur > 8 ? 2 : 1;
  double lag_s = o->offset_ms / 1000.0;
  for (int k = 0; k < 2; k++) {
    panel p = {left, 8 + k * (ph + gap), width - left - RIGHT, ph, 0, dur, -0.05, 1.05};
    frame_panel(out, &p, tick, "s");
    plot_curve(out, &p, o->motion, o->n_motion, o->step, k ? lag_s : 0, ORANGE);
    plot_curve(out, &p, o->onset, o->n_onset, o->step, 0, BLUE);
  }
  double lagmax = o->max_lag * o->step * 1000.0;
  double rmin = 0, rmax = 0;
  for (int i = 0; i <= 2 * o->max_lag; i++) {
    if (o->xcorr[i] < rmin) rmin = o->xcorr[i];
    if (o->xcorr[i] > rmax) rmax = o->xcorr[i];
  }
  if (rmax <= rmin) rmax = rmin + 1;
  panel p = {left, 8 + 2 * (ph + gap), width - left - RIGHT, ph, -lagmax, lagmax, rmin, rmax};
  frame_panel(out, &p, lagmax > 1000 ? 500 : 100, "ms");
  duet_canvas_line(out, px(&p, 0), p.y0, px(&p, 0), p.y0 + p.h - 1, GREY);
  duet_canvas_line(out, px(&p, o->offset_ms), p.y0, px(&p, o->offset_ms), p.y0 + p.h - 1, RED);
  double stepms = o->step * 1000.0;
  for (int i = 1; i <= 2 * o->max_lag; i++)
    duet_canvas_line(out, px(&p, (i - 1 - o->max_lag) * stepms), py(&p, o->xcorr[i - 1]),
                     px(&p, (i - o->max_lag) * stepms), py(&p, o->xcorr[i]), BLUE);
  return DUET_OK;
}

int duet_figure_avalign(const duet_avalign *a, double fps, int width, duet_canvas *out,
                        duet_err *err) {
  if (!a->flow || a->n_flow < 1 || fps <= 0)
    return duet_err_set(err, DUET_EINVAL, "AV-Align figure: no flow curve");
  const int ph = 160, left = 12;
  int rc = duet_canvas_init(out, width, ph + 40, WHITE, err);
  if (rc) return rc;
  double dur = a->n_flow > 1 ? (a->n_flow - 1) / fps : 1.0 / fps;
  double vmax = 0;
  for (int i = 0; i < a->n_flow; i++)
    if (a->flow[i] > vmax) vmax = a->flow[i];
  if (vmax <= 0) vmax = 1;
  panel p = {left, 8, width - left - RIGHT, ph, 0, dur, 0, vmax * 1.05};
  frame_panel(out, &p, dur > 20 ? 5 : dur > 8 ? 2 : 1, "s");
  for (int i = 0; i < a->n_audio; i++) {
    int matched = 0;
    for (int j = 0; j < a->n_video; j++)
      if (fabs(a->video_peaks[j] - a->audio_peaks[i]) < 1.0 / fps) matched = 1;
    double x = px(&p, a->audio_peaks[i]);
    duet_canvas_line(out, x, p.y0, x, p.y0 + p.h - 1, matched ? GREEN : BLUE);
  }
  plot_curve(out, &p, a->flow, a->n_flow, 1.0 / fps, 0, ORANGE);
  for (int j = 0; j < a->n_video; j++) {
    double x = px(&p, a->video_peaks[j]);
    duet_canvas_fill_rect(out, (int)x - 2, p.y0, (int)x + 3, p.y0 + 6, ORANGE);
  }
  duet_canvas_line(out, p.x0, py(&p, DUET_AVALIGN_MIN_PEAK), p.x0 + p.w - 1,
                   py(&p, DUET_AVALIGN_MIN_PEAK), GREY);
  return DUET_OK;
}
