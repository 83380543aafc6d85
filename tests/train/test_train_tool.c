/* duet-train as a user meets it: --help lists every key; bad input is one line and a non-zero
 * exit; a run writes its folder; a NaN stops the run with a diagnostic checkpoint; --resume
 * continues and refuses changes that would make it another run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "testlib.h"
#include "train_fixture.h"

static char out[1 << 16];

/* Runs the tool; checks the exit status is non-zero and the output one "duet-train: " line
 * containing needle. */
static void expect_fail(const char *args, const char *needle) {
  int rc = fx_run_tool(args, out, sizeof out);
  CHECK_MSG(rc > 0, "exit %d for: %s", rc, args);
  CHECK_MSG(fx_count_lines(out) == 1 && strncmp(out, "duet-train: ", 12) == 0, "not one line for %s:\n%s", args, out);
  CHECK_MSG(strstr(out, needle) != NULL, "'%s' not in: %s", needle, out);
}

/* The last line of out. */
static const char *last_line(void) {
  size_t n = strlen(out);
  while (n > 0 && out[n - 1] == '\n') out[--n] = '\0';
  const char *nl = strrchr(out, '\n');
  return nl ? nl + 1 : out;
}

int main(void) {
  char data[400], ini[400], run[400], nan_run[400], args[4096], path[600];
  fx_path(data, sizeof data, "clips.h5");
  fx_path(ini, sizeof ini, "tiny.ini");
  fx_path(run, sizeof run, "run");
  fx_path(nan_run, sizeof nan_run, "nan");
  if (fx_write_clips(data, 12, 0, 0, 9) || fx_write_ini(ini, data, run)) return 1;

  /* --help: every section's keys and the options. */
  CHECK_EQ_INT(fx_run_tool("--help", out, sizeof out), 0);
  const char *want[] = {"--config", "--resume", "--init", "--set", "model.fusion", "model.ref_audio_frames",
                        "flow.task_t2a", "flow.time_sampling", "audio.gl_iters", "data.crop_width",
                        "train.steps", "train.ckpt_every", "cosine"};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) CHECK_MSG(strstr(out, want[i]), "--help lacks %s", want[i]);

  /* Bad command lines and configs. */
  expect_fail("", "--config");
  expect_fail("--config", "needs a value");
  expect_fail("--frobnicate", "--frobnicate");
  snprintf(args, sizeof args, "--config %s/missing.ini", data);
  expect_fail(args, "missing.ini");
  snprintf(args, sizeof args, "--config %s --set train.bogus=1", ini);
  expect_fail(args, "train.bogus");
  snprintf(args, sizeof args, "--config %s --set data.batch=zero", ini);
  expect_fail(args, "data.batch");
  snprintf(args, sizeof args, "--config %s --set model.video_frames=8", ini);
  expect_fail(args, "model.video_frames = 8");
  CHECK(strstr(out, "4 frames") != NULL);
  snprintf(args, sizeof args, "--config %s --set data.path=%s/none.h5", ini, run);
  expect_fail(args, "none.h5");
  CHECK(!duet_path_exists(run));

  /* --count-params needs no data. */
  snprintf(args, sizeof args, "--config %s --set data.path=/nonexistent.h5 --count-params", ini);
  CHECK_EQ_INT(fx_run_tool(args, out, sizeof out), 0);
  CHECK_MSG(strncmp(out, "model: ", 7) == 0 && strstr(out, " parameters"), "%s", out);

  /* A run of 4 steps, then resumed to 6. */
  snprintf(args, sizeof args,
           "--config %s --set train.steps=4 --set train.log_every=2 --set train.ckpt_every=1 "
           "--set train.keep_checkpoints=2",
           ini);
  int rc = fx_run_tool(args, out, sizeof out);
  CHECK_MSG(rc == 0, "exit %d:\n%s", rc, out);
  CHECK(strstr(out, "model: ") && strstr(out, "step 4/4") && strstr(out, "ETA") && strstr(out, "tok/s"));
  const char *files[] = {"config.ini", "metrics.jsonl", "loss.png", "last/model.safetensors", "step_000004/state.json",
                         "step_000003/model.safetensors"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", run, files[i]);
    CHECK_MSG(duet_path_exists(path), "%s missing", path);
  }
  /* Only the newest two checkpoints are kept. */
  snprintf(path, sizeof path, "%s/step_000002", run);
  CHECK(!duet_path_exists(path));
  snprintf(args, sizeof args, "--config %s", ini);
  expect_fail(args, "--resume");
  snprintf(args, sizeof args, "--resume %s --set train.lr=1", run);
  expect_fail(args, "train.lr");
  snprintf(args, sizeof args, "--resume %s --config %s", run, ini);
  expect_fail(args, "--config");
  snprintf(args, sizeof args, "--resume %s --set train.steps=6", run);
  rc = fx_run_tool(args, out, sizeof out);
  CHECK_MSG(rc == 0, "exit %d:\n%s", rc, out);
  CHECK_MSG(strstr(out, "resume: ") && strstr(out, "step 4"), "%s", out);
  snprintf(path, sizeof path, "%s/step_000006", run);
  CHECK(duet_path_exists(path));
  snprintf(path, sizeof path, "%s/step_000004", run);
  CHECK(!duet_path_exists(path));
  /* The raised length is now the run's own. */
  snprintf(path, sizeof path, "%s/config.ini", run);
  char *text;
  size_t n;
  if (duet_read_file(path, 1 << 20, &text, &n, NULL) == DUET_OK) {
    CHECK(strstr(text, "\nsteps = 6\n") != NULL);
    free(text);
  }

  /* A learning rate far too large: the loss overflows within a few steps. */
  snprintf(args, sizeof args,
           "--config %s --set train.run_dir=%s --set train.lr=1e4 --set train.warmup=0 --set train.grad_clip=0 "
           "--set train.schedule=constant --set train.steps=50",
           ini, nan_run);
  rc = fx_run_tool(args, out, sizeof out);
  CHECK_MSG(rc > 0, "exit %d", rc);
  const char *line = last_line();
  CHECK_MSG(strncmp(line, "duet-train: step ", 17) == 0 && strstr(line, "loss") && strstr(line, "diag_step_"), "%s", line);
  int step = 0;
  sscanf(line, "duet-train: step %d", &step);
  CHECK(step >= 2);
  snprintf(path, sizeof path, "%s/diag_step_%d/model.safetensors", nan_run, step);
  CHECK_MSG(duet_path_exists(path), "%s missing", path);
  snprintf(path, sizeof path, "%s/diag_step_%d/grads.safetensors", nan_run, step);
  CHECK(duet_path_exists(path));
  return test_finish("train_tool");
}
