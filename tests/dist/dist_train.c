/* dist_train: the trainer with the MPI dist seam (train/dist_mpi.h), for the dist tests and
 * the scaling benchmark. Run it under mpirun for several ranks, or alone for one process
 * (then MPI is never initialised).
 *
 *   mpirun -np 2 dist_train --config FILE [--set S.K=V ...] [options]
 *   mpirun -np 2 dist_train --resume RUN_DIR [--set train.steps=N ...] [options]
 *
 * options:
 *   --zero1              shard the AdamW moments across ranks
 *   --per-param          one gradient all-reduce per parameter instead of buckets
 *   --bucket-kib N       gradient bucket size (default 25 MiB)
 *   --rank-set R S.K=V   apply one --set on rank R only (fault injection: a rank-local error)
 *   --fail-at R:N        rank R reports a failure instead of taking step N (mid-run failure)
 *   --stop-at N          save and stop after step N, as an interrupted run would (the schedule
 *                        still runs to train.steps)
 *   --pid-dir DIR        each rank writes its pid to DIR/rank_<R>.pid once it is running
 *   --stats              rank 0 prints the collectives' time and traffic at the end
 *
 * Every rank resolves its own config; only rank 0 logs and writes the run folder. At the end
 * the ranks agree on the outcome: on failure rank 0 prints one line naming the first failing
 * rank and its message, and every rank exits 1. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/blas.h"
#include "train/dist_mpi.h"
#include "train/trainer.h"

#define MAX_SETS 64

typedef struct args {
  const char *config, *resume, *pid_dir;
  const char *sets[MAX_SETS];
  int n_sets;
  const char *rank_sets[MAX_SETS];
  int rank_set_rank[MAX_SETS];
  int n_rank_sets;
  int fail_rank;
  long long fail_step;
  long long stop_at;
  int stats;
  duet_dist_mpi_opts mpi;
} args;

static void log_line(void *ctx, const char *line) {
  (void)ctx;
  fprintf(stderr, "%s\n", line);
  fflush(stderr);
}

static int parse_args(int argc, char **argv, args *a, duet_err *err) {
  memset(a, 0, sizeof *a);
  a->fail_rank = -1;
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    int has1 = i + 1 < argc, has2 = i + 2 < argc;
    if (!strcmp(s, "--zero1")) a->mpi.zero1 = 1;
    else if (!strcmp(s, "--per-param")) a->mpi.per_parameter = 1;
    else if (!strcmp(s, "--stats")) a->stats = 1;
    else if (!strcmp(s, "--config") && has1) a->config = argv[++i];
    else if (!strcmp(s, "--resume") && has1) a->resume = argv[++i];
    else if (!strcmp(s, "--pid-dir") && has1) a->pid_dir = argv[++i];
    else if (!strcmp(s, "--stop-at") && has1) a->stop_at = strtoll(argv[++i], NULL, 10);
    else if (!strcmp(s, "--bucket-kib") && has1) a->mpi.bucket_bytes = (size_t)strtoull(argv[++i], NULL, 10) * 1024;
    else if (!strcmp(s, "--set") && has1 && a->n_sets < MAX_SETS) a->sets[a->n_sets++] = argv[++i];
    else if (!strcmp(s, "--rank-set") && has2 && a->n_rank_sets < MAX_SETS) {
      a->rank_set_rank[a->n_rank_sets] = atoi(argv[++i]);
      a->rank_sets[a->n_rank_sets++] = argv[++i];
    } else if (!strcmp(s, "--fail-at") && has1) {
      if (sscanf(argv[++i], "%d:%lld", &a->fail_rank, &a->fail_step) != 2)
        return duet_err_set(err, DUET_EINVAL, "--fail-at wants RANK:STEP, not '%s'", argv[i]);
    } else {
      return duet_err_set(err, DUET_EINVAL, "unknown or incomplete option '%s'", s);
    }
  }
  if (!a->config == !a->resume) return duet_err_set(err, DUET_EINVAL, "give exactly one of --config and --resume");
  return DUET_OK;
}

static int resolve_config(const args *a, int rank, duet_train_config *cfg, duet_err *err) {
  int rc;
  if (a->resume) {
    rc = duet_train_config_load_run(cfg, a->resume, err);
    for (int i = 0; !rc && i < a->n_sets; i++) rc = duet_train_config_set_on_resume(cfg, a->sets[i], err);
  } else {
    duet_train_config_defaults(cfg);
    rc = duet_train_config_load(cfg, a->config, err);
    for (int i = 0; !rc && i < a->n_sets; i++) rc = duet_train_config_set(cfg, a->sets[i], err);
  }
  for (int i = 0; !rc && i < a->n_rank_sets; i++)
    if (a->rank_set_rank[i] == rank) rc = duet_train_config_set(cfg, a->rank_sets[i], err);
  return rc ? rc : duet_train_config_validate(cfg, err);
}

static int write_pid(const char *dir, int rank, duet_err *err) {
  char path[4096], tmp[4200];
  snprintf(path, sizeof path, "%s/rank_%d.pid", dir, rank);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
    return duet_err_set(err, DUET_EIO, "%s: cannot write", path);
  return DUET_OK;
}

/* duet_trainer_run, or steps to stop_at, with rank fail_rank failing in place of step fail_step. */
static int run(duet_trainer *t, const args *a, int rank, duet_err *err) {
  if (a->fail_rank < 0 && a->stop_at <= 0) return duet_trainer_run(t, err);
  const duet_train_config *cfg = duet_trainer_config(t);
  int64_t last = a->stop_at > 0 && a->stop_at < cfg->train.steps ? a->stop_at : cfg->train.steps;
  while (duet_trainer_steps_done(t) < last) {
    if (rank == a->fail_rank && duet_trainer_steps_done(t) + 1 == a->fail_step)
      return duet_err_set(err, DUET_EIO, "injected failure before step %lld", a->fail_step);
    int rc = duet_trainer_step(t, NULL, err);
    if (rc) return rc;
  }
  return duet_trainer_save(t, err);
}

