/* The settings tables of a training run and the checks among them. */
#include "train/train_config.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "core/cpu_products.h"
#include "model/video_codec.h"

#define NO_RANGE 1, 0 /* min > max: core/config checks no range */
#define N_KEYS(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *const schedule_names[] = {"constant", "cosine", NULL};
/* In duet_device order. */
static const char *const device_names[] = {"cpu", "cuda", NULL};
/* In duet_train_precision order. */
static const char *const precision_names[] = {"f32", "bf16", NULL};
/* In duet_matmul_precision order (core/cpu_products.h). */
static const char *const matmul_precision_names[] = {"f32", "bf16", NULL};



#define D(name, type, lo, hi, help) {"data", #name, type, offsetof(duet_data_settings, name), lo, hi, NULL, help}
static const duet_cfg_key data_keys[] = {
    D(path, DUET_CFG_STRING, 1, 0, "clip file (HDF5, duet-clips format)"),
    D(val_clips, DUET_CFG_INT64, 0, 1e12, "the last val_clips clips are held out for validation (0: no validation)"),
    D(batch, DUET_CFG_INT, 1, 65536, "clips per micro-batch"),
    D(read_ahead, DUET_CFG_INT, 1, 64, "batches the loader prepares ahead of the step"),
    D(threads, DUET_CFG_INT, 1, 8, "loader threads (one reads, the others decode)"),
    D(crop_height, DUET_CFG_INT, 0, 65536, "crop frames to this height (0 with crop_width 0: no crop)"),
    D(crop_width, DUET_CFG_INT, 0, 65536, "crop frames to this width"),
    D(random_crop, DUET_CFG_BOOL, 1, 0, "true: a random crop window per clip and epoch; false: the centre"),
    D(flip, DUET_CFG_BOOL, 1, 0, "mirror clips left-right with probability 1/2"),
};
#undef D

#define T(name, type, lo, hi, help) {"train", #name, type, offsetof(duet_train_settings, name), lo, hi, NULL, help}
static const duet_cfg_key train_keys[] = {
    T(steps, DUET_CFG_INT64, 1, 1e12, "optimizer steps in the run"),
    T(lr, DUET_CFG_DOUBLE, 0, 1e6, "peak learning rate"),
    T(min_lr, DUET_CFG_DOUBLE, 0, 1e6, "learning rate at the end of the cosine schedule"),
    T(warmup, DUET_CFG_INT64, 0, 1e12, "steps of linear learning-rate warmup"),
    {"train", "schedule", DUET_CFG_ENUM, offsetof(duet_train_settings, schedule), NO_RANGE, schedule_names,
     "learning rate after warmup: constant, or cosine down to min_lr at the last step"},
    T(weight_decay, DUET_CFG_DOUBLE, 0, 10, "AdamW decoupled weight decay (matrices only)"),
    T(beta1, DUET_CFG_DOUBLE, 0, 0.999999999, "AdamW first-moment decay"),
    T(beta2, DUET_CFG_DOUBLE, 0, 0.999999999, "AdamW second-moment decay"),
    T(eps, DUET_CFG_DOUBLE, 0, 1, "AdamW epsilon"),
    T(grad_clip, DUET_CFG_DOUBLE, 0, 1e12, "clip the global gradient norm to this (0: no clipping)"),
    T(ema_decay, DUET_CFG_DOUBLE, 0, 0.999999999, "decay of the exponential moving average of the weights"),
    T(accum, DUET_CFG_INT, 1, 65536, "micro-batches per optimizer step (gradient accumulation)"),
    T(seed, DUET_CFG_INT64, 0, 9e18, "seed of initialisation, data order, augmentation and flow draws"),
    T(log_every, DUET_CFG_INT64, 0, 1e12, "steps between progress lines on stderr (0: none)"),
    T(val_every, DUET_CFG_INT64, 0, 1e12, "steps between validation passes (0: none)"),
    T(val_batches, DUET_CFG_INT, 1, 1 << 20, "batches per validation pass (at most the held-out clips)"),
    T(ckpt_every, DUET_CFG_INT64, 0, 1e12, "steps between checkpoints (0: only at the end)"),
    T(keep_checkpoints, DUET_CFG_INT, 0, 1000000, "newest checkpoints kept, older ones deleted (0: keep all)"),
    T(zero1, DUET_CFG_BOOL, 1, 0, "under mpirun: shard the AdamW moments across ranks (ZeRO-1; same weights)"),
    T(overlap_allreduce, DUET_CFG_BOOL, 1, 0,
      "under mpirun: start the gradient all-reduce during the backward pass (same weights)"),
    T(run_dir, DUET_CFG_STRING, 1, 0, "run folder: config.ini, metrics.jsonl, loss.png, step_N/ checkpoints"),
    T(threads, DUET_CFG_INT, 0, 4096, "compute threads (0: the OpenMP default)"),
    {"train", "device", DUET_CFG_ENUM, offsetof(duet_train_settings, device), NO_RANGE, device_names,
     "where weights, optimizer state and the whole step live: cpu, or cuda (one GPU; checkpoints are the same files)"},
    {"train", "precision", DUET_CFG_ENUM, offsetof(duet_train_settings, precision), NO_RANGE, precision_names,
     "what forward and backward compute in: f32, or bf16 (train.device = cuda; f32 master weights and AdamW state)"},
    {"train", "matmul_precision", DUET_CFG_ENUM, offsetof(duet_train_settings, matmul_precision), NO_RANGE,
     matmul_precision_names,
     "inputs of the CPU's f32 matrix products: f32, or bf16 (summed in f32, oneDNN on AMX; all else stays f32)"},
};
#undef T

