/* duet-synth: writes a dataset of procedural audio-video clips with known event times. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data/media.h"
#include "data/synth.h"

#ifdef DUET_HAVE_FFMPEG
#include <libavutil/log.h>
#endif

#define PREVIEW_CLIPS 8

static void usage(FILE *f) {
  fprintf(f,
"usage: duet-synth --out FILE.h5 [options]\n"
"\n"
"Writes COUNT procedural clips: 1 to --objects objects (ball, square or triangle; small,\n"
"medium or large; wooden, metal, rubber or glass; a named colour) fall, bounce off a\n"
"coloured floor and the side walls, and make an impact sound at every collision (pitch from\n"
"size, timbre from material, loudness from impact speed). Each clip stores its video, its\n"
"audio, a caption written from the simulation, the impact times in seconds (`events`) and\n"
"its origin (`source`). Clip i depends only on (options, seed, i): the same command gives\n"
"the same clips on any number of threads.\n"
"\n"
"options:\n"
"  --out FILE           clip file to write (HDF5; written to FILE.tmp, then renamed)\n"
"  --count N            number of clips (default 1000)\n"
"  --seconds S          clip length in seconds (default 2); or\n"
"  --frames T           clip length in frames\n"
"  --fps F              frames per second (default 16)\n"
"  --size N             square frames of N x N pixels (default 64); or\n"
"  --height H --width W\n"
"  --sample-rate R      audio samples per second (default 16000)\n"
"  --objects K          at most K objects per clip, 1..3 (default 3)\n"
"  --seed S             dataset seed (default 0)\n"
"  --background-noise A RMS of a soft noise bed under the impacts (default 0: silence)\n"
"  --object-scale X     multiply every object's size by X, 0.5..2 (default 1); tiny frames\n"
"                       (16x16) show objects only at about 2\n"
"  --audio-int16        store audio as 16-bit integers (half the space)\n"
"  --threads N          generator threads (default: all cores)\n"
"  --preview DIR        also write the first %d clips as MP4 files, with their captions\n"
"  --force              replace FILE if it exists\n"
"  --quiet              no progress line\n"
"  --help               this text\n",
          PREVIEW_CLIPS);
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

static void on_progress(void *user, int64_t done, int64_t total) {
  progress *p = user;
  if (p->quiet) return;
  double t = now(), el = t - p->t0;
  int end = done == total;
  /* A terminal gets a line redrawn a few times a second; a log gets a line every 10 s. */
  if (!end && t - p->last < (p->tty ? 0.25 : 10.0)) return;
  p->last = t;
  double rate = el > 0 ? done / el : 0.0;
  double eta = rate > 0 ? (total - done) / rate : 0.0;
  fprintf(stderr, "%sduet-synth: %lld/%lld clips  %.0f clips/s  %s %.0f s%s", p->tty ? "\r" : "",
          (long long)done, (long long)total, rate, end ? "took" : "ETA", end ? el : eta,
          p->tty && !end ? "   " : "\n");
  fflush(stderr);
}

static int parse_int(const char *flag, const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) {
    fprintf(stderr, "duet-synth: %s: expected an integer in %ld..%ld, got '%s'\n", flag, lo, hi, s);
    return -1;
  }
  *out = v;
  return 0;
}

static int parse_num(const char *flag, const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi)) {
    fprintf(stderr, "duet-synth: %s: expected a number in %g..%g, got '%s'\n", flag, lo, hi, s);
    return -1;
  }
  *out = v;
  return 0;
}

static int write_preview(const char *dir, const duet_synth_params *p, int64_t count) {
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "duet-synth: --preview %s: %s\n", dir, strerror(errno));
    return -1;
  }
  size_t vn = (size_t)p->frames * p->height * p->width * 3;
  int64_t an = duet_synth_audio_samples(p);
  uint8_t *video = malloc(vn);
  float *audio = malloc((size_t)an * sizeof *audio);
  duet_synth_scene *s = malloc(sizeof *s);
  char path[4096];
  snprintf(path, sizeof path, "%s/captions.txt", dir);
  FILE *cap = fopen(path, "w");
  int rc = video && audio && s && cap ? 0 : -1;
  if (rc) fprintf(stderr, "duet-synth: --preview %s: cannot write\n", dir);
  for (int64_t i = 0; !rc && i < count && i < PREVIEW_CLIPS; i++) {
    duet_err err = {0};
    duet_synth_clip(p, i, s, video, audio, &err);
    snprintf(path, sizeof path, "%s/clip_%03lld.mp4", dir, (long long)i);
    if (duet_media_write_mp4(path, video, p->frames, p->height, p->width, p->fps, audio, an,
                             p->sample_rate, &err)) {
      fprintf(stderr, "duet-synth: %s\n", err.msg);
      rc = -1;
      break;
    }
    fprintf(cap, "clip_%03lld.mp4\t%s\t", (long long)i, s->caption);
    for (int e = 0; e < s->n_events; e++) fprintf(cap, "%s%.4f", e ? " " : "", s->events[e].t);
    fputc('\n', cap);
  }
  if (cap && fclose(cap) != 0) rc = -1;
  free(video);
  free(audio);
  free(s);
  return rc;
}

