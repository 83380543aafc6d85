/* Checkpoints: an exact round trip of every part, a resumed run that matches an uninterrupted
 * one bit for bit, saves that fail midway, and loads that refuse bad files. */
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/checkpoint.h"
#include "core/fileio.h"
#include "core/safetensors.h"
#include "testlib.h"

typedef struct run {
  duet_param_set model;
  duet_adamw opt;
  duet_ema ema;
  duet_train_state state;
} run;

/* A model with a matrix, a vector and a frozen table; width sets the file sizes. */
static void run_init(run *r, int64_t width, uint64_t seed) {
  duet_err err = {0};
  duet_params_init(&r->model);
  int64_t sw[2] = {width, 8}, sb[1] = {8}, sf[2] = {4, 8};
  duet_tensor *w = duet_params_add(&r->model, "proj.weight", DUET_F32, 2, sw, 1, &err);
  duet_tensor *b = duet_params_add(&r->model, "proj.bias", DUET_F32, 1, sb, 1, &err);
  duet_tensor *f = duet_params_add(&r->model, "frozen_table", DUET_F32, 2, sf, 0, &err);
  CHECK(w && b && f);
  duet_rng_fill_normal_f32(seed, 1, 0, w->data, w->numel, 0, 0.1f);
  duet_rng_fill_normal_f32(seed, 2, 0, b->data, b->numel, 0, 0.1f);
  duet_rng_fill_normal_f32(seed, 3, 0, f->data, f->numel, 0, 1.0f);
  duet_adamw_config cfg = duet_adamw_defaults();
  cfg.weight_decay = 0.1;
  CHECK(duet_adamw_init(&r->opt, &r->model, &cfg, NULL, NULL, &err) == 0);
  CHECK(duet_ema_init(&r->ema, &r->model, 0.9, &err) == 0);
  duet_train_state_init(&r->state);
  r->state.rng = duet_rng_make(seed, 77);
}

static void run_free(run *r) {
  duet_adamw_free(&r->opt);
  duet_ema_free(&r->ema);
  duet_train_state_free(&r->state);
  duet_params_free(&r->model);
}

/* One training step whose gradients come from the run's RNG, so a resumed run only matches if
 * the RNG position was restored too. */
static void run_step(run *r) {
  duet_err err = {0};
  for (int i = 0; i < r->model.count; i++) {
    duet_tensor *p = r->model.items[i];
    if (!p->grad) continue;
    float *g = p->grad->data;
    for (int64_t k = 0; k < p->numel; k++) g[k] = (float)duet_rng_normal_f64(&r->state.rng);
  }
  double norm;
  CHECK(duet_grad_clip(&r->model, 1.0, &norm, &err) == 0);
  CHECK(duet_adamw_step(&r->opt, 1e-2, &err) == 0);
  CHECK(duet_ema_update(&r->ema, &err) == 0);
  r->state.step++;
  r->state.samples_consumed += 16;
  if (r->state.samples_consumed >= 64) {
    r->state.epoch++;
    r->state.samples_consumed = 0;
  }
  duet_scalars_set_f64(&r->state.scalars, "loss_ema", norm / 3.0, &err);
}

static duet_ckpt parts(run *r) {
  static const char *const meta[] = {"model.width", "tiny", "note", "a test model", NULL};
  duet_ckpt c = {&r->model, &r->ema, &r->opt, &r->state, meta};
  return c;
}

static int same_tensor(const duet_tensor *a, const duet_tensor *b) {
  if (!a || !b) return a == b;
  return a->dtype == b->dtype && duet_shape_equal(a, b) && memcmp(a->data, b->data, duet_tensor_bytes(a)) == 0;
}

static int same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

