/* Checkpoints of a run: periodic saves, resuming, initial weights, the diagnostic save of a
 * failed step, and the loss plot that goes with each save. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/checkpoint.h"
#include "core/safetensors.h"
#include "train/loss_plot.h"
#include "train/trainer_internal.h"

/* Trainer scalars in state.json. */
#define KEY_SAMPLES "samples_seen"
#define KEY_SECONDS "train_seconds"

/* st must be initialised (and is freed by the caller either way). pos: where the loader
 * continues from this state. */
static int fill_state(duet_trainer *t, duet_loader_pos pos, duet_train_state *st, duet_err *err) {
  st->step = t->step;
  st->rng = duet_rng_make((uint64_t)t->cfg.train.seed, 0);
  st->epoch = pos.epoch;
  st->samples_consumed = pos.consumed;
  int rc = duet_scalars_set_i64(&st->scalars, KEY_SAMPLES, t->samples_seen, err);
  if (!rc) rc = duet_scalars_set_f64(&st->scalars, KEY_SECONDS, t->train_seconds, err);
  return rc;
}

static int ckpt_write(duet_trainer *t, duet_err *err) {
  duet_train_state st;
  duet_train_state_init(&st);
  int rc = fill_state(t, duet_loader_position(t->train_loader), &st, err);
  /* The config travels with the weights, so that a checkpoint directory alone is enough to
   * rebuild the model (duet-infer --ckpt DIR). */
  const char *meta[] = {DUET_CONFIG_META_KEY, t->config_text, "duet.parameters", t->param_count_text, NULL};
  duet_ckpt c = {&t->params, &t->ema, &t->opt, &st, meta};
  char dir[DUET_PATH_MAX];
  if (!rc) rc = duet_ckpt_save(t->run_dir, &c, dir, sizeof dir, err);
  duet_train_state_free(&st);
  if (rc) return rc;
  t->last_ckpt_step = t->step;
  duet_trainer_logf(t, "checkpoint: %s", dir);
  rc = duet_trainer_prune(t, err);
  return rc ? rc : duet_trainer_plot(t, err);
}

/* Every rank takes part: they check that they are at the same step and data position before
 * rank 0 writes it down, and a sharded optimizer gathers its state to rank 0 for the save. */
int duet_trainer_ckpt_save(duet_trainer *t, duet_err *err) {
  duet_loader_pos pos = duet_loader_position(t->train_loader);
  int64_t where[3] = {t->step, pos.epoch, pos.consumed};
  int rc = duet_dist_check_same(&t->dist, where, 3, "the step and data position of a checkpoint", err);
  if (!rc) rc = duet_dist_opt_gather(&t->dist, &t->opt, 1, err);
  if (!rc && t->is_main) rc = ckpt_write(t, err);
  duet_dist_opt_gather(&t->dist, &t->opt, 0, NULL);
  /* On every rank, or the others would save again at the end of the run, alone. */
  if (!rc) t->last_ckpt_step = t->step;
  return rc;
}

int duet_trainer_ckpt_resume(duet_trainer *t, duet_loader_pos *pos, duet_err *err) {
  char dir[DUET_PATH_MAX];
  int rc = duet_ckpt_last(t->run_dir, dir, sizeof dir, err);
  if (rc) return rc;
  duet_train_state st;
  duet_train_state_init(&st);
  duet_ckpt c = {&t->params, &t->ema, &t->opt, &st, NULL};
  rc = duet_ckpt_load(dir, &c, err);
  if (!rc && t->opt.step != st.step)
    rc = duet_err_set(err, DUET_EFORMAT, "%s: the optimizer has taken %lld steps but state.json says %lld", dir,
                      (long long)t->opt.step, (long long)st.step);
  if (!rc) rc = duet_scalars_get_i64(&st.scalars, KEY_SAMPLES, &t->samples_seen, err);
  if (!rc) rc = duet_scalars_get_f64(&st.scalars, KEY_SECONDS, &t->train_seconds, err);
  if (!rc) {
    t->step = st.step;
    t->last_ckpt_step = st.step;
    *pos = (duet_loader_pos){st.epoch, st.samples_consumed};
    duet_trainer_logf(t, "resume: %s (step %lld, epoch %lld, %lld clips into it)", dir, (long long)st.step,
                      (long long)st.epoch, (long long)st.samples_consumed);
  }
  duet_train_state_free(&st);
  return rc;
}

