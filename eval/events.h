/* Detected sound events against ground-truth event times (synthetic data knows them). */
#ifndef DUET_EVAL_EVENTS_H
#define DUET_EVAL_EVENTS_H

#include "core/error.h"

typedef struct duet_event_score {
  int n_detected, n_truth, n_matched;
  double precision, recall, f1; /* 0 when there is nothing to divide by */
  double mean_offset_ms;        /* mean(detected - truth) over matches; NaN without matches */
} duet_event_score;

/* One-to-one matching within |detected - truth| <= tolerance seconds. Both lists are sorted
 * first, and a sweep in time order pairs each truth with the earliest free detection in its
 * window, which gives the largest possible number of matches for windows of equal width. */
int duet_events_match(const double *detected, int n_detected, const double *truth, int n_truth,
                      double tolerance, duet_event_score *out, duet_err *err);

#endif