static void check_same_run(run *a, run *b) {
  for (int i = 0; i < a->model.count; i++) {
    CHECK_MSG(same_tensor(a->model.items[i], b->model.items[i]), "param %s", a->model.items[i]->name);
    CHECK_MSG(same_tensor(a->opt.m[i], b->opt.m[i]) && same_tensor(a->opt.v[i], b->opt.v[i]), "moments %s",
              a->model.items[i]->name);
    CHECK_MSG(same_tensor(a->ema.shadow[i], b->ema.shadow[i]), "ema %s", a->model.items[i]->name);
  }
  CHECK_EQ_INT(a->opt.step, b->opt.step);
  CHECK_EQ_INT(a->ema.updates, b->ema.updates);
  CHECK_EQ_INT(a->state.step, b->state.step);
  CHECK(a->state.rng.seed == b->state.rng.seed && a->state.rng.stream == b->state.rng.stream &&
        a->state.rng.offset == b->state.rng.offset);
  CHECK_EQ_INT(a->state.epoch, b->state.epoch);
  CHECK_EQ_INT(a->state.samples_consumed, b->state.samples_consumed);
  CHECK_EQ_INT(a->state.scalars.count, b->state.scalars.count);
  for (int i = 0; i < a->state.scalars.count && i < b->state.scalars.count; i++) {
    const duet_scalar *x = &a->state.scalars.items[i], *y = duet_scalars_find(&b->state.scalars, x->key);
    CHECK_MSG(y && x->kind == y->kind, "scalar %s", x->key);
    if (!y) continue;
    if (x->kind == DUET_SCALAR_I64) CHECK_MSG(x->i == y->i, "scalar %s", x->key);
    else if (isnan(x->f)) CHECK_MSG(isnan(y->f), "scalar %s", x->key);
    else CHECK_MSG(same_bits(x->f, y->f), "scalar %s: %.17g vs %.17g", x->key, x->f, y->f);
  }
}

static void path_of(char *out, const char *dir, const char *name) {
  CHECK(duet_path_join(out, DUET_PATH_MAX, dir, name, NULL) == 0);
}

/* Entries of dir other than those listed (NULL-terminated): temporaries left behind. */
static int stray_entries(const char *dir, const char *const *expected) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int stray = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    int known = 0;
    for (const char *const *x = expected; *x; x++) known |= strcmp(e->d_name, *x) == 0;
    if (!known) {
      fprintf(stderr, "stray entry %s/%s\n", dir, e->d_name);
      stray++;
    }
  }
  closedir(d);
  return stray;
}

