#include "eval/events.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

int duet_events_match(const double *detected, int n_detected, const double *truth, int n_truth,
                      double tolerance, duet_event_score *out, duet_err *err) {
  memset(out, 0, sizeof *out);
  if (n_detected < 0 || n_truth < 0 || !(tolerance >= 0))
    return duet_err_set(err, DUET_EINVAL, "events: bad counts or tolerance");
  double *d = malloc(sizeof(double) * (size_t)(n_detected + 1));
  double *t = malloc(sizeof(double) * (size_t)(n_truth + 1));
  if (!d || !t) {
    free(d);
    free(t);
    return duet_err_set(err, DUET_ENOMEM, "events: out of memory");
  }
  if (n_detected) memcpy(d, detected, sizeof(double) * (size_t)n_detected);
  if (n_truth) memcpy(t, truth, sizeof(double) * (size_t)n_truth);
  qsort(d, (size_t)n_detected, sizeof(double), cmp_double);
  qsort(t, (size_t)n_truth, sizeof(double), cmp_double);
  int j = 0, matched = 0;
  double sum = 0.0;
  for (int i = 0; i < n_truth && j < n_detected; i++) {
    while (j < n_detected && d[j] < t[i] - tolerance) j++;
    if (j < n_detected && d[j] <= t[i] + tolerance) {
      sum += d[j] - t[i];
      matched++;
      j++;
    }
  }
  free(d);
  free(t);
  out->n_detected = n_detected;
  out->n_truth = n_truth;
  out->n_matched = matched;
  out->precision = n_detected ? (double)matched / n_detected : 0.0;
  out->recall = n_truth ? (double)matched / n_truth : 0.0;
  double pr = out->precision + out->recall;
  out->f1 = pr > 0 ? 2 * out->precision * out->recall / pr : 0.0;
  out->mean_offset_ms = matched ? 1000.0 * sum / matched : NAN;
  return DUET_OK;
}
