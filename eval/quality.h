/* Reference-based quality metrics: PSNR and SSIM between two videos, log-spectral distance and
 * multi-resolution STFT distance between two audio signals, and Frechet distance and KID
 * between two sets of feature vectors. The first argument is always the reference. */
#ifndef DUET_EVAL_QUALITY_H
#define DUET_EVAL_QUALITY_H

#include <stdint.h>

#include "core/error.h"

/* SSIM as skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
 * use_sample_covariance=False, data_range=255, channel_axis=-1): an 11x11 Gaussian window
 * (truncate 3.5), K1 0.01, K2 0.03, mirrored edges, the 5-pixel margin left out of the mean,
 * computed per RGB channel and averaged. a, b: [h, w, 3]; both sides >= 11. */
int duet_ssim_rgb(const uint8_t *a, const uint8_t *b, int height, int width, double *ssim,
                  duet_err *err);

typedef struct duet_video_quality {
  int frames;
  double mse;  /* over every frame, pixel and channel */
  double psnr; /* 10 log10(255^2 / mse), dB; +inf for identical videos */
  double ssim; /* mean over frames of duet_ssim_rgb */
  double ssim_min;
} duet_video_quality;

/* a, b: [frames, h, w, 3]. */
int duet_video_quality_compute(const uint8_t *a, const uint8_t *b, int frames, int height,
                               int width, duet_video_quality *out, duet_err *err);

/* Log-spectral distance in dB: per frame sqrt(mean over bins of (10 log10 (P_ref + eps) -
 * 10 log10 (P_test + eps))^2), averaged over frames; n_fft 2048, hop 512, Hann, eps 1e-10. */
int duet_log_spectral_distance(const float *ref, const float *test, int64_t n, double *lsd,
                               duet_err *err);

enum { DUET_MRSTFT_RESOLUTIONS = 3 };

typedef struct duet_mrstft {
  int n_fft[DUET_MRSTFT_RESOLUTIONS];  /* 512, 1024, 2048; hop n_fft / 4, Hann of n_fft */
  double sc[DUET_MRSTFT_RESOLUTIONS];  /* spectral convergence || |T| - |R| ||_F / || |R| ||_F */
  double mag[DUET_MRSTFT_RESOLUTIONS]; /* mean | ln |T| - ln |R| |, magnitudes floored at
                                          sqrt(1e-7) as Parallel WaveGAN does */
  double total;                        /* mean sc + mean mag */
} duet_mrstft;

int duet_mrstft_distance(const float *ref, const float *test, int64_t n, duet_mrstft *out,
                         duet_err *err);

/* Frechet distance between Gaussians fitted to x [nx, dim] and y [ny, dim] (row-major, mean and
 * unbiased covariance as numpy.cov): |mu_x - mu_y|^2 + tr(Cx + Cy - 2 (Cx^1/2 Cy Cx^1/2)^1/2),
 * square roots by symmetric eigendecomposition (LAPACK dsyevd), negative eigenvalues from
 * rounding clipped to 0. nx, ny >= 2. */
int duet_frechet_distance(const double *x, int64_t nx, const double *y, int64_t ny, int dim,
                          double *fd, duet_err *err);

/* Kernel inception distance: unbiased MMD^2 with the kernel (x.y / dim + 1)^3 over all samples
 * (no subsets, so it is deterministic). nx, ny >= 2. */
int duet_kid(const double *x, int64_t nx, const double *y, int64_t ny, int dim, double *kid,
             duet_err *err);

#endif
