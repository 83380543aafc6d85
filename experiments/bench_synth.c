/* duet-synth and duet-ingest throughput: the synthetic generator alone (in memory), the
 * generator writing a clip file (float32 and int16 audio), and, for ingestion, decoding an
 * H.264/AAC MP4 to 64x64 16 fps 16 kHz clips. Writes its files under /tmp and removes them;
 * prints Markdown.
 *
 *   bench_synth [--count N] [--threads N] [--footage-seconds S] [--dir DIR]
 *
 * The default is the target workload: 10,000 clips of 2 s at 64x64, 16 fps, 16 kHz. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "data/ingest.h"
#include "data/media.h"
#include "data/synth.h"

#ifdef DUET_HAVE_FFMPEG
#include <libavutil/log.h>
#endif

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void cpu_model(char *buf, size_t n) {
  snprintf(buf, n, "unknown CPU");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    if (!strncmp(line, "model name", 10)) {
      char *c = strchr(line, ':');
      if (c) {
        c++;
        while (*c == ' ') c++;
        c[strcspn(c, "\n")] = '\0';
        snprintf(buf, n, "%s", c);
      }
      break;
    }
  }
  fclose(f);
}

static double file_mb(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (double)sb.st_size / 1e6 : 0.0;
}

/* The generator alone: scene, frames and sound for every clip, nothing stored. */
static double bench_generate(const duet_synth_params *p, int64_t count, int threads) {
  const size_t vn = (size_t)p->frames * p->height * p->width * 3;
  const int64_t an = duet_synth_audio_samples(p);
  double t0 = now();
#pragma omp parallel num_threads(threads)
  {
    uint8_t *video = malloc(vn);
    float *audio = malloc(sizeof(float) * (size_t)an);
    duet_synth_scene *s = malloc(sizeof *s);
#pragma omp for schedule(dynamic, 16)
    for (int64_t i = 0; i < count; i++) duet_synth_clip(p, i, s, video, audio, NULL);
    free(video);
    free(audio);
    free(s);
  }
  return now() - t0;
}

static int bench_write(const char *path, const duet_synth_params *p, int64_t count, int threads,
                       int i16, double *seconds, double *mb) {
  duet_synth_write_opts o = {.count = count, .threads = threads, .overwrite = 1, .audio_i16 = i16};
  duet_err err = {0};
  double t0 = now();
  if (duet_synth_write(path, p, &o, &err)) {
    fprintf(stderr, "bench_synth: %s\n", err.msg);
    return -1;
  }
  *seconds = now() - t0;
  *mb = file_mb(path);
  remove(path);
  return 0;
}

/* Footage for the ingest rows: a 640x360 30 fps H.264/AAC MP4 of one long synthetic scene
 * with noise added, as a camera-sized source that must be decoded, scaled and cropped. */
static int make_footage(const char *path, double seconds) {
  duet_synth_params p;
  duet_synth_params_default(&p);
  p.height = 360;
  p.width = 640;
  p.fps = 30;
  p.frames = (int)lround(seconds * p.fps);
  p.sample_rate = 48000;
  p.seed = 99;
  size_t vn = (size_t)p.frames * p.height * p.width * 3;
  int64_t an = duet_synth_audio_samples(&p);
  uint8_t *video = malloc(vn);
  float *audio = malloc(sizeof(float) * (size_t)an);
  duet_synth_scene *s = malloc(sizeof *s);
  duet_err err = {0};
  int rc = video && audio && s ? 0 : -1;
  if (!rc) rc = duet_synth_clip(&p, 0, s, video, audio, &err);
  /* Sensor-like noise (+-6 levels): flat synthetic colours alone decode unrealistically fast. */
  uint32_t h = 12345u;
  for (size_t i = 0; !rc && i < vn; i++) {
    h = h * 1664525u + 1013904223u;
    int v = video[i] + (int)(h >> 28) - 6;
    video[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
  }
  if (!rc) rc = duet_media_write_mp4(path, video, p.frames, p.height, p.width, p.fps, audio, an,
                                     p.sample_rate, &err);
  if (rc) fprintf(stderr, "bench_synth: footage: %s\n", err.msg[0] ? err.msg : "out of memory");
  free(video);
  free(audio);
  free(s);
  return rc;
}

int main(int argc, char **argv) {
  int64_t count = 10000;
  int threads = 0;
  double footage_s = 30.0;
  const char *dir = "/tmp";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--count") && i + 1 < argc) count = atoll(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--footage-seconds") && i + 1 < argc) footage_s = atof(argv[++i]);
    else if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
    else {
      fprintf(stderr, "usage: bench_synth [--count N] [--threads N] [--footage-seconds S] [--dir DIR]\n");
      return 2;
    }
  }
  if (count < 1 || footage_s < 2) {
    fprintf(stderr, "bench_synth: --count must be >= 1 and --footage-seconds >= 2\n");
    return 2;
  }
  if (threads <= 0) threads = omp_get_max_threads();
