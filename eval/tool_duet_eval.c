/* duet-eval: sync and quality metrics for audio-video clips, with JSON and Markdown reports. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef DUET_HAVE_FFMPEG
#include <libavutil/log.h>
#endif

#include "eval/bench.h"
#include "eval/eval.h"
#include "eval/input.h"
#include "eval/matrix_io.h"
#include "eval/quality.h"
#include "eval/report.h"
#include "eval/resample.h"

static const char *USAGE =
    "usage: duet-eval sync [options] INPUT...\n"
    "       duet-eval quality [options] --ref FILE --test FILE\n"
    "       duet-eval quality [options] --features-ref FILE --features-test FILE\n"
    "       duet-eval bench --suite SUITE.ini --ckpt DIR [--out DIR] [--set S.KEY=VALUE]...\n"
    "\n"
    "sync     For each input (a media file, a folder of them, or an HDF5 clip file, whose\n"
    "         clips are inputs each): the audio-video offset (positive = audio late) with\n"
    "         its confidence and whether it lies within one frame and within ITU-R BT.1359,\n"
    "         AV-Align, and event precision/recall/F1 where the clip file has event times.\n"
    "quality  A test against a reference: PSNR and SSIM of the videos, log-spectral and\n"
    "         multi-resolution STFT distance of the audio, and Frechet distance and KID of\n"
    "         two feature sets (.npy or CSV, one vector per row). Either pair may be given.\n"
    "bench    Samples every case of a benchmark suite from a checkpoint (the pipeline that\n"
    "         duet-infer runs), writes the samples as MP4, and measures them and the suite's\n"
    "         reference clips alike: metrics.json and report.md, generated against reference.\n"
    "         --out defaults to bench-out/NAME; --set overrides a suite key (suite.steps=4,\n"
    "         case.2.task=v2a) and may be repeated. Suite format: docs/eval.md.\n"
    "\n"
    "options:\n"
    "  --out DIR        where metrics.json, report.md and figures go (default eval-out)\n"
    "  --max-lag SEC    offset search range, +-SEC seconds (default 2)\n"
    "  --no-avalign     sync: skip AV-Align and event scores (much faster at high resolution)\n"
    "  --figures N      sync: draw figures for the first N measured inputs (default 20)\n"
    "  -q, --quiet      no progress on stderr\n"
    "  -h, --help       this text\n"
    "\n"
    "Exit status: 0 when every input (bench: every sample and reference clip) was measured,\n"
    "1 when any failed or the run could not start, 2 on bad usage.\n"
    "Metric definitions and how to read the report: docs/eval.md.\n";

typedef struct options {
  const char *out, *ref, *test, *feat_ref, *feat_test;
  double max_lag;
  int avalign, figures, quiet;
  char **inputs;
  int n_inputs;
} options;

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "duet-eval: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n(duet-eval --help for usage)\n");
  return 2;
}

static int parse(int argc, char **argv, options *o) {
  *o = (options){.out = "eval-out", .max_lag = 2.0, .avalign = 1, .figures = 20};
  o->inputs = calloc((size_t)argc, sizeof(char *));
  if (!o->inputs) return usage_error("%s", "out of memory");
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    int has_next = i + 1 < argc;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(USAGE, stdout);
      exit(0);
    } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
      o->quiet = 1;
    } else if (!strcmp(a, "--no-avalign")) {
      o->avalign = 0;
    } else if (!strcmp(a, "--out") || !strcmp(a, "--ref") || !strcmp(a, "--test") ||
               !strcmp(a, "--features-ref") || !strcmp(a, "--features-test") ||
               !strcmp(a, "--max-lag") || !strcmp(a, "--figures")) {
      if (!has_next) return usage_error("%s needs a value", a);
      const char *v = argv[++i];
      char *end;
      if (!strcmp(a, "--out")) o->out = v;
      else if (!strcmp(a, "--ref")) o->ref = v;
      else if (!strcmp(a, "--test")) o->test = v;
      else if (!strcmp(a, "--features-ref")) o->feat_ref = v;
      else if (!strcmp(a, "--features-test")) o->feat_test = v;
      else if (!strcmp(a, "--max-lag")) {
        o->max_lag = strtod(v, &end);
        if (*end || !(o->max_lag > 0) || o->max_lag > 60)
          return usage_error("--max-lag wants seconds in (0, 60], not '%s'", v);
      } else {
        long n = strtol(v, &end, 10);
        if (*end || n < 0 || n > 100000) return usage_error("--figures wants a count, not '%s'", v);
        o->figures = (int)n;
      }
    } else if (a[0] == '-' && a[1]) {
      return usage_error("unknown option %s", a);
    } else {
      o->inputs[o->n_inputs++] = argv[i];
    }
  }
  return 0;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* Progress on stderr: rewritten in place on a terminal, a line every few seconds otherwise. */
