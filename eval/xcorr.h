/* Normalised cross-correlation of two curves over a range of lags, with a sub-sample peak. */
#ifndef DUET_EVAL_XCORR_H
#define DUET_EVAL_XCORR_H

#include "core/error.h"

typedef struct duet_xcorr {
  int max_lag;      /* r has 2 * max_lag + 1 values, r[max_lag + L] for lag L */
  double *r;        /* malloc'd */
  int peak;         /* lag of the largest r, in samples */
  double lag;       /* peak refined by a parabola through its neighbours, in samples */
  double peak_r;    /* r at the peak */
  double confidence;/* peak_r / median |r| over all lags */
} duet_xcorr;

/* r(L) = sum_t a~[t + L] b~[t] / sqrt(sum a~^2 sum b~^2) with a~, b~ the curves minus their
 * means, summed where both exist: in [-1, 1], Pearson's r at lag 0 for equal lengths. A
 * positive lag means `a` happens later than `b`. The energies are those of the whole curves,
 * not of the overlap, so a lag that lines up one event in a short overlap cannot outscore one
 * that lines up all of them. Lags are limited to max_lag and to those that keep at least half
 * of the shorter curve overlapping. Fails (DUET_EINVAL) when either curve is constant, where
 * no lag can be told from another. */
int duet_xcorr_lags(const double *a, int na, const double *b, int nb, int max_lag,
                    duet_xcorr *out, duet_err *err);
void duet_xcorr_free(duet_xcorr *x);

/* Vertex offset in (-0.5, 0.5) of the parabola through (-1, ym), (0, y0), (1, yp); 0 when the
 * three points do not make a maximum. */
double duet_parabolic_peak(double ym, double y0, double yp);

#endif
