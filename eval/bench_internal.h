/* What a bench run keeps for its report: numbers per sample and per reference clip. */
#ifndef DUET_EVAL_BENCH_INTERNAL_H
#define DUET_EVAL_BENCH_INTERNAL_H

#include <stdint.h>

#include "data/clips.h"
#include "eval/bench.h"
#include "eval/quality.h"
#include "eval/report.h"

typedef struct duet_bench_sample {
  int case_index; /* into suite->cases */
  uint64_t seed;
  char mp4[128];         /* file name inside the output folder; "" when not written */
  duet_sync_entry sync;  /* the measurements, or the failure */
  double sample_seconds; /* sampling and decoding */
  double audio_peak;     /* largest finite |sample| as generated */
  int64_t audio_clipped; /* samples outside [-1, 1] or not finite, clipped in the MP4 */
  /* Quality against the case's reference clip, over what the task generated. */
  int has_video_q, video_from; /* first generated frame */
  duet_video_quality video_q;
  int has_audio_q;
  double audio_from_s; /* first generated second of audio */
  double lsd;
  duet_mrstft mrstft;
} duet_bench_sample;

typedef struct duet_bench_ref {
  int clip;
  int in_set;  /* 1: one of clips 0 .. reference_clips - 1, counted in the summary */
  int figures; /* 1: a sample with figures derives from it */
  char *caption;
  double *events;
  int n_events;
  duet_sync_entry sync;
} duet_bench_ref;

typedef struct duet_bench_state {
  const duet_bench_suite *suite;
  const char *ckpt, *out_dir;
  duet_clip_shape shape; /* the reference file's, which is also the model's */
  int64_t file_clips;
  int file_has_events;
  int n_refs;
  duet_bench_ref *refs; /* sorted by clip */
  int n_samples;
  duet_bench_sample *samples;
  double seconds;
} duet_bench_state;

/* The entry of reference clip `clip`, or NULL. */
const duet_bench_ref *duet_bench_ref_find(const duet_bench_state *st, int clip);

/* metrics.json and report.md, atomically. */
int duet_bench_report_write(const duet_bench_state *st, duet_err *err);

#endif