typedef struct progress {
  int total, tty, quiet;
  double start, last;
} progress;

static void progress_show(progress *p, int done, const char *name) {
  if (p->quiet || p->total < 2) return;
  double t = now_s(), el = t - p->start;
  if (!p->tty && done < p->total && t - p->last < 5.0) return;
  p->last = t;
  double rate = el > 0 ? done / el : 0;
  double eta = rate > 0 ? (p->total - done) / rate : 0;
  char line[256];
  snprintf(line, sizeof line, "sync %d/%d (%.0f%%)  %.2f clips/s  ETA %d:%02d  %.60s", done,
           p->total, 100.0 * done / p->total, rate, (int)eta / 60, (int)eta % 60, name);
  if (p->tty) fprintf(stderr, "\r%-120s%s", line, done == p->total ? "\n" : "");
  else fprintf(stderr, "%s\n", line);
}

static void stem_for(char *out, size_t cap, int index, const char *name) {
  const char *base = strrchr(name, '/');
  base = base ? base + 1 : name;
  int n = snprintf(out, cap, "%03d-", index + 1);
  for (size_t i = 0; base[i] && (size_t)n + 1 < cap && i < 60; i++) {
    char c = base[i];
    int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_';
    out[n++] = keep ? c : '_';
  }
  out[n] = '\0';
}

static int run_sync(const options *o) {
  if (o->n_inputs == 0) return usage_error("%s", "sync needs at least one INPUT");
  duet_err err = {0};
  if (duet_mkdir_p(o->out, &err)) {
    fprintf(stderr, "duet-eval: %s\n", err.msg);
    return 1;
  }
  duet_eval_sources src;
  if (duet_eval_sources_collect(o->inputs, o->n_inputs, &src, &err)) {
    fprintf(stderr, "duet-eval: %s\n", err.msg);
    return 1;
  }
  duet_sync_entry *entries = calloc((size_t)src.count, sizeof *entries);
  if (!entries) {
    fprintf(stderr, "duet-eval: out of memory\n");
    duet_eval_sources_free(&src);
    return 1;
  }
  duet_eval_opts eo;
  duet_eval_opts_default(&eo);
  eo.offset.max_lag = o->max_lag;
  eo.avalign = o->avalign;
  progress pr = {src.count, isatty(2), o->quiet, now_s(), 0};
  int failed = 0, figures_left = o->figures;
  for (int i = 0; i < src.count; i++) {
    const duet_eval_source *s = &src.items[i];
    duet_eval_loaded l;
    duet_eval_result r;
    memset(&r, 0, sizeof r);
    duet_err_clear(&err);
    int rc = duet_eval_source_load(s, 1, 1, &l, &err);
    if (!rc) {
      rc = duet_eval_clip_run(&l.clip, &eo, &r, &err);
      if (rc) duet_err_prefix(&err, "%s: ", s->name);
    }
    if (rc) {
      if (pr.tty && !o->quiet && src.count > 1) fputc('\n', stderr);
      fprintf(stderr, "duet-eval: %s\n", err.msg);
      duet_sync_entry_fail(&entries[i], s->name, err.msg);
      failed++;
    } else {
      duet_sync_entry_set(&entries[i], s->name, &l.clip, &r);
      if (figures_left > 0) {
        char stem[128];
        stem_for(stem, sizeof stem, i, s->name);
        duet_err ferr = {0};
        if (duet_sync_figures(o->out, stem, &l.clip, &r, &entries[i], &ferr))
          fprintf(stderr, "duet-eval: figures for %s: %s\n", s->name, ferr.msg);
        figures_left--;
      }
    }
    duet_eval_result_free(&r);
    duet_eval_loaded_free(&l);
    progress_show(&pr, i + 1, s->name);
  }
  double elapsed = now_s() - pr.start;
  int rc = duet_sync_report_write(o->out, entries, src.count, elapsed, &err);
  if (rc) fprintf(stderr, "duet-eval: %s\n", err.msg);
  if (!o->quiet && src.count == 1 && entries[0].ok)
    fprintf(stderr, "%s: offset %+.1f ms (audio %s), confidence %.1f%s\n", entries[0].name,
            entries[0].offset_ms, entries[0].offset_ms >= 0 ? "late" : "early",
            entries[0].confidence, entries[0].within_frame ? ", within one frame" : "");
  if (!o->quiet && !rc)
    fprintf(stderr,
            "duet-eval: %d of %d input(s) measured; wrote %s/metrics.json and %s/report.md\n",
            src.count - failed, src.count, o->out, o->out);
  free(entries);
  duet_eval_sources_free(&src);
  return rc || failed ? 1 : 0;
}

