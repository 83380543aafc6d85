/* train.device: the key's values, and on a machine without a usable GPU (or a build without
 * CUDA) a run asking for one fails at once with one line naming the key and the reason, before
 * it writes anything; train.precision = bf16 with train.device = cpu is refused the same way
 * on every machine. (With a GPU the GPU path itself is tests/gpu/test_train.c.) */
#include <string.h>

#include "core/backend.h"
#include "core/fileio.h"
#include "testlib.h"
#include "train/trainer.h"
#include "train_fixture.h"

int main(void) {
  char data[4096], run[4096], cfg_path[4200];
  fx_path(data, sizeof data, "device.h5");
  fx_path(run, sizeof run, "device_run");
  duet_remove_tree(run, NULL);
  if (fx_write_clips(data, 8, 0, 0, 3)) return 1;
  duet_train_config c;
  CHECK(fx_config(&c, data, run) == 0);
  duet_err err;
  CHECK(c.train.device == DUET_CPU);
  CHECK(duet_train_config_set(&c, "train.device=cuda", &err) == DUET_OK && c.train.device == DUET_CUDA);
  CHECK(duet_train_config_set(&c, "train.device=gpu", &err) != DUET_OK);
  CHECK(strstr(err.msg, "train.device") != NULL);

  /* train.precision = bf16 needs the GPU: a one-line refusal at start with device = cpu, from
   * the library and from the tool, before anything is written. */
  {
    duet_train_config p = c;
    p.train.device = DUET_CPU;
    CHECK(p.train.precision == DUET_PRECISION_F32);
    CHECK(duet_train_config_set(&p, "train.precision=bf16", &err) == DUET_OK && p.train.precision == DUET_PRECISION_BF16);
    CHECK(duet_train_config_set(&p, "train.precision=fp16", &err) != DUET_OK && strstr(err.msg, "train.precision"));
    CHECK(duet_train_config_validate(&p, &err) != DUET_OK);
    CHECK_MSG(strstr(err.msg, "train.precision = bf16 needs train.device = cuda") && !strchr(err.msg, '\n'), "%s",
              err.msg);
    duet_trainer_opts o = {.cfg = &p};
    duet_trainer *t = NULL;
    CHECK(duet_trainer_create(&t, &o, &err) != DUET_OK && t == NULL);
    char ini[4200], args[8600], out[4096], cfg[4200];
    fx_path(ini, sizeof ini, "precision.ini");
    CHECK(fx_write_ini(ini, data, run) == 0);
    snprintf(args, sizeof args, "--config %s --set train.precision=bf16", ini);
    CHECK_EQ_INT(fx_run_tool(args, out, sizeof out), 1);
    const char *line = strstr(out, "duet-train: train.precision = bf16 needs train.device = cuda");
    CHECK_MSG(line && fx_count_lines(line) == 1, "%s", out);
    snprintf(cfg, sizeof cfg, "%s/config.ini", run);
    CHECK(!duet_path_exists(cfg));
  }
  if (duet_backend_get(DUET_CUDA) == NULL) {
    duet_trainer_opts o = {.cfg = &c};
    duet_trainer *t = NULL;
    CHECK(duet_trainer_create(&t, &o, &err) != DUET_OK && t == NULL);
    CHECK_MSG(strstr(err.msg, "train.device = cuda") && !strchr(err.msg, '\n'), "%s", err.msg);
    snprintf(cfg_path, sizeof cfg_path, "%s/config.ini", run);
    CHECK(!duet_path_exists(cfg_path));
    /* The tool: status 1 and the one line. */
    char ini[4200], args[8600], out[4096];
    fx_path(ini, sizeof ini, "device.ini");
    CHECK(fx_write_ini(ini, data, run) == 0);
    snprintf(args, sizeof args, "--config %s --set train.device=cuda", ini);
    CHECK_EQ_INT(fx_run_tool(args, out, sizeof out), 1);
    /* (The fixture's tiny width draws a warning line first.) The error is the last line. */
    const char *line = strstr(out, "duet-train: train.device = cuda");
    CHECK_MSG(line && fx_count_lines(line) == 1, "%s", out);
    CHECK(!duet_path_exists(cfg_path));
  } else {
    printf("a CUDA device is present: the no-GPU refusal is not exercised here\n");
  }
  return test_finish("train_device");
}
