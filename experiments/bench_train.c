/* Training throughput and memory of the shipped configs on this machine, as a Markdown table.
 *
 *   build/bin/bench_train [--steps N] [--configs tiny,small] [--threads T] [--batch B]
 *                         [--set section.key=value ...]
 *
 * For each config (configs/<name>.ini under DUET_SOURCE_DIR, or the current directory) it
 * writes a clip file of that config's shape with random content, builds the trainer on it
 * (no validation, no checkpoints, no logs) and times N optimizer steps after 2 warm-up steps,
 * data loading and audio encoding included. --batch overrides the configs' data.batch (and
 * sets accum to 1), for configs whose batch does not fit a small machine. --set overrides any
 * config key after that (e.g. --set train.device=cuda --set train.precision=bf16 times the
 * GPU step; the GPU column then shows the device memory in use after the steps). Each config runs in its own child process so
 * that the peak resident memory (getrusage maxrss) is that config's alone. Tokens are video
 * plus audio tokens (text tokens not counted). Like duet-train, this program takes
 * OMP_WAIT_POLICY from the environment as it is, so that each policy can be measured.
 *
 * --twin adds, under each config, the PyTorch twin's training step on the same resolved config,
 * batch and thread count (experiments/torch_twin/bench_twin_step.py, eager and torch.compile,
 * each in its own python3 process so its peak RSS is its own), and duet's speed as a multiple
 * of each. The twin's step draws the flow inputs but reads no clips: duet's row includes its
 * loader, the twin's does not. */
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


#include "core/blas.h"
#include "core/fileio.h"
#include "core/rng.h"
#include "data/clips.h"
#include "train/trainer.h"
#ifdef DUET_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#define MAX_SETS 32
static const char *sets[MAX_SETS];
static int n_sets;

typedef struct result {
  int ok;
  char err[1024];
  long long params;
  int tokens_per_clip, clips_per_step;
  int steps;
  double seconds;
  double cpu_seconds; /* user + system time of the timed steps, all threads */
  double rss_mib;
  double gpu_mib; /* device memory in use after the steps (cuda runs), else 0 */
  char ini[DUET_PATH_MAX]; /* the resolved config, written for the twin (--twin), else "" */
} result;

static int twin; /* --twin */

