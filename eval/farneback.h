/* Dense optical flow by Gunnar Farneback's polynomial expansion ("Two-Frame Motion Estimation
 * Based on Polynomial Expansion", SCIA 2003), following cv2.calcOpticalFlowFarneback with
 * flags = 0 (box-filtered displacement estimation, no initial flow) step for step, so that
 * AV-Align's flow magnitudes match the reference implementation's. */
#ifndef DUET_EVAL_FARNEBACK_H
#define DUET_EVAL_FARNEBACK_H

#include <stdint.h>

#include "core/error.h"

typedef struct duet_farneback_params {
  double pyr_scale; /* 0.5 */
  int levels;       /* 3: pyramid levels above the full image (fewer below 32 px) */
  int winsize;      /* 15: box window of the displacement estimate */
  int iterations;   /* 3 per level */
  int poly_n;       /* 5: polynomial expansion neighbourhood radius */
  double poly_sigma;/* 1.2 */
} duet_farneback_params;

/* AV-Align's parameters: 0.5, 3, 15, 3, 5, 1.2. */
void duet_farneback_defaults(duet_farneback_params *p);

/* A frame's polynomial expansion at every pyramid level. A video's flow compares frame i - 1
 * with frame i, so each frame is expanded once and used twice. */
typedef struct duet_farneback_frame duet_farneback_frame;

int duet_farneback_prepare(const uint8_t *grey, int height, int width,
                           const duet_farneback_params *p, duet_farneback_frame **out,
                           duet_err *err);
void duet_farneback_frame_free(duet_farneback_frame *f);

/* flow: [height, width, 2] (dx, dy) from prev to next; both frames prepared with p. */
int duet_farneback_flow(const duet_farneback_frame *prev, const duet_farneback_frame *next,
                        const duet_farneback_params *p, float *flow, duet_err *err);

/* Mean of sqrt(dx^2 + dy^2) over the image, as cv2.mean(cv2.magnitude(...)). */
double duet_flow_mean_magnitude(const float *flow, int height, int width);

#endif
