/* Running a suite: check that the reference file and the checkpoint agree, measure the
 * reference clips, then sample, write and measure every case. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "data/media.h"
#include "eval/bench_internal.h"
#include "infer/pipeline.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

const duet_bench_ref *duet_bench_ref_find(const duet_bench_state *st, int clip) {
  for (int i = 0; i < st->n_refs; i++)
    if (st->refs[i].clip == clip) return &st->refs[i];
  return NULL;
}

static void describe(char *out, size_t cap, int w, int h, int frames, double fps, int rate,
                     int64_t samples) {
  snprintf(out, cap, "%dx%d clips of %d frames at %g fps with %lld audio samples at %d Hz", w, h,
           frames, fps, (long long)samples, rate);
}

/* The model makes clips of exactly one shape; a reference of another cannot condition it, and
 * comparing metrics across shapes would mislead. */
static int check_shape(const duet_bench_suite *s, const char *ckpt, const duet_pipeline *p,
                       const duet_clip_shape *sh, duet_err *err) {
  const duet_model_config *c = &p->model_cfg;
  int64_t samples = duet_audio_codec_samples(p->audio, c->audio_frames);
  if (sh->width == c->video_width && sh->height == c->video_height &&
      sh->frames == c->video_frames && fabs(sh->fps - c->fps) <= 1e-9 * c->fps &&
      sh->sample_rate == p->audio_cfg.sample_rate && sh->audio_samples == samples)
    return DUET_OK;
  char ref[256], model[256];
  describe(ref, sizeof ref, sh->width, sh->height, sh->frames, sh->fps, sh->sample_rate,
           sh->audio_samples);
  describe(model, sizeof model, c->video_width, c->video_height, c->video_frames, c->fps,
           p->audio_cfg.sample_rate, samples);
  return duet_err_set(
      err, DUET_EINVAL,
      "suite %s: reference %s holds %s, but checkpoint %s makes %s; they must match", s->file,
      s->reference, ref, ckpt, model);
}

static int keep_frames_of(const duet_bench_case *c, int frames) {
  return c->keep_frames > 0 ? c->keep_frames : frames / 2;
}

/* Everything about the cases that the file and the model decide. */
static int check_cases(const duet_bench_suite *s, int64_t count, int frames, duet_err *err) {
  for (int i = 0; i < s->n_cases; i++) {
    const duet_bench_case *c = &s->cases[i];
    if (c->clip >= count)
      return duet_err_set(err, DUET_EINVAL,
                          "suite %s: case.%d uses reference clip %d, but %s has %lld clip(s)",
                          s->file, c->number, c->clip, s->reference, (long long)count);
    if (c->task == DUET_TASK_EXTEND) {
      int k = keep_frames_of(c, frames);
      if (k < 1 || k >= frames)
        return duet_err_set(
            err, DUET_EINVAL,
            "suite %s: case.%d keeps %d frame(s); extend needs 1 .. %d of the model's %d", s->file,
            c->number, k, frames - 1, frames);
    }
  }
  if (s->reference_clips > count)
    return duet_err_set(err, DUET_EINVAL,
                        "suite %s: suite.reference_clips = %d, but %s has %lld clip(s)", s->file,
                        s->reference_clips, s->reference, (long long)count);
  return DUET_OK;
}

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

/* The reference set 0 .. R-1 plus every clip a case derives from. */
static int plan_refs(duet_bench_state *st, int64_t count, duet_err *err) {
  const duet_bench_suite *s = st->suite;
  int R = s->reference_clips;
  if (R == 0) {
    R = 0;
    for (int i = 0; i < s->n_cases; i++)
      if (s->cases[i].clip + 1 > R) R = s->cases[i].clip + 1;
    if (R == 0) R = (int)(s->n_cases < count ? s->n_cases : count);
  }
  int *clips = malloc(sizeof(int) * (size_t)(R + s->n_cases));
  if (!clips) return duet_err_set(err, DUET_ENOMEM, "bench: out of memory");
  int n = 0;
  for (int i = 0; i < R; i++) clips[n++] = i;
  for (int i = 0; i < s->n_cases; i++)
    if (s->cases[i].clip >= R) clips[n++] = s->cases[i].clip;
  qsort(clips, (size_t)n, sizeof *clips, cmp_int);
  st->refs = calloc((size_t)(n > 0 ? n : 1), sizeof *st->refs);
  if (!st->refs) {
    free(clips);
    return duet_err_set(err, DUET_ENOMEM, "bench: out of memory");
  }
  for (int i = 0; i < n; i++) {
    if (st->n_refs && st->refs[st->n_refs - 1].clip == clips[i]) continue;
    duet_bench_ref *r = &st->refs[st->n_refs++];
    r->clip = clips[i];
    r->in_set = clips[i] < R;
  }
  free(clips);
  /* Figures for a sample come with figures for its counterpart, to look at side by side. */
  for (int i = 0, sample = 0; i < s->n_cases; i++, sample += s->seeds)
    if (sample < s->figures && s->cases[i].clip >= 0)
      for (int j = 0; j < st->n_refs; j++)
        if (st->refs[j].clip == s->cases[i].clip) st->refs[j].figures = 1;
  return DUET_OK;
}