static void print_stats(const duet_train_dist *dist, int64_t steps) {
  duet_dist_mpi_stats s;
  duet_dist_mpi_get_stats(dist, &s);
  double n = steps > 0 ? (double)steps : 1;
  char moments[128] = "";
  if (s.moment_bytes_full > 0)
    snprintf(moments, sizeof moments, "; moments %.6f MB/rank (unsharded %.6f MB)", s.moment_bytes / 1e6,
             s.moment_bytes_full / 1e6);
  fprintf(stderr,
          "dist: %d ranks, %lld steps: gradient all-reduce %.2f ms/step (%.3f MB/step in %.1f calls; "
          "%lld overlapped: %.2f ms in backward, %.2f ms after, %.1f calls started in backward); loss sums %.2f ms/step; weight gather %.2f ms/step%s\n",
          dist->world > 1 ? dist->world : 1, (long long)steps, 1e3 * s.grad_seconds / n, s.grad_bytes / n / 1e6,
          s.grad_calls / n, (long long)s.overlap_steps, 1e3 * s.grad_hook_seconds / n, 1e3 * s.grad_wait_seconds / n,
          s.early_calls / n,          1e3 * s.sum_seconds / n, 1e3 * s.gather_seconds / n, moments);
}

int main(int argc, char **argv) {
  args a;
  duet_err err = {0};
  if (parse_args(argc, argv, &a, &err)) {
    fprintf(stderr, "dist_train: %s\n", err.msg);
    return 2;
  }
  duet_train_dist dist;
  if (duet_dist_mpi_init_opts(&argc, &argv, &dist, &a.mpi, &err)) {
    fprintf(stderr, "dist_train: %s\n", err.msg);
    return 1;
  }
  duet_train_config cfg;
  duet_trainer *t = NULL;
  int64_t first_step = 0;
  int rc = a.pid_dir ? write_pid(a.pid_dir, dist.rank, &err) : DUET_OK;
  if (!rc) rc = resolve_config(&a, dist.rank, &cfg, &err);
  if (!rc && cfg.train.threads > 0) {
    omp_set_num_threads(cfg.train.threads);
    duet_blas_set_threads(cfg.train.threads);
  }
  if (!rc) {
    duet_trainer_opts o = {.cfg = &cfg, .resume = a.resume != NULL, .dist = dist, .log = log_line};
    rc = duet_trainer_create(&t, &o, &err);
  }
  if (!rc) {
    first_step = duet_trainer_steps_done(t);
    rc = run(t, &a, dist.rank, &err);
  }
  rc = duet_dist_mpi_agree(&dist, rc, &err);
  if (!rc) rc = duet_dist_mpi_check_replicas(&dist, duet_trainer_params(t), &err);
  if (!rc && a.stats && dist.rank == 0) print_stats(&dist, duet_trainer_steps_done(t) - first_step);
  duet_trainer_free(t);
  if (duet_dist_mpi_broken(&dist)) {
    fprintf(stderr, "dist_train: %s\n", err.msg);
    duet_dist_mpi_abort(&dist, 1);
  }
  if (rc && dist.rank == 0) fprintf(stderr, "dist_train: %s\n", err.msg);
  duet_err ferr;
  if (duet_dist_mpi_finalize(&dist, &ferr)) {
    fprintf(stderr, "dist_train: %s\n", ferr.msg);
    return 1;
  }
  return rc ? 1 : 0;
}
