/* Configs: every type read from a file and from overrides, the errors a user meets (each
 * naming where and which key), write -> load giving back the identical struct, and one file
 * filling two structs. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/fileio.h"
#include "testlib.h"

typedef enum { FUSION_CROSS, FUSION_JOINT } fusion;

typedef struct model_cfg {
  int depth;
  int64_t tokens;
  double mlp_ratio;
  bool qk_norm;
  char name[DUET_CFG_STRING_MAX];
  fusion fusion;
} model_cfg;

typedef struct train_cfg {
  double lr;
  double decay;
  int steps;
  int64_t seed;
  bool ema;
  char data[DUET_CFG_STRING_MAX];
  int dtype;
} train_cfg;

static const char *const fusion_names[] = {"cross", "joint", NULL};
static const char *const dtype_names[] = {"f32", "bf16", NULL};

/* min > max: no range. */
#define ANY 1, 0

static const duet_cfg_key model_keys[] = {
    {"model", "depth", DUET_CFG_INT, offsetof(model_cfg, depth), 1, 64, NULL, "dual-stream blocks"},
    {"model", "tokens", DUET_CFG_INT64, offsetof(model_cfg, tokens), 1, 1e12, NULL, "token budget"},
    {"model", "mlp_ratio", DUET_CFG_DOUBLE, offsetof(model_cfg, mlp_ratio), 0.5, 16, NULL, "MLP width over model width"},
    {"model", "qk_norm", DUET_CFG_BOOL, offsetof(model_cfg, qk_norm), ANY, NULL, "RMS-norm queries and keys"},
    {"model", "name", DUET_CFG_STRING, offsetof(model_cfg, name), ANY, NULL, "a label"},
    {"model", "fusion", DUET_CFG_ENUM, offsetof(model_cfg, fusion), ANY, fusion_names, "how the branches meet"},
};
enum { N_MODEL = sizeof model_keys / sizeof model_keys[0] };

static const duet_cfg_key train_keys[] = {
    {"train", "lr", DUET_CFG_DOUBLE, offsetof(train_cfg, lr), 0, 1, NULL, "peak learning rate"},
    {"train", "decay", DUET_CFG_DOUBLE, offsetof(train_cfg, decay), ANY, NULL, "weight decay"},
    {"train", "steps", DUET_CFG_INT, offsetof(train_cfg, steps), 1, 1e9, NULL, "optimizer steps"},
    {"train", "seed", DUET_CFG_INT64, offsetof(train_cfg, seed), ANY, NULL, "run seed"},
    {"train", "ema", DUET_CFG_BOOL, offsetof(train_cfg, ema), ANY, NULL, "keep an EMA of the weights"},
    {"train", "data", DUET_CFG_STRING, offsetof(train_cfg, data), ANY, NULL, "clips file"},
    {"train.precision", "dtype", DUET_CFG_ENUM, offsetof(train_cfg, dtype), ANY, dtype_names, "activation type"},
};
enum { N_TRAIN = sizeof train_keys / sizeof train_keys[0] };

static char path_buf[4][1024];

/* Writes text to a fresh file in the test's scratch directory; slot picks one of a few
 * buffers so that two paths can be alive at once. */
static const char *write_text(int slot, const char *name, const char *text) {
  snprintf(path_buf[slot], sizeof path_buf[slot], "%s/%s", test_tmpdir(), name);
  FILE *f = fopen(path_buf[slot], "wb");
  if (!f) return path_buf[slot];
  fputs(text, f);
  fclose(f);
  return path_buf[slot];
}

static bool has(const char *haystack, const char *needle) { return strstr(haystack, needle) != NULL; }