int main(int argc, char **argv) {
  duet_synth_params p;
  duet_synth_params_default(&p);
  const char *out = NULL, *preview = NULL;
  long count = 1000, frames = 0, threads = 0, size = 0, height = 0, width = 0, rate = 16000,
       objects = DUET_SYNTH_MAX_OBJECTS, seed = 0;
  double seconds = 0, fps = 16.0, noise = 0.0, object_scale = 1.0;
  int force = 0, quiet = 0, i16 = 0;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    int takes = 1, bad = 0;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--force")) { force = 1; takes = 0; }
    else if (!strcmp(a, "--quiet")) { quiet = 1; takes = 0; }
    else if (!strcmp(a, "--audio-int16")) { i16 = 1; takes = 0; }
    else if (!strcmp(a, "--out") || !strcmp(a, "--preview") || !strcmp(a, "--count") ||
             !strcmp(a, "--frames") || !strcmp(a, "--seconds") || !strcmp(a, "--fps") ||
             !strcmp(a, "--size") || !strcmp(a, "--height") || !strcmp(a, "--width") ||
             !strcmp(a, "--sample-rate") || !strcmp(a, "--objects") || !strcmp(a, "--seed") ||
             !strcmp(a, "--background-noise") || !strcmp(a, "--object-scale") ||
             !strcmp(a, "--threads")) {
      if (!v) {
        fprintf(stderr, "duet-synth: %s needs a value\n", a);
        return 2;
      }
      if (!strcmp(a, "--out")) out = v;
      else if (!strcmp(a, "--preview")) preview = v;
      else if (!strcmp(a, "--count")) bad = parse_int(a, v, 1, 1000000000L, &count);
      else if (!strcmp(a, "--frames")) bad = parse_int(a, v, 1, 100000, &frames);
      else if (!strcmp(a, "--seconds")) bad = parse_num(a, v, 1e-3, 3600, &seconds);
      else if (!strcmp(a, "--fps")) bad = parse_num(a, v, 1e-3, 1000, &fps);
      else if (!strcmp(a, "--size")) bad = parse_int(a, v, 16, 4096, &size);
      else if (!strcmp(a, "--height")) bad = parse_int(a, v, 16, 4096, &height);
      else if (!strcmp(a, "--width")) bad = parse_int(a, v, 16, 4096, &width);
      else if (!strcmp(a, "--sample-rate")) bad = parse_int(a, v, 4000, 192000, &rate);
      else if (!strcmp(a, "--objects")) bad = parse_int(a, v, 1, DUET_SYNTH_MAX_OBJECTS, &objects);
      else if (!strcmp(a, "--seed")) bad = parse_int(a, v, 0, 2147483647L, &seed);
      else if (!strcmp(a, "--background-noise")) bad = parse_num(a, v, 0, 0.5, &noise);
      else if (!strcmp(a, "--object-scale")) bad = parse_num(a, v, 0.5, 2, &object_scale);
      else bad = parse_int(a, v, 0, 1024, &threads);
    } else {
      fprintf(stderr, "duet-synth: unknown option '%s' (see --help)\n", a);
      return 2;
    }
    if (bad) return 2;
    i += takes;
  }
  if (!out) {
    fprintf(stderr, "duet-synth: --out is required (see --help)\n");
    return 2;
  }
  if (frames && seconds > 0) {
    fprintf(stderr, "duet-synth: give --frames or --seconds, not both\n");
    return 2;
  }
  if (size && (height || width)) {
    fprintf(stderr, "duet-synth: give --size or --height/--width, not both\n");
    return 2;
  }
  p.fps = fps;
  p.frames = frames ? (int)frames : (int)lround((seconds > 0 ? seconds : 2.0) * fps);
  if (p.frames < 1) p.frames = 1;
  p.height = (int)(size ? size : (height ? height : 64));
  p.width = (int)(size ? size : (width ? width : 64));
  p.sample_rate = (int)rate;
  p.max_objects = (int)objects;
  p.background_noise = (float)noise;
  p.object_scale = object_scale;
  p.seed = (uint64_t)seed;

  duet_err err = {0};
  if (duet_synth_params_check(&p, &err)) {
    fprintf(stderr, "duet-synth: %s\n", err.msg);
    return 2;
  }
  if (!force && access(out, F_OK) == 0) {
    fprintf(stderr, "duet-synth: %s exists (use --force to replace it)\n", out);
    return 1;
  }
#ifdef DUET_HAVE_FFMPEG
  av_log_set_level(AV_LOG_ERROR);
#endif
  if (preview && write_preview(preview, &p, count)) return 1;

  progress pr = {.t0 = now(), .tty = isatty(2), .quiet = quiet};
  pr.last = pr.t0;
  duet_synth_write_opts o = {.count = count, .threads = (int)threads, .overwrite = force,
                             .audio_i16 = i16, .progress = on_progress, .user = &pr};
  if (duet_synth_write(out, &p, &o, &err)) {
    if (pr.tty && !quiet) fputc('\n', stderr);
    fprintf(stderr, "duet-synth: %s\n", err.msg);
    return 1;
  }
  struct stat sb;
  double el = now() - pr.t0;
  if (!quiet && stat(out, &sb) == 0)
    fprintf(stderr, "duet-synth: wrote %ld clips (%d frames %dx%d at %g fps, %d Hz) to %s: %.1f MB in %.1f s\n",
            count, p.frames, p.width, p.height, p.fps, p.sample_rate, out, sb.st_size / 1e6, el);
  return 0;
}
