/* Benchmark suites: a suite file names a reference clip file and a list of cases (a prompt and
 * a task, conditioned where the task needs it on a reference clip). duet_bench_run samples every
 * case from a checkpoint with duet_pipeline_run, the function duet-infer calls, measures the
 * samples and the reference clips with the same per-clip metrics (eval/eval.h), adds quality
 * figures where a sample has a real counterpart for what it generated, and writes the samples
 * as MP4, metrics.json and report.md. The suite format is in docs/eval.md. */
#ifndef DUET_EVAL_BENCH_H
#define DUET_EVAL_BENCH_H

#include <stdint.h>

#include "core/config.h"
#include "core/error.h"

/* Case sections are [case.0] .. [case.99]. */
#define DUET_BENCH_MAX_CASES 100
/* Samples per case (seeds seed, seed + 1, ...). */
#define DUET_BENCH_MAX_SEEDS 100

typedef struct duet_bench_case {
  int number;                       /* K of [case.K] */
  int task;                         /* duet_task (model/flow.h): t2av, i2av, extend, v2a or a2v */
  char prompt[DUET_CFG_STRING_MAX]; /* as written; see prompt_from_clip */
  int prompt_from_clip;             /* 1: the prompt is the caption of reference clip `clip` */
  int clip;                         /* the reference clip the case derives from, or -1 for none */
  uint64_t seed;                    /* first seed */
  int steps;
  int sampler; /* duet_sampler_kind (infer/sampler.h) */
  double cfg_video, cfg_audio;
  int keep_frames; /* extend: frames kept from the reference clip; 0 = half */
} duet_bench_case;

typedef struct duet_bench_suite {
  char file[4096]; /* the suite file as given */
  char name[DUET_CFG_STRING_MAX];
  char reference[DUET_CFG_STRING_MAX]; /* clip file (HDF5) of real clips */
  /* The reference set, the summary's reference column: clips 0 .. reference_clips - 1; 0 = up
   * to the last clip a case uses, or as many clips as cases when none does. */
  int reference_clips;
  int seeds;                /* samples per case */
  double shift;             /* schedule shift; 0 = the checkpoint's flow.time_shift */
  double sync_cfg_video, sync_cfg_audio; /* cross-modal guidance (infer/sampler.h); 1 = off */
  double audio_lag;         /* the audio's lag behind the video in flow time (infer/sampler.h) */
  int ema;                  /* 1: sample with the EMA weights when the checkpoint has them */
  int avalign;              /* 1: AV-Align and event scores (the slow part at high resolution) */
  double max_lag;           /* offset search range, seconds */
  int figures;              /* samples (in case order) that get figures in report.md */
  duet_bench_case defaults; /* the suite's own sampling settings, as the cases inherit them */
  int n_cases;
  duet_bench_case *cases; /* in section order */
} duet_bench_suite;

/* Reads a suite file, then applies "section.key=value" overrides (--set) in order. Unknown
 * sections and keys, bad values and keys given twice are errors naming file:line and the key
 * (or the override). Checks that every case can be resolved without the reference file; the
 * checks against the file and the checkpoint happen in duet_bench_run. */
int duet_bench_suite_load(const char *path, const char *const *sets, int n_sets,
                          duet_bench_suite *out, duet_err *err);
void duet_bench_suite_free(duet_bench_suite *s);

/* Progress, from the calling thread. */
typedef enum duet_bench_phase {
  DUET_BENCH_REFERENCE, /* a reference clip was measured: done of total */
  DUET_BENCH_SAMPLING,  /* sample `done` (0-based) is at sampler step `step` of `steps` */
  DUET_BENCH_SAMPLED    /* sample done - 1 is finished: written and measured, or failed */
} duet_bench_phase;

typedef struct duet_bench_progress_info {
  duet_bench_phase phase;
  int done, total;   /* reference clips or samples */
  int step, steps;   /* sampler steps of the current sample (SAMPLING) */
  const char *name;  /* the clip or sample */
  const char *error; /* a failed clip or sample's one-line message, else NULL */
} duet_bench_progress_info;

typedef void (*duet_bench_progress)(const duet_bench_progress_info *info, void *ctx);

typedef struct duet_bench_opts {
  const char *ckpt;             /* checkpoint directory (e.g. runs/x/last) */
  const char *out_dir;          /* created if missing */
  duet_bench_progress progress; /* may be NULL */
  void *progress_ctx;
} duet_bench_opts;

typedef struct duet_bench_outcome {
  int samples, samples_failed;     /* a failed sample could not be generated or measured */
  int reference, reference_failed; /* reference clips: the set and every case's clip */
  double seconds;
} duet_bench_outcome;

/* Runs the whole suite. Returns a negative code, writing no report, when the run cannot
 * start or finish: a checkpoint or reference file that cannot be opened, a reference clip
 * shape unlike the checkpoint's model, a case naming a clip the file does not have, an output
 * that cannot be written. A sample or clip that cannot be measured is not such an error: it is
 * listed as failed in the report, counted in *out, and the run goes on. */
int duet_bench_run(const duet_bench_suite *s, const duet_bench_opts *o, duet_bench_outcome *out,
                   duet_err *err);

#endif
