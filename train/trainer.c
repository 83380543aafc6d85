/* Building a trainer (fresh, resumed or initialised from weights), running it, freeing it. */
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/cpu_products.h"
#include "train/trainer_internal.h"

#ifdef DUET_HAVE_CUDA
#include "core/cuda/cuda_backend.h"
#endif

/* The first step grows the arena to what a step needs; this only saves a few early blocks. */
#define ARENA_INITIAL ((size_t)64 << 20)

int duet_train_count_params(const duet_model_config *mc, int64_t *count, duet_err *err) {
  duet_param_set ps;
  duet_params_init(&ps);
  duet_mmdit *m;
  int rc = duet_mmdit_create(&m, mc, &ps, 0, err);
  if (!rc) {
    *count = duet_params_numel(&ps);
    duet_mmdit_free(m);
  }
  duet_params_free(&ps);
  return rc;
}

int duet_train_config_load_run(duet_train_config *c, const char *run_dir, duet_err *err) {
  char path[DUET_PATH_MAX];
  int rc = duet_path_join(path, sizeof path, run_dir, "config.ini", err);
  if (rc) return rc;
  if (!duet_path_exists(path))
    return duet_err_set(err, DUET_EIO, "%s: not a run folder (no config.ini)", run_dir);
  duet_train_config_defaults(c);
  if ((rc = duet_train_config_load(c, path, err))) return rc;
  if (snprintf(c->train.run_dir, sizeof c->train.run_dir, "%s", run_dir) >= (int)sizeof c->train.run_dir)
    return duet_err_set(err, DUET_EINVAL, "%s: path too long", run_dir);
  return DUET_OK;
}

/* The data file against the config, before any loader starts. */
static int check_data_file(duet_trainer *t, duet_err *err) {
  duet_clip_file *f;
  int rc = duet_clip_file_open(&f, t->cfg.data.path, err);
  if (rc) return rc;
  duet_clip_shape shape = *duet_clip_file_shape(f);
  int has_emb = duet_clip_file_has_text_emb(f);
  int64_t n = duet_clip_file_count(f);
  duet_clip_file_close(f);
  rc = duet_train_check_data(&t->cfg, &shape, has_emb, t->cfg.data.path, err);
  if (!rc && t->cfg.data.val_clips >= n)
    rc = duet_err_set(err, DUET_EINVAL, "%s: data.val_clips = %lld holds out every one of its %lld clips",
                      t->cfg.data.path, (long long)t->cfg.data.val_clips, (long long)n);
  return rc;
}

/* A fresh run gets its own folder: one that already holds a run is refused rather than mixed
 * into. Checked before anything is built, written only once everything has been. */
static int check_run_dir(duet_trainer *t, int resume, duet_err *err) {
  if (!t->is_main || resume) return DUET_OK;
  char cfg_path[DUET_PATH_MAX], last[DUET_PATH_MAX];
  int rc = duet_path_join(cfg_path, sizeof cfg_path, t->run_dir, "config.ini", err);
  if (!rc) rc = duet_path_join(last, sizeof last, t->run_dir, "last", err);
  if (rc) return rc;
  if (duet_path_exists(cfg_path) || duet_path_exists(last))
    return duet_err_set(err, DUET_EINVAL,
                        "%s already holds a run: continue it with --resume %s, or set train.run_dir to a new folder",
                        t->run_dir, t->run_dir);
  return DUET_OK;
}

/* config.ini (rewritten on resume too, since --set may have changed train.steps) and the
 * metrics file. */
static int open_run_dir(duet_trainer *t, int resume, duet_err *err) {
  if (!t->is_main) return DUET_OK;
  char path[DUET_PATH_MAX];
  int rc = duet_mkdir_p(t->run_dir, err);
  if (!rc) rc = duet_path_join(path, sizeof path, t->run_dir, "config.ini", err);
  if (!rc) rc = duet_train_config_write(&t->cfg, path, err);
  if (!rc) rc = duet_path_join(path, sizeof path, t->run_dir, "metrics.jsonl", err);
  if (!rc) rc = duet_metrics_open(&t->metrics, path, resume ? t->step : -1, t->cfg.train.steps + 1, err);
  t->have_metrics = !rc;
  return rc;
}