static double cpu_now(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Random pixels and noise in the config's shape: throughput does not depend on content. */
static int write_clips(const duet_train_config *c, const char *path, int n, duet_err *err) {
  const duet_model_config *m = &c->model;
  int64_t samples = (int64_t)m->audio_frames * c->audio.hop;
  duet_clip_shape shape = {m->fps, c->audio.sample_rate, m->video_frames, m->video_height, m->video_width, samples, 0, 0, 0};
  duet_clip_writer_opts wo = {.overwrite = 1, .threads = (int)sysconf(_SC_NPROCESSORS_ONLN)};
  duet_clip_writer *w;
  int rc = duet_clip_writer_open_opts(&w, path, &shape, &wo, err);
  if (rc) return rc;
  size_t vbytes = (size_t)m->video_frames * m->video_height * m->video_width * 3;
  uint8_t *video = malloc(vbytes);
  float *audio = malloc(sizeof(float) * (size_t)samples);
  for (int i = 0; i < n && !rc; i++) {
    duet_rng r = duet_rng_make(1, (uint64_t)i);
    for (size_t j = 0; j < vbytes; j++) video[j] = (uint8_t)duet_rng_u32(&r);
    duet_rng_fill_uniform_f32(1, 1000 + (uint64_t)i, 0, audio, samples, -0.5f, 0.5f);
    duet_clip clip = {.video = video, .audio = audio, .caption = "a small red wooden ball bounces twice on a blue floor"};
    rc = duet_clip_writer_append(w, &clip, err);
  }
  free(video);
  free(audio);
  int rc2 = duet_clip_writer_close(w, rc == 0, rc ? NULL : err);
  return rc ? rc : rc2;
}

/* The resolved config (file, --batch and --set applied) as an INI the twin reads, beside the
 * bench's temporary folder; res->ini stays empty when it cannot be written. */
static void write_resolved(const duet_train_config *c, result *res) {
  char *text = NULL;
  duet_err err = {0};
  char path[DUET_PATH_MAX];
  snprintf(path, sizeof path, "%s/duet-bench-train-%ld.ini", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
           (long)getpid());
  if (duet_train_config_format(c, &text, &err) == DUET_OK && duet_write_file_atomic(path, text, strlen(text), &err) == DUET_OK)
    snprintf(res->ini, sizeof res->ini, "%s", path);
  else
    fprintf(stderr, "bench_train: cannot write the config for the twin: %s\n", err.msg);
  free(text);
}

static void run_config(const char *name, int steps, int batch, result *res) {
  memset(res, 0, sizeof *res);
  duet_err err = {0};
  const char *src = getenv("DUET_SOURCE_DIR");
  char ini[DUET_PATH_MAX], dir[300], data[320], run[320];
  snprintf(ini, sizeof ini, "%s/configs/%s.ini", src ? src : ".", name);
  snprintf(dir, sizeof dir, "%s/duet-bench-train-%ld", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getpid());
  snprintf(data, sizeof data, "%s/clips.h5", dir);
  snprintf(run, sizeof run, "%s/run", dir);
  duet_train_config c;
  duet_train_config_defaults(&c);
  int rc = duet_train_config_load(&c, ini, &err);
  if (batch > 0) c.data.batch = batch, c.train.accum = 1;
  for (int i = 0; i < n_sets && !rc; i++) rc = duet_train_config_set(&c, sets[i], &err);
  if (!rc) rc = duet_mkdir_p(dir, &err);
  const int warm = 2;
  /* At most 16 steps' worth of clips: the loader starts a new epoch when they run out, and a
   * long GPU run would otherwise write gigabytes (base.ini's clips are 6 MB each). */
  int clips = c.data.batch * c.train.accum * (steps + warm < 16 ? steps + warm : 16) + 1;
  if (!rc) rc = write_clips(&c, data, clips, &err);
  snprintf(c.data.path, sizeof c.data.path, "%s", data);
  snprintf(c.train.run_dir, sizeof c.train.run_dir, "%s", run);
  c.data.val_clips = 0;
  c.train.log_every = c.train.val_every = c.train.ckpt_every = 0;
  duet_trainer *t = NULL;
  duet_trainer_opts o = {.cfg = &c};
  if (!rc) rc = duet_trainer_create(&t, &o, &err);
  double t0 = 0, c0 = 0;
  for (int s = 0; !rc && s < warm + steps; s++) {
    if (s == warm) t0 = now(), c0 = cpu_now();
    rc = duet_trainer_step(t, NULL, &err);
  }
  if (!rc) {
    res->seconds = now() - t0;
    res->cpu_seconds = cpu_now() - c0;
    res->steps = steps;
    int64_t n = duet_params_numel(duet_trainer_params(t));
    res->params = (long long)n;
    res->tokens_per_clip = duet_model_video_tokens(&c.model) + duet_model_audio_tokens(&c.model);
    res->clips_per_step = c.data.batch * c.train.accum;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    res->rss_mib = ru.ru_maxrss / 1024.0;
#ifdef DUET_HAVE_CUDA
    size_t free_b = 0, total_b = 0;
    if (c.train.device == DUET_CUDA && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
      res->gpu_mib = (double)(total_b - free_b) / (1024.0 * 1024.0);
#endif
    res->ok = 1;
    if (twin && c.train.device == DUET_CPU) write_resolved(&c, res);
    else if (twin) fprintf(stderr, "bench_train: --twin times the twin on the CPU only; no twin rows for %s\n", name);
  } else {
    snprintf(res->err, sizeof res->err, "%s", err.msg);
  }
  duet_trainer_free(t);
  duet_remove_tree(dir, NULL);
}

typedef struct twin_result {
  int ok;
  double median_ms, min_ms, cpu_s, rss_mib, first_s;
  long long params;
} twin_result;

/* One run of bench_twin_step.py; its last line is "twin-step median min cpu rss params first". */
static twin_result run_twin(const char *ini, int batch, int steps, int threads, int compile) {
  twin_result t = {0};
  const char *src = getenv("DUET_SOURCE_DIR"), *py = getenv("PYTHON");
  char script[DUET_PATH_MAX + 64], cmd[3 * DUET_PATH_MAX];
  snprintf(script, sizeof script, "%s/experiments/torch_twin/bench_twin_step.py", src ? src : ".");
  if (strchr(script, '\'') || strchr(ini, '\'')) {
    fprintf(stderr, "bench_train: --twin: a path holds a single quote: %s\n", script);
    return t;
  }
  snprintf(cmd, sizeof cmd, "%s '%s' --config '%s' --batch %d --steps %d --threads %d%s", py ? py : "python3", script,
           ini, batch, steps, threads, compile ? " --compile" : "");
  FILE *f = popen(cmd, "r");
  if (!f) return t;
  char line[512];
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "twin-step %lf %lf %lf %lf %lld %lf", &t.median_ms, &t.min_ms, &t.cpu_s, &t.rss_mib, &t.params,
               &t.first_s) == 6)
      t.ok = 1;
  int status = pclose(f);
  if (status != 0) t.ok = 0;
  return t;
}

