/* Two ranks against one process, over 20 steps that cross 5 epochs.
 *
 * Bit for bit, among two-rank runs: bucketed all-reduce, one all-reduce per parameter, and
 * ZeRO-1 with 4 KiB buckets (many buckets, parameters cut into pieces, shard edges inside
 * pieces). With two ranks every gradient element is a + b, computed once whatever the
 * bucketing, and every element's AdamW update is the same function of the same values
 * wherever it runs; so losses, gradient norms, weights, EMA and moments must be equal.
 *
 * Equal up to rounding: 2 ranks x batch B against one process x batch B x 2 micro-batches,
 * and against one process x batch 2B (joint generation only, so every clip's loss mask is
 * full and a mean over 2B clips is the mean of two means over B). Both take the same clips
 * with the same flow draws (draws follow the clip's place in the epoch, not the rank), so the
 * first step's forward pass is the same; with micro-batches the first losses are equal to the
 * bit. The gradients are not: backward accumulates into a parameter's gradient buffer in
 * pieces (embedding rows, bias column sums, GEMMs with beta = 1), so one process adding the
 * second micro-batch into the first's sums associates the additions differently from two
 * ranks that each sum their own and add the totals; a 2B GEMM reduces in yet another order.
 * These are float32 rounding differences (measured: weights within 1e-6 after 20 steps,
 * gradient norms within 1e-7 relative). The bounds, 1e-5, are well above that and well
 * below what a real fault does: a dropped rank, a wrong shard or a missing 1/world changes
 * the gradient norm by O(1) and weights by O(lr) = 1e-3 per step. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dist_fixture.h"
#include "testlib.h"
#include "train_fixture.h"

#define STEPS 20
#define BATCH 2

static char out[1 << 16];

static void run_args(char *buf, size_t size, const char *ini, const char *run, int batch, int accum, const char *extra) {
  int n = snprintf(buf, size,
                   "--config %s --set train.run_dir=%s --set train.steps=%d --set train.ckpt_every=10 "
                   "--set train.val_every=10 --set train.threads=1 --set data.batch=%d --set train.accum=%d %s",
                   ini, run, STEPS, batch, accum, extra);
  CHECK(n > 0 && (size_t)n < size);
}

#define TOL 1e-5

static double rel(double a, double b) { return a == b ? 0 : fabs(a - b) / fmax(fabs(a), fabs(b)); }

/* exact: every logged value equal; otherwise within TOL (relative), with the first step's
 * losses still exact when first_exact. */
static void check_metrics(const char *what, const char *run_a, const char *run_b, int exact, int first_exact) {
  dx_metrics a, b;
  CHECK(dx_read_metrics(run_a, &a) == 0 && dx_read_metrics(run_b, &b) == 0);
  CHECK_MSG(a.n_train == STEPS && b.n_train == STEPS, "%s: %d and %d train lines", what, a.n_train, b.n_train);
  CHECK_MSG(a.n_val == b.n_val && a.n_val >= 2, "%s: %d and %d val lines", what, a.n_val, b.n_val);
  double worst = 0;
  int bad = 0;
  for (int i = 0; i < a.n_train && i < b.n_train; i++) {
    double r = fmax(fmax(rel(a.loss[i], b.loss[i]), rel(a.loss_video[i], b.loss_video[i])),
                    fmax(rel(a.loss_audio[i], b.loss_audio[i]), rel(a.grad_norm[i], b.grad_norm[i])));
    worst = fmax(worst, r);
    bad += a.samples[i] != b.samples[i] || a.epoch[i] != b.epoch[i];
  }
  for (int i = 0; i < a.n_val && i < b.n_val; i++) worst = fmax(worst, rel(a.val_loss[i], b.val_loss[i]));
  CHECK_MSG(bad == 0, "%s: %d steps took other clips", what, bad);
  CHECK_MSG(exact ? worst == 0 : worst < TOL, "%s: logged values differ by %.3g (relative)", what, worst);
  if (first_exact)
    CHECK_MSG(a.loss[0] == b.loss[0] && a.loss_video[0] == b.loss_video[0] && a.loss_audio[0] == b.loss_audio[0] &&
                  a.val_loss[0] == b.val_loss[0],
              "%s: first losses %.17g and %.17g", what, a.loss[0], b.loss[0]);
  CHECK_MSG(a.loss[STEPS - 1] < a.loss[0], "%s: the loss did not move", what);
  printf("%s: logged values within %.3g (relative)\n", what, worst);
}

