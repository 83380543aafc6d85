/* Clip-file throughput: how fast duet_clip_writer stores clips and how fast the loader
 * delivers them, at 64x64x32 frames + 2 s of 16 kHz audio and 256x256x64 + 4 s, with one and
 * two loader threads. Writes its own files under /tmp and removes them; prints Markdown.
 *
 *   bench_loader [--small-clips N] [--large-clips N] [--seconds S]
 *
 * Content: a gradient background with a moving square and a sine tone with bursts, "clean"
 * as a synthetic generator makes it, or "noisy" with +-4 levels of per-pixel noise and audio
 * hiss, closer to camera footage and the harder case for deflate. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "data/clips.h"
#include "data/loader.h"

#define VARIANTS 8

typedef struct bench_shape {
  const char *name;
  int frames, height, width;
  double seconds;
  int batch;
} bench_shape;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of the whole process: with other work on the machine, wall-clock rates drop
 * but CPU time per clip stays put, so both are reported. */
static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
         (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static uint32_t hash32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  return x ^ (x >> 16);
}

static void make_clip(const bench_shape *s, int64_t samples, int v, int noisy, uint8_t *video,
                      float *audio) {
  int side = s->height / 4;
  for (int t = 0; t < s->frames; t++)
    for (int y = 0; y < s->height; y++)
      for (int x = 0; x < s->width; x++) {
        int sx = (t * 3 + v * 7) % (s->width - side), sy = (t * 2 + v * 5) % (s->height - side);
        int in = x >= sx && x < sx + side && y >= sy && y < sy + side;
        for (int c = 0; c < 3; c++) {
          int val = in ? 200 + 20 * c : (x * 255 / s->width + y * 64 / s->height + 40 * c + v * 9) & 255;
          if (noisy) {
            uint32_t h = hash32((uint32_t)(((t * s->height + y) * s->width + x) * 3 + c) ^ (uint32_t)v * 0x9e3779b9u);
            val += (int)(h % 9) - 4;
          }
          video[(((size_t)t * s->height + y) * s->width + x) * 3 + c] =
              (uint8_t)(val < 0 ? 0 : val > 255 ? 255 : val);
        }
      }
  for (int64_t k = 0; k < samples; k++) {
    double tt = (double)k / 16000.0;
    double burst = exp(-8.0 * fmod(tt + 0.1 * v, 0.5));
    double x = 0.3 * burst * sin(2 * M_PI * (220.0 + 55.0 * v) * tt);
    if (noisy) x += 0.01 * ((double)(hash32((uint32_t)k * 2654435761u + (uint32_t)v) % 2001) / 1000.0 - 1.0);
    audio[k] = (float)x;
  }
}

typedef struct write_result {
  double seconds, cpu, bytes_raw;
  long long file_bytes;
} write_result;

static int write_file(const char *path, const bench_shape *s, int clips, int noisy,
                      write_result *res) {
  duet_clip_shape shape = {.fps = s->frames / s->seconds, .sample_rate = 16000,
                           .frames = s->frames, .height = s->height, .width = s->width,
                           .audio_samples = (int64_t)(16000 * s->seconds)};
  size_t vn = (size_t)s->frames * s->height * s->width * 3;
  uint8_t *video = malloc(vn * VARIANTS);
  float *audio = malloc(sizeof(float) * (size_t)shape.audio_samples * VARIANTS);
  if (!video || !audio) return -1;
  /* Content is made beforehand so the timing is the writer's alone. */
  for (int v = 0; v < VARIANTS; v++)
    make_clip(s, shape.audio_samples, v, noisy, video + vn * v, audio + shape.audio_samples * v);
  duet_clip_writer *w = NULL;
  duet_err err = {0};
  double t0 = now(), c0 = cpu_seconds();
  int rc = duet_clip_writer_open(&w, path, &shape, 1, &err);
  for (int i = 0; i < clips && !rc; i++) {
    int v = i % VARIANTS;
    char caption[64];
    snprintf(caption, sizeof caption, "clip %d: a square moves, a tone pulses", i);
    duet_clip c = {.video = video + vn * v, .audio = audio + shape.audio_samples * v,
                   .caption = caption};
    rc = duet_clip_writer_append(w, &c, &err);
  }
  if (w) {
    int crc = duet_clip_writer_close(w, rc == 0, rc ? NULL : &err);
    if (!rc) rc = crc;
  }
  res->seconds = now() - t0;
  res->cpu = cpu_seconds() - c0;
  res->bytes_raw = (double)clips * ((double)vn + 4.0 * (double)shape.audio_samples);
  struct stat st;
  res->file_bytes = stat(path, &st) == 0 ? (long long)st.st_size : -1;
  if (rc) fprintf(stderr, "bench_loader: %s\n", err.msg);
  free(video);
  free(audio);
  return rc;
}

typedef struct read_result {
  double clips_per_s, mb_per_s, cpu_ms_per_clip;
  long long clips;
} read_result;

