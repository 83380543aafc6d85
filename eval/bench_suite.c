/* Suite files through core/config.h tables: one [suite] section and up to
 * DUET_BENCH_MAX_CASES [case.K] sections, whose tables are built per load because each needs
 * its own section name. */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/bench.h"
#include "infer/sampler.h"

/* Tasks a suite can run: those whose conditioning a clip file can supply whole. Inpainting
 * and editing need masks, t2v and t2a leave one modality as noise, so sync means nothing. */
static const char *const task_choices[] = {"t2av", "i2av", "extend", "v2a", "a2v", NULL};
static const duet_task task_values[] = {DUET_TASK_T2AV, DUET_TASK_I2AV, DUET_TASK_EXTEND,
                                        DUET_TASK_V2A, DUET_TASK_A2V};
/* Indexed by duet_sampler_kind. */
static const char *const sampler_choices[] = {"euler", "heun", NULL};

typedef struct raw_suite {
  char name[DUET_CFG_STRING_MAX], reference[DUET_CFG_STRING_MAX];
  int reference_clips, prompts_from_reference, task, steps, sampler, seeds, keep_frames, figures;
  int64_t seed;
  double cfg_video, cfg_audio, sync_cfg_video, sync_cfg_audio, audio_lag, shift, max_lag;
  bool ema, avalign;
} raw_suite;

/* A case as read. A key the section leaves out keeps a value no file can write (a control
 * character, -1, 0 below a minimum of 1, NaN), which is how resolve() tells "not given" from
 * any value a user may choose, the empty prompt included. */
typedef struct raw_case {
  char prompt[DUET_CFG_STRING_MAX];
  int task, clip, steps, sampler, keep_frames;
  int64_t seed;
  double cfg_video, cfg_audio;
} raw_case;

#define UNSET_PROMPT '\x01'
/* 2^53: every seed up to it survives the range check, which compares as a double. */
#define SEED_MAX 9007199254740992.0

