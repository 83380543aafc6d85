/* Checkpoint parts (model, EMA, optimizer) and the directory-level save and load. */
#include "core/checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/safetensors.h"

#define OPTIM_FORMAT "duet-adamw"
#define EMA_FORMAT "duet-ema"
#define MODEL_FORMAT "duet-model"

static int meta_f64(duet_st_writer *w, const char *key, double v, duet_err *err) {
  char buf[40];
  return duet_st_writer_meta(w, key, duet_format_double(buf, sizeof buf, v), err);
}

static int meta_i64(duet_st_writer *w, const char *key, int64_t v, duet_err *err) {
  char buf[32];
  snprintf(buf, sizeof buf, "%lld", (long long)v);
  return duet_st_writer_meta(w, key, buf, err);
}

static int meta_get_i64(const duet_st_file *f, const char *key, int64_t *v, duet_err *err) {
  const char *s = duet_st_meta(f, key);
  char *end = NULL;
  errno = 0;
  long long x = s && *s ? strtoll(s, &end, 10) : 0;
  if (!s || !*s || *end || errno == ERANGE || x < 0)
    return duet_err_set(err, DUET_EFORMAT, "%s: metadata '%s' missing or not a non-negative integer", duet_st_path(f),
                        key);
  *v = (int64_t)x;
  return DUET_OK;
}

static int meta_expect(const duet_st_file *f, const char *key, const char *want, duet_err *err) {
  const char *s = duet_st_meta(f, key);
  if (!s || strcmp(s, want) != 0)
    return duet_err_set(err, DUET_EFORMAT, "%s: metadata '%s' is %s%s%s, expected \"%s\"", duet_st_path(f), key,
                        s ? "\"" : "", s ? s : "missing", s ? "\"" : "", want);
  return DUET_OK;
}

static int prefixed(char *out, size_t size, const char *prefix, const char *name, duet_err *err) {
  int n = snprintf(out, size, "%s%s", prefix, name);
  if (n < 0 || (size_t)n >= size) return duet_err_set(err, DUET_EINVAL, "parameter name '%s' too long", name);
  return DUET_OK;
}

/* ---- optimizer ---- */

int duet_optim_save(const char *path, const duet_adamw *opt, duet_err *err) {
  duet_st_writer *w = duet_st_writer_new(err);
  if (!w) return DUET_ENOMEM;
  int rc = DUET_OK;
  char key[1024];
  for (int pass = 0; pass < 2 && !rc; pass++)
    for (int i = 0; i < opt->count && !rc; i++) {
      const duet_tensor *t = pass ? opt->v[i] : opt->m[i];
      if (!t) continue;
      rc = prefixed(key, sizeof key, pass ? "v." : "m.", opt->params->items[i]->name, err);
      if (!rc) rc = duet_st_writer_add(w, key, t, err);
    }
  if (!rc) rc = duet_st_writer_meta(w, "format", OPTIM_FORMAT, err);
  if (!rc) rc = meta_i64(w, "step", opt->step, err);
  if (!rc) rc = meta_f64(w, "beta1", opt->cfg.beta1, err);
  if (!rc) rc = meta_f64(w, "beta2", opt->cfg.beta2, err);
  if (!rc) rc = meta_f64(w, "eps", opt->cfg.eps, err);
  if (!rc) rc = meta_f64(w, "weight_decay", opt->cfg.weight_decay, err);
  if (!rc) rc = duet_st_writer_write(w, path, err);
  duet_st_writer_free(w);
  return rc;
}

