/* A checkpoint written by two ranks resumes on two ranks and on one.
 *
 * Two ranks: 10 steps, a checkpoint, then a resume to 20 gives the bits of 20 steps straight
 * (weights, EMA, moments, every logged loss); also when the resumed run shards its moments
 * (ZeRO-1 takes over the full moments it loaded).
 *
 * The first part stops at step 10 of a 20-step schedule, as an interrupted run would.
 *
 * One rank: the loader's position is (epoch, clips consumed by all ranks), independent of the
 * world size, so the single process continues exactly where the two ranks stopped: 10 steps
 * x 2 ranks x 2 clips = 40 clips = 2 epochs of 16 and 8 clips into the third; 10 more steps
 * x 2 clips end 12 clips into epoch 3, with 60 clips seen. The checkpoint it writes resumes
 * again on two ranks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/checkpoint.h"
#include "dist_fixture.h"
#include "testlib.h"
#include "train_fixture.h"

static char out[1 << 16];

static int copy_tree(const char *from, const char *to) {
  char cmd[9000];
  DX_FMT(cmd, "cp -a '%s' '%s'", from, to);
  return system(cmd);
}

static void read_state(const char *run, duet_train_state *st) {
  char path[4200];
  duet_err err;
  DX_FMT(path, "%s/last/state.json", run);
  duet_train_state_init(st);
  CHECK_MSG(duet_train_state_read(path, st, &err) == DUET_OK, "%s", err.msg);
}

static void check_ckpt_equal(const char *what, const char *run_a, const char *run_b) {
  char a[4200], b[4200];
  DX_FMT(a, "%s/last", run_a);
  DX_FMT(b, "%s/last", run_b);
  double max_abs;
  int64_t differing;
  CHECK(dx_compare_ckpt(a, b, &max_abs, &differing) == 0);
  CHECK_MSG(differing == 0, "%s: %lld elements differ (max |diff| %.3g)", what, (long long)differing, max_abs);
}

static void check_metrics_equal(const char *what, const char *run_a, const char *run_b) {
  dx_metrics a, b;
  CHECK(dx_read_metrics(run_a, &a) == 0 && dx_read_metrics(run_b, &b) == 0);
  CHECK_MSG(a.n_train == 20 && b.n_train == 20, "%s: %d and %d train lines", what, a.n_train, b.n_train);
  int bad = 0;
  for (int i = 0; i < a.n_train && i < b.n_train; i++)
    bad += a.step[i] != b.step[i] || a.loss[i] != b.loss[i] || a.grad_norm[i] != b.grad_norm[i];
  CHECK_MSG(bad == 0, "%s: %d train lines differ", what, bad);
}

int main(void) {
  char data[4096], ini[4096], args[8192];
  fx_path(data, sizeof data, "clips.h5");
  fx_path(ini, sizeof ini, "run.ini");
  if (fx_write_clips(data, 20, 8, 0, 5) || fx_write_ini(ini, data, "unused")) return 1;
  char straight[4096], half[4096], two[4096], two_z[4096], one[4096];
  fx_path(straight, sizeof straight, "straight");
  fx_path(half, sizeof half, "half");
  fx_path(two, sizeof two, "resumed_two");
  fx_path(two_z, sizeof two_z, "resumed_two_zero1");
  fx_path(one, sizeof one, "resumed_one");
  const char *common = "--set train.ckpt_every=10 --set train.val_every=0 --set train.threads=1 --set data.batch=2 "
                       "--set train.accum=1";

  DX_FMT(args, "--config %s --set train.run_dir=%s --set train.steps=20 %s", ini, straight, common);
  CHECK_EQ_INT(dx_run(2, args, 60, out, sizeof out), 0);
  DX_FMT(args, "--config %s --set train.run_dir=%s --set train.steps=20 --stop-at 10 %s", ini, half, common);
  CHECK_EQ_INT(dx_run(2, args, 60, out, sizeof out), 0);
  CHECK(copy_tree(half, two) == 0 && copy_tree(half, two_z) == 0 && copy_tree(half, one) == 0);

  DX_FMT(args, "--resume %s --set train.steps=20", two);
  CHECK_EQ_INT(dx_run(2, args, 60, out, sizeof out), 0);
  CHECK_MSG(strstr(out, "resume: ") && strstr(out, "(step 10, epoch 2, 8 clips into it)"), "resume line missing:\n%s", out);
  check_ckpt_equal("2 ranks resumed on 2", two, straight);
  check_metrics_equal("2 ranks resumed on 2", two, straight);

  DX_FMT(args, "--resume %s --set train.steps=20 --zero1", two_z);
  CHECK_EQ_INT(dx_run(2, args, 60, out, sizeof out), 0);
  check_ckpt_equal("2 ranks resumed on 2 with zero1", two_z, straight);

  DX_FMT(args, "--resume %s --set train.steps=20", one);
  CHECK_EQ_INT(dx_run(0, args, 60, out, sizeof out), 0);
  CHECK_MSG(strstr(out, "(step 10, epoch 2, 8 clips into it)") && strstr(out, "1 micro-batches x 1 ranks"),
            "resume on one rank:\n%s", out);
  duet_train_state st;
  read_state(one, &st);
  CHECK_EQ_INT(st.step, 20);
  CHECK_EQ_INT(st.epoch, 3);
  CHECK_EQ_INT(st.samples_consumed, 12);
  int64_t seen = -1;
  duet_err err;
  CHECK(duet_scalars_get_i64(&st.scalars, "samples_seen", &seen, &err) == DUET_OK);
  CHECK_EQ_INT(seen, 60);
  duet_train_state_free(&st);
  dx_metrics m;
  CHECK(dx_read_metrics(one, &m) == 0);
  CHECK_EQ_INT(m.n_train, 20);
  for (int i = 10; i < m.n_train; i++) {
    CHECK_EQ_INT((long long)m.step[i], i + 1);
    CHECK_EQ_INT((long long)m.samples[i], 40 + 2 * (i - 9)); /* clips seen so far */
  }
  /* The first ten lines are the two ranks' own, kept across the resume. */
  dx_metrics s;
  CHECK(dx_read_metrics(straight, &s) == 0);
  for (int i = 0; i < 10 && i < m.n_train; i++) CHECK(m.loss[i] == s.loss[i]);

  /* And the single process's checkpoint goes back to two ranks. */
  DX_FMT(args, "--resume %s --set train.steps=24", one);
  CHECK_EQ_INT(dx_run(2, args, 60, out, sizeof out), 0);
  read_state(one, &st);
  CHECK_EQ_INT(st.step, 24);
  CHECK_EQ_INT(st.epoch, 4); /* 12 + 4 x 4 = 28 clips into epoch 3 = 12 into epoch 4 */
  CHECK_EQ_INT(st.samples_consumed, 12);
  duet_train_state_free(&st);
  return test_finish("dist_resume");
}