static void test_every_type(void) {
  model_cfg m;
  memset(&m, 0, sizeof m);
  const char *path = write_text(0, "types.ini",
                                "; a comment\n"
                                "# another\n"
                                "[model]\n"
                                "depth = 12\n"
                                "  tokens = 123456789012   ; indented, with a comment\n"
                                "mlp_ratio=2e0\r\n"
                                "qk_norm = yes\n"
                                "name = small run #3: a=b\n"
                                "fusion = joint\n");
  duet_err err = {0};
  int rc = duet_config_load_file(model_keys, N_MODEL, &m, path, &err);
  CHECK_MSG(rc == DUET_OK, "%s", err.msg);
  CHECK_EQ_INT(m.depth, 12);
  CHECK_EQ_INT(m.tokens, 123456789012LL);
  CHECK(m.mlp_ratio == 2.0);
  CHECK(m.qk_norm == true);
  CHECK_MSG(strcmp(m.name, "small run #3: a=b") == 0, "name = '%s'", m.name);
  CHECK_EQ_INT(m.fusion, FUSION_JOINT);

  /* Keys a file leaves out keep what the caller set. */
  rc = duet_config_load_string(model_keys, N_MODEL, &m, "[model]\ndepth = 3\n", "inline", &err);
  CHECK_EQ_INT(rc, DUET_OK);
  CHECK_EQ_INT(m.depth, 3);
  CHECK_EQ_INT(m.fusion, FUSION_JOINT);
}

static void test_bools_and_numbers(void) {
  model_cfg m;
  memset(&m, 0, sizeof m);
  duet_err err = {0};
  static const char *const yes[] = {"true", "1", "yes", "on", "TRUE", "On"};
  static const char *const no[] = {"false", "0", "no", "off", "False", "NO"};
  for (int i = 0; i < 6; i++) {
    char a[64];
    snprintf(a, sizeof a, "model.qk_norm=%s", yes[i]);
    CHECK_EQ_INT(duet_config_set(model_keys, N_MODEL, &m, a, &err), DUET_OK);
    CHECK_MSG(m.qk_norm == true, "%s", a);
    snprintf(a, sizeof a, "model.qk_norm = %s", no[i]);
    CHECK_EQ_INT(duet_config_set(model_keys, N_MODEL, &m, a, &err), DUET_OK);
    CHECK_MSG(m.qk_norm == false, "%s", a);
  }
  CHECK_EQ_INT(duet_config_set(model_keys, N_MODEL, &m, "model.qk_norm=maybe", &err), DUET_EINVAL);
  CHECK_MSG(has(err.msg, "maybe") && has(err.msg, "true/false"), "%s", err.msg);

  train_cfg t;
  memset(&t, 0, sizeof t);
  CHECK_EQ_INT(duet_config_set(train_keys, N_TRAIN, &t, "train.lr=2e-4", &err), DUET_OK);
  CHECK(t.lr == 2e-4);
  CHECK_EQ_INT(duet_config_set(train_keys, N_TRAIN, &t, "train.seed=-9223372036854775808", &err), DUET_OK);
  CHECK(t.seed == INT64_MIN);
  CHECK_EQ_INT(duet_config_set(train_keys, N_TRAIN, &t, "train.steps=+42", &err), DUET_OK);
  CHECK_EQ_INT(t.steps, 42);

  /* Each rejected value leaves the target alone and says what was wrong. */
  struct {
    const char *set, *expect;
  } bad[] = {
      {"train.steps=12x", "expected an integer, got '12x'"},
      {"train.steps=1.5", "expected an integer"},
      {"train.steps=", "expected an integer, got ''"},
      {"train.steps=2147483648", "does not fit in an int"},
      {"train.seed=9223372036854775808", "does not fit in a 64-bit integer"},
      {"train.lr=abc", "expected a number, got 'abc'"},
      {"train.lr=0.1.2", "expected a number"},
      {"train.decay=nan", "finite"},
      {"train.decay=inf", "finite"},
      {"train.decay=-infinity", "finite"},
      {"train.decay=1e999", "finite"},
      {"train.decay=1e-999", "too small"},
  };
  train_cfg before = t;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err.msg[0] = '\0';
    int rc = duet_config_set(train_keys, N_TRAIN, &t, bad[i].set, &err);
    CHECK_MSG(rc == DUET_EINVAL, "%s gave %d", bad[i].set, rc);
    CHECK_MSG(has(err.msg, bad[i].expect) && has(err.msg, bad[i].set), "%s: '%s'", bad[i].set, err.msg);
  }
  CHECK(memcmp(&before, &t, sizeof t) == 0);
}

