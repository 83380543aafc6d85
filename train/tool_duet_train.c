/* duet-train: trains the dual-stream MMDiT on a clip file from an INI config. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/blas.h"
#include "train/trainer.h"
#ifdef DUET_WITH_MPI
#include "train/dist_mpi.h"
#endif

#define MAX_SETS 256

static void usage(FILE *f) {
  fprintf(f,
          "usage: duet-train --config FILE [--set section.key=value ...] [--init CKPT_DIR]\n"
          "       duet-train --resume RUN_DIR [--set train.steps=N ...]\n"
          "\n"
          "Trains the dual-stream MMDiT (video + audio branches, joint flow matching) on the clip\n"
          "file named by data.path. The run folder (train.run_dir) receives config.ini (the resolved\n"
          "config), metrics.jsonl (one JSON line per step and per validation pass), loss.png and\n"
          "checkpoints step_NNNNNN/ with a link `last` to the newest (layout in docs/train.md).\n"
          "\n"
          "options:\n"
          "  --config FILE        INI config (configs/tiny.ini, small.ini, base.ini)\n"
          "  --set S.K=V          override one key (repeatable; applied after the file)\n"
          "  --resume RUN_DIR     continue a run from RUN_DIR/last, bit for bit, with RUN_DIR/config.ini;\n"
          "                       --set may then change only train.steps, train.log_every,\n"
          "                       train.val_every, train.ckpt_every and train.keep_checkpoints\n"
          "  --init CKPT_DIR      start a new run from the model weights of a checkpoint (fine-tuning;\n"
          "                       fresh optimizer and step 0)\n"
          "  --count-params       print the model's parameter count and exit (no data needed)\n"
          "  --help               this text\n"
          "\n"
          "config keys (section.key, type, meaning; every key is documented in docs/configs.md):\n");
  duet_train_config_print_help(f);
}

static void log_line(void *ctx, const char *line) {
  (void)ctx;
  fprintf(stderr, "%s\n", line);
  fflush(stderr);
}

static int fail(const char *msg) {
  fprintf(stderr, "duet-train: %s\n", msg);
  return 1;
}

typedef struct args {
  const char *config, *resume, *init;
  const char *sets[MAX_SETS];
  int n_sets;
  int count_params;
} args;

/* 0: go on; 1: exit 0 (help); -1: exit 1 (message in err). */
static int parse_args(int argc, char **argv, args *a, duet_err *err) {
  memset(a, 0, sizeof *a);
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    if (!strcmp(s, "--help") || !strcmp(s, "-h")) return 1;
    if (!strcmp(s, "--count-params")) {
      a->count_params = 1;
      continue;
    }
    const char **slot = !strcmp(s, "--config") ? &a->config
                        : !strcmp(s, "--resume") ? &a->resume
                        : !strcmp(s, "--init")   ? &a->init
                        : !strcmp(s, "--set")    ? &a->sets[a->n_sets < MAX_SETS ? a->n_sets : 0]
                                                 : NULL;
    if (!slot) {
      duet_err_set(err, DUET_EINVAL, "unknown option '%s' (see --help)", s);
      return -1;
    }
    if (i + 1 >= argc) {
      duet_err_set(err, DUET_EINVAL, "%s needs a value", s);
      return -1;
    }
    if (!strcmp(s, "--set")) {
      if (a->n_sets == MAX_SETS) {
        duet_err_set(err, DUET_EINVAL, "more than %d --set options", MAX_SETS);
        return -1;
      }
      a->n_sets++;
    } else if (*slot) {
      duet_err_set(err, DUET_EINVAL, "%s given twice", s);
      return -1;
    }
    *slot = argv[++i];
  }
  if (a->resume && a->config) {
    duet_err_set(err, DUET_EINVAL, "--resume uses RUN_DIR/config.ini; do not give --config with it");
    return -1;
  }
  if (a->resume && a->init) {
    duet_err_set(err, DUET_EINVAL, "--resume and --init cannot be combined: a resumed run has its own weights");
    return -1;
  }
  if (!a->resume && !a->config) {
    duet_err_set(err, DUET_EINVAL, "--config FILE is required (or --resume RUN_DIR; see --help)");
    return -1;
  }
  return 0;
}