/* A range with min > max (1, 0) means none. */
#define S(name, type, lo, hi, choices, help) \
  { "suite", #name, type, offsetof(raw_suite, name), lo, hi, choices, help }
static const duet_cfg_key suite_keys[] = {
    S(name, DUET_CFG_STRING, 1, 0, NULL, "suite name (default: the file name)"),
    S(reference, DUET_CFG_STRING, 1, 0, NULL, "clip file (HDF5) of real clips"),
    S(reference_clips, DUET_CFG_INT, 0, 1000000, NULL,
      "the reference set: clips 0..N-1 (0 = up to the last clip a case uses)"),
    S(prompts_from_reference, DUET_CFG_INT, 0, DUET_BENCH_MAX_CASES, NULL,
      "cases 0..N-1 take their prompt from reference clips 0..N-1"),
    S(task, DUET_CFG_ENUM, 1, 0, task_choices, "task of cases that name none"),
    S(steps, DUET_CFG_INT, 1, 10000, NULL, "sampler steps"),
    S(sampler, DUET_CFG_ENUM, 1, 0, sampler_choices, "ODE sampler"),
    S(cfg_video, DUET_CFG_DOUBLE, 0, 100, NULL, "video guidance scale (1 = off)"),
    S(cfg_audio, DUET_CFG_DOUBLE, 0, 100, NULL, "audio guidance scale (1 = off)"),
    S(sync_cfg_video, DUET_CFG_DOUBLE, 0, 100, NULL, "cross-modal guidance of the video by the audio (1 = off)"),
    S(sync_cfg_audio, DUET_CFG_DOUBLE, 0, 100, NULL, "cross-modal guidance of the audio by the video (1 = off)"),
    S(audio_lag, DUET_CFG_DOUBLE, -1, 1, NULL, "the audio's lag behind the video in flow time (0 = shared times)"),
    S(shift, DUET_CFG_DOUBLE, 0, 100, NULL, "schedule shift (0 = the checkpoint's)"),
    S(seed, DUET_CFG_INT64, 0, SEED_MAX, NULL, "first seed of cases that name none"),
    S(seeds, DUET_CFG_INT, 1, DUET_BENCH_MAX_SEEDS, NULL, "samples per case: seed, seed+1, ..."),
    S(keep_frames, DUET_CFG_INT, 0, 1000000, NULL, "extend: frames kept (0 = half)"),
    S(ema, DUET_CFG_BOOL, 1, 0, NULL, "sample with the EMA weights when present"),
    S(avalign, DUET_CFG_BOOL, 1, 0, NULL, "compute AV-Align and event scores"),
    S(max_lag, DUET_CFG_DOUBLE, 0.01, 60, NULL, "offset search range, seconds"),
    S(figures, DUET_CFG_INT, 0, 1000000, NULL, "samples with figures in report.md"),
};
#undef S
enum { N_SUITE_KEYS = sizeof suite_keys / sizeof suite_keys[0] };

/* Section names are filled in per case. */
#define C(name, type, lo, hi, choices, help) \
  { NULL, #name, type, offsetof(raw_case, name), lo, hi, choices, help }
static const duet_cfg_key case_key_template[] = {
    C(prompt, DUET_CFG_STRING, 1, 0, NULL,
      "caption (default: the caption of the case's reference clip)"),
    C(task, DUET_CFG_ENUM, 1, 0, task_choices, "task (default: suite.task)"),
    C(clip, DUET_CFG_INT, 0, 1000000000, NULL,
      "reference clip for conditioning, events and quality (default: K)"),
    C(seed, DUET_CFG_INT64, 0, SEED_MAX, NULL, "first seed (default: suite.seed)"),
    C(steps, DUET_CFG_INT, 1, 10000, NULL, "sampler steps (default: suite.steps)"),
    C(sampler, DUET_CFG_ENUM, 1, 0, sampler_choices, "ODE sampler (default: suite.sampler)"),
    C(cfg_video, DUET_CFG_DOUBLE, 0, 100, NULL, "video guidance (default: suite.cfg_video)"),
    C(cfg_audio, DUET_CFG_DOUBLE, 0, 100, NULL, "audio guidance (default: suite.cfg_audio)"),
    C(keep_frames, DUET_CFG_INT, 1, 1000000, NULL, "extend: frames kept (default: suite's)"),
};
#undef C
enum { N_CASE_KEYS = sizeof case_key_template / sizeof case_key_template[0] };

typedef struct suite_tables {
  raw_suite suite;
  raw_case cases[DUET_BENCH_MAX_CASES];
  char sections[DUET_BENCH_MAX_CASES][16];
  duet_cfg_key case_keys[DUET_BENCH_MAX_CASES][N_CASE_KEYS];
  duet_cfg_group groups[1 + DUET_BENCH_MAX_CASES];
} suite_tables;

static void tables_init(suite_tables *t) {
  t->suite = (raw_suite){.reference_clips = 0,
                         .task = 0,
                         .steps = 25,
                         .sampler = DUET_SAMPLER_HEUN,
                         .seeds = 1,
                         .figures = 8,
                         .seed = 0,
                         .cfg_video = 3,
                         .cfg_audio = 3,
                         .sync_cfg_video = 1,
                         .sync_cfg_audio = 1,
                         .audio_lag = 0,
                         .shift = 0,
                         .max_lag = 2,
                         .ema = true,
                         .avalign = true};
  t->groups[0] = (duet_cfg_group){suite_keys, N_SUITE_KEYS, &t->suite};
  for (int k = 0; k < DUET_BENCH_MAX_CASES; k++) {
    raw_case *c = &t->cases[k];
    memset(c, 0, sizeof *c);
    c->prompt[0] = UNSET_PROMPT;
    c->task = c->clip = c->sampler = -1;
    c->seed = -1;
    c->steps = c->keep_frames = 0;
    c->cfg_video = c->cfg_audio = NAN;
    snprintf(t->sections[k], sizeof t->sections[k], "case.%d", k);
    for (int i = 0; i < N_CASE_KEYS; i++) {
      t->case_keys[k][i] = case_key_template[i];
      t->case_keys[k][i].section = t->sections[k];
    }
    t->groups[1 + k] = (duet_cfg_group){t->case_keys[k], N_CASE_KEYS, c};
  }
}

static int case_given(const raw_case *c) {
  return c->prompt[0] != UNSET_PROMPT || c->task >= 0 || c->clip >= 0 || c->seed >= 0 ||
         c->steps > 0 || c->sampler >= 0 || !isnan(c->cfg_video) || !isnan(c->cfg_audio) ||
         c->keep_frames > 0;
}

static int task_needs_clip(int t) { return t != DUET_TASK_T2AV; }

/* The file name without folders and extension. */
static void stem_of(const char *path, char *out, size_t cap) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  size_t n = strlen(base);
  const char *dot = strrchr(base, '.');
  if (dot && dot != base) n = (size_t)(dot - base);
  if (n >= cap) n = cap - 1;
  memcpy(out, base, n);
  out[n] = '\0';
}

static int resolve(const suite_tables *t, const char *path, duet_bench_suite *s, duet_err *err) {
  const raw_suite *r = &t->suite;
  if (!r->reference[0])
    return duet_err_set(err, DUET_EINVAL,
                        "%s: suite.reference is not set: name the clip file of real clips", path);
  snprintf(s->file, sizeof s->file, "%s", path);
  if (r->name[0]) snprintf(s->name, sizeof s->name, "%s", r->name);
  else stem_of(path, s->name, sizeof s->name);
  snprintf(s->reference, sizeof s->reference, "%s", r->reference);
  s->reference_clips = r->reference_clips;
  s->seeds = r->seeds;
  s->shift = r->shift;
  s->sync_cfg_video = r->sync_cfg_video;
  s->sync_cfg_audio = r->sync_cfg_audio;
  s->audio_lag = r->audio_lag;
  s->ema = r->ema;
  s->avalign = r->avalign;
  s->max_lag = r->max_lag;
  s->figures = r->figures;
  duet_bench_case *d = &s->defaults;
  memset(d, 0, sizeof *d);
  d->number = -1;
  d->task = task_values[r->task];
  d->clip = -1;
  d->seed = (uint64_t)r->seed;
  d->steps = r->steps;
  d->sampler = r->sampler;
  d->cfg_video = r->cfg_video;
  d->cfg_audio = r->cfg_audio;
  d->keep_frames = r->keep_frames;

  int n = 0;
  for (int k = 0; k < DUET_BENCH_MAX_CASES; k++)
    n += k < r->prompts_from_reference || case_given(&t->cases[k]);
  if (n == 0)
    return duet_err_set(err, DUET_EINVAL,
                        "%s: no cases: set suite.prompts_from_reference or add [case.K] sections",
                        path);
  s->cases = calloc((size_t)n, sizeof *s->cases);
  if (!s->cases) return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", path);
  for (int k = 0; k < DUET_BENCH_MAX_CASES; k++) {
    const raw_case *c = &t->cases[k];
    if (!(k < r->prompts_from_reference || case_given(c))) continue;
    duet_bench_case *o = &s->cases[s->n_cases++];
    *o = *d;
    o->number = k;
    if (c->task >= 0) o->task = task_values[c->task];
    int has_prompt = c->prompt[0] != UNSET_PROMPT;
    if (has_prompt) snprintf(o->prompt, sizeof o->prompt, "%s", c->prompt);
    o->prompt_from_clip = !has_prompt;
    /* A case with its own prompt and nothing to take from a clip stands alone: it has no
     * counterpart to score events or quality against unless it names one. */
    o->clip = c->clip >= 0 ? c->clip : (!has_prompt || task_needs_clip(o->task)) ? k : -1;
    if (c->seed >= 0) o->seed = (uint64_t)c->seed;
    if (c->steps > 0) o->steps = c->steps;
    if (c->sampler >= 0) o->sampler = c->sampler;
    if (!isnan(c->cfg_video)) o->cfg_video = c->cfg_video;
    if (!isnan(c->cfg_audio)) o->cfg_audio = c->cfg_audio;
    if (c->keep_frames > 0) o->keep_frames = c->keep_frames;
  }
  return DUET_OK;
}

int duet_bench_suite_load(const char *path, const char *const *sets, int n_sets,
                          duet_bench_suite *out, duet_err *err) {
  memset(out, 0, sizeof *out);
  if (!path || !*path) return duet_err_set(err, DUET_EINVAL, "no suite file given");
  suite_tables *t = malloc(sizeof *t);
  if (!t) return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", path);
  tables_init(t);
  int ng = 1 + DUET_BENCH_MAX_CASES;
  int rc = duet_config_load_file_multi(t->groups, ng, path, err);
  for (int i = 0; !rc && i < n_sets; i++) rc = duet_config_set_multi(t->groups, ng, sets[i], err);
  if (!rc) rc = resolve(t, path, out, err);
  free(t);
  if (rc) duet_bench_suite_free(out);
  return rc;
}

void duet_bench_suite_free(duet_bench_suite *s) {
  free(s->cases);
  s->cases = NULL;
  s->n_cases = 0;
}
