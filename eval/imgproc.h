/* The two float image operations Farneback's pyramid needs, with OpenCV's semantics so that
 * the flow matches cv2.calcOpticalFlowFarneback: GaussianBlur (BORDER_REFLECT_101) and
 * resize with INTER_LINEAR (half-pixel centres, edge clamping). */
#ifndef DUET_EVAL_IMGPROC_H
#define DUET_EVAL_IMGPROC_H

#include "core/error.h"

/* getGaussianKernel(ksize, sigma, CV_32F): sigma <= 0 picks OpenCV's fixed small kernels for
 * ksize 1, 3, 5, 7 and sigma = 0.3 ((ksize - 1) / 2 - 1) + 0.8 otherwise. */
void duet_cv_gaussian_kernel(int ksize, double sigma, float *k);

/* GaussianBlur(src, dst, (ksize, ksize), sigma, sigma) on one float channel; dst may be src. */
int duet_cv_gaussian_blur(const float *src, int h, int w, int ksize, double sigma, float *dst,
                          duet_err *err);

/* resize(src, dst, (dw, dh), interpolation=INTER_LINEAR) for cn interleaved float channels. */
int duet_cv_resize_linear(const float *src, int sh, int sw, int cn, float *dst, int dh, int dw,
                          duet_err *err);

#endif