static void test_ranges_and_enums(void) {
  model_cfg m;
  memset(&m, 0, sizeof m);
  duet_err err = {0};
  CHECK_EQ_INT(duet_config_set(model_keys, N_MODEL, &m, "model.depth=1", &err), DUET_OK);
  CHECK_EQ_INT(duet_config_set(model_keys, N_MODEL, &m, "model.depth=64", &err), DUET_OK);
  CHECK_EQ_INT(m.depth, 64);
  CHECK_EQ_INT(duet_config_set(model_keys, N_MODEL, &m, "model.depth=0", &err), DUET_EINVAL);
  CHECK_MSG(has(err.msg, "0 is out of range [1, 64]"), "%s", err.msg);
  CHECK_EQ_INT(duet_config_set(model_keys, N_MODEL, &m, "model.depth=65", &err), DUET_EINVAL);
  CHECK_EQ_INT(m.depth, 64);
  CHECK_EQ_INT(duet_config_set(model_keys, N_MODEL, &m, "model.mlp_ratio=0.49", &err), DUET_EINVAL);
  CHECK_MSG(has(err.msg, "0.49 is out of range [0.5, 16]"), "%s", err.msg);
  CHECK_EQ_INT(duet_config_set(model_keys, N_MODEL, &m, "model.mlp_ratio=16", &err), DUET_OK);
  CHECK(m.mlp_ratio == 16.0);
  CHECK_EQ_INT(duet_config_set(model_keys, N_MODEL, &m, "model.tokens=1000000000001", &err), DUET_EINVAL);

  CHECK_EQ_INT(duet_config_set(model_keys, N_MODEL, &m, "model.fusion=cross", &err), DUET_OK);
  CHECK_EQ_INT(m.fusion, FUSION_CROSS);
  CHECK_EQ_INT(duet_config_set(model_keys, N_MODEL, &m, "model.fusion=joint", &err), DUET_OK);
  CHECK_EQ_INT(m.fusion, FUSION_JOINT);
  CHECK_EQ_INT(duet_config_set(model_keys, N_MODEL, &m, "model.fusion=Joint", &err), DUET_EINVAL);
  CHECK_MSG(has(err.msg, "'Joint' is not one of: cross, joint"), "%s", err.msg);
  CHECK_EQ_INT(m.fusion, FUSION_JOINT);
}

static void test_file_errors(void) {
  model_cfg m;
  memset(&m, 0, sizeof m);
  duet_err err = {0};

  const char *p = write_text(0, "unknown_key.ini", "[model]\ndepth = 4\n\ndeptth = 5\n");
  CHECK_EQ_INT(duet_config_load_file(model_keys, N_MODEL, &m, p, &err), DUET_EINVAL);
  char want[1200];
  snprintf(want, sizeof want, "%s:4: model.deptth: unknown key (did you mean model.depth?)", p);
  CHECK_MSG(strcmp(err.msg, want) == 0, "'%s'", err.msg);
  CHECK_EQ_INT(m.depth, 0); /* nothing stored from a file with an error */

  p = write_text(0, "unknown_section.ini", "[model]\ndepth = 4\n[modle]\nfusion = cross\n");
  CHECK_EQ_INT(duet_config_load_file(model_keys, N_MODEL, &m, p, &err), DUET_EINVAL);
  snprintf(want, sizeof want, "%s:4: modle.fusion: unknown section [modle] (did you mean model.fusion?)", p);
  CHECK_MSG(strcmp(err.msg, want) == 0, "'%s'", err.msg);
  p = write_text(0, "unknown_section2.ini", "[modle]\nwidth = 4\n");
  CHECK_EQ_INT(duet_config_load_file(model_keys, N_MODEL, &m, p, &err), DUET_EINVAL);
  CHECK_MSG(has(err.msg, ":2: modle.width: unknown section [modle] (did you mean [model]?)"), "'%s'", err.msg);

  p = write_text(0, "bad_number.ini", "[model]\ndepth = 4\nmlp_ratio = 4,0\n");
  CHECK_EQ_INT(duet_config_load_file(model_keys, N_MODEL, &m, p, &err), DUET_EINVAL);
  snprintf(want, sizeof want, "%s:3: model.mlp_ratio: expected a number, got '4,0'", p);
  CHECK_MSG(strcmp(err.msg, want) == 0, "'%s'", err.msg);

  p = write_text(0, "twice.ini", "[model]\ndepth = 4\n[model]\ndepth = 5\n");
  CHECK_EQ_INT(duet_config_load_file(model_keys, N_MODEL, &m, p, &err), DUET_EINVAL);
  CHECK_MSG(has(err.msg, ":4: model.depth: given twice (first on line 2)"), "'%s'", err.msg);

  p = write_text(0, "syntax.ini", "[model]\ndepth = 4\nthis line has no equals sign\n");
  CHECK_EQ_INT(duet_config_load_file(model_keys, N_MODEL, &m, p, &err), DUET_EFORMAT);
  CHECK_MSG(has(err.msg, ":3: syntax error"), "'%s'", err.msg);

  /* A syntax error before a bad value is the one reported: the first problem in the file. */
  p = write_text(0, "syntax_first.ini", "[model\ndepth = x\n");
  CHECK(duet_config_load_file(model_keys, N_MODEL, &m, p, &err) != DUET_OK);
  CHECK_MSG(has(err.msg, ":1: syntax error"), "'%s'", err.msg);

  p = write_text(0, "no_section.ini", "depth = 4\n");
  CHECK_EQ_INT(duet_config_load_file(model_keys, N_MODEL, &m, p, &err), DUET_EINVAL);
  CHECK_MSG(has(err.msg, ":1: depth: key outside any [section]"), "'%s'", err.msg);

  snprintf(path_buf[1], sizeof path_buf[1], "%s/does-not-exist.ini", test_tmpdir());
  CHECK_EQ_INT(duet_config_load_file(model_keys, N_MODEL, &m, path_buf[1], &err), DUET_EIO);
  CHECK_MSG(has(err.msg, path_buf[1]) && has(err.msg, "cannot open"), "'%s'", err.msg);

  CHECK_EQ_INT(m.depth, 0);
}

