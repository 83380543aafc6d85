/* Shared set-up of the dist tests: running the dist_train driver under mpirun (or alone), with
 * a time limit, and reading back what a run left (metrics.jsonl, checkpoint tensors). The clip
 * file and the tiny model come from the train tests' fixture (tests/train/train_fixture.h). */
#ifndef DUET_TESTS_DIST_FIXTURE_H
#define DUET_TESTS_DIST_FIXTURE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "testlib.h"

/* snprintf into an array, counted as a failed check when it does not fit. */
#define DX_FMT(buf, ...) CHECK(snprintf((buf), sizeof(buf), __VA_ARGS__) < (int)sizeof(buf))

/* The driver's command line: under mpirun with np ranks, or alone for np = 0. Every rank gets
 * OMP_NUM_THREADS=1 (two ranks share this machine's cores). */
void dx_command(char *buf, size_t size, int np, const char *args);
/* The same for another program (e.g. duet-train). */
void dx_command_bin(char *buf, size_t size, int np, const char *bin, const char *args);

/* Starts `sh -c cmd` in its own process group, stdout and stderr to out_path. */
pid_t dx_spawn(const char *cmd, const char *out_path);
/* Waits up to timeout_s for pid; kills its group when it does not end in time. Returns the
 * exit status, 128 + signal when killed by one, or -1 on timeout. *elapsed: seconds waited. */
int dx_wait(pid_t pid, double timeout_s, double *elapsed);

/* dx_command + spawn + wait; the output (truncated to size) goes to out. */
int dx_run(int np, const char *args, double timeout_s, char *out, size_t size);
int dx_run_bin(int np, const char *bin, const char *args, double timeout_s, char *out, size_t size);

/* Reads a whole small text file into buf; returns 0 on success. */
int dx_read_text(const char *path, char *buf, size_t size);

#define DX_MAX_STEPS 64
typedef struct dx_metrics {
  int n_train, n_val;
  double step[DX_MAX_STEPS], loss[DX_MAX_STEPS], loss_video[DX_MAX_STEPS], loss_audio[DX_MAX_STEPS];
  double grad_norm[DX_MAX_STEPS], samples[DX_MAX_STEPS], epoch[DX_MAX_STEPS];
  double val_step[DX_MAX_STEPS], val_loss[DX_MAX_STEPS];
} dx_metrics;

/* <run>/metrics.jsonl; returns 0 on success. */
int dx_read_metrics(const char *run, dx_metrics *m);

typedef struct dx_diff {
  int tensors;       /* compared */
  int missing;       /* in a but not in b (or of another shape) */
  int64_t elems, differing; /* elements compared, and those whose bits differ */
  double max_abs, max_rel;  /* over all elements; rel = |a - b| / max(|a|, |b|, 1e-3) */
} dx_diff;

/* Compares every tensor of safetensors file a with the same-named one of b. */
int dx_compare_st(const char *a, const char *b, dx_diff *d);

/* Compares <a>/<file> with <b>/<file> for model, ema and optim .safetensors; returns the
 * largest max_abs and the total of differing elements (missing tensors count as differing). */
int dx_compare_ckpt(const char *a, const char *b, double *max_abs, int64_t *differing);

#endif