/* Buffers for one clip of the reference file. */
typedef struct clip_buf {
  uint8_t *video;
  float *audio;
  float *events;
} clip_buf;

static int clip_buf_alloc(clip_buf *b, const duet_clip_shape *sh, duet_err *err) {
  b->video = malloc((size_t)sh->frames * sh->height * sh->width * 3);
  b->audio = malloc(sizeof(float) * (size_t)sh->audio_samples);
  b->events = malloc(sizeof(float) * (size_t)(sh->max_events > 0 ? sh->max_events : 1));
  if (!b->video || !b->audio || !b->events)
    return duet_err_set(err, DUET_ENOMEM, "bench: out of memory for a %dx%dx%d clip", sh->frames,
                        sh->height, sh->width);
  return DUET_OK;
}

static void clip_buf_free(clip_buf *b) {
  free(b->video);
  free(b->audio);
  free(b->events);
}

static duet_eval_clip eval_clip_of(const uint8_t *video, const float *audio,
                                   const duet_clip_shape *sh, const duet_bench_ref *truth) {
  duet_eval_clip c = {video, sh->frames,        sh->height,      sh->width, sh->fps,
                      audio, sh->audio_samples, sh->sample_rate, NULL,      0};
  if (truth && truth->n_events > 0) {
    c.events = truth->events;
    c.n_events = truth->n_events;
  }
  return c;
}

static void report_progress(const duet_bench_opts *o, duet_bench_phase phase, int done, int total,
                            int step, int steps, const char *name, const char *error) {
  if (!o->progress) return;
  duet_bench_progress_info info = {phase, done, total, step, steps, name, error};
  o->progress(&info, o->progress_ctx);
}

static int measure_refs(duet_bench_state *st, duet_clip_file *f, const duet_eval_opts *eo,
                        const duet_bench_opts *o, duet_err *err) {
  clip_buf b = {0};
  int rc = clip_buf_alloc(&b, &st->shape, err);
  for (int i = 0; !rc && i < st->n_refs; i++) {
    duet_bench_ref *r = &st->refs[i];
    char name[sizeof st->suite->reference + 32];
    snprintf(name, sizeof name, "%s#%d", st->suite->reference, r->clip);
    int n_events = 0;
    rc = duet_clip_file_read(f, r->clip, b.video, b.audio, &r->caption, NULL,
                             st->file_has_events ? b.events : NULL, &n_events, err);
    if (rc) break; /* the file was valid on open: a read error is the file's, not the clip's */
    if (n_events > 0) {
      r->events = malloc(sizeof(double) * (size_t)n_events);
      if (!r->events) {
        rc = duet_err_set(err, DUET_ENOMEM, "bench: out of memory");
        break;
      }
      for (int e = 0; e < n_events; e++) r->events[e] = b.events[e];
      r->n_events = n_events;
    }
    duet_eval_clip c = eval_clip_of(b.video, b.audio, &st->shape, r);
    duet_eval_result res;
    memset(&res, 0, sizeof res);
    duet_err merr = {0};
    if (duet_eval_clip_run(&c, eo, &res, &merr)) {
      duet_err_prefix(&merr, "%s: ", name);
      duet_sync_entry_fail(&r->sync, name, merr.msg);
    } else {
      duet_sync_entry_set(&r->sync, name, &c, &res);
      if (r->figures) {
        char stem[64];
        snprintf(stem, sizeof stem, "reference-%04d", r->clip);
        rc = duet_sync_figures(st->out_dir, stem, &c, &res, &r->sync, err);
      }
    }
    duet_eval_result_free(&res);
    report_progress(o, DUET_BENCH_REFERENCE, i + 1, st->n_refs, 0, 0, name,
                    r->sync.ok ? NULL : r->sync.error);
  }
  clip_buf_free(&b);
  return rc;
}