static void test_long_strings(void) {
  model_cfg m;
  memset(&m, 0, sizeof m);
  duet_err err = {0};
  /* Far longer than inih's own 200-byte line buffer. */
  static char text[2048], value[DUET_CFG_STRING_MAX + 8];
  memset(value, 'x', DUET_CFG_STRING_MAX - 1);
  value[DUET_CFG_STRING_MAX - 1] = '\0';
  value[0] = '/';
  value[300] = ' ';
  snprintf(text, sizeof text, "[model]\nname = %s   ; trailing comment\ndepth = 7\n", value);
  const char *p = write_text(0, "long_ok.ini", text);
  int rc = duet_config_load_file(model_keys, N_MODEL, &m, p, &err);
  CHECK_MSG(rc == DUET_OK, "%s", err.msg);
  CHECK_EQ_INT(strlen(m.name), DUET_CFG_STRING_MAX - 1);
  CHECK(strcmp(m.name, value) == 0);
  CHECK_EQ_INT(m.depth, 7);

  strcat(value, "y");
  snprintf(text, sizeof text, "[model]\ndepth = 8\nname = %s\n", value);
  p = write_text(0, "long_bad.ini", text);
  CHECK_EQ_INT(duet_config_load_file(model_keys, N_MODEL, &m, p, &err), DUET_EINVAL);
  CHECK_MSG(has(err.msg, ":3: model.name: a value of 512 bytes is too long (at most 511)"), "'%s'", err.msg);
  CHECK_EQ_INT(m.depth, 7);

  char set[DUET_CFG_STRING_MAX + 32];
  snprintf(set, sizeof set, "model.name=%s", value);
  CHECK_EQ_INT(duet_config_set(model_keys, N_MODEL, &m, set, &err), DUET_EINVAL);
  CHECK_MSG(has(err.msg, "too long"), "'%s'", err.msg);

  /* A value that could not be written back as it is, is refused on the way in. */
  CHECK_EQ_INT(duet_config_set(model_keys, N_MODEL, &m, "model.name=a ;b", &err), DUET_EINVAL);
  CHECK_MSG(has(err.msg, "comment"), "'%s'", err.msg);
  CHECK_EQ_INT(duet_config_set(model_keys, N_MODEL, &m, "model.name=a\tb", &err), DUET_EINVAL);
  CHECK_EQ_INT(duet_config_set(model_keys, N_MODEL, &m, "model.name=  ok  ", &err), DUET_OK);
  CHECK(strcmp(m.name, "ok") == 0);
  CHECK_EQ_INT(duet_config_set(model_keys, N_MODEL, &m, "model.name=", &err), DUET_OK);
  CHECK(m.name[0] == '\0');
}

