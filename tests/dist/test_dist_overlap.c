/* The gradient all-reduce overlapped with backward (train.overlap_allreduce, the default)
 * against the same runs reducing after backward, over 10 steps.
 *
 * Bit for bit with two ranks. The overlapped path posts other collectives (MPI_Iallreduce on
 * buckets cut in the order backward finishes the gradients, instead of MPI_Allreduce on
 * buckets in the parameter set's order), so MPI may well run other algorithms; but with two
 * ranks every gradient element is one addition of the two ranks' values, and IEEE addition is
 * commutative, so any algorithm, bucketing or message size gives the same bits (the same
 * argument as for bucketed against per-parameter all-reduce in dist_equiv). Losses, gradient
 * norms, weights, EMA and moments must therefore be equal. Covered: one micro-batch; two
 * micro-batches (only the last one's backward is overlapped; the 1/accum scale then comes
 * after the sum instead of before it, exact for a power of two); ZeRO-1 with 4 KiB buckets
 * (many buckets, large gradients in pieces); and an epoch whose last global batch leaves rank
 * 1 without clips (it still joins every collective, with zero gradients).
 *
 * Three ranks are not bit for bit: a sum of three values depends on the order of the
 * additions, which the algorithm MPI picks (by operation and message size) decides. There the
 * bound is the one dist_equiv uses for float32 reassociation, 1e-5 relative on logged values
 * and absolute on weights, far above rounding (on this machine's Open MPI the
 * three-rank runs came out equal to the bit too) and far below a real
 * fault (a missing bucket or a wrong scale changes the gradient norm by O(1)). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dist_fixture.h"
#include "testlib.h"
#include "train_fixture.h"

#define STEPS 10
#define TOL 1e-5

static char out[1 << 16];

static double rel(double a, double b) { return a == b ? 0 : fabs(a - b) / fmax(fabs(a), fabs(b)); }

/* Runs the driver on np ranks; returns the number of overlapped backward passes it reports,
 * and in *early the collectives per step started while backward still ran. */
static long long run(int np, const char *ini, const char *dir, const char *extra, double *early) {
  char args[8192];
  DX_FMT(args,
         "--config %s --set train.run_dir=%s --set train.steps=%d --set train.ckpt_every=0 --set train.val_every=5 "
         "--set train.threads=1 --stats %s",
         ini, dir, STEPS, extra);
  CHECK_EQ_INT(dx_run(np, args, 90, out, sizeof out), 0);
  const char *s = strstr(out, "overlapped:");
  long long n = -1;
  /* "... calls; N overlapped: ..." */
  while (s && s > out && s[-1] == ' ') s--;
  while (s && s > out && s[-1] >= '0' && s[-1] <= '9') s--;
  if (!s || sscanf(s, "%lld", &n) != 1) CHECK_MSG(0, "no overlap count in:\n%s", out);
  const char *line = strstr(out, "dist: ");
  if (line) printf("%s: %.*s\n", extra, (int)strcspn(line, "\n"), line);
  const char *e = strstr(out, " ms after, ");
  *early = -1;
  if (!e || sscanf(e, " ms after, %lf calls started in backward", early) != 1)
    CHECK_MSG(0, "no count of early collectives in:\n%s", out);
  return n;
}

