/* Data-parallel step time under mpirun: one Markdown table row per launch (experiments/
 * bench_dist.sh runs the matrix and writes the header; results in RESULTS-dist.md).
 *
 *   [mpirun -np R] build/bin/bench_dist [--config configs/small.ini] [--batch B] [--steps N]
 *                                       [--warmup W] [--zero1] [--per-param] [--no-overlap]
 *                                       [--label TEXT]
 *
 * Rank 0 writes a clip file of the config's shape with random content (the step time does not
 * depend on it) into a fresh folder under $TMPDIR; the ranks then build the trainer on it
 * (no validation, checkpoints or logs), take W warm-up steps (the first grows the step arena)
 * and time N more. Reported, from rank 0, as medians over the timed steps (robust to a step
 * slowed by another process): seconds per step, clips per second over all ranks, and the time
 * per step inside the gradient all-reduce, the loss sums (whose status agreement is where a
 * rank waits for the slowest) and the ZeRO-1 weight gather; of the gradient time, the part
 * spent after backward (with train.overlap_allreduce, the default, the rest is spent inside
 * backward, starting and progressing buckets; --no-overlap turns it off); RSS after the timed
 * steps and peak RSS are the largest over ranks. Compute threads come from OMP_NUM_THREADS (the config's train.threads is set to
 * it). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/blas.h"
#include "core/fileio.h"
#include "core/rng.h"
#include "data/clips.h"
#include "train/dist_mpi.h"
#include "train/trainer.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int make_clips(const duet_train_config *c, const char *path, int n, duet_err *err) {
  const duet_model_config *m = &c->model;
  int64_t samples = (int64_t)m->audio_frames * c->audio.hop;
  duet_clip_shape shape = {m->fps, c->audio.sample_rate, m->video_frames, m->video_height, m->video_width, samples, 0, 0, 0};
  duet_clip_writer_opts wo = {.overwrite = 1, .threads = 1};
  duet_clip_writer *w;
  int rc = duet_clip_writer_open_opts(&w, path, &shape, &wo, err);
  if (rc) return rc;
  size_t vbytes = (size_t)m->video_frames * m->video_height * m->video_width * 3;
  uint8_t *video = malloc(vbytes);
  float *audio = malloc(sizeof(float) * (size_t)samples);
  if (!video || !audio) rc = duet_err_set(err, DUET_ENOMEM, "out of memory for a clip");
  for (int i = 0; i < n && !rc; i++) {
    duet_rng_fill_uniform_f32(3, (uint64_t)i, 0, audio, samples, -0.5f, 0.5f);
    duet_rng r = duet_rng_make(5, (uint64_t)i);
    for (size_t j = 0; j < vbytes; j++) video[j] = (uint8_t)duet_rng_u32(&r);
    duet_clip clip = {.video = video, .audio = audio, .caption = "two drums and a bell, left to right, on a grey floor"};
    rc = duet_clip_writer_append(w, &clip, err);
  }
  free(video);
  free(audio);
  int rc2 = duet_clip_writer_close(w, rc == 0, rc ? NULL : err);
  return rc ? rc : rc2;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Sorts v in place. */
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Resident memory now (the peak, ru_maxrss, also counts what was freed since). */
static double resident_mib(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return 0;
  if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  fclose(f);
  return resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

typedef struct bench_args {
  const char *config, *label;
  int batch, steps, warmup;
  int no_overlap;
  duet_dist_mpi_opts mpi;
} bench_args;

static int parse(int argc, char **argv, bench_args *a) {
  *a = (bench_args){.config = "configs/small.ini", .label = "", .batch = 1, .steps = 3, .warmup = 1};
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    int more = i + 1 < argc;
    if (!strcmp(s, "--config") && more) a->config = argv[++i];
    else if (!strcmp(s, "--label") && more) a->label = argv[++i];
    else if (!strcmp(s, "--batch") && more) a->batch = atoi(argv[++i]);
    else if (!strcmp(s, "--steps") && more) a->steps = atoi(argv[++i]);
    else if (!strcmp(s, "--warmup") && more) a->warmup = atoi(argv[++i]);
    else if (!strcmp(s, "--zero1")) a->mpi.zero1 = 1;
    else if (!strcmp(s, "--per-param")) a->mpi.per_parameter = 1;
    else if (!strcmp(s, "--no-overlap")) a->no_overlap = 1;
    else return -1;
  }
  return a->batch > 0 && a->steps > 0 && a->warmup >= 1 ? 0 : -1;
}

/* Every rank gets the same folder name: rank 0's pid, summed over ranks (the others add 0). */
static int shared_dir(const duet_train_dist *d, char *dir, size_t size, duet_err *err) {
  double pid = d->rank == 0 ? (double)getpid() : 0;
  int rc = d->allreduce_sum ? d->allreduce_sum(d->ctx, &pid, 1, err) : DUET_OK;
  const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(dir, size, "%s/duet-bench-dist-%.0f", tmp, pid);
  return rc;
}