static int fail(duet_err *err) {
  fprintf(stderr, "duet-eval: %s\n", err->msg);
  return 1;
}

/* Brings the test audio to the reference's rate when they differ. */
static int match_rates(duet_eval_loaded *test, int rate, duet_err *err) {
  if (test->clip.sample_rate == rate) return DUET_OK;
  float *y;
  int64_t n;
  int rc =
      duet_resample(test->audio, test->clip.samples, test->clip.sample_rate, rate, &y, &n, err);
  if (rc) return rc;
  free(test->audio);
  test->audio = y;
  test->clip.audio = y;
  test->clip.samples = n;
  test->clip.sample_rate = rate;
  return DUET_OK;
}

static int quality_media(const options *o, duet_quality_entry *q, duet_err *err) {
  duet_eval_source rs = {(char *)o->ref, -1, (char *)o->ref, NULL};
  duet_eval_source ts = {(char *)o->test, -1, (char *)o->test, NULL};
  duet_eval_loaded ref, test;
  int rc = duet_eval_source_load(&rs, 0, 0, &ref, err);
  if (rc) return rc;
  rc = duet_eval_source_load(&ts, 0, 0, &test, err);
  if (rc) {
    duet_eval_loaded_free(&ref);
    return rc;
  }
  snprintf(q->ref, sizeof q->ref, "%s", o->ref);
  snprintf(q->test, sizeof q->test, "%s", o->test);
  const duet_eval_clip *a = &ref.clip, *b = &test.clip;
  if (a->video && b->video && a->frames > 0 && b->frames > 0) {
    if (a->width != b->width || a->height != b->height) {
      rc = duet_err_set(err, DUET_EINVAL, "%s is %dx%d but %s is %dx%d: frame sizes must match",
                        o->ref, a->width, a->height, o->test, b->width, b->height);
      goto done;
    }
    int frames = a->frames < b->frames ? a->frames : b->frames;
    if (a->frames != b->frames && !o->quiet)
      fprintf(stderr, "duet-eval: %s has %d frames, %s %d: comparing the first %d\n", o->ref,
              a->frames, o->test, b->frames, frames);
    rc = duet_video_quality_compute(a->video, b->video, frames, a->height, a->width, &q->video,
                                    err);
    if (rc) goto done;
    q->has_video = 1;
    q->width = a->width;
    q->height = a->height;
  }
  if (a->audio && b->audio && a->samples > 0 && b->samples > 0) {
    if ((rc = match_rates(&test, a->sample_rate, err))) goto done;
    int64_t n = a->samples < b->samples ? a->samples : b->samples;
    if ((rc = duet_log_spectral_distance(a->audio, b->audio, n, &q->lsd, err))) goto done;
    if ((rc = duet_mrstft_distance(a->audio, b->audio, n, &q->mrstft, err))) goto done;
    q->has_audio = 1;
    q->sample_rate = a->sample_rate;
  }
  if (!q->has_video && !q->has_audio) {
    rc = duet_err_set(err, DUET_EINVAL, "%s and %s share neither a video nor an audio stream",
                      o->ref, o->test);
    goto done;
  }
  rc = duet_quality_figures(o->out, a, b, q, err);
done:
  duet_eval_loaded_free(&ref);
  duet_eval_loaded_free(&test);
  return rc;
}

