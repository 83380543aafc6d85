/* Config errors are one line naming the key; data that does not fit the model is one line
 * naming both sides; the resolved config reads back as written; a resumed run may change only
 * its length and reporting; a fresh run refuses a folder that holds a run. */
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "testlib.h"
#include "train/trainer.h"
#include "train_fixture.h"

static int one_line(const char *s) { return strchr(s, '\n') == NULL && s[0] != '\0'; }

/* Loads text over the fixture config; expects failure with a message containing every needle. */
static void expect_load_error(const char *text, const char *needle1, const char *needle2) {
  duet_train_config c;
  duet_train_config_defaults(&c);
  duet_err err = {0};
  int rc = duet_train_config_parse(&c, text, "bad.ini", &err);
  CHECK_MSG(rc != DUET_OK, "accepted: %s", text);
  CHECK_MSG(strstr(err.msg, needle1) != NULL, "'%s' not in: %s", needle1, err.msg);
  if (needle2) CHECK_MSG(strstr(err.msg, needle2) != NULL, "'%s' not in: %s", needle2, err.msg);
  CHECK(one_line(err.msg));
}

static void expect_set_error(duet_train_config *c, const char *assignment, const char *needle, int on_resume) {
  duet_err err = {0};
  int rc = on_resume ? duet_train_config_set_on_resume(c, assignment, &err) : duet_train_config_set(c, assignment, &err);
  CHECK_MSG(rc != DUET_OK, "accepted --set %s", assignment);
  CHECK_MSG(strstr(err.msg, needle) != NULL, "'%s' not in: %s", needle, err.msg);
  CHECK(one_line(err.msg));
}

/* The fixture config with one override must fail data checking, naming both sides. */
static void expect_mismatch(const char *data, const char *assignment, const char *model_side, const char *data_side) {
  duet_train_config c;
  duet_err err = {0};
  if (fx_config(&c, data, "unused")) return;
  CHECK(duet_train_config_set(&c, assignment, &err) == DUET_OK);
  duet_clip_shape shape = {FX_FPS, FX_RATE, FX_FRAMES, FX_SIZE, FX_SIZE, FX_SAMPLES, 0, 0, 0};
  int rc = duet_train_config_validate(&c, &err);
  if (rc == DUET_OK) rc = duet_train_check_data(&c, &shape, 0, data, &err);
  CHECK_MSG(rc != DUET_OK, "--set %s accepted", assignment);
  CHECK_MSG(strstr(err.msg, model_side) != NULL, "'%s' not in: %s", model_side, err.msg);
  CHECK_MSG(strstr(err.msg, data_side) != NULL, "'%s' not in: %s", data_side, err.msg);
  CHECK(one_line(err.msg));
}