static int read_file(const char *path, const bench_shape *s, int threads, double budget,
                     read_result *res) {
  duet_loader_config c = {.path = path, .batch_size = s->batch, .seed = 1, .shuffle = 1,
                          .prefetch = 4, .threads = threads};
  duet_loader *l = NULL;
  duet_err err = {0};
  if (duet_loader_open(&l, &c, &err)) {
    fprintf(stderr, "bench_loader: %s\n", err.msg);
    return -1;
  }
  const duet_batch *b = NULL;
  int rc = 0;
  for (int i = 0; i < 2 && !rc; i++) rc = duet_loader_next(l, &b, &err); /* warm-up */
  long long clips = 0;
  double t0 = now(), t = t0, c0 = cpu_seconds();
  int64_t steps = duet_loader_steps_per_epoch(l);
  for (int64_t i = 0; i < steps && !rc && t - t0 < budget; i++) {
    rc = duet_loader_next(l, &b, &err);
    if (!rc) clips += b->count;
    t = now();
  }
  if (rc) fprintf(stderr, "bench_loader: %s\n", err.msg);
  double per_clip = (double)s->frames * s->height * s->width * 3 + 4.0 * 16000 * s->seconds;
  res->cpu_ms_per_clip = 1e3 * (cpu_seconds() - c0) / (double)clips;
  res->clips = clips;
  res->clips_per_s = (double)clips / (t - t0);
  res->mb_per_s = res->clips_per_s * per_clip / 1e6;
  duet_loader_close(l);
  return rc;
}

static void print_machine(void) {
  struct utsname u;
  uname(&u);
  char model[256] = "unknown";
  FILE *f = fopen("/proc/cpuinfo", "r");
  char line[512];
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "model name", 10)) {
      char *colon = strchr(line, ':');
      if (colon) snprintf(model, sizeof model, "%s", colon + 2);
      model[strcspn(model, "\n")] = '\0';
      break;
    }
  if (f) fclose(f);
  time_t tt = time(NULL);
  char date[32];
  strftime(date, sizeof date, "%Y-%m-%d", gmtime(&tt));
  /* Other work on the machine slows every figure; the load says how much there was. */
  double load[1] = {-1};
  getloadavg(load, 1);
  printf("Date: %s  \nMachine: %s %s %s, %s, %ld cores, load average %.2f at start\n\n", date,
         u.sysname, u.release, u.machine, model, sysconf(_SC_NPROCESSORS_ONLN), load[0]);
}

int main(int argc, char **argv) {
  int small_clips = 10000, large_clips = 100;
  double budget = 20.0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--small-clips")) small_clips = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--large-clips")) large_clips = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--seconds")) budget = atof(argv[i + 1]);
    else {
      fprintf(stderr, "usage: bench_loader [--small-clips N] [--large-clips N] [--seconds S]\n");
      return 2;
    }
  }
  const bench_shape shapes[2] = {{"64x64x32, 2 s audio", 32, 64, 64, 2.0, 8},
                                 {"256x256x64, 4 s audio", 64, 256, 256, 4.0, 4}};
  char dir[64];
  snprintf(dir, sizeof dir, "/tmp/duet-bench-%ld", (long)getpid());
  mkdir(dir, 0755);

  print_machine();
  typedef struct job {
    int shape, noisy, clips;
    char path[128];
    write_result w;
  } job;
  enum { JOBS = 4 };
  job jobs[JOBS] = {{.shape = 0, .noisy = 0, .clips = small_clips},
                    {.shape = 0, .noisy = 1, .clips = small_clips / 5},
                    {.shape = 1, .noisy = 0, .clips = large_clips},
                    {.shape = 1, .noisy = 1, .clips = large_clips}};
  printf("Writer (duet_clip_writer, default options: one compression thread per core, deflate 1)\n\n");
  printf("| clips | content | count | s | clips/s | raw MB/s | file MB | ratio | s per 10,000 | CPU ms/clip |\n");
  printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (int j = 0; j < JOBS; j++) {
    job *jb = &jobs[j];
    const bench_shape *s = &shapes[jb->shape];
    snprintf(jb->path, sizeof jb->path, "%s/%d.h5", dir, j);
    fprintf(stderr, "writing %d clips of %s...\n", jb->clips, s->name);
    if (write_file(jb->path, s, jb->clips, jb->noisy, &jb->w)) return 1;
    printf("| %s | %s | %d | %.1f | %.0f | %.0f | %.0f | %.2f | %.0f | %.2f |\n", s->name,
           jb->noisy ? "noisy" : "clean", jb->clips, jb->w.seconds, jb->clips / jb->w.seconds,
           jb->w.bytes_raw / 1e6 / jb->w.seconds, jb->w.file_bytes / 1e6,
           jb->w.bytes_raw / (double)jb->w.file_bytes, jb->w.seconds / jb->clips * 10000,
           1e3 * jb->w.cpu / jb->clips);
    fflush(stdout);
  }

  printf("\nLoader (shuffled, prefetch 4, no augmentation; file in the page cache; MB/s of "
         "decoded video u8 + audio f32 delivered)\n\n");
  printf("| clips | content | batch | threads | clips read | clips/s | MB/s | CPU ms/clip |\n");
  printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (int j = 0; j < JOBS; j++) {
    const bench_shape *s = &shapes[jobs[j].shape];
    for (int threads = 1; threads <= 2; threads++) {
      read_result r;
      fprintf(stderr, "reading %s with %d thread(s)...\n", s->name, threads);
      if (read_file(jobs[j].path, s, threads, budget, &r)) return 1;
      printf("| %s | %s | %d | %d | %lld | %.0f | %.0f | %.2f |\n", s->name,
             jobs[j].noisy ? "noisy" : "clean", s->batch, threads, r.clips, r.clips_per_s,
             r.mb_per_s, r.cpu_ms_per_clip);
      fflush(stdout);
    }
  }
  for (int j = 0; j < JOBS; j++) remove(jobs[j].path);
  rmdir(dir);
  return 0;
}