static void fill_model(model_cfg *m) {
  memset(m, 0, sizeof *m);
  m->depth = 24;
  m->tokens = 4000000000000LL / 4;
  m->mlp_ratio = 8.0 / 3.0;
  m->qk_norm = true;
  snprintf(m->name, sizeof m->name, "base: %s", "0.1;x=y # z;w");
  m->fusion = FUSION_JOINT;
}

static void fill_train(train_cfg *t) {
  memset(t, 0, sizeof *t);
  t->lr = 2e-4;
  t->decay = 0.1;
  t->steps = 100000;
  t->seed = -1234567890123456789LL;
  t->ema = true;
  snprintf(t->data, sizeof t->data, "/data/clips #1.h5");
  t->dtype = 1;
}

static void test_override_wins(void) {
  model_cfg m;
  train_cfg t;
  fill_model(&m);
  fill_train(&t);
  duet_cfg_group groups[] = {{model_keys, N_MODEL, &m}, {train_keys, N_TRAIN, &t}};
  const char *p = write_text(0, "base.ini", "[train]\nlr = 1e-3\nsteps = 10\n[model]\ndepth = 2\n");
  duet_err err = {0};
  CHECK_EQ_INT(duet_config_load_file_multi(groups, 2, p, &err), DUET_OK);
  CHECK(t.lr == 1e-3);
  CHECK_EQ_INT(duet_config_set_multi(groups, 2, "train.lr=2e-4", &err), DUET_OK);
  CHECK_EQ_INT(duet_config_set_multi(groups, 2, " model.depth = 6 ", &err), DUET_OK);
  CHECK_EQ_INT(duet_config_set_multi(groups, 2, "train.precision.dtype=f32", &err), DUET_OK);
  CHECK(t.lr == 2e-4);
  CHECK_EQ_INT(t.steps, 10);
  CHECK_EQ_INT(m.depth, 6);
  CHECK_EQ_INT(t.dtype, 0);

  CHECK_EQ_INT(duet_config_set_multi(groups, 2, "train.lrr=1", &err), DUET_EINVAL);
  CHECK_MSG(strcmp(err.msg, "--set train.lrr=1: unknown key (did you mean train.lr?)") == 0, "'%s'", err.msg);
  CHECK_EQ_INT(duet_config_set_multi(groups, 2, "model.lr=1", &err), DUET_EINVAL);
  CHECK_MSG(has(err.msg, "did you mean train.lr?"), "'%s'", err.msg);
  CHECK_EQ_INT(duet_config_set_multi(groups, 2, "train.lr", &err), DUET_EINVAL);
  CHECK_MSG(strcmp(err.msg, "--set train.lr: expected section.key=value") == 0, "'%s'", err.msg);
  CHECK_EQ_INT(duet_config_set_multi(groups, 2, "lr=1", &err), DUET_EINVAL);
  CHECK_EQ_INT(duet_config_set_multi(groups, 2, ".lr=1", &err), DUET_EINVAL);
  CHECK(t.lr == 2e-4);
}