static int quality_features(const options *o, duet_quality_entry *q, duet_err *err) {
  double *x = NULL, *y = NULL;
  int64_t nx, dx, ny, dy;
  int rc = duet_matrix_read(o->feat_ref, &x, &nx, &dx, err);
  if (!rc) rc = duet_matrix_read(o->feat_test, &y, &ny, &dy, err);
  if (!rc && dx != dy)
    rc = duet_err_set(err, DUET_EINVAL, "%s has %lld features per row but %s has %lld",
                      o->feat_ref, (long long)dx, o->feat_test, (long long)dy);
  if (!rc && dx > 100000) rc = duet_err_set(err, DUET_EINVAL, "%s: too many columns", o->feat_ref);
  if (!rc) rc = duet_frechet_distance(x, nx, y, ny, (int)dx, &q->fd, err);
  if (!rc) rc = duet_kid(x, nx, y, ny, (int)dx, &q->kid, err);
  if (!rc) {
    q->has_features = 1;
    q->n_ref = nx;
    q->n_test = ny;
    q->dim = (int)dx;
    snprintf(q->feat_ref, sizeof q->feat_ref, "%s", o->feat_ref);
    snprintf(q->feat_test, sizeof q->feat_test, "%s", o->feat_test);
  }
  free(x);
  free(y);
  return rc;
}

static int run_quality(const options *o) {
  if (o->n_inputs) return usage_error("quality takes no positional input ('%s')", o->inputs[0]);
  int media = o->ref || o->test, feats = o->feat_ref || o->feat_test;
  if (!media && !feats)
    return usage_error("%s", "quality needs --ref/--test or --features-ref/--features-test");
  if (media && !(o->ref && o->test)) return usage_error("%s", "give both --ref and --test");
  if (feats && !(o->feat_ref && o->feat_test))
    return usage_error("%s", "give both --features-ref and --features-test");
  duet_err err = {0};
  if (duet_mkdir_p(o->out, &err)) return fail(&err);
  duet_quality_entry *q = calloc(1, sizeof *q);
  if (!q) return usage_error("%s", "out of memory");
  int rc = DUET_OK;
  if (media) rc = quality_media(o, q, &err);
  if (!rc && feats) rc = quality_features(o, q, &err);
  if (!rc) rc = duet_quality_report_write(o->out, q, &err);
  if (rc) {
    free(q);
    return fail(&err);
  }
  if (!o->quiet) {
    if (q->has_video) fprintf(stderr, "PSNR %.2f dB, SSIM %.4f\n", q->video.psnr, q->video.ssim);
    if (q->has_audio) fprintf(stderr, "LSD %.3f dB, MR-STFT %.4f\n", q->lsd, q->mrstft.total);
    if (q->has_features) fprintf(stderr, "FD %.6g, KID %.6g\n", q->fd, q->kid);
    fprintf(stderr, "duet-eval: wrote %s/metrics.json and %s/report.md\n", o->out, o->out);
  }
  free(q);
  return 0;
}

/* bench progress: samples (and sampler steps within one) drive the rate and ETA, as they are
 * nearly all of the time; measuring the reference clips first is shown as a count. */
typedef struct bench_progress {
  int tty, quiet;
  double start, last;
} bench_progress;

static void bench_on_progress(const duet_bench_progress_info *in, void *ctx) {
  bench_progress *p = ctx;
  double t = now_s();
  if (in->error) {
    if (p->tty && !p->quiet) fputc('\n', stderr);
    fprintf(stderr, "duet-eval: %s\n", in->error);
  }
  if (in->phase != DUET_BENCH_REFERENCE && p->start == 0) p->start = t;
  if (p->quiet) return;
  int last = in->phase != DUET_BENCH_SAMPLING && in->done == in->total;
  if (!last && t - p->last < (p->tty ? 0.2 : 5.0)) return;
  p->last = t;
  char line[256];
  if (in->phase == DUET_BENCH_REFERENCE) {
    snprintf(line, sizeof line, "reference %d/%d  %.60s", in->done, in->total, in->name);
  } else {
    double done = in->done;
    if (in->phase == DUET_BENCH_SAMPLING && in->steps > 0) done += (double)in->step / in->steps;
    double el = t - p->start, frac = in->total > 0 ? done / in->total : 1;
    double rate = el > 0 ? 60.0 * done / el : 0;
    double eta = frac > 0 ? el * (1 - frac) / frac : 0;
    char step[48] = "";
    if (in->phase == DUET_BENCH_SAMPLING)
      snprintf(step, sizeof step, "step %d/%d  ", in->step, in->steps);
    int shown = in->phase == DUET_BENCH_SAMPLED ? in->done : in->done + 1;
    snprintf(line, sizeof line,
             "bench %d/%d samples (%.0f%%)  %s%.2f samples/min  ETA %d:%02d  %.50s", shown,
             in->total, 100.0 * frac, step, rate, (int)eta / 60, (int)eta % 60, in->name);
  }
  if (p->tty) fprintf(stderr, "\r%-130s%s", line, last ? "\n" : "");
  else fprintf(stderr, "%s\n", line);
}

