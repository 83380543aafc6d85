#include "dist_fixture.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/safetensors.h"
#include "testlib.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void dx_command(char *buf, size_t size, int np, const char *args) { dx_command_bin(buf, size, np, DIST_TRAIN_BIN, args); }

void dx_command_bin(char *buf, size_t size, int np, const char *bin, const char *args) {
  /* --bind-to none: with --oversubscribe and one thread per rank, binding adds nothing and can
   * pin both ranks to one core in a restricted cpuset. mpi_yield_when_idle: a rank waiting in a
   * collective yields its core instead of spinning, for when ctest runs other tests beside. */
  if (np > 0)
    snprintf(buf, size,
             "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 %s --oversubscribe --allow-run-as-root --bind-to none "
             "--mca mpi_yield_when_idle 1 -np %d %s %s",
             DIST_MPIEXEC, np, bin, args);
  else
    snprintf(buf, size, "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 %s %s", bin, args);
}

pid_t dx_spawn(const char *cmd, const char *out_path) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  setpgid(0, 0);
  int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
  }
  execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
  _exit(127);
}

int dx_wait(pid_t pid, double timeout_s, double *elapsed) {
  double t0 = now();
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return -1;
    if (now() - t0 > timeout_s) {
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
      if (elapsed) *elapsed = now() - t0;
      return -1;
    }
    usleep(20000);
  }
  if (elapsed) *elapsed = now() - t0;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

int dx_read_text(const char *path, char *buf, size_t size) {
  FILE *f = fopen(path, "r");
  if (!f) {
    buf[0] = '\0';
    return -1;
  }
  size_t n = fread(buf, 1, size - 1, f);
  buf[n] = '\0';
  fclose(f);
  return 0;
}

int dx_run(int np, const char *args, double timeout_s, char *out, size_t size) {
  return dx_run_bin(np, DIST_TRAIN_BIN, args, timeout_s, out, size);
}

int dx_run_bin(int np, const char *bin, const char *args, double timeout_s, char *out, size_t size) {
  char cmd[8192], path[4096];
  static int serial;
  dx_command_bin(cmd, sizeof cmd, np, bin, args);
  snprintf(path, sizeof path, "%s/run_%d.out", test_tmpdir(), serial++);
  pid_t pid = dx_spawn(cmd, path);
  if (pid < 0) return -1;
  double elapsed;
  int rc = dx_wait(pid, timeout_s, &elapsed);
  dx_read_text(path, out, size);
  if (rc != 0) fprintf(stderr, "dist test: `%s` -> %d after %.1f s:\n%s\n", cmd, rc, elapsed, out);
  return rc;
}

static double num(const cJSON *o, const char *key) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

int dx_read_metrics(const char *run, dx_metrics *m) {
  memset(m, 0, sizeof *m);
  char path[4096], *text;
  size_t n;
  snprintf(path, sizeof path, "%s/metrics.jsonl", run);
  if (duet_read_file(path, 1u << 24, &text, &n, NULL)) return -1;
  int rc = 0;
  for (char *line = text; *line && !rc;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    cJSON *o = cJSON_Parse(line);
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    if (!o || !cJSON_IsString(kind)) {
      rc = -1;
    } else if (!strcmp(kind->valuestring, "train") && m->n_train < DX_MAX_STEPS) {
      int i = m->n_train++;
      m->step[i] = num(o, "step");
      m->loss[i] = num(o, "loss");
      m->loss_video[i] = num(o, "loss_video");
      m->loss_audio[i] = num(o, "loss_audio");
      m->grad_norm[i] = num(o, "grad_norm");
      m->samples[i] = num(o, "samples");
      m->epoch[i] = num(o, "epoch");
    } else if (!strcmp(kind->valuestring, "val") && m->n_val < DX_MAX_STEPS) {
      m->val_step[m->n_val] = num(o, "step");
      m->val_loss[m->n_val++] = num(o, "loss");
    }
    cJSON_Delete(o);
    if (!nl) break;
    line = nl + 1;
  }
  free(text);
  return rc;
}

int dx_compare_st(const char *a, const char *b, dx_diff *d) {
  memset(d, 0, sizeof *d);
  duet_st_file *fa = NULL, *fb = NULL;
  duet_err err;
  if (duet_st_open(&fa, a, &err) || duet_st_open(&fb, b, &err)) {
    fprintf(stderr, "dx_compare_st: %s\n", err.msg);
    duet_st_close(fa);
    return -1;
  }
  int rc = 0;
  for (int i = 0; i < duet_st_count(fa) && !rc; i++) {
    const duet_st_info *ia = duet_st_info_at(fa, i);
    const duet_st_info *ib = duet_st_find(fb, ia->name);
    if (!ib || ib->numel != ia->numel) {
      d->missing++;
      continue;
    }
    duet_tensor *ta = duet_tensor_new(DUET_F32, 1, &ia->numel, &err);
    duet_tensor *tb = duet_tensor_new(DUET_F32, 1, &ib->numel, &err);
    if (!ta || !tb || duet_st_read(fa, ia, ta, &err) || duet_st_read(fb, ib, tb, &err)) {
      fprintf(stderr, "dx_compare_st: %s\n", err.msg);
      rc = -1;
    } else {
      const float *x = ta->data, *y = tb->data;
      for (int64_t k = 0; k < ia->numel; k++) {
        if (memcmp(&x[k], &y[k], sizeof(float)) != 0) d->differing++;
        double diff = fabs((double)x[k] - y[k]);
        double scale = fmax(fmax(fabs(x[k]), fabs(y[k])), 1e-3);
        if (diff > d->max_abs) d->max_abs = diff;
        if (diff / scale > d->max_rel) d->max_rel = diff / scale;
      }
      d->elems += ia->numel;
      d->tensors++;
    }
    duet_tensor_free(ta);
    duet_tensor_free(tb);
  }
  duet_st_close(fa);
  duet_st_close(fb);
  return rc;
}

int dx_compare_ckpt(const char *a, const char *b, double *max_abs, int64_t *differing) {
  static const char *const files[] = {"model.safetensors", "ema.safetensors", "optim.safetensors"};
  *max_abs = 0;
  *differing = 0;
  for (int i = 0; i < 3; i++) {
    char pa[4096], pb[4096];
    snprintf(pa, sizeof pa, "%s/%s", a, files[i]);
    snprintf(pb, sizeof pb, "%s/%s", b, files[i]);
    dx_diff d;
    if (dx_compare_st(pa, pb, &d)) return -1;
    if (d.tensors == 0) return -1;
    if (d.max_abs > *max_abs) *max_abs = d.max_abs;
    *differing += d.differing + d.missing;
  }
  return 0;
}