/* Checks (dry_run) or loads the moments; the step is returned, not applied. */
static int optim_load_from(const duet_st_file *f, duet_adamw *opt, int dry_run, int64_t *step, duet_err *err) {
  int rc = meta_expect(f, "format", OPTIM_FORMAT, err);
  if (!rc) rc = meta_get_i64(f, "step", step, err);
  if (rc) return rc;
  int n = 2 * opt->count;
  char **names = calloc((size_t)n + 1, sizeof *names);
  duet_tensor **dst = calloc((size_t)n + 1, sizeof *dst);
  if (!names || !dst) rc = duet_err_set(err, DUET_ENOMEM, "%s: out of memory", duet_st_path(f));
  char key[1024];
  for (int i = 0; i < n && !rc; i++) {
    int k = i % opt->count, is_v = i >= opt->count;
    rc = prefixed(key, sizeof key, is_v ? "v." : "m.", opt->params->items[k]->name, err);
    if (!rc && !(names[i] = strdup(key))) rc = duet_err_set(err, DUET_ENOMEM, "%s: out of memory", duet_st_path(f));
    dst[i] = is_v ? opt->v[k] : opt->m[k];
  }
  duet_st_load_opts o = {.dry_run = dry_run};
  if (!rc) rc = duet_st_load_tensors(f, n, (const char *const *)names, dst, &o, NULL, err);
  for (int i = 0; names && i < n; i++) free(names[i]);
  free(names);
  free(dst);
  return rc;
}

int duet_optim_load(const char *path, duet_adamw *opt, duet_err *err) {
  duet_st_file *f;
  int rc = duet_st_open(&f, path, err);
  if (rc) return rc;
  int64_t step = 0;
  rc = optim_load_from(f, opt, 0, &step, err);
  if (!rc) opt->step = step;
  duet_st_close(f);
  return rc;
}

/* ---- EMA ---- */

int duet_ema_save(const char *path, const duet_ema *ema, duet_err *err) {
  duet_st_writer *w = duet_st_writer_new(err);
  if (!w) return DUET_ENOMEM;
  int rc = DUET_OK;
  for (int i = 0; i < ema->count && !rc; i++)
    rc = duet_st_writer_add(w, ema->params->items[i]->name, duet_ema_weights(ema, i), err);
  if (!rc) rc = duet_st_writer_meta(w, "format", EMA_FORMAT, err);
  if (!rc) rc = meta_f64(w, "decay", ema->decay, err);
  if (!rc) rc = meta_i64(w, "updates", ema->updates, err);
  if (!rc) rc = duet_st_writer_write(w, path, err);
  duet_st_writer_free(w);
  return rc;
}

/* Frozen parameters are in the file (so that it is a complete model) but not loaded: their
 * values come from the model. */
static int ema_load_from(const duet_st_file *f, duet_ema *ema, int dry_run, int64_t *updates, duet_err *err) {
  if (ema->swapped)
    return duet_err_set(err, DUET_EINVAL, "%s: cannot load while the EMA weights are swapped in", duet_st_path(f));
  int rc = meta_expect(f, "format", EMA_FORMAT, err);
  if (!rc) rc = meta_get_i64(f, "updates", updates, err);
  if (rc) return rc;
  const char **names = calloc((size_t)ema->count + 1, sizeof *names);
  if (!names) return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", duet_st_path(f));
  for (int i = 0; i < ema->count; i++) names[i] = ema->params->items[i]->name;
  duet_st_load_opts o = {.dry_run = dry_run};
  rc = duet_st_load_tensors(f, ema->count, names, ema->shadow, &o, NULL, err);
  free(names);
  return rc;
}

int duet_ema_load(const char *path, duet_ema *ema, duet_err *err) {
  duet_st_file *f;
  int rc = duet_st_open(&f, path, err);
  if (rc) return rc;
  int64_t updates = 0;
  rc = ema_load_from(f, ema, 0, &updates, err);
  if (!rc) ema->updates = updates;
  duet_st_close(f);
  return rc;
}

/* ---- model ---- */

static int model_save(const char *path, const duet_ckpt *c, duet_err *err) {
  duet_st_writer *w = duet_st_writer_new(err);
  if (!w) return DUET_ENOMEM;
  int rc = duet_st_writer_add_params(w, c->model, NULL, err);
  if (!rc) rc = duet_st_writer_meta(w, "format", MODEL_FORMAT, err);
  if (!rc) rc = meta_i64(w, "step", c->state->step, err);
  for (const char *const *kv = c->model_meta; !rc && kv && kv[0]; kv += 2) {
    if (!kv[1]) rc = duet_err_set(err, DUET_EINVAL, "%s: metadata key '%s' has no value", path, kv[0]);
    else rc = duet_st_writer_meta(w, kv[0], kv[1], err);
  }
  if (!rc) rc = duet_st_writer_write(w, path, err);
  duet_st_writer_free(w);
  return rc;
}