typedef struct step_ctx {
  const duet_bench_opts *o;
  int index, total;
  const char *name;
} step_ctx;

static void on_step(int step, int steps, void *ctx) {
  step_ctx *c = ctx;
  report_progress(c->o, DUET_BENCH_SAMPLING, c->index, c->total, step, steps, c->name, NULL);
}

/* Quality only where the sample has a real counterpart for what it generated: the frames after
 * the kept ones (i2av, extend) or all of them (a2v), and the audio after the kept part
 * (extend) or all of it (v2a). A t2av sample and its caption's clip share a description, not
 * pixels, so they are not compared. */
static int measure_quality(duet_bench_sample *smp, const duet_bench_case *c,
                           const duet_av_result *g, const clip_buf *ref, const duet_clip_shape *sh,
                           duet_err *err) {
  int T = sh->frames, H = sh->height, W = sh->width;
  int from = -1;
  if (c->task == DUET_TASK_I2AV) from = 1;
  else if (c->task == DUET_TASK_EXTEND) from = keep_frames_of(c, T);
  else if (c->task == DUET_TASK_A2V) from = 0;
  /* SSIM's 11x11 window needs frames at least that large. */
  if (from >= 0 && from < T && H >= 11 && W >= 11) {
    size_t fb = (size_t)H * W * 3;
    int rc = duet_video_quality_compute(ref->video + from * fb, g->video + from * fb, T - from, H,
                                        W, &smp->video_q, err);
    if (rc) return rc;
    smp->has_video_q = 1;
    smp->video_from = from;
  }
  int64_t a0 = -1;
  if (c->task == DUET_TASK_V2A) a0 = 0;
  else if (c->task == DUET_TASK_EXTEND)
    a0 = (int64_t)llround(keep_frames_of(c, T) / sh->fps * sh->sample_rate);
  if (a0 >= 0 && a0 < g->samples) {
    int64_t n = g->samples - a0;
    int rc = duet_log_spectral_distance(ref->audio + a0, g->audio + a0, n, &smp->lsd, err);
    if (!rc) rc = duet_mrstft_distance(ref->audio + a0, g->audio + a0, n, &smp->mrstft, err);
    if (rc) return rc;
    smp->has_audio_q = 1;
    smp->audio_from_s = (double)a0 / sh->sample_rate;
  }
  return DUET_OK;
}

/* An MP4 holds audio in [-1, 1]. An untrained or diverged model can decode to far louder
 * audio (or to NaN), which the AAC encoder would clip anyway but first spends minutes on; such
 * a sample is written clipped (non-finite values as 0), measured as generated, and the
 * clipping is reported. *out stays NULL when nothing needs clipping. */
static int clip_for_mp4(duet_bench_sample *smp, const duet_av_result *g, float **out,
                        duet_err *err) {
  *out = NULL;
  int64_t bad = 0;
  double peak = 0;
  for (int64_t i = 0; i < g->samples; i++) {
    float x = g->audio[i];
    if (!isfinite(x) || fabsf(x) > 1.0f) bad++;
    if (isfinite(x) && fabsf(x) > peak) peak = fabsf(x);
  }
  smp->audio_peak = peak;
  smp->audio_clipped = bad;
  if (!bad) return DUET_OK;
  float *c = malloc(sizeof(float) * (size_t)g->samples);
  if (!c) return duet_err_set(err, DUET_ENOMEM, "bench: out of memory");
  for (int64_t i = 0; i < g->samples; i++) {
    float x = g->audio[i];
    c[i] = !isfinite(x) ? 0.0f : x > 1.0f ? 1.0f : x < -1.0f ? -1.0f : x;
  }
  *out = c;
  return DUET_OK;
}

/* Generates, writes and measures one sample. A failure that belongs to the sample is recorded
 * in it; only one that stops the run (an output that cannot be written) is returned. */