#ifdef DUET_HAVE_FFMPEG
  av_log_set_level(AV_LOG_ERROR);
#endif
  duet_synth_params p;
  duet_synth_params_default(&p);
  p.seed = 1;
  char path[1024], mp4[1024], ingested[1024];
  snprintf(path, sizeof path, "%s/duet-bench-synth-%ld.h5", dir, (long)getpid());
  snprintf(mp4, sizeof mp4, "%s/duet-bench-footage-%ld.mp4", dir, (long)getpid());
  snprintf(ingested, sizeof ingested, "%s/duet-bench-ingest-%ld.h5", dir, (long)getpid());

  struct utsname u;
  uname(&u);
  char cpu[256];
  cpu_model(cpu, sizeof cpu);
  time_t tt = time(NULL);
  char date[32];
  strftime(date, sizeof date, "%Y-%m-%d", localtime(&tt));
  const double raw_mb = (double)count *
                        ((double)p.frames * p.height * p.width * 3 +
                         4.0 * (double)duet_synth_audio_samples(&p)) / 1e6;

  printf("## duet-synth throughput, %s\n\n", date);
  printf("Machine: %s %s %s, %s, %ld online CPUs; %d threads.\n", u.sysname, u.release, u.machine,
         cpu, sysconf(_SC_NPROCESSORS_ONLN), threads);
  printf("Workload: %lld clips of %d frames %dx%d at %g fps + %lld samples at %d Hz "
         "(%.0f MB raw, audio as float32).\n\n",
         (long long)count, p.frames, p.height, p.width, p.fps,
         (long long)duet_synth_audio_samples(&p), p.sample_rate, raw_mb);
  printf("| step | clips | seconds | clips/s | raw MB/s | file MB | file MB/s | threads |\n");
  printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  fflush(stdout);

  double g = bench_generate(&p, count, threads);
  printf("| generate only (memory) | %lld | %.2f | %.0f | %.0f | - | - | %d |\n", (long long)count, g,
         count / g, raw_mb / g, threads);
  fflush(stdout);
  double s1 = 0, mb1 = 0, s2 = 0, mb2 = 0;
  if (bench_write(path, &p, count, threads, 0, &s1, &mb1)) return 1;
  printf("| generate + write, float32 audio | %lld | %.2f | %.0f | %.0f | %.0f | %.1f | %d |\n",
         (long long)count, s1, count / s1, raw_mb / s1, mb1, mb1 / s1, threads);
  fflush(stdout);
  if (bench_write(path, &p, count, threads, 1, &s2, &mb2)) return 1;
  printf("| generate + write, int16 audio | %lld | %.2f | %.0f | %.0f | %.0f | %.1f | %d |\n",
         (long long)count, s2, count / s2, raw_mb / s2, mb2, mb2 / s2, threads);
  printf("\n");
  fflush(stdout);

  /* Ingest: decode rate of camera-sized H.264 to the training shape. */
  if (make_footage(mp4, footage_s)) return 1;
  double footage_mb = file_mb(mp4);
  duet_media_opts mo = {.width = 64, .height = 64, .fps = 16, .sample_rate = 16000, .need_audio = 1};
  duet_media m;
  duet_err err = {0};
  double t0 = now();
  int rc = duet_media_read(mp4, &mo, &m, &err);
  double dec = now() - t0;
  if (rc) {
    fprintf(stderr, "bench_synth: %s\n", err.msg);
    remove(mp4);
    return 1;
  }
  duet_media_free(&m);
  duet_ingest_opts io;
  duet_ingest_opts_default(&io);
  io.overwrite = 1;
  duet_ingest_report rep;
  const char *files[1] = {mp4};
  t0 = now();
  rc = duet_ingest(ingested, files, 1, &io, NULL, NULL, &rep, &err);
  double ing = now() - t0;
  int64_t clips = rep.clips;
  duet_ingest_report_free(&rep);
  remove(ingested);
  remove(mp4);
  if (rc) {
    fprintf(stderr, "bench_synth: %s\n", err.msg);
    return 1;
  }
  printf("## duet-ingest decode rate, %s\n\n", date);
  printf("Source: %.0f s of 640x360 30 fps H.264 (libx264, crf 18, a synthetic scene with "
         "+-6 levels of noise, %.1f MB) + 48 kHz AAC, made by duet_media_write_mp4; output "
         "64x64, 16 fps, 16 kHz mono.\n\n", footage_s, footage_mb);
  printf("| step | footage s | seconds | x real time | source frames/s | clips/s |\n");
  printf("| --- | ---: | ---: | ---: | ---: | ---: |\n");
  printf("| duet_media_read, whole file | %.0f | %.2f | %.1f | %.0f | - |\n", footage_s, dec,
         footage_s / dec, footage_s * 30 / dec);
  printf("| duet_ingest, 2 s clips every 2 s | %.0f | %.2f | %.1f | %.0f | %.1f |\n", footage_s,
         ing, footage_s / ing, footage_s * 30 / ing, clips / ing);
  return 0;
}