void duet_train_config_defaults(duet_train_config *c) {
  memset(c, 0, sizeof *c);
  duet_model_config_defaults(&c->model);
  duet_flow_config_defaults(&c->flow);
  duet_audio_settings_default(&c->audio);
  snprintf(c->data.path, sizeof c->data.path, "data/synth.h5");
  c->data.val_clips = 0;
  c->data.batch = 4;
  c->data.read_ahead = 3;
  c->data.threads = 2;
  c->data.random_crop = true;
  c->data.flip = false;
  c->train = (duet_train_settings){
      .steps = 1000, .lr = 3e-4, .min_lr = 3e-5, .warmup = 100, .schedule = DUET_LR_COSINE,
      .weight_decay = 0.01, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8, .grad_clip = 1.0,
      .ema_decay = 0.999, .accum = 1, .seed = 0, .log_every = 10, .val_every = 100,
      .val_batches = 4, .ckpt_every = 500, .keep_checkpoints = 0, .threads = 0, .overlap_allreduce = true,
  };
  snprintf(c->train.run_dir, sizeof c->train.run_dir, "runs/default");
}

void duet_train_config_groups(duet_train_config *c, duet_cfg_group g[DUET_TRAIN_CFG_GROUPS]) {
  g[0] = (duet_cfg_group){duet_model_keys, duet_model_key_count, &c->model};
  g[1] = (duet_cfg_group){duet_flow_keys, duet_flow_key_count, &c->flow};
  g[2] = (duet_cfg_group){duet_audio_keys, duet_audio_key_count, &c->audio};
  g[3] = (duet_cfg_group){data_keys, N_KEYS(data_keys), &c->data};
  g[4] = (duet_cfg_group){train_keys, N_KEYS(train_keys), &c->train};
}

int duet_train_config_load(duet_train_config *c, const char *path, duet_err *err) {
  duet_cfg_group g[DUET_TRAIN_CFG_GROUPS];
  duet_train_config_groups(c, g);
  return duet_config_load_file_multi(g, DUET_TRAIN_CFG_GROUPS, path, err);
}

int duet_train_config_parse(duet_train_config *c, const char *text, const char *name, duet_err *err) {
  duet_train_config_defaults(c);
  duet_cfg_group g[DUET_TRAIN_CFG_GROUPS];
  duet_train_config_groups(c, g);
  return duet_config_load_string_multi(g, DUET_TRAIN_CFG_GROUPS, text, name, err);
}

int duet_train_config_set(duet_train_config *c, const char *assignment, duet_err *err) {
  duet_cfg_group g[DUET_TRAIN_CFG_GROUPS];
  duet_train_config_groups(c, g);
  return duet_config_set_multi(g, DUET_TRAIN_CFG_GROUPS, assignment, err);
}

/* Keys that change how far a run goes and what it reports, but not what any step computes, so
 * a resumed run stays the continuation of the one it resumes. (train.steps changes the cosine
 * schedule's length: that is the point of raising it.) */
static const char *const resume_keys[] = {"train.steps", "train.log_every", "train.val_every",
                                          "train.ckpt_every", "train.keep_checkpoints", NULL};