static int run_bench(int argc, char **argv) {
  const char *suite = NULL, *ckpt = NULL, *out = NULL;
  int quiet = 0, n_sets = 0;
  const char **sets = calloc((size_t)argc, sizeof *sets);
  if (!sets) return usage_error("%s", "out of memory");
  int rc = 0;
  for (int i = 2; i < argc && !rc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(USAGE, stdout);
      free(sets);
      return 0;
    } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
      quiet = 1;
    } else if (!strcmp(a, "--suite") || !strcmp(a, "--ckpt") || !strcmp(a, "--out") ||
               !strcmp(a, "--set")) {
      if (i + 1 >= argc) {
        rc = usage_error("%s needs a value", a);
        break;
      }
      const char *v = argv[++i];
      if (!strcmp(a, "--suite")) suite = v;
      else if (!strcmp(a, "--ckpt")) ckpt = v;
      else if (!strcmp(a, "--out")) out = v;
      else sets[n_sets++] = v;
    } else if (a[0] == '-' && a[1]) {
      rc = usage_error("unknown option %s", a);
    } else {
      rc = usage_error("bench takes no positional input ('%s')", a);
    }
  }
  if (!rc && !suite) rc = usage_error("%s", "bench needs --suite FILE");
  if (!rc && !ckpt) rc = usage_error("%s", "bench needs --ckpt DIR");
  if (rc) {
    free(sets);
    return rc;
  }
  duet_err err = {0};
  duet_bench_suite s;
  if (duet_bench_suite_load(suite, sets, n_sets, &s, &err)) {
    free(sets);
    return fail(&err);
  }
  free(sets);
  char out_buf[600];
  if (!out) {
    /* The suite's name as a folder name: anything but a plain character becomes '_'. */
    int n = snprintf(out_buf, sizeof out_buf, "bench-out/");
    for (const char *c = s.name; *c && n + 1 < (int)sizeof out_buf; c++) {
      int plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.';
      out_buf[n++] = plain ? *c : '_';
    }
    out_buf[n] = '\0';
    out = out_buf;
  }
  bench_progress pr = {isatty(2), quiet, 0, 0};
  duet_bench_opts bo = {ckpt, out, bench_on_progress, &pr};
  duet_bench_outcome oc;
  rc = duet_bench_run(&s, &bo, &oc, &err);
  duet_bench_suite_free(&s);
  if (rc) {
    if (pr.tty && !quiet) fputc('\n', stderr);
    return fail(&err);
  }
  if (!quiet)
    fprintf(stderr,
            "duet-eval: %d of %d sample(s) and %d of %d reference clip(s) measured in %.1f s; "
            "wrote %s/metrics.json and %s/report.md\n",
            oc.samples - oc.samples_failed, oc.samples, oc.reference - oc.reference_failed,
            oc.reference, oc.seconds, out, out);
  return oc.samples_failed || oc.reference_failed ? 1 : 0;
}

int main(int argc, char **argv) {
#ifdef DUET_HAVE_FFMPEG
  av_log_set_level(AV_LOG_ERROR); /* FFmpeg's own lines would come before duet's one-line errors */
#endif
  if (argc < 2) {
    fputs(USAGE, stderr);
    return 2;
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
    fputs(USAGE, stdout);
    return 0;
  }
  if (!strcmp(argv[1], "bench")) return run_bench(argc, argv);
  options o;
  int rc = parse(argc, argv, &o);
  if (!rc) {
    if (!strcmp(argv[1], "sync")) rc = run_sync(&o);
    else if (!strcmp(argv[1], "quality")) rc = run_quality(&o);
    else rc = usage_error("unknown command '%s'", argv[1]);
  }
  free(o.inputs);
  return rc;
}