static int run_sample(duet_bench_state *st, duet_pipeline *p, const duet_eval_opts *eo,
                      const duet_bench_opts *o, duet_bench_sample *smp, int index, clip_buf *ref,
                      duet_err *err) {
  const duet_bench_suite *s = st->suite;
  const duet_bench_case *c = &s->cases[smp->case_index];
  const duet_clip_shape *sh = &st->shape;
  const duet_bench_ref *truth = c->clip >= 0 ? duet_bench_ref_find(st, c->clip) : NULL;
  char name[128];
  snprintf(name, sizeof name, "case-%02d-seed-%llu.mp4", c->number, (unsigned long long)smp->seed);

  duet_av_request req;
  memset(&req, 0, sizeof req);
  duet_sample_params_defaults(&req.sample);
  req.sample.task = (duet_task)c->task;
  req.sample.sampler = (duet_sampler_kind)c->sampler;
  req.sample.steps = c->steps;
  req.sample.cfg_video = c->cfg_video;
  req.sample.cfg_audio = c->cfg_audio;
  req.sample.sync_cfg_video = s->sync_cfg_video;
  req.sample.sync_cfg_audio = s->sync_cfg_audio;
  req.sample.audio_lag = s->audio_lag;
  req.sample.time_shift = s->shift > 0 ? s->shift : p->flow_cfg.time_shift;
  req.sample.seed = smp->seed;
  req.prompt = c->prompt_from_clip && truth ? truth->caption : c->prompt;
  if (c->clip >= 0) {
    req.image = c->task == DUET_TASK_I2AV ? ref->video : NULL;
    if (c->task == DUET_TASK_EXTEND || c->task == DUET_TASK_V2A) {
      req.video = ref->video;
      req.video_frames = sh->frames;
    }
    if (c->task == DUET_TASK_EXTEND || c->task == DUET_TASK_A2V) {
      req.audio = ref->audio;
      req.audio_samples = sh->audio_samples;
    }
    req.keep_frames = keep_frames_of(c, sh->frames);
  }

  step_ctx sc = {o, index, st->n_samples, name};
  duet_av_result g;
  memset(&g, 0, sizeof g);
  duet_err serr = {0};
  double t0 = now_s();
  int rc = duet_pipeline_run(p, &req, &g, on_step, &sc, &serr);
  smp->sample_seconds = now_s() - t0;
  if (rc) {
    duet_err_prefix(&serr, "%s: sampling: ", name);
    duet_sync_entry_fail(&smp->sync, name, serr.msg);
    return DUET_OK;
  }
  float *clipped = NULL;
  if ((rc = clip_for_mp4(smp, &g, &clipped, err))) {
    duet_av_result_free(&g);
    return rc;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", st->out_dir, name);
  rc = duet_media_write_mp4(path, g.video, g.frames, g.height, g.width, g.fps,
                            clipped ? clipped : g.audio, g.samples, g.sample_rate, err);
  free(clipped);
  if (rc) {
    duet_av_result_free(&g);
    return rc;
  }
  snprintf(smp->mp4, sizeof smp->mp4, "%s", name);
  /* Measured as generated, before the MP4's lossy coding, so that the numbers are the model's. */
  duet_eval_clip ec = eval_clip_of(g.video, g.audio, sh, truth);
  duet_eval_result res;
  memset(&res, 0, sizeof res);
  if (duet_eval_clip_run(&ec, eo, &res, &serr)) {
    duet_err_prefix(&serr, "%s: ", name);
    duet_sync_entry_fail(&smp->sync, name, serr.msg);
  } else if (truth && (rc = measure_quality(smp, c, &g, ref, sh, &serr))) {
    duet_err_prefix(&serr, "%s: quality: ", name);
    duet_sync_entry_fail(&smp->sync, name, serr.msg);
    rc = DUET_OK;
  } else {
    duet_sync_entry_set(&smp->sync, name, &ec, &res);
    if (index < s->figures) {
      char stem[128];
      snprintf(stem, sizeof stem, "case-%02d-seed-%llu", c->number, (unsigned long long)smp->seed);
      rc = duet_sync_figures(st->out_dir, stem, &ec, &res, &smp->sync, err);
    }
  }
  duet_eval_result_free(&res);
  duet_av_result_free(&g);
  return rc;
}

static int run_samples(duet_bench_state *st, duet_clip_file *f, duet_pipeline *p,
                       const duet_eval_opts *eo, const duet_bench_opts *o, duet_err *err) {
  const duet_bench_suite *s = st->suite;
  clip_buf ref = {0};
  int rc = clip_buf_alloc(&ref, &st->shape, err);
  int index = 0;
  for (int ci = 0; !rc && ci < s->n_cases; ci++) {
    const duet_bench_case *c = &s->cases[ci];
    /* The case's clip is read again rather than kept from measure_refs: a suite may run over
     * many clips, and one read per case costs little next to sampling. */
    if (c->clip >= 0) {
      rc = duet_clip_file_read(f, c->clip, ref.video, ref.audio, NULL, NULL, NULL, NULL, err);
      if (rc) break;
    }
    for (int k = 0; !rc && k < s->seeds; k++, index++) {
      duet_bench_sample *smp = &st->samples[index];
      smp->case_index = ci;
      smp->seed = c->seed + (uint64_t)k;
      rc = run_sample(st, p, eo, o, smp, index, &ref, err);
      report_progress(o, DUET_BENCH_SAMPLED, index + 1, st->n_samples, 0, 0, smp->sync.name,
                      smp->sync.ok ? NULL : smp->sync.error);
    }
  }
  clip_buf_free(&ref);
  return rc;
}

static void state_free(duet_bench_state *st) {
  for (int i = 0; i < st->n_refs; i++) {
    free(st->refs[i].caption);
    free(st->refs[i].events);
  }
  free(st->refs);
  free(st->samples);
}

int duet_bench_run(const duet_bench_suite *s, const duet_bench_opts *o, duet_bench_outcome *out,
                   duet_err *err) {
  memset(out, 0, sizeof *out);
  if (!o || !o->ckpt || !o->out_dir)
    return duet_err_set(err, DUET_EINVAL, "bench: a checkpoint and an output folder are needed");
  if (s->n_cases < 1) return duet_err_set(err, DUET_EINVAL, "suite %s has no cases", s->file);
  double t0 = now_s();
  struct stat sb;
  if (stat(o->ckpt, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return duet_err_set(err, DUET_EIO, "checkpoint %s: no such folder", o->ckpt);
  duet_bench_state st = {.suite = s, .ckpt = o->ckpt, .out_dir = o->out_dir};
  duet_clip_file *f = NULL;
  duet_pipeline *p = NULL;
  int rc = duet_clip_file_open(&f, s->reference, err);
  if (rc) {
    duet_err_prefix(err, "suite %s: reference: ", s->file);
    return rc;
  }
  st.shape = *duet_clip_file_shape(f);
  st.file_clips = duet_clip_file_count(f);
  st.file_has_events = duet_clip_file_has_events(f);
  if ((rc = duet_pipeline_open(&p, o->ckpt, s->ema, err))) {
    duet_err_prefix(err, "checkpoint %s: ", o->ckpt);
    goto done;
  }
  if ((rc = check_shape(s, o->ckpt, p, &st.shape, err)) ||
      (rc = check_cases(s, st.file_clips, st.shape.frames, err)) ||
      (rc = plan_refs(&st, st.file_clips, err)) || (rc = duet_mkdir_p(o->out_dir, err)))
    goto done;
  st.n_samples = s->n_cases * s->seeds;
  st.samples = calloc((size_t)st.n_samples, sizeof *st.samples);
  if (!st.samples) {
    rc = duet_err_set(err, DUET_ENOMEM, "bench: out of memory for %d samples", st.n_samples);
    goto done;
  }
  duet_eval_opts eo;
  duet_eval_opts_default(&eo);
  eo.offset.max_lag = s->max_lag;
  eo.avalign = s->avalign;
  if ((rc = measure_refs(&st, f, &eo, o, err)) || (rc = run_samples(&st, f, p, &eo, o, err)))
    goto done;
  st.seconds = now_s() - t0;
  if ((rc = duet_bench_report_write(&st, err))) goto done;
  out->samples = st.n_samples;
  for (int i = 0; i < st.n_samples; i++) out->samples_failed += !st.samples[i].sync.ok;
  out->reference = st.n_refs;
  for (int i = 0; i < st.n_refs; i++) out->reference_failed += !st.refs[i].sync.ok;
  out->seconds = st.seconds;
done:
  state_free(&st);
  duet_pipeline_free(p);
  duet_clip_file_close(f);
  return rc;
}