static int bench(const bench_args *a, duet_train_dist *dist, duet_err *err) {
  duet_train_config c;
  duet_train_config_defaults(&c);
  int rc = duet_train_config_load(&c, a->config, err);
  char dir[400], data[480], run[480];
  if (!rc) rc = shared_dir(dist, dir, sizeof dir, err);
  snprintf(data, sizeof data, "%s/clips.h5", dir);
  snprintf(run, sizeof run, "%s/run", dir);
  int world = dist->world > 1 ? dist->world : 1;
  if (!rc && dist->rank == 0) {
    rc = duet_mkdir_p(dir, err);
    if (!rc) rc = make_clips(&c, data, 4 * a->batch * world, err);
  }
  /* The others wait here for the file: the sum's status agreement doubles as a barrier that
   * also carries rank 0's failure, if any. */
  if ((rc = duet_dist_mpi_agree(dist, rc, err))) return rc;
  snprintf(c.data.path, sizeof c.data.path, "%s", data);
  snprintf(c.train.run_dir, sizeof c.train.run_dir, "%s", run);
  c.data.batch = a->batch;
  c.data.val_clips = 0;
  c.train.accum = 1;
  c.train.log_every = c.train.val_every = c.train.ckpt_every = 0;
  c.train.steps = a->warmup + a->steps;
  c.train.warmup = 0;
  c.train.threads = omp_get_max_threads();
  c.train.overlap_allreduce = !a->no_overlap;
  duet_trainer *t = NULL;
  duet_trainer_opts o = {.cfg = &c, .dist = *dist};
  rc = duet_trainer_create(&t, &o, err);
  /* Per timed step: wall time and the collectives' time, each reported as its median so that
   * a step slowed by another process on the machine does not set the result. */
  double *per = calloc((size_t)a->steps * 5, sizeof(double));
  if (!rc && !per) rc = duet_err_set(err, DUET_ENOMEM, "out of memory");
  duet_dist_mpi_stats s0, s1;
  for (int s = 0; !rc && s < a->warmup + a->steps; s++) {
    duet_dist_mpi_get_stats(dist, &s0);
    double t0 = now();
    rc = duet_trainer_step(t, NULL, err);
    duet_dist_mpi_get_stats(dist, &s1);
    int k = s - a->warmup;
    if (k >= 0) {
      per[k] = now() - t0;
      per[a->steps + k] = s1.grad_seconds - s0.grad_seconds;
      per[2 * a->steps + k] = s1.sum_seconds - s0.sum_seconds;
      per[3 * a->steps + k] = s1.gather_seconds - s0.gather_seconds;
      per[4 * a->steps + k] = s1.grad_wait_seconds - s0.grad_wait_seconds;
    }
  }
  rc = duet_dist_mpi_agree(dist, rc, err);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  /* Peak and current RSS per rank, gathered by summing one slot per rank. */
  double rss[128] = {0};
  if (!rc && world <= 64) {
    rss[2 * dist->rank] = ru.ru_maxrss / 1024.0;
    rss[2 * dist->rank + 1] = resident_mib();
    if (dist->allreduce_sum) rc = dist->allreduce_sum(dist->ctx, rss, 2 * world, err);
  }
  if (!rc && dist->rank == 0) {
    double step = median(per, a->steps), peak = 0, cur = 0;
    for (int r = 0; r < world && r < 64; r++) {
      peak = rss[2 * r] > peak ? rss[2 * r] : peak;
      cur = rss[2 * r + 1] > cur ? rss[2 * r + 1] : cur;
    }
    long long params = (long long)duet_params_numel(duet_trainer_params(t));
    printf("| %s | %d | %d | %d | %d | %lld | %.2f | %.3f | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f | %.0f |\n", a->label,
           world, omp_get_max_threads(), a->batch, a->batch * world, params, step, a->batch * world / step,
           1e3 * median(per + a->steps, a->steps), 1e3 * median(per + 4 * a->steps, a->steps),
           1e3 * median(per + 2 * a->steps, a->steps),
           1e3 * median(per + 3 * a->steps, a->steps),
           (s1.moment_bytes ? s1.moment_bytes : 8.0 * params) / 1048576.0, cur, peak);
    fflush(stdout);
  }
  free(per);
  duet_trainer_free(t);
  if (dist->rank == 0) duet_remove_tree(dir, NULL);
  return rc;
}

int main(int argc, char **argv) {
  bench_args a;
  if (parse(argc, argv, &a)) {
    fprintf(stderr, "usage: [mpirun -np R] bench_dist [--config INI] [--batch B] [--steps N] [--warmup W] [--zero1] "
                    "[--per-param] [--no-overlap] [--label TEXT]\n");
    return 2;
  }
  duet_blas_set_threads(omp_get_max_threads());
  duet_train_dist dist;
  duet_err err = {0};
  if (duet_dist_mpi_init_opts(&argc, &argv, &dist, &a.mpi, &err)) {
    fprintf(stderr, "bench_dist: %s\n", err.msg);
    return 1;
  }
  int rc = bench(&a, &dist, &err);
  if (rc && dist.rank == 0) fprintf(stderr, "bench_dist: %s\n", err.msg);
  if (duet_dist_mpi_broken(&dist)) duet_dist_mpi_abort(&dist, 1);
  duet_err ferr;
  if (duet_dist_mpi_finalize(&dist, &ferr)) fprintf(stderr, "bench_dist: %s\n", ferr.msg);
  return rc ? 1 : 0;
}