static void set_file_limit(rlim_t bytes) {
  struct rlimit rl;
  getrlimit(RLIMIT_FSIZE, &rl);
  rl.rlim_cur = bytes == RLIM_INFINITY ? rl.rlim_max : bytes;
  CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void test_scalars(void) {
  duet_scalars s;
  duet_scalars_init(&s);
  duet_err err = {0};
  CHECK(duet_scalars_set_i64(&s, "a", 5, &err) == 0 && duet_scalars_set_f64(&s, "b", 0.5, &err) == 0);
  CHECK(duet_scalars_set_i64(&s, "a", 6, &err) == 0 && s.count == 2);
  int64_t i = 0;
  double d = 0;
  CHECK(duet_scalars_get_i64(&s, "a", &i, &err) == 0 && i == 6);
  CHECK(duet_scalars_get_f64(&s, "b", &d, &err) == 0 && d == 0.5);
  CHECK(duet_scalars_get_f64(&s, "a", &d, &err) == DUET_EINVAL && strstr(err.msg, "'a'"));
  CHECK(duet_scalars_get_i64(&s, "zz", &i, &err) == DUET_EINVAL && strstr(err.msg, "'zz'"));
  CHECK(duet_scalars_set_f64(&s, "", 1, &err) == DUET_EINVAL);
  duet_scalars_free(&s);
  /* Shortest exact text. */
  char buf[40];
  CHECK(strcmp(duet_format_double(buf, sizeof buf, 0.1), "0.1") == 0);
  CHECK(strcmp(duet_format_double(buf, sizeof buf, -0.0), "-0") == 0);
  CHECK(strcmp(duet_format_double(buf, sizeof buf, 1.0 / 3.0), "0.3333333333333333") == 0);
  CHECK(strcmp(duet_format_double(buf, sizeof buf, 4.9406564584124654e-324), "4.9406564584124654e-324") == 0 ||
        strcmp(buf, "5e-324") == 0);
  CHECK(strcmp(duet_format_double(buf, sizeof buf, 1e300), "1e+300") == 0);
}

static void test_round_trip_and_resume(const char *root) {
  char run_dir[DUET_PATH_MAX], saved[DUET_PATH_MAX], last[DUET_PATH_MAX], p[DUET_PATH_MAX];
  path_of(run_dir, root, "runs/a");
  duet_err err = {0};
  run a;
  run_init(&a, 16, 11);
  for (int k = 0; k < 3; k++) run_step(&a);
  duet_scalars *sc = &a.state.scalars;
  duet_scalars_set_i64(sc, "tokens_seen", INT64_MAX, &err);
  duet_scalars_set_i64(sc, "most_negative", INT64_MIN, &err);
  duet_scalars_set_f64(sc, "tenth", 0.1, &err);
  duet_scalars_set_f64(sc, "third", 1.0 / 3.0, &err);
  duet_scalars_set_f64(sc, "neg_zero", -0.0, &err);
  duet_scalars_set_f64(sc, "denormal", 4.9406564584124654e-324, &err);
  duet_scalars_set_f64(sc, "big", 1.7976931348623157e308, &err);
  duet_scalars_set_f64(sc, "nan", NAN, &err);
  duet_scalars_set_f64(sc, "inf", INFINITY, &err);
  duet_scalars_set_f64(sc, "minus_inf", -INFINITY, &err);
  a.state.rng.seed = UINT64_MAX; /* beyond what a JSON number carries */
  a.state.rng.offset = (1ull << 53) + 1;
  duet_ckpt c = parts(&a);
  CHECK(duet_ckpt_last(run_dir, last, sizeof last, &err) == DUET_EIO && strstr(err.msg, "no checkpoint"));
  CHECK_MSG(duet_ckpt_save(run_dir, &c, saved, sizeof saved, &err) == 0, "%s", err.msg);
  path_of(p, run_dir, "step_000003");
  CHECK(strcmp(saved, p) == 0);
  CHECK(duet_ckpt_last(run_dir, last, sizeof last, &err) == 0 && strcmp(last, p) == 0);
  const char *files[] = {"model.safetensors", "ema.safetensors", "optim.safetensors", "state.json", NULL};
  CHECK(stray_entries(saved, files) == 0);
  const char *top[] = {"step_000003", "last", NULL};
  CHECK(stray_entries(run_dir, top) == 0);
  char link[DUET_PATH_MAX];
  path_of(p, run_dir, "last");
  ssize_t n = readlink(p, link, sizeof link - 1);
  CHECK(n == 11 && memcmp(link, "step_000003", 11) == 0);

  /* The model file carries the caller's metadata. */
  duet_st_file *mf = NULL;
  path_of(p, saved, "model.safetensors");
  CHECK(duet_st_open(&mf, p, &err) == 0);
  if (mf) {
    CHECK(strcmp(duet_st_meta(mf, "model.width"), "tiny") == 0 && strcmp(duet_st_meta(mf, "step"), "3") == 0);
    CHECK(duet_st_count(mf) == 3);
  }
  duet_st_close(mf);

  /* Load through `last` into a fresh run with different initial values. */
  run b;
  run_init(&b, 16, 99);
  duet_scalars_set_i64(&b.state.scalars, "stale", 1, &err);
  duet_ckpt cb = parts(&b);
  path_of(p, run_dir, "last");
  CHECK_MSG(duet_ckpt_load(p, &cb, &err) == 0, "%s", err.msg);
  check_same_run(&a, &b);
  CHECK(duet_scalars_find(&b.state.scalars, "stale") == NULL);

  /* Both continue: identical bits, step after step. */
  for (int k = 0; k < 3; k++) {
    run_step(&a);
    run_step(&b);
  }
  check_same_run(&a, &b);

  /* Saving the same step again replaces it. */
  a.state.step = 3;
  CHECK_MSG(duet_ckpt_save(run_dir, &c, NULL, 0, &err) == 0, "%s", err.msg);
  CHECK(stray_entries(run_dir, top) == 0);
  a.state.step = 6;
  CHECK(duet_ckpt_save(run_dir, &c, NULL, 0, &err) == 0);
  const char *top2[] = {"step_000003", "step_000006", "last", NULL};
  CHECK(stray_entries(run_dir, top2) == 0);
  run_free(&a);
  run_free(&b);
}

static void test_interrupted_save(const char *root) {
  char run_dir[DUET_PATH_MAX], last[DUET_PATH_MAX], p[DUET_PATH_MAX];
  path_of(run_dir, root, "runs/b");
  duet_err err = {0};
  run a;
  run_init(&a, 512, 5);
  run_step(&a);
  duet_ckpt c = parts(&a);
  CHECK(duet_ckpt_save(run_dir, &c, NULL, 0, &err) == 0);
  path_of(p, run_dir, "step_000001/model.safetensors");
  long model_bytes = file_size(p);
  path_of(p, run_dir, "step_000001/optim.safetensors");
  long optim_bytes = file_size(p);
  CHECK(model_bytes > 0 && optim_bytes > model_bytes + 4096);
  float w0 = ((float *)a.model.items[0]->data)[0];

  /* A write that fails midway: the file-size limit lets model and EMA through and stops the
   * optimizer state partway (EFBIG instead of SIGXFSZ). */
  run_step(&a);
  signal(SIGXFSZ, SIG_IGN);
  set_file_limit((rlim_t)(model_bytes + 1024));
  int rc = duet_ckpt_save(run_dir, &c, NULL, 0, &err);
  set_file_limit(RLIM_INFINITY);
  CHECK_MSG(rc == DUET_EIO && strstr(err.msg, "optim.safetensors") && strstr(err.msg, "write failed"), "%d %s", rc,
            err.msg);
  path_of(p, run_dir, "step_000002");
  CHECK(!duet_path_exists(p));
  const char *top[] = {"step_000001", "last", NULL};
  CHECK(stray_entries(run_dir, top) == 0);
  path_of(p, run_dir, "step_000001");
  CHECK(duet_ckpt_last(run_dir, last, sizeof last, &err) == 0 && strcmp(last, p) == 0);

  /* The previous checkpoint still loads, and holds step 1. */
  run b;
  run_init(&b, 512, 6);
  duet_ckpt cb = parts(&b);
  path_of(p, run_dir, "last");
  CHECK_MSG(duet_ckpt_load(p, &cb, &err) == 0, "%s", err.msg);
  CHECK_EQ_INT(b.state.step, 1);
  CHECK(((float *)b.model.items[0]->data)[0] == w0);

  /* A save killed before its rename leaves only a hidden temporary directory, which neither
   * `last` nor a later save trips over. */
  char crashed[DUET_PATH_MAX];
  path_of(crashed, run_dir, ".step_000002.tmp-1");
  CHECK(mkdir(crashed, 0755) == 0);
  path_of(p, crashed, "model.safetensors");
  FILE *f = fopen(p, "wb");
  if (f) {
    fputs("partial", f);
    fclose(f);
  }
  CHECK(duet_ckpt_load(run_dir, &cb, &err) == DUET_EIO); /* the run dir is not a checkpoint */
  CHECK(duet_ckpt_save(run_dir, &c, NULL, 0, &err) == 0);
  path_of(p, run_dir, "step_000002");
  CHECK(duet_ckpt_last(run_dir, last, sizeof last, &err) == 0 && strcmp(last, p) == 0);
  CHECK(duet_remove_tree(crashed, &err) == 0);

  /* An atomic file that fails midway leaves neither the final name nor its temporary. */
  char single[DUET_PATH_MAX];
  path_of(single, run_dir, "single.safetensors");
  set_file_limit(1000);
  CHECK(duet_optim_save(single, &a.opt, &err) == DUET_EIO);
  set_file_limit(RLIM_INFINITY);
  CHECK(!duet_path_exists(single));
  const char *top2[] = {"step_000001", "step_000002", "last", NULL};
  CHECK(stray_entries(run_dir, top2) == 0);
  run_free(&a);
  run_free(&b);
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (!f) return;
  fputs(text, f);
  fclose(f);
}

static void test_bad_loads(const char *root) {
  char run_dir[DUET_PATH_MAX], dir[DUET_PATH_MAX], p[DUET_PATH_MAX];
  path_of(run_dir, root, "runs/c");
  duet_err err = {0};
  run a;
  run_init(&a, 8, 1);
  run_step(&a);
  duet_ckpt c = parts(&a);
  CHECK(duet_ckpt_save(run_dir, &c, dir, sizeof dir, &err) == 0);

  run b;
  run_init(&b, 8, 2);
  float before = ((float *)b.model.items[0]->data)[0];
  duet_ckpt cb = parts(&b);
  path_of(p, root, "runs/none");
  CHECK(duet_ckpt_load(p, &cb, &err) == DUET_EIO && strstr(err.msg, "no such checkpoint directory"));

  /* A model of another shape: refused before anything changes. */
  run wide;
  run_init(&wide, 9, 2);
  duet_ckpt cw = parts(&wide);
  CHECK(duet_ckpt_load(dir, &cw, &err) == DUET_EINVAL);
  CHECK_MSG(strstr(err.msg, "model.safetensors") && strstr(err.msg, "[8,8] in the file but [9,8]"), "%s", err.msg);
  CHECK(wide.state.step == 0 && wide.opt.step == 0);
  run_free(&wide);

  /* state.json problems, each named; the model stays untouched though its file is fine. */
  char state[DUET_PATH_MAX], *good = NULL;
  size_t good_len = 0;
  path_of(state, dir, "state.json");
  CHECK(duet_read_file(state, 1 << 20, &good, &good_len, &err) == 0);
  struct {
    const char *text, *needle;
  } bad[] = {
      {"{\"format\": \"duet-train-state\", \"version\": 1", "not valid JSON"},
      {"{\"format\": \"other\", \"version\": 1}", "'format'"},
      {"{\"format\": \"duet-train-state\", \"version\": 2}", "version 2"},
      {"{\"format\": \"duet-train-state\", \"version\": 1, \"rng\": {}, \"loader\": {}, \"int64\": {}, \"float64\": {}}",
       "'step' missing"},
      {"{\"format\": \"duet-train-state\", \"version\": 1, \"step\": 3, \"rng\": {}, \"loader\": {}, \"int64\": {}, "
       "\"float64\": {}}",
       "'step' must be a string"},
      {"{\"format\": \"duet-train-state\", \"version\": 1, \"step\": \"3\", \"rng\": {\"seed\": \"1\", \"stream\": "
       "\"2\"}, \"loader\": {}, \"int64\": {}, \"float64\": {}}",
       "'rng.offset' missing"},
      {"{\"format\": \"duet-train-state\", \"version\": 1, \"step\": \"3\", \"rng\": {\"seed\": \"-1\", \"stream\": "
       "\"2\", \"offset\": \"0\"}, \"loader\": {}, \"int64\": {}, \"float64\": {}}",
       "'rng.seed'"},
      {"{\"format\": \"duet-train-state\", \"version\": 1, \"step\": \"3\", \"rng\": {\"seed\": \"1\", \"stream\": "
       "\"2\", \"offset\": \"0\"}, \"loader\": {\"epoch\": \"0\", \"samples_consumed\": \"99999999999999999999\"}, "
       "\"int64\": {}, \"float64\": {}}",
       "'loader.samples_consumed'"},
      {"{\"format\": \"duet-train-state\", \"version\": 1, \"step\": \"3\", \"rng\": {\"seed\": \"1\", \"stream\": "
       "\"2\", \"offset\": \"0\"}, \"loader\": {\"epoch\": \"0\", \"samples_consumed\": \"0\"}, "
       "\"int64\": {}, \"float64\": {\"x\": \"fast\"}}",
       "'float64.x'"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    write_text(state, bad[i].text);
    CHECK_MSG(duet_ckpt_load(dir, &cb, &err) == DUET_EFORMAT && strstr(err.msg, "state.json") &&
                  strstr(err.msg, bad[i].needle),
              "case %zu: %s", i, err.msg);
    CHECK(((float *)b.model.items[0]->data)[0] == before);
  }
  duet_write_file_atomic(state, good, good_len, &err);
  free(good);

  /* An optimizer file of another kind. */
  path_of(p, dir, "optim.safetensors");
  CHECK(duet_ema_save(p, &a.ema, &err) == 0);
  CHECK(duet_ckpt_load(dir, &cb, &err) == DUET_EFORMAT);
  CHECK_MSG(strstr(err.msg, "optim.safetensors") && strstr(err.msg, "duet-adamw"), "%s", err.msg);
  CHECK(((float *)b.model.items[0]->data)[0] == before);
  /* A missing part. */
  unlink(p);
  CHECK(duet_ckpt_load(dir, &cb, &err) == DUET_EIO && strstr(err.msg, "optim.safetensors"));
  /* Parts not asked for are not needed. */
  cb.optim = NULL;
  CHECK_MSG(duet_ckpt_load(dir, &cb, &err) == 0, "%s", err.msg);
  CHECK(same_tensor(a.model.items[0], b.model.items[0]) && same_tensor(a.ema.shadow[1], b.ema.shadow[1]));
  /* EMA loads are refused while swapped in. */
  duet_ema_swap(&b.ema);
  path_of(p, dir, "ema.safetensors");
  CHECK(duet_ema_load(p, &b.ema, &err) == DUET_EINVAL && strstr(err.msg, "swapped"));
  duet_ema_swap(&b.ema);
  CHECK(duet_ema_load(p, &b.ema, &err) == 0);
  run_free(&a);
  run_free(&b);
}

int main(void) {
  char root[DUET_PATH_MAX];
  snprintf(root, sizeof root, "%s/ckpt", test_tmpdir());
  test_scalars();
  test_round_trip_and_resume(root);
  test_interrupted_save(root);
  test_bad_loads(root);
  duet_err err = {0};
  CHECK(duet_remove_tree(test_tmpdir(), &err) == 0);
  return test_finish("core_checkpoint");
}
