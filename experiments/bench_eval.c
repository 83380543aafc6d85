/* Speed of duet's sync metrics on one core, printed as a Markdown table.
 *
 *   offset (decode excluded)   1080p 32 fps RGB frames and 48 kHz audio already in memory:
 *                              motion energy (box-downscaled to ~64 rows) + onset flux +
 *                              cross-correlation; target >= 10x real time
 *   offset (decode included)   an H.264/AAC MP4 of the same size and length (ffmpeg's
 *                              testsrc2), read with data/media.h first (only when the ffmpeg
 *                              tool is there to make the file)
 *   AV-Align                   256 x 456 at 32 fps: Farneback flow on every frame pair at full
 *                              resolution + resampling to 22050 Hz + librosa onsets;
 *                              target >= 1x real time; on one core, then with all cores
 *   SSIM + PSNR                256 x 456 frame pairs, for reference
 *
 * Every step is timed three times and the best run is reported, since other work on the
 * machine only ever slows a run down. Everything but the last AV-Align row runs pinned to one
 * CPU with one thread. Usage: bench_eval [seconds of clip, default 4]. */
#define _GNU_SOURCE
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <omp.h>

#include "data/media.h"
#include "eval/avalign.h"
#include "eval/offset.h"
#include "eval/quality.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* A moving textured scene with a bright flash every 0.7 s, and a beep with each flash. */
static uint8_t *make_video(int frames, int h, int w, double fps) {
  uint8_t *v = malloc((size_t)frames * h * w * 3);
  if (!v) return NULL;
  for (int f = 0; f < frames; f++) {
    int flash = fmod(f / fps, 0.7) < 1.5 / fps;
    for (int y = 0; y < h; y++) {
      uint8_t *row = v + (((size_t)f * h + y) * w) * 3;
      for (int x = 0; x < w; x++) {
        int g = ((x + 3 * f) ^ (y + f)) & 255;
        row[3 * x] = (uint8_t)(flash ? 255 : g);
        row[3 * x + 1] = (uint8_t)(flash ? 255 : (g * 3) / 4);
        row[3 * x + 2] = (uint8_t)(flash ? 255 : 255 - g);
      }
    }
  }
  return v;
}

static float *make_audio(int64_t n, int sr) {
  float *a = calloc((size_t)n, sizeof(float));
  if (!a) return NULL;
  for (int64_t i = 0; i < n; i++) {
    double t = (double)i / sr;
    a[i] = (float)(0.01 * sin(2 * M_PI * 220 * t) +
                   (fmod(t, 0.7) < 0.05 ? 0.4 * sin(2 * M_PI * 880 * t) : 0.0));
  }
  return a;
}

static void cpu_name(char *out, size_t cap) {
  snprintf(out, cap, "unknown CPU");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "model name", 10)) {
      char *p = strchr(line, ':');
      if (p) {
        p += 2;
        p[strcspn(p, "\n")] = '\0';
        snprintf(out, cap, "%s", p);
      }
      break;
    }
  fclose(f);
}