static void compare(const char *what, const char *a_dir, const char *b_dir, int exact) {
  dx_metrics a, b;
  CHECK(dx_read_metrics(a_dir, &a) == 0 && dx_read_metrics(b_dir, &b) == 0);
  CHECK_MSG(a.n_train == STEPS && b.n_train == STEPS, "%s: %d and %d train lines", what, a.n_train, b.n_train);
  CHECK_MSG(a.n_val == b.n_val && a.n_val >= 2, "%s: %d and %d val lines", what, a.n_val, b.n_val);
  double worst = 0;
  for (int i = 0; i < a.n_train && i < b.n_train; i++) {
    worst = fmax(worst, fmax(rel(a.loss[i], b.loss[i]), rel(a.grad_norm[i], b.grad_norm[i])));
    worst = fmax(worst, fmax(rel(a.loss_video[i], b.loss_video[i]), rel(a.loss_audio[i], b.loss_audio[i])));
    CHECK_MSG(a.samples[i] == b.samples[i], "%s: step %d took other clips", what, i + 1);
  }
  for (int i = 0; i < a.n_val && i < b.n_val; i++) worst = fmax(worst, rel(a.val_loss[i], b.val_loss[i]));
  CHECK_MSG(exact ? worst == 0 : worst < TOL, "%s: logged values differ by %.3g (relative)", what, worst);
  CHECK_MSG(a.loss[STEPS - 1] != a.loss[0], "%s: the loss did not move", what);
  char ca[4200], cb[4200];
  DX_FMT(ca, "%s/last", a_dir);
  DX_FMT(cb, "%s/last", b_dir);
  double max_abs = 0;
  int64_t differing = 0;
  CHECK(dx_compare_ckpt(ca, cb, &max_abs, &differing) == 0);
  if (exact) CHECK_MSG(differing == 0, "%s: %lld elements differ (max |diff| %.3g)", what, (long long)differing, max_abs);
  else CHECK_MSG(max_abs < TOL, "%s: weights, EMA or moments differ by %.3g", what, max_abs);
  printf("%s: logged values within %.3g (relative); %lld checkpoint elements differ, max |diff| %.3g\n", what, worst,
         (long long)differing, max_abs);
}

int main(void) {
  char data[4096], ini[4096];
  fx_path(data, sizeof data, "clips.h5");
  fx_path(ini, sizeof ini, "run.ini");
  /* 22 clips, 4 held out: 18 to train on, so with 2 ranks x 2 clips every epoch ends on a
   * global batch of 2 that rank 0 takes whole. */
  if (fx_write_clips(data, 22, 8, 0, 13) || fx_write_ini(ini, data, "unused")) return 1;
  static const struct {
    const char *name, *extra;
    int np, exact;
  } cases[] = {
      {"2 ranks", "--set data.batch=2", 2, 1},
      {"2 ranks, 2 micro-batches", "--set data.batch=1 --set train.accum=2", 2, 1},
      {"2 ranks, zero1, 4 KiB buckets", "--set data.batch=2 --zero1 --bucket-kib 4", 2, 1},
      {"3 ranks", "--set data.batch=2", 3, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char on[4096], off[4096], name[64], extra[512];
    snprintf(name, sizeof name, "case%zu_overlap", i);
    fx_path(on, sizeof on, name);
    snprintf(name, sizeof name, "case%zu_after", i);
    fx_path(off, sizeof off, name);
    double early_on, early_off;
    long long n_on = run(cases[i].np, ini, on, cases[i].extra, &early_on);
    DX_FMT(extra, "%s --set train.overlap_allreduce=false", cases[i].extra);
    long long n_off = run(cases[i].np, ini, off, extra, &early_off);
    CHECK_MSG(n_on == STEPS && n_off == 0, "%s: %lld and %lld overlapped steps", cases[i].name, n_on, n_off);
    /* The first step only learns the order, and the test model's gradients fill one 25 MiB
     * bucket, which starts when its last gradient is final, at the very end of backward; with
     * 4 KiB buckets most of them start while backward runs. */
    if (strstr(cases[i].extra, "bucket-kib"))
      CHECK_MSG(early_on > 1, "%s: %.1f collectives per step started during backward", cases[i].name, early_on);
    CHECK_MSG(early_off == 0, "%s: %.1f collectives started during backward without overlap", cases[i].name,
              early_off);
    char what[128];
    snprintf(what, sizeof what, "%s: overlap vs after backward", cases[i].name);
    compare(what, on, off, cases[i].exact);
  }
  return test_finish("dist_overlap");
}