static int resolve_config(const args *a, duet_train_config *cfg, duet_err *err) {
  int rc;
  if (a->resume) {
    rc = duet_train_config_load_run(cfg, a->resume, err);
    for (int i = 0; !rc && i < a->n_sets; i++) rc = duet_train_config_set_on_resume(cfg, a->sets[i], err);
  } else {
    duet_train_config_defaults(cfg);
    rc = duet_train_config_load(cfg, a->config, err);
    for (int i = 0; !rc && i < a->n_sets; i++) rc = duet_train_config_set(cfg, a->sets[i], err);
  }
  return rc ? rc : duet_train_config_validate(cfg, err);
}

int main(int argc, char **argv) {
  args a;
  duet_err err = {0};
  int pr = parse_args(argc, argv, &a, &err);
  if (pr == 1) {
    usage(stdout);
    return 0;
  }
  if (pr < 0) return fail(err.msg);
  duet_train_config cfg;
  if (resolve_config(&a, &cfg, &err)) return fail(err.msg);
  if (cfg.train.threads > 0) {
    omp_set_num_threads(cfg.train.threads);
    duet_blas_set_threads(cfg.train.threads);
  }
  if (a.count_params) {
    int64_t n;
    if (duet_train_count_params(&cfg.model, &n, &err)) return fail(err.msg);
    printf("model: %lld parameters\n", (long long)n);
    return 0;
  }
  /* Under mpirun every rank runs this; without it the dist stays that of one process and no
   * MPI call is made (dist_mpi.c). All ranks agree on the outcome before any of them leaves. */
  duet_train_dist dist;
  memset(&dist, 0, sizeof dist);
#ifdef DUET_WITH_MPI
  duet_dist_mpi_opts mpi_opts = {0, 0, cfg.train.zero1};
  if (duet_dist_mpi_init_opts(&argc, &argv, &dist, &mpi_opts, &err)) return fail(err.msg);
  /* One GPU per rank, by local rank, before anything touches the device; a rank that cannot
   * have its GPU joins the agreement below with its error, like any other failure. */
  int gpu_rc = cfg.train.device == DUET_CUDA && dist.world > 1 ? duet_dist_mpi_select_gpu(&dist, &err) : DUET_OK;
#endif
  duet_trainer_opts o = {.cfg = &cfg, .resume = a.resume != NULL, .init_dir = a.init, .dist = dist, .log = log_line};
  duet_trainer *t = NULL;
#ifdef DUET_WITH_MPI
  int rc = gpu_rc ? gpu_rc : duet_trainer_create(&t, &o, &err);
#else
  int rc = duet_trainer_create(&t, &o, &err);
#endif
  char warning[256]; /* once the run is known to start, so that a refusal stays one line */
  if (!rc && dist.rank == 0 && duet_train_capacity_warning(&cfg.model, warning, sizeof warning))
    fprintf(stderr, "duet-train: %s\n", warning);
  if (!rc) rc = duet_trainer_run(t, &err);
#ifdef DUET_WITH_MPI
  rc = duet_dist_mpi_agree(&dist, rc, &err);
  duet_trainer_free(t);
  if (duet_dist_mpi_broken(&dist)) {
    fprintf(stderr, "duet-train: %s\n", err.msg);
    duet_dist_mpi_abort(&dist, 1);
  }
  duet_err ferr;
  if (duet_dist_mpi_finalize(&dist, &ferr) && !rc) {
    err = ferr;
    rc = ferr.code ? ferr.code : DUET_EIO;
  }
  if (rc && dist.rank != 0) return 1; /* rank 0 prints the agreed message */
#else
  duet_trainer_free(t);
#endif
  return rc ? fail(err.msg) : 0;
}