/* ---- directories ---- */

static int write_parts(const char *dir, const duet_ckpt *c, duet_err *err) {
  char path[DUET_PATH_MAX];
  int rc = duet_path_join(path, sizeof path, dir, "model.safetensors", err);
  if (!rc) rc = model_save(path, c, err);
  if (!rc && c->ema) {
    rc = duet_path_join(path, sizeof path, dir, "ema.safetensors", err);
    if (!rc) rc = duet_ema_save(path, c->ema, err);
  }
  if (!rc && c->optim) {
    rc = duet_path_join(path, sizeof path, dir, "optim.safetensors", err);
    if (!rc) rc = duet_optim_save(path, c->optim, err);
  }
  if (!rc) rc = duet_path_join(path, sizeof path, dir, "state.json", err);
  if (!rc) rc = duet_train_state_write(path, c->state, err);
  if (!rc) rc = duet_fsync_dir(dir, err);
  return rc;
}

/* Puts the complete temporary directory in place of final. A checkpoint already there (the
 * same step saved again after a resume) is moved aside first and removed only once the new one
 * is in place, so some complete copy exists at every moment. */
static int install_dir(const char *run_dir, const char *tmp, const char *final, const char *old, duet_err *err) {
  int had_old = duet_path_exists(final);
  if (had_old) {
    int rc = duet_remove_tree(old, err);
    if (rc) return rc;
    if (rename(final, old) != 0)
      return duet_err_set(err, DUET_EIO, "%s: cannot move the existing checkpoint aside: %s", final, strerror(errno));
  }
  if (rename(tmp, final) != 0) {
    int rc = duet_err_set(err, DUET_EIO, "%s: cannot rename the new checkpoint into place: %s", final, strerror(errno));
    if (had_old) rename(old, final);
    return rc;
  }
  int rc = duet_fsync_dir(run_dir, err);
  if (!rc && had_old) rc = duet_remove_tree(old, err);
  return rc;
}

int duet_ckpt_save(const char *run_dir, const duet_ckpt *c, char *out_dir, size_t out_size, duet_err *err) {
  if (!c->model || !c->state) return duet_err_set(err, DUET_EINVAL, "%s: a checkpoint needs a model and a state", run_dir);
  if (c->state->step < 0)
    return duet_err_set(err, DUET_EINVAL, "%s: negative step %lld", run_dir, (long long)c->state->step);
  int rc = duet_mkdir_p(run_dir, err);
  if (rc) return rc;
  char name[64], hidden[128], final[DUET_PATH_MAX], tmp[DUET_PATH_MAX], old[DUET_PATH_MAX], last[DUET_PATH_MAX];
  snprintf(name, sizeof name, "step_%06lld", (long long)c->state->step);
  rc = duet_path_join(final, sizeof final, run_dir, name, err);
  snprintf(hidden, sizeof hidden, ".%s.tmp-%ld", name, (long)getpid());
  if (!rc) rc = duet_path_join(tmp, sizeof tmp, run_dir, hidden, err);
  snprintf(hidden, sizeof hidden, ".%s.old-%ld", name, (long)getpid());
  if (!rc) rc = duet_path_join(old, sizeof old, run_dir, hidden, err);
  if (!rc) rc = duet_path_join(last, sizeof last, run_dir, "last", err);
  if (!rc) rc = duet_remove_tree(tmp, err);
  if (rc) return rc;
  if (mkdir(tmp, 0755) != 0) return duet_err_set(err, DUET_EIO, "%s: cannot create: %s", tmp, strerror(errno));
  rc = write_parts(tmp, c, err);
  if (!rc) rc = install_dir(run_dir, tmp, final, old, err);
  if (rc) {
    duet_remove_tree(tmp, NULL);
    return rc;
  }
  rc = duet_symlink_atomic(name, last, err);
  if (rc) return duet_err_prefix(err, "checkpoint %s saved but not linked: ", final);
  if (out_dir) snprintf(out_dir, out_size, "%s", final);
  return DUET_OK;
}