static void test_round_trip(void) {
  model_cfg m, m2;
  train_cfg t, t2;
  fill_model(&m);
  fill_train(&t);
  /* Doubles whose shortest decimal text is not their exact value. */
  t.decay = 0.1;
  m.mlp_ratio = 4.0 / 3.0;
  duet_cfg_group groups[] = {{model_keys, N_MODEL, &m}, {train_keys, N_TRAIN, &t}};
  snprintf(path_buf[1], sizeof path_buf[1], "%s/resolved.ini", test_tmpdir());
  duet_err err = {0};
  int rc = duet_config_write_multi(groups, 2, path_buf[1], &err);
  CHECK_MSG(rc == DUET_OK, "%s", err.msg);

  memset(&m2, 0, sizeof m2);
  memset(&t2, 0, sizeof t2);
  duet_cfg_group back[] = {{model_keys, N_MODEL, &m2}, {train_keys, N_TRAIN, &t2}};
  rc = duet_config_load_file_multi(back, 2, path_buf[1], &err);
  CHECK_MSG(rc == DUET_OK, "%s", err.msg);
  CHECK(memcmp(&m, &m2, sizeof m) == 0);
  CHECK(memcmp(&t, &t2, sizeof t) == 0);
  CHECK(t2.lr == 2e-4 && t2.decay == 0.1 && m2.mlp_ratio == 4.0 / 3.0);

  char *text = NULL;
  size_t size = 0;
  CHECK_EQ_INT(duet_read_file(path_buf[1], 1 << 20, &text, &size, &err), DUET_OK);
  if (text) {
    CHECK_MSG(has(text, "[model]\n; dual-stream blocks\ndepth = 24\n"), "%s", text);
    CHECK_MSG(has(text, "\nlr = 0.0002\n") && has(text, "\ndecay = 0.1\n"), "%s", text);
    CHECK_MSG(has(text, "\nfusion = joint\n") && has(text, "\nqk_norm = true\n"), "%s", text);
    CHECK_MSG(has(text, "\n[train.precision]\n; activation type\ndtype = bf16\n"), "%s", text);
    CHECK(strstr(text, "[model]") < strstr(text, "[train]"));
  }
  free(text);

  /* The single-table calls agree with the group ones. */
  snprintf(path_buf[2], sizeof path_buf[2], "%s/train_only.ini", test_tmpdir());
  CHECK_EQ_INT(duet_config_write(train_keys, N_TRAIN, &t, path_buf[2], &err), DUET_OK);
  memset(&t2, 0, sizeof t2);
  CHECK_EQ_INT(duet_config_load_file(train_keys, N_TRAIN, &t2, path_buf[2], &err), DUET_OK);
  CHECK(memcmp(&t, &t2, sizeof t) == 0);

  /* Signed zero, extremes and a 511-byte string survive too. */
  t.lr = 0.0;
  t.decay = -0.0;
  t.seed = INT64_MAX;
  m.mlp_ratio = 0.5 + 0x1p-52;
  m.tokens = 1;
  memset(m.name, 'z', DUET_CFG_STRING_MAX - 1);
  m.name[DUET_CFG_STRING_MAX - 1] = '\0';
  CHECK_EQ_INT(duet_config_write_multi(groups, 2, path_buf[1], &err), DUET_OK);
  memset(&m2, 0, sizeof m2);
  memset(&t2, 0, sizeof t2);
  rc = duet_config_load_file_multi(back, 2, path_buf[1], &err);
  CHECK_MSG(rc == DUET_OK, "%s", err.msg);
  CHECK(memcmp(&m, &m2, sizeof m) == 0);
  CHECK(memcmp(&t, &t2, sizeof t) == 0);
  CHECK(signbit(t2.decay));
}

static void test_write_refuses(void) {
  model_cfg m;
  train_cfg t;
  fill_model(&m);
  fill_train(&t);
  duet_cfg_group groups[] = {{model_keys, N_MODEL, &m}, {train_keys, N_TRAIN, &t}};
  snprintf(path_buf[1], sizeof path_buf[1], "%s/refused.ini", test_tmpdir());
  duet_err err = {0};

  t.lr = 5; /* out of range: the file would not load */
  CHECK_EQ_INT(duet_config_write_multi(groups, 2, path_buf[1], &err), DUET_EINVAL);
  CHECK_MSG(has(err.msg, "train.lr") && has(err.msg, "out of range"), "'%s'", err.msg);
  t.lr = 1e-4;
  m.fusion = (fusion)7;
  CHECK_EQ_INT(duet_config_write_multi(groups, 2, path_buf[1], &err), DUET_EINVAL);
  CHECK_MSG(has(err.msg, "model.fusion") && has(err.msg, "holds 7"), "'%s'", err.msg);
  m.fusion = FUSION_CROSS;
  snprintf(t.data, sizeof t.data, "two\nlines");
  CHECK_EQ_INT(duet_config_write_multi(groups, 2, path_buf[1], &err), DUET_EINVAL);
  CHECK_MSG(has(err.msg, "train.data") && has(err.msg, "control"), "'%s'", err.msg);
  CHECK(!duet_path_exists(path_buf[1]));
}

