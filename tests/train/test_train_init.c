/* --init starts a new run from a checkpoint's model weights (and only those): the weights are
 * the checkpoint's bit for bit, the step is 0, and a checkpoint of another model is refused
 * naming a parameter. Also: a model that reads the file's precomputed text embeddings trains,
 * and embeddings of the wrong width are refused naming both widths. */
#include <string.h>

#include "core/fileio.h"
#include "core/params.h"
#include "core/safetensors.h"
#include "testlib.h"
#include "train/trainer.h"
#include "train_fixture.h"

static duet_trainer *create(duet_train_config *c, const char *init, duet_err *err) {
  duet_trainer_opts o = {.cfg = c, .init_dir = init};
  duet_trainer *t = NULL;
  return duet_trainer_create(&t, &o, err) == DUET_OK ? t : NULL;
}

int main(void) {
  char data[400], emb_data[400], run_a[400], run_b[400], run_c[400], run_d[400], ckpt[420];
  fx_path(data, sizeof data, "clips.h5");
  fx_path(emb_data, sizeof emb_data, "clips_emb.h5");
  fx_path(run_a, sizeof run_a, "a");
  fx_path(run_b, sizeof run_b, "b");
  fx_path(run_c, sizeof run_c, "c");
  fx_path(run_d, sizeof run_d, "d");
  if (fx_write_clips(data, 12, 0, 0, 5) || fx_write_clips(emb_data, 12, 8, 6, 6)) return 1;
  duet_err err;

  /* A: 4 steps of pre-training. */
  duet_train_config c;
  if (fx_config(&c, data, run_a)) return 1;
  c.train.steps = 4;
  duet_trainer *a = create(&c, NULL, &err);
  CHECK_MSG(a != NULL, "%s", err.msg);
  if (!a) return test_finish("train_init");
  CHECK_MSG(duet_trainer_run(a, &err) == DUET_OK, "%s", err.msg);
  snprintf(ckpt, sizeof ckpt, "%s/last", run_a);

  /* B: fine-tuning from A's weights. */
  snprintf(c.train.run_dir, sizeof c.train.run_dir, "%s", run_b);
  duet_trainer *b = create(&c, ckpt, &err);
  CHECK_MSG(b != NULL, "%s", err.msg);
  if (b) {
    CHECK_EQ_INT(duet_trainer_steps_done(b), 0);
    const duet_param_set *pa = duet_trainer_params(a), *pb = duet_trainer_params(b);
    int differ = 0;
    for (int i = 0; i < pa->count; i++)
      differ += memcmp(pa->items[i]->data, pb->items[i]->data, duet_tensor_bytes(pa->items[i])) != 0;
    CHECK_EQ_INT(differ, 0);
    duet_train_stats st;
    CHECK_MSG(duet_trainer_step(b, &st, &err) == DUET_OK, "%s", err.msg);
    /* A fresh optimizer: the first update uses warmup's first lr, lr * 1 / warmup. */
    CHECK_NEAR(st.lr, c.train.lr / c.train.warmup, 1e-15);
    duet_trainer_free(b);
  }
  duet_trainer_free(a);

  /* C: a wider model cannot start from A's weights. */
  snprintf(c.train.run_dir, sizeof c.train.run_dir, "%s", run_c);
  c.model.width_audio = 32;
  duet_trainer *bad = create(&c, ckpt, &err);
  CHECK(bad == NULL);
  CHECK_MSG(strstr(err.msg, "--init") && strstr(err.msg, "audio"), "%s", err.msg);
  printf("wider model: %s\n", err.msg);
  duet_trainer_free(bad);
  /* A run that failed to start leaves no run behind, so the corrected command can be rerun. */
  char cfg_c[420];
  snprintf(cfg_c, sizeof cfg_c, "%s/config.ini", run_c);
  CHECK(!duet_path_exists(cfg_c));

  /* D: precomputed text embeddings [8, 6] per clip. */
  duet_train_config e;
  if (fx_config(&e, emb_data, run_d)) return 1;
  duet_train_config_set(&e, "model.text_source=precomputed", &err);
  duet_train_config_set(&e, "model.text_emb_dim=6", &err);
  e.train.steps = 2;
  duet_trainer *d = create(&e, NULL, &err);
  CHECK_MSG(d != NULL, "%s", err.msg);
  if (d) {
    CHECK_MSG(duet_trainer_run(d, &err) == DUET_OK, "%s", err.msg);
    CHECK_EQ_INT(duet_trainer_steps_done(d), 2);
    duet_trainer_free(d);
  }
  duet_train_config_set(&e, "model.text_emb_dim=5", &err);
  d = create(&e, NULL, &err);
  CHECK(d == NULL);
  CHECK_MSG(strstr(err.msg, "text_emb_dim") && strstr(err.msg, "[8, 6]") && strstr(err.msg, "[8, 5]"), "%s", err.msg);
  duet_trainer_free(d);
  /* Bytes-only data cannot feed a precomputed-text model. */
  snprintf(e.data.path, sizeof e.data.path, "%s", data);
  d = create(&e, NULL, &err);
  CHECK(d == NULL);
  CHECK_MSG(strstr(err.msg, "no text_emb"), "%s", err.msg);
  duet_trainer_free(d);
  return test_finish("train_init");
}