static int build_model(duet_trainer *t, const duet_trainer_opts *o, duet_err *err) {
  const duet_train_settings *ts = &t->cfg.train;
  duet_params_init(&t->params);
  int rc = duet_mmdit_create(&t->model, &t->cfg.model, &t->params, (uint64_t)ts->seed, err);
  if (rc) return rc;
  int64_t n = duet_params_numel(&t->params);
  snprintf(t->param_count_text, sizeof t->param_count_text, "%lld", (long long)n);
  const duet_model_config *m = &t->cfg.model;
  duet_trainer_logf(t, "model: %lld parameters (%.1f M); %d video + %d audio tokens per clip", (long long)n, n / 1e6,
                    duet_model_video_tokens(m), duet_model_audio_tokens(m));
  if (o->init_dir && (rc = duet_trainer_init_weights(t, o->init_dir, err))) return rc;
  /* Built and initialised on the host; then everything that persists moves to the device
   * once. Optimizer moments and EMA shadows are made beside the parameters. */
  if (ts->device != DUET_CPU && (rc = duet_params_to_device(&t->params, (duet_device)ts->device, err)))
    return duet_err_prefix(err, "train.device = cuda: ");
  if (ts->precision == DUET_PRECISION_BF16 && (rc = duet_mixed_init(&t->mixed, &t->params, err))) return rc;
  /* Process-wide, like the thread count: the CPU backend's products from here on. */
  if ((rc = duet_cpu_set_matmul_precision((duet_matmul_precision)ts->matmul_precision, err)))
    return duet_err_prefix(err, "train.matmul_precision = bf16: ");
  if (ts->matmul_precision == DUET_MATMUL_BF16)
    duet_trainer_logf(t, "matrix products: bf16 inputs, f32 sums (%s); attention tiles: %s",
                      duet_cpu_bf16_engine(),
                      duet_cpu_bf16_attention_available() ? "bf16 on AMX" : "f32 (no AMX here)");
  duet_adamw_config ac = {ts->beta1, ts->beta2, ts->eps, ts->weight_decay};
  if ((rc = duet_adamw_init(&t->opt, &t->params, &ac, NULL, NULL, err))) return rc;
  t->have_opt = 1;
  if ((rc = duet_ema_init(&t->ema, &t->params, ts->ema_decay, err))) return rc;
  t->have_ema = 1;
  duet_graph_init(&t->graph, ARENA_INITIAL);
  t->have_graph = 1;
  t->sched = (duet_lr_schedule){ts->schedule, ts->lr, ts->min_lr, ts->warmup, ts->steps};
  t->val_flow = t->cfg.flow;
  t->val_flow.text_dropout = 0;
  t->tokens_per_sample = duet_model_video_tokens(m) + duet_model_audio_tokens(m);
  return DUET_OK;
}

static int open_loaders(duet_trainer *t, duet_loader_pos start, duet_err *err) {
  const duet_data_settings *d = &t->cfg.data;
  int held_out = d->val_clips > 0;
  duet_loader_config lc = {
      .path = d->path, .batch_size = d->batch, .rank = t->dist.rank, .world_size = duet_dist_world(&t->dist),
      .seed = (uint64_t)t->cfg.train.seed, .shuffle = 1, .prefetch = d->read_ahead, .threads = d->threads,
      .split = held_out ? DUET_SPLIT_TRAIN : DUET_SPLIT_ALL, .val_clips = d->val_clips,
      .augment = {d->crop_height, d->crop_width, d->random_crop, d->flip},
      .skip_text_emb = t->cfg.model.text_source != DUET_TEXT_PRECOMPUTED, .start = start,
  };
  int rc = duet_loader_open(&t->train_loader, &lc, err);
  if (rc) return rc;
  t->n_train = duet_loader_size(t->train_loader);
  if (held_out) {
    /* Validation sees the same clips, centre-cropped, unflipped, in file order, every time. */
    lc.shuffle = 0;
    lc.prefetch = 1;
    lc.threads = 1;
    lc.split = DUET_SPLIT_VAL;
    lc.augment = (duet_augment_config){d->crop_height, d->crop_width, 0, 0};
    lc.start = (duet_loader_pos){0, 0};
    if ((rc = duet_loader_open(&t->val_loader, &lc, err))) return rc;
    t->n_val = duet_loader_size(t->val_loader);
  }
  duet_trainer_logf(t, "data: %s: %lld training clips, %lld held out; %d clips x %d micro-batches x %d ranks per step",
                    d->path, (long long)t->n_train, (long long)t->n_val, d->batch, t->cfg.train.accum,
                    duet_dist_world(&t->dist));
  return DUET_OK;
}

/* train.device = cuda needs a usable GPU in this process (under mpirun, the one chosen by
 * the rank's local rank: duet_dist_mpi_select_gpu). */
static int check_device(duet_trainer *t, duet_err *err) {
  if (t->cfg.train.device == DUET_CPU) return DUET_OK;
#ifdef DUET_HAVE_CUDA
  if (!duet_backend_get(DUET_CUDA)) {
    duet_err why = {0};
    if (!duet_cuda_status(&why)) snprintf(why.msg, sizeof why.msg, "no CUDA device");
    return duet_err_set(err, DUET_ENOTSUP, "train.device = cuda, but no GPU can be used here (%s)", why.msg);
  }
#else
  if (!duet_backend_get(DUET_CUDA))
    return duet_err_set(err, DUET_ENOTSUP,
                        "train.device = cuda, but this build has no CUDA backend (configure with -DDUET_CUDA=ON)");
#endif
  /* Under mpirun the gradients of device parameters are summed by NCCL (train/dist_mpi.c);
   * the sharded optimizer works on host buffers only. */
#ifndef DUET_HAVE_NCCL
  if (duet_dist_world(&t->dist) > 1)
    return duet_err_set(err, DUET_ENOTSUP, "train.device = cuda under mpirun needs a build with NCCL; use train.device = cpu");
#endif
  if (duet_dist_world(&t->dist) > 1 && t->cfg.train.zero1)
    return duet_err_set(err, DUET_ENOTSUP, "train.zero1 shards optimizer state in host memory: use it with train.device = cpu");
  return DUET_OK;
}