static void test_multi_groups(void) {
  model_cfg m;
  train_cfg t;
  memset(&m, 0, sizeof m);
  memset(&t, 0, sizeof t);
  duet_cfg_group groups[] = {{model_keys, N_MODEL, &m}, {train_keys, N_TRAIN, &t}};
  duet_err err = {0};
  int rc = duet_config_load_string_multi(groups, 2,
                                         "[train]\nlr = 3e-4\nema = off\n"
                                         "[model]\ndepth = 8\nfusion = cross\n"
                                         "[train]\nsteps = 500\n"
                                         "[train.precision]\ndtype = bf16\n",
                                         "two.ini", &err);
  CHECK_MSG(rc == DUET_OK, "%s", err.msg);
  CHECK(t.lr == 3e-4);
  CHECK(t.ema == false);
  CHECK_EQ_INT(t.steps, 500);
  CHECK_EQ_INT(t.dtype, 1);
  CHECK_EQ_INT(m.depth, 8);

  rc = duet_config_load_string_multi(groups, 2, "[model]\ndepth = 9\n[eval]\nsuite = x\n", "three.ini", &err);
  CHECK_EQ_INT(rc, DUET_EINVAL);
  CHECK_MSG(strcmp(err.msg, "three.ini:4: eval.suite: unknown section [eval]") == 0, "'%s'", err.msg);
  CHECK_EQ_INT(m.depth, 8);

  /* Either table alone does not know the other's keys. */
  rc = duet_config_load_string(model_keys, N_MODEL, &m, "[train]\nlr = 1e-4\n", "one.ini", &err);
  CHECK_EQ_INT(rc, DUET_EINVAL);
  CHECK_MSG(has(err.msg, "one.ini:2: train.lr: unknown section [train]"), "'%s'", err.msg);
}

static void test_table_errors(void) {
  model_cfg m;
  memset(&m, 0, sizeof m);
  duet_err err = {0};
  duet_cfg_group twice[] = {{model_keys, N_MODEL, &m}, {model_keys, 1, &m}};
  CHECK_EQ_INT(duet_config_load_string_multi(twice, 2, "", "x", &err), DUET_EINVAL);
  CHECK_MSG(has(err.msg, "model.depth is declared twice"), "'%s'", err.msg);

  const duet_cfg_key zero_range[] = {{"a", "b", DUET_CFG_INT, 0, 0, 0, NULL, "forgot the range"}};
  int x = 0;
  CHECK_EQ_INT(duet_config_set(zero_range, 1, &x, "a.b=0", &err), DUET_EINVAL);
  CHECK_MSG(has(err.msg, "config table: a.b"), "'%s'", err.msg);

  const duet_cfg_key bad_name[] = {{"a", "b c", DUET_CFG_INT, 0, ANY, NULL, ""}};
  CHECK_EQ_INT(duet_config_set(bad_name, 1, &x, "a.b=0", &err), DUET_EINVAL);
  const duet_cfg_key no_choices[] = {{"a", "b", DUET_CFG_ENUM, 0, ANY, NULL, ""}};
  CHECK_EQ_INT(duet_config_set(no_choices, 1, &x, "a.b=0", &err), DUET_EINVAL);
  CHECK_MSG(has(err.msg, "needs choices"), "'%s'", err.msg);
}

static void test_help(void) {
  char *buf = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&buf, &size);
  CHECK(f != NULL);
  if (!f) return;
  duet_config_print_help(f, model_keys, N_MODEL);
  duet_config_print_help(f, train_keys, N_TRAIN);
  fclose(f);
  CHECK_MSG(has(buf, "model.depth") && has(buf, "int in [1, 64]") && has(buf, "dual-stream blocks"), "%s", buf);
  CHECK_MSG(has(buf, "int64 in [1, 1000000000000]"), "%s", buf);
  CHECK_MSG(has(buf, "double in [0.5, 16]"), "%s", buf);
  CHECK_MSG(has(buf, "cross|joint") && has(buf, "how the branches meet"), "%s", buf);
  CHECK_MSG(has(buf, "train.precision.dtype") && has(buf, "f32|bf16"), "%s", buf);
  CHECK_MSG(has(buf, "train.data") && has(buf, "string"), "%s", buf);
  int lines = 0;
  for (const char *s = buf; *s; s++) lines += *s == '\n';
  CHECK_EQ_INT(lines, N_MODEL + N_TRAIN);
  free(buf);
}

int main(void) {
  test_every_type();
  test_bools_and_numbers();
  test_ranges_and_enums();
  test_file_errors();
  test_long_strings();
  test_override_wins();
  test_round_trip();
  test_write_refuses();
  test_multi_groups();
  test_table_errors();
  test_help();
  duet_remove_tree(test_tmpdir(), NULL);
  return test_finish("test_config");
}