static void check_ckpt(const char *what, const char *run_a, const char *run_b, int exact) {
  char a[4096], b[4096];
  CHECK(snprintf(a, sizeof a, "%s/last", run_a) < (int)sizeof a);
  CHECK(snprintf(b, sizeof b, "%s/last", run_b) < (int)sizeof b);
  double max_abs;
  int64_t differing;
  CHECK(dx_compare_ckpt(a, b, &max_abs, &differing) == 0);
  if (exact) CHECK_MSG(differing == 0, "%s: %lld elements differ (max |diff| %.3g)", what, (long long)differing, max_abs);
  else CHECK_MSG(max_abs < TOL, "%s: weights, EMA or moments differ by %.3g", what, max_abs);
  printf("%s: checkpoint tensors: %lld elements differ, max |diff| %.3g\n", what, (long long)differing, max_abs);
}

int main(void) {
  char data[4096], ini[4096], args[8192];
  fx_path(data, sizeof data, "clips.h5");
  fx_path(ini, sizeof ini, "run.ini");
  /* 16 training clips: every epoch ends on a full global batch of 2 x 2, for both layouts. */
  if (fx_write_clips(data, 20, 8, 0, 11) || fx_write_ini(ini, data, "unused")) return 1;
  char r2[4096], r1[4096], rz[4096], rp[4096], w2[4096], w1[4096];
  fx_path(r2, sizeof r2, "two_ranks");
  fx_path(r1, sizeof r1, "one_rank_accum");
  fx_path(rz, sizeof rz, "two_ranks_zero1");
  fx_path(rp, sizeof rp, "two_ranks_per_param");
  fx_path(w2, sizeof w2, "two_ranks_t2av");
  fx_path(w1, sizeof w1, "one_rank_2b_t2av");

  run_args(args, sizeof args, ini, r2, BATCH, 1, "--stats");
  CHECK_EQ_INT(dx_run(2, args, 60, out, sizeof out), 0);
  CHECK_MSG(strstr(out, "dist: 2 ranks") != NULL, "no stats line in:\n%s", out);
  run_args(args, sizeof args, ini, r1, BATCH, 2, "");
  CHECK_EQ_INT(dx_run(0, args, 60, out, sizeof out), 0);
  /* Buckets of 4 KiB: many buckets, large parameters in pieces, shard edges inside pieces. */
  run_args(args, sizeof args, ini, rz, BATCH, 1, "--zero1 --bucket-kib 4 --stats");
  CHECK_EQ_INT(dx_run(2, args, 60, out, sizeof out), 0);
  const char *moments = strstr(out, "moments ");
  double per_rank = 0, full = 0;
  CHECK_MSG(moments && sscanf(moments, "moments %lf MB/rank (unsharded %lf MB)", &per_rank, &full) == 2,
            "no moments in:\n%s", out);
  CHECK_MSG(full > 0 && per_rank <= full / 2 + 1e-5, "zero1 moments %.6f MB of %.6f MB", per_rank, full);
  run_args(args, sizeof args, ini, rp, BATCH, 1, "--per-param");
  CHECK_EQ_INT(dx_run(2, args, 60, out, sizeof out), 0);

  check_metrics("zero1 vs plain", rz, r2, 1, 1);
  check_ckpt("zero1 vs plain", rz, r2, 1);
  check_metrics("per-parameter vs bucketed", rp, r2, 1, 1);
  check_ckpt("per-parameter vs bucketed", rp, r2, 1);
  check_metrics("2 ranks x B vs 1 x B x 2 micro-batches", r2, r1, 0, 1);
  check_ckpt("2 ranks x B vs 1 x B x 2 micro-batches", r2, r1, 0);

  const char *t2av = "--set flow.task_i2av=0 --set flow.task_v2a=0";
  run_args(args, sizeof args, ini, w2, BATCH, 1, t2av);
  CHECK_EQ_INT(dx_run(2, args, 60, out, sizeof out), 0);
  run_args(args, sizeof args, ini, w1, 2 * BATCH, 1, t2av);
  CHECK_EQ_INT(dx_run(0, args, 60, out, sizeof out), 0);
  check_metrics("2 ranks x B vs 1 x 2B", w2, w1, 0, 0);
  check_ckpt("2 ranks x B vs 1 x 2B", w2, w1, 0);
  return test_finish("dist_equiv");
}