static int build(duet_trainer *t, const duet_trainer_opts *o, duet_err *err) {
  int rc = duet_train_config_validate(&t->cfg, err);
  if (!rc) rc = check_device(t, err);
  if (!rc) rc = check_data_file(t, err);
  if (!rc) rc = check_run_dir(t, o->resume, err);
  /* The checkpoint carries the sections that rebuild the model (inference reads them). */
  if (!rc) rc = duet_model_config_text(&t->cfg.model, &t->cfg.flow, &t->cfg.audio, &t->config_text, err);
  if (!rc) rc = build_model(t, o, err);
  duet_loader_pos start = {0, 0};
  if (!rc && o->resume) rc = duet_trainer_ckpt_resume(t, &start, err);
  if (!rc) rc = duet_video_codec_init(&t->video_codec, DUET_VIDEO_CODEC_PIXELS, err);
  duet_audio_codec_config acc;
  duet_train_audio_codec_config(&t->cfg, &acc);
  if (!rc) rc = duet_audio_codec_create(&acc, &t->audio_codec, err);
  if (!rc) rc = open_loaders(t, start, err);
  if (!rc) rc = duet_latent_batch_alloc(t, err);
  if (!rc) rc = open_run_dir(t, o->resume, err);
  return rc;
}

int duet_trainer_create(duet_trainer **out, const duet_trainer_opts *o, duet_err *err) {
  *out = NULL;
  if (!o || !o->cfg) return duet_err_set(err, DUET_EINVAL, "trainer: no config");
  if (o->resume && o->init_dir)
    return duet_err_set(err, DUET_EINVAL, "--resume and --init cannot be combined: a resumed run has its weights");
  duet_trainer *t = calloc(1, sizeof *t);
  if (!t) return duet_err_set(err, DUET_ENOMEM, "out of memory for the trainer");
  t->cfg = *o->cfg;
  t->dist = o->dist;
  t->log = o->log;
  t->log_ctx = o->log_ctx;
  t->is_main = o->dist.rank == 0;
  t->last_ckpt_step = -1;
  snprintf(t->run_dir, sizeof t->run_dir, "%s", t->cfg.train.run_dir);
  int rc = build(t, o, err);
  if (rc) {
    duet_trainer_free(t);
    return rc;
  }
  *out = t;
  return DUET_OK;
}

void duet_trainer_free(duet_trainer *t) {
  if (!t) return;
  duet_loader_close(t->train_loader);
  duet_loader_close(t->val_loader);
  if (t->have_metrics) duet_metrics_close(&t->metrics);
  duet_latent_batch_free(&t->lat);
  duet_audio_codec_free(t->audio_codec);
  duet_video_codec_free(&t->video_codec);
  if (t->have_graph) duet_graph_free(&t->graph);
  if (t->have_ema) duet_ema_free(&t->ema);
  if (t->have_opt) duet_adamw_free(&t->opt);
  duet_mixed_free(&t->mixed);
  duet_mmdit_free(t->model);
  duet_params_free(&t->params);
  free(t->config_text);
  free(t);
}

int duet_trainer_save(duet_trainer *t, duet_err *err) { return duet_trainer_ckpt_save(t, err); }

int duet_trainer_run(duet_trainer *t, duet_err *err) {
  const duet_train_settings *ts = &t->cfg.train;
  if (t->step >= ts->steps) {
    duet_trainer_logf(t, "nothing to do: the run is at step %lld of %lld (raise train.steps to go on)",
                      (long long)t->step, (long long)ts->steps);
    return DUET_OK;
  }
  int rc = DUET_OK;
  /* A baseline before the first update, so the validation curve starts where training does. */
  if (t->step == 0 && t->val_loader && ts->val_every > 0) rc = duet_trainer_validate(t, 1, NULL, err);
  double t0 = duet_trainer_now();
  int64_t first = t->step;
  while (!rc && t->step < ts->steps) rc = duet_trainer_step(t, NULL, err);
  if (rc) return rc;
  if (t->last_ckpt_step != t->step) rc = duet_trainer_ckpt_save(t, err);
  if (rc) return rc;
  duet_trainer_logf(t, "done: %lld steps in %.1f s; weights in %s/last", (long long)(t->step - first),
                    duet_trainer_now() - t0, t->run_dir);
  return DUET_OK;
}

int64_t duet_trainer_steps_done(const duet_trainer *t) { return t->step; }
const duet_param_set *duet_trainer_params(const duet_trainer *t) { return &t->params; }
const duet_train_config *duet_trainer_config(const duet_trainer *t) { return &t->cfg; }
int64_t duet_trainer_arena_allocs(const duet_trainer *t) { return t->graph.arena.heap_allocs; }