static void row(const char *what, const char *size, double clip_s, double wall_s,
                const char *target) {
  printf("| %s | %s | %.1f s | %.3f s | %.1fx | %s |\n", what, size, clip_s, wall_s,
         clip_s / wall_s, target);
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 4.0;
  if (!(seconds > 0) || seconds > 60) {
    fprintf(stderr, "usage: bench_eval [seconds (0, 60]]\n");
    return 2;
  }
  cpu_set_t all, one;
  sched_getaffinity(0, sizeof all, &all);
  CPU_ZERO(&one);
  CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one);
  int pinned = sched_setaffinity(0, sizeof one, &one) == 0;
  int threads = omp_get_max_threads();
  omp_set_num_threads(1);

  char cpu[256], date[32];
  cpu_name(cpu, sizeof cpu);
  time_t t = time(NULL);
  strftime(date, sizeof date, "%Y-%m-%d", localtime(&t));
  struct utsname u;
  uname(&u);
  double load = -1;
  FILE *lf = fopen("/proc/loadavg", "r");
  if (lf) {
    if (fscanf(lf, "%lf", &load) != 1) load = -1;
    fclose(lf);
  }
  printf("## duet-eval speed, %s\n\nMachine: %s, %ld online CPUs, %s %s; load average %.2f at "
         "the start. Rows run on one CPU with one thread%s, except the last; each is the best "
         "of 3 runs.\n\n",
         date, cpu, sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release, load,
         pinned ? "" : " (pinning failed)");
  printf("| step | input | clip | wall | x real time | target |\n"
         "| --- | --- | ---: | ---: | ---: | --- |\n");

  duet_err err = {0};
  const int sr = 48000;
  /* Offset at 1080p 32 fps. */
  {
    const int h = 1080, w = 1920;
    const double fps = 32;
    int frames = (int)lround(seconds * fps);
    int64_t n = (int64_t)llround(seconds * sr);
    uint8_t *v = make_video(frames, h, w, fps);
    float *a = make_audio(n, sr);
    if (!v || !a) {
      fprintf(stderr, "bench_eval: out of memory for the 1080p clip\n");
      return 1;
    }
    duet_offset o;
    double best = INFINITY;
    for (int rep = 0; rep < 3; rep++) {
      double t0 = now_s();
      if (duet_offset_estimate(v, frames, h, w, fps, a, n, sr, NULL, &o, &err)) {
        fprintf(stderr, "bench_eval: %s\n", err.msg);
        return 1;
      }
      best = fmin(best, now_s() - t0);
      if (rep < 2) duet_offset_free(&o);
    }
    row("offset, decode excluded", "1920x1080, 32 fps, 48 kHz", seconds, best, ">= 10x");
    duet_offset_free(&o);

    char path[512], cmd[2048];
    snprintf(path, sizeof path, "/tmp/duet-bench-eval-%ld.mp4", (long)getpid());
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc2=s=1920x1080:r=32:d=%g "
             "-f lavfi -i \"aevalsrc='0.4*sin(2*PI*880*t)*lt(mod(t,0.7),0.05)':s=48000:d=%g\" "
             "-c:v libx264 -preset ultrafast -pix_fmt yuv420p "
             "-c:a aac %s",
             seconds, seconds, path);
    if (system(cmd) == 0) {
      double best_all = INFINITY, best_decode = INFINITY;
      for (int rep = 0; rep < 3; rep++) {
        double t0 = now_s();
        duet_media m = {0};
        duet_media_opts mo = {0};
        mo.need_audio = 1;
        int rc = duet_media_read(path, &mo, &m, &err);
        double t1 = now_s();
        if (!rc)
          rc = duet_offset_estimate(m.video, m.frames, m.height, m.width, m.fps, m.audio,
                                    m.audio_samples, m.sample_rate, NULL, &o, &err);
        double t2 = now_s();
        duet_media_free(&m);
        if (rc) {
          fprintf(stderr, "bench_eval: %s\n", err.msg);
          break;
        }
        duet_offset_free(&o);
        best_all = fmin(best_all, t2 - t0);
        best_decode = fmin(best_decode, t1 - t0);
      }
      if (isfinite(best_all)) {
        row("offset, decode included", "H.264/AAC MP4 (testsrc2), same size", seconds, best_all,
            "–");
        row("  of which decode (data/media.h)", "", seconds, best_decode, "–");
      }
      remove(path);
    }
    free(v);
    free(a);
  }
  /* AV-Align and SSIM at 256p. */
  {
    const int h = 256, w = 456;
    const double fps = 32;
    int frames = (int)lround(seconds * fps);
    int64_t n = (int64_t)llround(seconds * sr);
    uint8_t *v = make_video(frames, h, w, fps);
    float *a = make_audio(n, sr);
    if (!v || !a) return 1;
    double best = INFINITY, t0;
    duet_video_quality q;
    for (int rep = 0; rep < 3; rep++) {
      t0 = now_s();
      if (duet_video_quality_compute(v, v + (size_t)h * w * 3, frames - 1, h, w, &q, &err)) {
        fprintf(stderr, "bench_eval: %s\n", err.msg);
        return 1;
      }
      best = fmin(best, now_s() - t0);
    }
    row("SSIM + PSNR (frame i vs i+1)", "456x256, 32 fps", (frames - 1) / fps, best, "–");
    for (int pass = 0; pass < 2; pass++) {
      if (pass == 1) { /* all cores */
        sched_setaffinity(0, sizeof all, &all);
        omp_set_num_threads(threads);
      }
      best = INFINITY;
      for (int rep = 0; rep < 3; rep++) {
        duet_avalign av;
        t0 = now_s();
        if (duet_avalign_clip(v, frames, h, w, fps, a, n, sr, &av, &err)) {
          fprintf(stderr, "bench_eval: %s\n", err.msg);
          return 1;
        }
        best = fmin(best, now_s() - t0);
        duet_avalign_free(&av);
      }
      char what[64];
      snprintf(what, sizeof what, "AV-Align, %d thread%s", pass ? threads : 1,
               pass && threads > 1 ? "s" : "");
      row(what, "456x256, 32 fps, 48 kHz", seconds, best, ">= 1x");
    }
    free(v);
    free(a);
  }
  return 0;
}
