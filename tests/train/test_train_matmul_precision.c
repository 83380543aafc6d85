/* train.matmul_precision: the key's values and its refusal off the CPU; a run with bf16
 * products gives the same bits twice (so resume stays exact), starts from the f32 run's loss
 * to bf16 accuracy without equalling it (the products really changed), stays finite, and no
 * product fell back to f32. */
#include <math.h>
#include <string.h>

#include "core/cpu_products.h"
#include "core/fileio.h"
#include "testlib.h"
#include "train/trainer.h"
#include "train_fixture.h"

enum { STEPS = 4 };

/* Runs STEPS steps in a fresh folder; losses[s] receives step s's loss. Returns 0, -1 when
 * the trainer could not be made (err says why). */
static int run(const char *data, const char *name, int precision, double losses[STEPS], duet_err *err) {
  char dir[4096];
  fx_path(dir, sizeof dir, name);
  duet_remove_tree(dir, NULL);
  duet_train_config c;
  if (fx_config(&c, data, dir)) return -1;
  c.train.matmul_precision = precision;
  duet_trainer_opts o = {.cfg = &c};
  duet_trainer *t = NULL;
  if (duet_trainer_create(&t, &o, err)) return -1;
  duet_train_stats st;
  int rc = 0;
  for (int s = 0; s < STEPS && !rc; s++) {
    rc = duet_trainer_step(t, &st, err);
    losses[s] = st.loss;
  }
  duet_trainer_free(t);
  return rc;
}

int main(void) {
  char data[4096];
  fx_path(data, sizeof data, "matmul.h5");
  if (fx_write_clips(data, 12, 0, 0, 5)) return 1;
  duet_train_config c;
  CHECK(fx_config(&c, data, "unused") == 0);
  duet_err err;
  CHECK(c.train.matmul_precision == DUET_MATMUL_F32);
  CHECK(duet_train_config_set(&c, "train.matmul_precision=bf16", &err) == DUET_OK);
  CHECK(c.train.matmul_precision == DUET_MATMUL_BF16);
  CHECK(duet_train_config_set(&c, "train.matmul_precision=tf32", &err) != DUET_OK &&
        strstr(err.msg, "train.matmul_precision"));
  CHECK(duet_train_config_validate(&c, &err) == DUET_OK);
  c.train.device = DUET_CUDA;
  CHECK(duet_train_config_validate(&c, &err) != DUET_OK);
  CHECK_MSG(strstr(err.msg, "train.matmul_precision = bf16 is for train.device = cpu") && !strchr(err.msg, '\n'),
            "%s", err.msg);

  double f32[STEPS], b1[STEPS], b2[STEPS];
  CHECK_MSG(run(data, "run_f32", DUET_MATMUL_F32, f32, &err) == 0, "%s", err.msg);
  int rc = run(data, "run_bf16_a", DUET_MATMUL_BF16, b1, &err);
  if (rc && strstr(err.msg, "train.matmul_precision = bf16: ")) {
    /* No oneDNN, or no bf16 product on this processor: one line, and nothing more to check. */
    CHECK(!strchr(err.msg, '\n'));
    printf("bf16 products not available: %s\n", err.msg);
    return test_finish("train_matmul_precision");
  }
  CHECK_MSG(rc == 0, "%s", err.msg);
  CHECK_MSG(run(data, "run_bf16_b", DUET_MATMUL_BF16, b2, &err) == 0, "%s", err.msg);
  CHECK(memcmp(b1, b2, sizeof b1) == 0);
  for (int s = 0; s < STEPS; s++) CHECK(isfinite(b1[s]) && isfinite(f32[s]));
  /* adaLN-Zero starts the model at a zero prediction, so step 1's loss does not depend on the
   * products; its update does, and the later steps compute on weights that differ by one
   * update made with bf16 inputs: about 3 digits. */
  CHECK(b1[0] == f32[0]);
  for (int s = 1; s < STEPS; s++) {
    printf("step %d: loss %.9g (bf16 products) vs %.9g (f32)\n", s + 1, b1[s], f32[s]);
    CHECK_MSG(fabs(b1[s] - f32[s]) < 1e-3 * f32[s], "step %d: %.9g (bf16) vs %.9g (f32)", s + 1, b1[s], f32[s]);
  }
  CHECK_MSG(b1[STEPS - 1] != f32[STEPS - 1], "loss %.17g in both: the products were not rounded", b1[STEPS - 1]);
  CHECK_EQ_INT((int)duet_cpu_bf16_fallbacks(), 0);
  /* The next trainer's products are f32 again. */
  CHECK_MSG(run(data, "run_f32_again", DUET_MATMUL_F32, b2, &err) == 0, "%s", err.msg);
  CHECK(memcmp(f32, b2, sizeof f32) == 0);
  return test_finish("train_matmul_precision");
}
