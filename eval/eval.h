/* eval's contract: evaluate one audio-video clip held in memory. duet-eval sync runs this on
 * every input, and a benchmark runner calls it directly on the clips it generates.
 *
 * Metrics (docs/eval.md has the details): the audio-video offset from onset strength against
 * motion energy (positive = audio late), AV-Align as the reference implementation computes it,
 * and, when ground-truth event times are given, precision/recall/F1 of the audio onsets. */
#ifndef DUET_EVAL_EVAL_H
#define DUET_EVAL_EVAL_H

#include <stdint.h>

#include "core/error.h"
#include "eval/avalign.h"
#include "eval/events.h"
#include "eval/offset.h"

typedef struct duet_eval_clip {
  const uint8_t *video; /* [frames, height, width, 3] RGB */
  int frames, height, width;
  double fps;
  const float *audio;   /* mono, [samples], any rate */
  int64_t samples;
  int sample_rate;
  const double *events; /* ground-truth sound-event times in seconds, or NULL */
  int n_events;
} duet_eval_clip;

typedef struct duet_eval_opts {
  duet_offset_opts offset;
  int avalign; /* 1 (default): also compute AV-Align and, with events, event scores */
} duet_eval_opts;

void duet_eval_opts_default(duet_eval_opts *o);

typedef struct duet_eval_result {
  duet_offset offset;
  int has_avalign;
  duet_avalign avalign;
  int has_events;        /* events given and AV-Align on: audio onsets scored against them */
  duet_event_score events;
  double seconds;        /* wall-clock time the evaluation took */
} duet_eval_result;

/* Fills *r (free with duet_eval_result_free, also after a failure). Fails with a one-line
 * message on clips that cannot be measured: fewer than 2 frames, no or silent audio, a video
 * without any change. */
int duet_eval_clip_run(const duet_eval_clip *clip, const duet_eval_opts *opts,
                       duet_eval_result *r, duet_err *err);
void duet_eval_result_free(duet_eval_result *r);

#endif
