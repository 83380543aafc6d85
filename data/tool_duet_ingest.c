/* duet-ingest: turns footage into a clip file for training. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data/ingest.h"

#ifdef DUET_HAVE_FFMPEG
#include <libavutil/log.h>
#endif

static void usage(FILE *f) {
  fputs(
"usage: duet-ingest --out FILE.h5 [options] FILES...\n"
"\n"
"Decodes each input (any container and codec FFmpeg reads), scales it so the shorter side\n"
"fits the output size and crops the centre, resamples it to a constant frame rate (the\n"
"decoded frame nearest each output time) and its audio to mono at one sample rate, cuts it\n"
"into clips of --clip-seconds every --stride-seconds, and writes the clips to FILE (HDF5,\n"
"written to FILE.tmp and renamed when complete). Each clip's `source` is \"FILE@START\".\n"
"\n"
"Files that cannot be decoded, are truncated, are shorter than one clip or have no audio\n"
"stream are skipped; a summary at the end lists them with the reason. The exit status is\n"
"non-zero when nothing could be ingested (and then no output is left behind).\n"
"\n"
"options:\n"
"  --out FILE              clip file to write\n"
"  --size N                N x N frames (default 64); or\n"
"  --height H --width W\n"
"  --fps F                 output frame rate (default 16)\n"
"  --sample-rate R         output audio rate (default 16000)\n"
"  --clip-seconds S        clip length (default 2; rounded to whole frames)\n"
"  --stride-seconds S      clip start to next clip start (default 2; less than the clip\n"
"                          length gives overlapping clips)\n"
"  --captions FILE.jsonl   captions, one JSON object per line:\n"
"                            {\"file\": \"a.mp4\", \"start\": 0, \"end\": 4, \"caption\": \"...\"}\n"
"                          start/end are optional (whole file); a clip takes the entry for\n"
"                          its file that overlaps it most; without one its caption is empty\n"
"  --silent-if-no-audio    give files without audio silent clips instead of skipping them\n"
"  --audio-int16           store audio as 16-bit integers (half the space)\n"
"  --force                 replace FILE if it exists\n"
"  --quiet                 no progress line\n"
"  --verbose               let FFmpeg print its own warnings\n"
"  --help                  this text\n",
      f);
}

typedef struct progress {
  double t0, last;
  int tty, quiet;
} progress;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void on_progress(void *user, const duet_ingest_progress *p) {
  progress *pr = user;
  if (pr->quiet) return;
  double t = now(), el = t - pr->t0;
  int end = p->file >= p->n_files;
  if (!end && t - pr->last < (pr->tty ? 0.25 : 10.0)) return;
  pr->last = t;
  char eta[32] = "";
  if (!end && p->fraction > 0.01 && el > 1.0)
    snprintf(eta, sizeof eta, "  ETA %.0f s", el * (1.0 - p->fraction) / p->fraction);
  fprintf(stderr, "%sduet-ingest: file %d/%d  %lld clips  %.0f%%  %.1f clips/s  %.1fx real time%s%s",
          pr->tty ? "\r" : "", end ? p->n_files : p->file + 1, p->n_files, (long long)p->clips,
          100.0 * p->fraction, el > 0 ? p->clips / el : 0.0,
          el > 0 ? p->footage_seconds / el : 0.0, eta, pr->tty && !end ? "    " : "\n");
  fflush(stderr);
}

static int parse_num(const char *flag, const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi)) {
    fprintf(stderr, "duet-ingest: %s: expected a number in %g..%g, got '%s'\n", flag, lo, hi, s);
    return -1;
  }
  *out = v;
  return 0;
}

static int parse_int(const char *flag, const char *s, int lo, int hi, int *out) {
  double v;
  if (parse_num(flag, s, lo, hi, &v)) return -1;
  if (v != (int)v) {
    fprintf(stderr, "duet-ingest: %s: expected an integer, got '%s'\n", flag, s);
    return -1;
  }
  *out = (int)v;
  return 0;
}

static void summary(const duet_ingest_report *r, const char *out, int ok) {
  int done = 0, skipped = 0, partial = 0, silent = 0;
  for (int i = 0; i < r->n_files; i++) {
    done += r->files[i].status == DUET_INGEST_DONE;
    skipped += r->files[i].status == DUET_INGEST_SKIPPED;
    partial += r->files[i].status == DUET_INGEST_PARTIAL;
    silent += r->files[i].status != DUET_INGEST_SKIPPED && r->files[i].silent;
  }
  if (ok)
    fprintf(stderr, "duet-ingest: wrote %lld clips (%lld captioned) from %d of %d files to %s\n",
            (long long)r->clips, (long long)r->captioned, done + partial, r->n_files, out);
  if (silent) fprintf(stderr, "duet-ingest: %d file%s had no audio and got silence\n", silent,
                      silent == 1 ? "" : "s");
  if (partial) {
    fprintf(stderr, "duet-ingest: %d file%s only partly ingested:\n", partial, partial == 1 ? "" : "s");
    for (int i = 0; i < r->n_files; i++)
      if (r->files[i].status == DUET_INGEST_PARTIAL)
        fprintf(stderr, "  kept %lld clips, then: %s\n", (long long)r->files[i].clips,
                r->files[i].reason);
  }
  if (skipped) {
    fprintf(stderr, "duet-ingest: skipped %d file%s:\n", skipped, skipped == 1 ? "" : "s");
    for (int i = 0; i < r->n_files; i++)
      if (r->files[i].status == DUET_INGEST_SKIPPED) fprintf(stderr, "  %s\n", r->files[i].reason);
  }
  if (r->unused_captions)
    fprintf(stderr, "duet-ingest: %d caption entr%s matched no clip\n", r->unused_captions,
            r->unused_captions == 1 ? "y" : "ies");
}

int main(int argc, char **argv) {
  duet_ingest_opts o;
  duet_ingest_opts_default(&o);
  const char *out = NULL;
  int size = 0, height = 0, width = 0, quiet = 0, verbose = 0;
  const char **files = calloc((size_t)argc, sizeof *files);
  int n_files = 0, only_files = 0;
  if (!files) return 1;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (only_files || a[0] != '-' || !strcmp(a, "-")) {
      files[n_files++] = a;
      continue;
    }
    if (!strcmp(a, "--")) { only_files = 1; continue; }
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); free(files); return 0; }
    if (!strcmp(a, "--force")) { o.overwrite = 1; continue; }
    if (!strcmp(a, "--quiet")) { quiet = 1; continue; }
    if (!strcmp(a, "--verbose")) { verbose = 1; continue; }
    if (!strcmp(a, "--silent-if-no-audio")) { o.silent_if_no_audio = 1; continue; }
    if (!strcmp(a, "--audio-int16")) { o.audio_i16 = 1; continue; }
    const char *names[] = {"--out", "--size", "--height", "--width", "--fps", "--sample-rate",
                           "--clip-seconds", "--stride-seconds", "--captions"};
    int known = 0;
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) known |= !strcmp(a, names[k]);
    if (!known) {
      fprintf(stderr, "duet-ingest: unknown option '%s' (see --help)\n", a);
      free(files);
      return 2;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "duet-ingest: %s needs a value\n", a);
      free(files);
      return 2;
    }
    const char *v = argv[++i];
    int bad = 0;
    if (!strcmp(a, "--out")) out = v;
    else if (!strcmp(a, "--captions")) o.captions = v;
    else if (!strcmp(a, "--size")) bad = parse_int(a, v, 1, 8192, &size);
    else if (!strcmp(a, "--height")) bad = parse_int(a, v, 1, 8192, &height);
    else if (!strcmp(a, "--width")) bad = parse_int(a, v, 1, 8192, &width);
    else if (!strcmp(a, "--sample-rate")) bad = parse_int(a, v, 1000, 384000, &o.sample_rate);
    else if (!strcmp(a, "--fps")) bad = parse_num(a, v, 1e-3, 1000, &o.fps);
    else if (!strcmp(a, "--clip-seconds")) bad = parse_num(a, v, 1e-3, 86400, &o.clip_seconds);
    else bad = parse_num(a, v, 1e-3, 86400, &o.stride_seconds);
    if (bad) {
      free(files);
      return 2;
    }
  }
  int usage_error = 0;
  if (!out) {
    fprintf(stderr, "duet-ingest: --out is required (see --help)\n");
    usage_error = 1;
  } else if (n_files == 0) {
    fprintf(stderr, "duet-ingest: no input files (see --help)\n");
    usage_error = 1;
  } else if (size && (height || width)) {
    fprintf(stderr, "duet-ingest: give --size or --height/--width, not both\n");
    usage_error = 1;
  } else if (!size && (!height != !width)) {
    fprintf(stderr, "duet-ingest: give both --height and --width\n");
    usage_error = 1;
  }
  if (usage_error) {
    free(files);
    return 2;
  }
  if (size) o.height = o.width = size;
  else if (height) {
    o.height = height;
    o.width = width;
  }
  duet_err err = {0};
  if (duet_ingest_opts_check(&o, &err)) {
    fprintf(stderr, "duet-ingest: %s\n", err.msg);
    free(files);
    return 2;
  }
  if (!o.overwrite && access(out, F_OK) == 0) {
    fprintf(stderr, "duet-ingest: %s exists (use --force to replace it)\n", out);
    free(files);
    return 1;
  }
#ifdef DUET_HAVE_FFMPEG
  /* FFmpeg reports every damaged packet itself; the summary says what matters. */
  av_log_set_level(verbose ? AV_LOG_WARNING : AV_LOG_QUIET);
#else
  (void)verbose;
#endif
  progress pr = {.t0 = now(), .tty = isatty(2), .quiet = quiet};
  pr.last = pr.t0;
  duet_ingest_report rep;
  int rc = duet_ingest(out, files, n_files, &o, on_progress, &pr, &rep, &err);
  if (rc && pr.tty && !quiet) fputc('\n', stderr);
  summary(&rep, out, rc == 0);
  if (rc) fprintf(stderr, "duet-ingest: %s\n", err.msg);
  duet_ingest_report_free(&rep);
  free(files);
  return rc ? 1 : 0;
}