static void print_twin_rows(const char *name, const result *r, int threads) {
  int batch = r->clips_per_step;
  double duet_sps = r->steps / r->seconds;
  for (int compile = 0; compile < 2; compile++) {
    const char *run = compile ? "twin torch.compile" : "twin eager";
    twin_result t = run_twin(r->ini, batch, r->steps, threads, compile);
    if (!t.ok) {
      printf("| %s | %s | failed (see stderr) | | | | | | | | | | |\n", name, run);
      continue;
    }
    double sps = 1e3 / t.median_ms;
    printf("| %s | %s | %lld | %d | %d | %d | %.4f | %.3f | %.0f | %.3f | %.0f | - | %.2fx |\n", name, run, t.params,
           r->tokens_per_clip, batch, r->steps, t.median_ms / 1e3, sps, sps * batch * r->tokens_per_clip, t.cpu_s,
           t.rss_mib, duet_sps / sps);
    fflush(stdout);
  }
  remove(r->ini);
}

static void cpu_name(char *buf, size_t size) {
  snprintf(buf, size, "unknown CPU");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "model name", 10)) {
      char *v = strchr(line, ':');
      if (v) {
        v += 2;
        v[strcspn(v, "\n")] = '\0';
        snprintf(buf, size, "%s", v);
      }
      break;
    }
  fclose(f);
}

int main(int argc, char **argv) {
  int steps = 10, threads = 0, batch = 0;
  char configs[256] = "tiny,small";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--configs") && i + 1 < argc) snprintf(configs, sizeof configs, "%s", argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--set") && i + 1 < argc && n_sets < MAX_SETS) sets[n_sets++] = argv[++i];
    else if (!strcmp(argv[i], "--twin")) twin = 1;
    else {
      int help = !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
      fprintf(help ? stdout : stderr, "usage: bench_train [--steps N] [--configs tiny,small] [--threads T] [--batch B]"
                      " [--set section.key=value ...] [--twin]\n");
      return help ? 0 : 1;
    }
  }
  if (steps < 1) steps = 1;
  if (threads > 0) {
    omp_set_num_threads(threads);
    duet_blas_set_threads(threads);
  }
  char cpu[256], date[64];
  cpu_name(cpu, sizeof cpu);
  time_t tt = time(NULL);
  strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&tt));
  struct utsname un;
  uname(&un);
  double load[3] = {0};
  getloadavg(load, 3);
  const char *wait = getenv("OMP_WAIT_POLICY");
  printf("## %s, %s, %ld CPUs (%s %s), %d OpenMP threads, OMP_WAIT_POLICY=%s, load average %.1f at start\n\n",
         date, cpu, sysconf(_SC_NPROCESSORS_ONLN), un.sysname, un.release, omp_get_max_threads(),
         wait ? wait : "(unset)", load[0]);
  printf("CBLAS: %s\n\n", duet_blas_name());
  for (int i = 0; i < n_sets; i++) printf("%s--set %s%s", i ? " " : "overrides: ", sets[i], i + 1 < n_sets ? "" : "\n\n");
  printf("| config | run | parameters | tokens/clip | clips/step | steps timed | s/step | steps/s | tokens/s | CPU s/step | peak RSS MiB | GPU MiB | duet's speed against it |\n");
  printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  fflush(stdout);
  for (char *name = strtok(configs, ","); name; name = strtok(NULL, ",")) {
    int fd[2];
    if (pipe(fd) != 0) return 1;
    pid_t pid = fork();
    if (pid == 0) {
      close(fd[0]);
      result r;
      run_config(name, steps, batch, &r);
      ssize_t w = write(fd[1], &r, sizeof r);
      _exit(w == (ssize_t)sizeof r ? 0 : 1);
    }
    close(fd[1]);
    result r;
    memset(&r, 0, sizeof r);
    ssize_t got = read(fd[0], &r, sizeof r);
    close(fd[0]);
    int status;
    waitpid(pid, &status, 0);
    if (got != (ssize_t)sizeof r || !r.ok) {
      printf("| %s | duet | failed: %s | | | | | | | | | | |\n", name, got == (ssize_t)sizeof r ? r.err : "child died");
      continue;
    }
    double sps = r.steps / r.seconds;
    char gpu[32] = "-";
    if (r.gpu_mib > 0) snprintf(gpu, sizeof gpu, "%.0f", r.gpu_mib);
    printf("| %s | duet | %lld | %d | %d | %d | %.4f | %.3f | %.0f | %.3f | %.0f | %s | - |\n", name, r.params,
           r.tokens_per_clip, r.clips_per_step, r.steps, r.seconds / r.steps, sps,
           sps * r.clips_per_step * r.tokens_per_clip, r.cpu_seconds / r.steps, r.rss_mib, gpu);
    fflush(stdout);
    if (twin && r.ini[0]) print_twin_rows(name, &r, omp_get_max_threads());
  }
  return 0;
}
