/* Band-limited audio resampling with a Kaiser-windowed sinc, used to bring audio to the rate a
 * metric is defined at (AV-Align: 22050 Hz, which the reference reaches with soxr). */
#ifndef DUET_EVAL_RESAMPLE_H
#define DUET_EVAL_RESAMPLE_H

#include <stdint.h>

#include "core/error.h"

/* *out (malloc'd) gets ceil(n * to_rate / from_rate) samples, as librosa.resample sizes it.
 * Equal rates copy. */
int duet_resample(const float *in, int64_t n, int from_rate, int to_rate, float **out,
                  int64_t *n_out, duet_err *err);

#endif