int duet_trainer_init_weights(duet_trainer *t, const char *init_dir, duet_err *err) {
  char path[DUET_PATH_MAX];
  int rc = duet_path_join(path, sizeof path, init_dir, "model.safetensors", err);
  if (rc) return rc;
  /* Strict: every parameter present with its shape, nothing else, so a checkpoint of another
   * model is an error and not a half-initialised network. */
  duet_st_load_opts o = {0};
  duet_st_load_report rep;
  rc = duet_st_load_params_file(path, &t->params, &o, &rep, err);
  if (rc) return duet_err_prefix(err, "--init: ");
  duet_trainer_logf(t, "init: %d tensors from %s", rep.loaded, path);
  return DUET_OK;
}

static int write_grads(const duet_trainer *t, const char *path, duet_err *err) {
  duet_st_writer *w = duet_st_writer_new(err);
  if (!w) return DUET_ENOMEM;
  int rc = DUET_OK;
  for (int i = 0; i < t->params.count && !rc; i++) {
    const duet_tensor *p = t->params.items[i];
    if (p->grad) rc = duet_st_writer_add(w, p->name, p->grad, err);
  }
  if (!rc) rc = duet_st_writer_write(w, path, err);
  duet_st_writer_free(w);
  return rc;
}

static int write_diag_parts(duet_trainer *t, const char *dir, duet_err *err) {
  char path[DUET_PATH_MAX];
  duet_train_state st;
  duet_train_state_init(&st);
  duet_st_writer *w = duet_st_writer_new(err);
  if (!w) return DUET_ENOMEM;
  int rc = duet_st_writer_add_params(w, &t->params, NULL, err);
  if (!rc) rc = duet_st_writer_meta(w, DUET_CONFIG_META_KEY, t->config_text, err);
  if (!rc) rc = duet_path_join(path, sizeof path, dir, "model.safetensors", err);
  if (!rc) rc = duet_st_writer_write(w, path, err);
  duet_st_writer_free(w);
  if (!rc) rc = duet_path_join(path, sizeof path, dir, "grads.safetensors", err);
  if (!rc) rc = write_grads(t, path, err);
  if (!rc) rc = duet_path_join(path, sizeof path, dir, "ema.safetensors", err);
  if (!rc) rc = duet_ema_save(path, &t->ema, err);
  if (!rc) rc = duet_path_join(path, sizeof path, dir, "optim.safetensors", err);
  if (!rc) rc = duet_optim_save(path, &t->opt, err);
  if (!rc) rc = fill_state(t, t->step_pos, &st, err);
  if (!rc) rc = duet_path_join(path, sizeof path, dir, "state.json", err);
  if (!rc) rc = duet_train_state_write(path, &st, err);
  duet_train_state_free(&st);
  if (!rc) rc = duet_fsync_dir(dir, err);
  return rc;
}

int duet_trainer_diag_save(duet_trainer *t, char *dir, size_t size, duet_err *err) {
  if (!t->is_main) return DUET_OK;
  char name[64], tmp_name[96], tmp[DUET_PATH_MAX];
  snprintf(name, sizeof name, "diag_step_%lld", (long long)(t->step + 1));
  snprintf(tmp_name, sizeof tmp_name, ".%s.tmp-%ld", name, (long)getpid());
  int rc = duet_path_join(dir, size, t->run_dir, name, err);
  if (!rc) rc = duet_path_join(tmp, sizeof tmp, t->run_dir, tmp_name, err);
  if (!rc) rc = duet_remove_tree(tmp, err);
  if (rc) return rc;
  if (mkdir(tmp, 0755) != 0) return duet_err_set(err, DUET_EIO, "%s: cannot create: %s", tmp, strerror(errno));
  rc = write_diag_parts(t, tmp, err);
  if (!rc) rc = duet_remove_tree(dir, err);
  if (!rc && rename(tmp, dir) != 0) rc = duet_err_set(err, DUET_EIO, "%s: cannot rename into place: %s", dir, strerror(errno));
  if (!rc) rc = duet_fsync_dir(t->run_dir, err);
  if (rc) duet_remove_tree(tmp, NULL);
  return rc;
}

int duet_trainer_plot(duet_trainer *t, duet_err *err) {
  if (!t->is_main || !t->have_metrics) return DUET_OK;
  const duet_loss_history *tr = &t->metrics.train_hist, *va = &t->metrics.val_hist;
  duet_plot_series s[2] = {
      {tr->step, tr->loss, tr->n, {31, 119, 180}, "train", 1},
      {va->step, va->loss, va->n, {214, 39, 40}, "val", 0},
  };
  char path[DUET_PATH_MAX];
  int rc = duet_path_join(path, sizeof path, t->run_dir, "loss.png", err);
  return rc ? rc : duet_loss_plot_write(path, s, 2, err);
}
