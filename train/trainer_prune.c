/* Checkpoint retention: after a save, the oldest step_N/ folders beyond train.keep_checkpoints
 * are deleted. Only names of exactly that form are touched (never diag_step_N/, never `last`
 * or what it points to, never anything a user put in the run folder). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/trainer_internal.h"

/* The step of a "step_<digits>" name, or -1. */
static int64_t step_of(const char *name) {
  if (strncmp(name, "step_", 5) != 0 || !name[5]) return -1;
  int64_t v = 0;
  for (const char *p = name + 5; *p; p++) {
    if (*p < '0' || *p > '9' || v > INT64_MAX / 10 - 10) return -1;
    v = v * 10 + (*p - '0');
  }
  return v;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

int duet_trainer_prune(duet_trainer *t, duet_err *err) {
  int keep = t->cfg.train.keep_checkpoints;
  if (!t->is_main || keep <= 0) return DUET_OK;
  DIR *d = opendir(t->run_dir);
  if (!d) return duet_err_set(err, DUET_EIO, "%s: cannot list the run folder", t->run_dir);
  int64_t *steps = NULL;
  int n = 0, cap = 0, rc = DUET_OK;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    int64_t s = step_of(e->d_name);
    if (s < 0) continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      int64_t *p = realloc(steps, sizeof *p * (size_t)cap);
      if (!p) {
        rc = duet_err_set(err, DUET_ENOMEM, "out of memory listing %s", t->run_dir);
        break;
      }
      steps = p;
    }
    steps[n++] = s;
  }
  closedir(d);
  if (!rc) qsort(steps, (size_t)n, sizeof *steps, cmp_i64);
  /* The newest `keep` stay; the one just saved (t->step, what `last` names) always does. */
  for (int i = 0; !rc && i < n - keep; i++) {
    if (steps[i] == t->step) continue;
    char name[40], path[DUET_PATH_MAX];
    snprintf(name, sizeof name, "step_%06lld", (long long)steps[i]);
    rc = duet_path_join(path, sizeof path, t->run_dir, name, err);
    /* A name of another form (step_7, not written by duet) maps to a path that does not
     * exist, and is left alone. */
    if (!rc && duet_path_exists(path)) rc = duet_remove_tree(path, err);
  }
  free(steps);
  return rc;
}
