/* A small line plot of loss curves (log y axis) written as PNG with libpng: enough to see at a
 * glance whether a run is learning, without any plotting dependency. */
#ifndef DUET_TRAIN_LOSS_PLOT_H
#define DUET_TRAIN_LOSS_PLOT_H

#include <stdint.h>

#include "core/error.h"

typedef struct duet_plot_series {
  const int64_t *x; /* steps, increasing */
  const float *y;   /* values; non-finite and non-positive ones are skipped (log axis) */
  int64_t n;
  uint8_t rgb[3];
  const char *label; /* legend text: lower-case letters, digits, " .-+" */
  /* 1: draw the raw values faintly and a moving average over them (a noisy training loss);
   * 0: a line with a dot on every point (a sparse validation loss). */
  int smooth;
} duet_plot_series;

/* Draws the series on one set of axes and writes the PNG atomically. Series with no drawable
 * point are left out; with none at all the axes are drawn empty. */
int duet_loss_plot_write(const char *path, const duet_plot_series *series, int n_series, duet_err *err);

#endif
