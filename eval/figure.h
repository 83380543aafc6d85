/* Figures for report.md, drawn into plain RGB buffers and written as PNG: a contact sheet of
 * frames, a spectrogram, the offset curves (onset strength, motion energy, their
 * cross-correlation with the found lag) and the AV-Align peaks. */
#ifndef DUET_EVAL_FIGURE_H
#define DUET_EVAL_FIGURE_H

#include <stdint.h>

#include "core/error.h"
#include "data/image.h"
#include "eval/avalign.h"
#include "eval/offset.h"

typedef struct duet_canvas {
  int width, height;
  uint8_t *rgb; /* [height, width, 3] */
} duet_canvas;

typedef struct duet_rgb {
  uint8_t r, g, b;
} duet_rgb;

int duet_canvas_init(duet_canvas *c, int width, int height, duet_rgb fill, duet_err *err);
void duet_canvas_free(duet_canvas *c);
void duet_canvas_fill_rect(duet_canvas *c, int x0, int y0, int x1, int y1, duet_rgb col);
void duet_canvas_line(duet_canvas *c, double x0, double y0, double x1, double y1, duet_rgb col);
/* Digits, '-', '.', ' ' and a few lower-case letters in a 3x5 font scaled by `scale`; other
 * characters are skipped. */
void duet_canvas_text(duet_canvas *c, int x, int y, const char *s, int scale, duet_rgb col);


/* Up to `count` frames spread evenly over the clip, each scaled to thumb_height rows, in rows
 * of `columns`. */
int duet_figure_contact_sheet(const uint8_t *video, int frames, int height, int width, int count,
                              int columns, int thumb_height, duet_canvas *out, duet_err *err);

/* Log-power spectrogram (dB, 80 dB range), time left to right, frequency 0..sr/2 upwards. */
int duet_figure_spectrogram(const float *audio, int64_t samples, int sample_rate, int width,
                            int height, duet_canvas *out, duet_err *err);

/* Three panels: onset strength (blue) with motion energy (orange) as measured; the same with
 * motion shifted by the found offset; the cross-correlation over lag with the peak (red) and
 * zero lag (grey). Time ticks every second. */
int duet_figure_offset(const duet_offset *o, int width, duet_canvas *out, duet_err *err);

/* Flow magnitude per frame (orange) with its peaks (orange ticks) and the audio onsets (blue
 * lines); matched pairs are marked green. */
int duet_figure_avalign(const duet_avalign *a, double fps, int width, duet_canvas *out,
                        duet_err *err);

#endif
