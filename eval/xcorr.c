#include "eval/xcorr.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double duet_parabolic_peak(double ym, double y0, double yp) {
  double den = ym - 2.0 * y0 + yp;
  if (!(den < 0.0)) return 0.0;
  double d = 0.5 * (ym - yp) / den;
  if (d > 0.5) d = 0.5;
  if (d < -0.5) d = -0.5;
  return d;
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

/* sum_t a[t + lag] b[t] over the t where both exist; a and b are already centred. */
static double dot_at(const double *a, int na, const double *b, int nb, int lag) {
  int t0 = lag < 0 ? -lag : 0;
  int t1 = nb;
  if (na - lag < t1) t1 = na - lag;
  double s = 0;
  for (int t = t0; t < t1; t++) s += a[t + lag] * b[t];
  return s;
}

static double *centred(const double *v, int n, double *energy) {
  double *c = malloc(sizeof(double) * (size_t)n);
  if (!c) return NULL;
  double m = 0, e = 0;
  for (int i = 0; i < n; i++) m += v[i];
  m /= n;
  for (int i = 0; i < n; i++) {
    c[i] = v[i] - m;
    e += c[i] * c[i];
  }
  *energy = e;
  return c;
}

static int is_constant(const double *v, int n) {
  for (int i = 1; i < n; i++)
    if (v[i] != v[0]) return 0;
  return 1;
}

int duet_xcorr_lags(const double *a, int na, const double *b, int nb, int max_lag,
                    duet_xcorr *out, duet_err *err) {
  memset(out, 0, sizeof *out);
  if (na < 4 || nb < 4)
    return duet_err_set(err, DUET_EINVAL, "cross-correlation: curves too short (%d, %d)", na, nb);
  if (is_constant(a, na) || is_constant(b, nb))
    return duet_err_set(err, DUET_EINVAL, "cross-correlation: %s curve is flat",
                        is_constant(a, na) ? "first" : "second");
  int shorter = na < nb ? na : nb;
  /* Beyond this, too few samples overlap for r to mean the same as at lag 0. */
  int limit = shorter / 2;
  if (max_lag > limit) max_lag = limit;
  if (max_lag < 1) max_lag = 1;
  int n = 2 * max_lag + 1;
  double *r = malloc(sizeof(double) * (size_t)n);
  double *absr = malloc(sizeof(double) * (size_t)n);
  if (!r || !absr) {
    free(r);
    free(absr);
    return duet_err_set(err, DUET_ENOMEM, "cross-correlation: out of memory");
  }
  double ea, eb;
  double *ca = centred(a, na, &ea), *cb = centred(b, nb, &eb);
  if (!ca || !cb) {
    free(ca);
    free(cb);
    free(r);
    free(absr);
    return duet_err_set(err, DUET_ENOMEM, "cross-correlation: out of memory");
  }
  double norm = 1.0 / sqrt(ea * eb);
  int best = 0;
  for (int i = 0; i < n; i++) {
    r[i] = dot_at(ca, na, cb, nb, i - max_lag) * norm;
    absr[i] = fabs(r[i]);
    if (r[i] > r[best]) best = i;
  }
  free(ca);
  free(cb);
  qsort(absr, (size_t)n, sizeof(double), cmp_double);
  double median = n % 2 ? absr[n / 2] : 0.5 * (absr[n / 2 - 1] + absr[n / 2]);
  free(absr);
  double frac = 0.0;
  if (best > 0 && best < n - 1) frac = duet_parabolic_peak(r[best - 1], r[best], r[best + 1]);
  out->max_lag = max_lag;
  out->r = r;
  out->peak = best - max_lag;
  out->lag = out->peak + frac;
  out->peak_r = r[best];
  out->confidence = median > 0 ? r[best] / median : INFINITY;
  return DUET_OK;
}

void duet_xcorr_free(duet_xcorr *x) {
  free(x->r);
  memset(x, 0, sizeof *x);
}