int duet_ckpt_last(const char *run_dir, char *out, size_t size, duet_err *err) {
  char link[DUET_PATH_MAX], target[DUET_PATH_MAX];
  int rc = duet_path_join(link, sizeof link, run_dir, "last", err);
  if (rc) return rc;
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n < 0) {
    if (errno == ENOENT) return duet_err_set(err, DUET_EIO, "%s: no checkpoint yet (no 'last' link)", run_dir);
    return duet_err_set(err, DUET_EIO, "%s: cannot read link: %s", link, strerror(errno));
  }
  target[n] = '\0';
  int w = target[0] == '/' ? snprintf(out, size, "%s", target) : snprintf(out, size, "%s/%s", run_dir, target);
  if (w < 0 || (size_t)w >= size) return duet_err_set(err, DUET_EINVAL, "%s: path too long", link);
  struct stat st;
  if (stat(out, &st) != 0 || !S_ISDIR(st.st_mode))
    return duet_err_set(err, DUET_EIO, "%s points at %s, which is not a checkpoint directory", link, target);
  return DUET_OK;
}

typedef struct open_parts {
  duet_st_file *model, *ema, *optim;
  duet_train_state state;
} open_parts;

static int open_part(const char *dir, const char *file, duet_st_file **f, duet_err *err) {
  char path[DUET_PATH_MAX];
  int rc = duet_path_join(path, sizeof path, dir, file, err);
  return rc ? rc : duet_st_open(f, path, err);
}

int duet_ckpt_load(const char *ckpt_dir, const duet_ckpt *c, duet_err *err) {
  struct stat st;
  if (stat(ckpt_dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return duet_err_set(err, DUET_EIO, "%s: no such checkpoint directory", ckpt_dir);
  open_parts p = {0};
  duet_train_state_init(&p.state);
  char path[DUET_PATH_MAX];
  int64_t opt_step = 0, ema_updates = 0;
  duet_st_load_opts check = {.dry_run = 1}, apply = {0};
  int rc = DUET_OK;
  if (c->model) rc = open_part(ckpt_dir, "model.safetensors", &p.model, err);
  if (!rc && c->ema) rc = open_part(ckpt_dir, "ema.safetensors", &p.ema, err);
  if (!rc && c->optim) rc = open_part(ckpt_dir, "optim.safetensors", &p.optim, err);
  if (!rc && c->state) {
    rc = duet_path_join(path, sizeof path, ckpt_dir, "state.json", err);
    if (!rc) rc = duet_train_state_read(path, &p.state, err);
  }
  /* Every check before any write, so that a bad checkpoint leaves the run as it was. */
  if (!rc && p.model) rc = duet_st_load_params(p.model, c->model, &check, NULL, err);
  if (!rc && p.ema) rc = ema_load_from(p.ema, c->ema, 1, &ema_updates, err);
  if (!rc && p.optim) rc = optim_load_from(p.optim, c->optim, 1, &opt_step, err);
  if (!rc && p.model) rc = duet_st_load_params(p.model, c->model, &apply, NULL, err);
  if (!rc && p.ema) rc = ema_load_from(p.ema, c->ema, 0, &ema_updates, err);
  if (!rc && p.optim) rc = optim_load_from(p.optim, c->optim, 0, &opt_step, err);
  if (!rc) {
    if (c->ema) c->ema->updates = ema_updates;
    if (c->optim) c->optim->step = opt_step;
    if (c->state) {
      duet_train_state_free(c->state);
      *c->state = p.state;
      duet_train_state_init(&p.state);
    }
  }
  duet_train_state_free(&p.state);
  duet_st_close(p.model);
  duet_st_close(p.ema);
  duet_st_close(p.optim);
  return rc;
}