int duet_train_config_set_on_resume(duet_train_config *c, const char *assignment, duet_err *err) {
  const char *eq = strchr(assignment, '=');
  const char *k = assignment;
  while (*k == ' ' || *k == '\t') k++;
  size_t n = eq ? (size_t)(eq - k) : strlen(k);
  while (n > 0 && (k[n - 1] == ' ' || k[n - 1] == '\t')) n--;
  for (int i = 0; resume_keys[i]; i++)
    if (strlen(resume_keys[i]) == n && strncmp(resume_keys[i], k, n) == 0)
      return duet_train_config_set(c, assignment, err);
  return duet_err_set(err, DUET_EINVAL,
                      "--set %.*s: cannot change on --resume (only train.steps, train.log_every, train.val_every, "
                      "train.ckpt_every and train.keep_checkpoints may; start a new run, or use --init)",
                      (int)(n < 200 ? n : 200), k);
}

static int near(double a, double b) { return fabs(a - b) <= 1e-9 * fmax(fabs(a), fabs(b)); }

int duet_train_config_validate(const duet_train_config *c, duet_err *err) {
  int rc = duet_model_config_validate(&c->model, err);
  if (!rc) rc = duet_flow_config_validate(&c->flow, err);
  if (rc) return rc;
  const duet_train_settings *t = &c->train;
  duet_lr_schedule s = {t->schedule, t->lr, t->min_lr, t->warmup, t->steps};
  if ((rc = duet_lr_schedule_check(&s, err))) return duet_err_prefix(err, "train: ");
  if (c->audio.n_mels != c->model.audio_channels)
    return duet_err_set(err, DUET_EINVAL, "audio.n_mels = %d but model.audio_channels = %d: they must be equal",
                        c->audio.n_mels, c->model.audio_channels);
  double rate = (double)c->audio.sample_rate / c->audio.hop;
  if (!near(rate, c->model.audio_rate))
    return duet_err_set(err, DUET_EINVAL,
                        "audio.sample_rate / audio.hop = %d / %d = %g frames/s but model.audio_rate = %g",
                        c->audio.sample_rate, c->audio.hop, rate, c->model.audio_rate);
  duet_video_codec vc;
  if ((rc = duet_video_codec_init(&vc, DUET_VIDEO_CODEC_PIXELS, err))) return rc;
  if (vc.channels != c->model.video_channels)
    return duet_err_set(err, DUET_EINVAL, "the pixel video codec has %d channels but model.video_channels = %d",
                        vc.channels, c->model.video_channels);
  if ((c->data.crop_height == 0) != (c->data.crop_width == 0))
    return duet_err_set(err, DUET_EINVAL, "data.crop_height = %d and data.crop_width = %d: set both or neither",
                        c->data.crop_height, c->data.crop_width);
  if (!c->data.path[0]) return duet_err_set(err, DUET_EINVAL, "data.path is empty");
  if (!t->run_dir[0]) return duet_err_set(err, DUET_EINVAL, "train.run_dir is empty");
  if (t->precision == DUET_PRECISION_BF16 && t->device != DUET_CUDA)
    return duet_err_set(err, DUET_EINVAL,
                        "train.precision = bf16 needs train.device = cuda (the CPU backend computes in f32 only)");
  if (t->matmul_precision == DUET_MATMUL_BF16 && t->device != DUET_CPU)
    return duet_err_set(err, DUET_EINVAL,
                        "train.matmul_precision = bf16 is for train.device = cpu (on a GPU use train.precision = bf16)");
  return DUET_OK;
}

void duet_train_audio_codec_config(const duet_train_config *c, duet_audio_codec_config *out) {
  duet_audio_settings_to_codec(&c->audio, out);
}

int duet_train_config_format(const duet_train_config *c, char **text, duet_err *err) {
  duet_cfg_group g[DUET_TRAIN_CFG_GROUPS];
  duet_train_config_groups((duet_train_config *)c, g);
  return duet_config_format_multi(g, DUET_TRAIN_CFG_GROUPS, text, err);
}

int duet_train_config_write(const duet_train_config *c, const char *path, duet_err *err) {
  duet_cfg_group g[DUET_TRAIN_CFG_GROUPS];
  duet_train_config_groups((duet_train_config *)c, g);
  return duet_config_write_multi(g, DUET_TRAIN_CFG_GROUPS, path, err);
}

void duet_train_config_print_help(FILE *f) {
  duet_train_config scratch;
  duet_cfg_group g[DUET_TRAIN_CFG_GROUPS];
  duet_train_config_groups(&scratch, g);
  for (int i = 0; i < DUET_TRAIN_CFG_GROUPS; i++) duet_config_print_help(f, g[i].keys, g[i].n);
}