int main(void) {
  char data[4096], run[4096];
  fx_path(data, sizeof data, "clips.h5");
  fx_path(run, sizeof run, "run");
  if (fx_write_clips(data, 12, 0, 0, 1)) return 1;
  duet_err err;

  /* The defaults and the fixture are valid. */
  duet_train_config c;
  duet_train_config_defaults(&c);
  CHECK_MSG(duet_train_config_validate(&c, &err) == DUET_OK, "%s", err.msg);
  CHECK(fx_config(&c, data, run) == 0);
  CHECK_MSG(duet_train_config_validate(&c, &err) == DUET_OK, "%s", err.msg);

  /* Unknown keys and bad values, from a file and from --set. */
  expect_load_error("[train]\nstepz = 5\n", "train.stepz", "bad.ini");
  expect_load_error("[trian]\nsteps = 5\n", "trian", NULL);
  expect_load_error("[train]\nlr = fast\n", "train.lr", NULL);
  expect_load_error("[data]\nbatch = 0\n", "data.batch", NULL);
  expect_load_error("[train]\nschedule = linear\n", "train.schedule", NULL);
  expect_load_error("[model]\nfusion = sideways\n", "model.fusion", NULL);
  expect_load_error("[flow]\ntask_t2av = -1\n", "flow.task_t2av", NULL);
  expect_load_error("[data]\nflip = maybe\n", "data.flip", NULL);
  expect_set_error(&c, "train.bogus=1", "train.bogus", 0);
  expect_set_error(&c, "model.depth=two", "model.depth", 0);
  expect_set_error(&c, "audio.hop=-3", "audio.hop", 0);

  /* Settings that contradict each other name both keys. */
  duet_train_config d = c;
  CHECK(duet_train_config_set(&d, "audio.n_mels=16", &err) == DUET_OK);
  CHECK(duet_train_config_validate(&d, &err) != DUET_OK);
  CHECK(strstr(err.msg, "audio.n_mels") && strstr(err.msg, "model.audio_channels"));
  d = c;
  CHECK(duet_train_config_set(&d, "audio.hop=200", &err) == DUET_OK);
  CHECK(duet_train_config_validate(&d, &err) != DUET_OK);
  CHECK(strstr(err.msg, "audio.hop") && strstr(err.msg, "model.audio_rate"));

  /* Data against model: every dimension, both sides named. */
  expect_mismatch(data, "model.video_frames=8", "model.video_frames = 8", "4 frames");
  expect_mismatch(data, "model.fps=24", "model.fps = 24", "16 fps");
  expect_mismatch(data, "model.video_height=16", "model.video_height", "8x8");
  expect_mismatch(data, "data.crop_height=4", "crop_width", "crop_height"); /* one without the other */
  {
    /* 8 kHz with hop 125 keeps 64 frames/s, so only the file disagrees. */
    duet_train_config e = c;
    duet_clip_shape shape = {FX_FPS, FX_RATE, FX_FRAMES, FX_SIZE, FX_SIZE, FX_SAMPLES, 0, 0, 0};
    CHECK(duet_train_config_set(&e, "audio.sample_rate=8000", &err) == DUET_OK);
    CHECK(duet_train_config_set(&e, "audio.hop=125", &err) == DUET_OK);
    CHECK(duet_train_config_set(&e, "audio.win_length=500", &err) == DUET_OK);
    CHECK_MSG(duet_train_config_validate(&e, &err) == DUET_OK, "%s", err.msg);
    CHECK(duet_train_check_data(&e, &shape, 0, data, &err) != DUET_OK);
    CHECK_MSG(strstr(err.msg, "audio.sample_rate = 8000") && strstr(err.msg, "16000 Hz"), "%s", err.msg);
  }
  expect_mismatch(data, "model.audio_frames=32", "model.audio_frames = 32", "16 mel frames");
  {
    /* Cropping changes the frame size the model must have. */
    duet_train_config e = c;
    CHECK(duet_train_config_set(&e, "data.crop_height=4", &err) == DUET_OK);
    CHECK(duet_train_config_set(&e, "data.crop_width=4", &err) == DUET_OK);
    duet_clip_shape shape = {FX_FPS, FX_RATE, FX_FRAMES, FX_SIZE, FX_SIZE, FX_SAMPLES, 0, 0, 0};
    CHECK(duet_train_check_data(&e, &shape, 0, data, &err) != DUET_OK);
    CHECK_MSG(strstr(err.msg, "4x4") && strstr(err.msg, "after cropping") && strstr(err.msg, "8x8"), "%s", err.msg);
  }

  /* Through the trainer: the same check against the real file, nothing created. */
  d = c;
  CHECK(duet_train_config_set(&d, "model.video_frames=8", &err) == DUET_OK);
  duet_trainer_opts o = {.cfg = &d};
  duet_trainer *t = NULL;
  CHECK(duet_trainer_create(&t, &o, &err) != DUET_OK);
  CHECK_MSG(strstr(err.msg, data) && strstr(err.msg, "model.video_frames"), "%s", err.msg);
  CHECK(!duet_path_exists(run));

  /* The resolved config reads back as written. */
  char *text1, *text2;
  CHECK(duet_train_config_format(&c, &text1, &err) == DUET_OK);
  duet_train_config back;
  CHECK_MSG(duet_train_config_parse(&back, text1, "resolved", &err) == DUET_OK, "%s", err.msg);
  CHECK(duet_train_config_format(&back, &text2, &err) == DUET_OK);
  CHECK(strcmp(text1, text2) == 0);
  CHECK(strstr(text1, "[flow]") && strstr(text1, "task_t2a = ") && strstr(text1, "; "));
  free(text1);
  free(text2);

  /* On resume only the run's length and reporting may change. */
  d = c;
  CHECK(duet_train_config_set_on_resume(&d, "train.steps=100", &err) == DUET_OK);
  CHECK_EQ_INT(d.train.steps, 100);
  CHECK(duet_train_config_set_on_resume(&d, " train.log_every = 5", &err) == DUET_OK);
  expect_set_error(&d, "train.lr=1", "train.lr", 1);
  expect_set_error(&d, " model.depth = 3", "model.depth", 1);
  expect_set_error(&d, "data.path=other.h5", "data.path", 1);

  /* A fresh run into a folder that holds a run is refused. */
  o.cfg = &c;
  int rc = duet_trainer_create(&t, &o, &err);
  CHECK_MSG(rc == DUET_OK, "%s", err.msg);
  duet_trainer_free(t);
  t = NULL;
  CHECK(duet_trainer_create(&t, &o, &err) != DUET_OK);
  CHECK_MSG(strstr(err.msg, "--resume") && strstr(err.msg, run), "%s", err.msg);
  /* Resuming a run without a checkpoint says so. */
  o.resume = 1;
  CHECK(duet_trainer_create(&t, &o, &err) != DUET_OK);
  CHECK_MSG(strstr(err.msg, "checkpoint"), "%s", err.msg);
  return test_finish("train_config");
}
