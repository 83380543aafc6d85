/* A rank that fails on its own ends the whole job, quickly, with one message naming it.
 *
 *   - rank 1's config points at a missing clip file: rank 1 fails before its trainer exists
 *     while rank 0 builds its trainer and starts training;
 *   - rank 1 fails just before step 5 (mid-run), rank 0 having gone on to its step;
 *   - rank 0 fails just before step 3 with ZeRO-1 (rank 1 waits in the step's collectives);
 *   - both ranks fail: the lower one's message, saying that two failed;
 *   - every rank sees the loss go infinite (lr 1e6) and the run stops with a diagnostic
 *     checkpoint: with ZeRO-1 rank 0 gathers the sharded moments for it, and they are the
 *     bits an unsharded run saves.
 * Each time: exit status non-zero, well within the time limit, and exactly one line from the
 * driver, "dist_train: rank R: <cause>". */
#include <stdio.h>
#include <string.h>

#include "dist_fixture.h"
#include "testlib.h"
#include "train_fixture.h"

static char out[1 << 16];

/* Lines of out that start with prefix; the first is copied to line. */
static int count_lines(const char *prefix, char *line, size_t size) {
  int n = 0;
  line[0] = '\0';
  for (const char *s = out; s && *s;) {
    const char *nl = strchr(s, '\n');
    size_t len = nl ? (size_t)(nl - s) : strlen(s);
    if (len >= strlen(prefix) && !strncmp(s, prefix, strlen(prefix))) {
      if (!n++) snprintf(line, size, "%.*s", (int)len, s);
    }
    s = nl ? nl + 1 : NULL;
  }
  return n;
}

/* The diagnostic directory named in the driver's line, or "". */
static void diag_dir(const char *line, char *dir, size_t size) {
  const char *p = strstr(line, "state is in ");
  snprintf(dir, size, "%s", p ? p + strlen("state is in ") : "");
}

static void expect_failure(const char *what, const char *args, const char *expected, char *line_out, size_t line_size) {
  char cmd[8192], path[4200], line[2048];
  dx_command(cmd, sizeof cmd, 2, args);
  DX_FMT(path, "%s/fail.out", test_tmpdir());
  pid_t pid = dx_spawn(cmd, path);
  double elapsed = 0;
  int status = dx_wait(pid, 60, &elapsed);
  dx_read_text(path, out, sizeof out);
  CHECK_MSG(status > 0, "%s: exit status %d after %.1f s", what, status, elapsed);
  CHECK_MSG(elapsed < 30, "%s: took %.1f s", what, elapsed);
  int n = count_lines("dist_train:", line, sizeof line);
  CHECK_MSG(n == 1 && strstr(line, expected), "%s: %d driver lines, first '%s', expected '%s'; output:\n%s", what, n,
            line, expected, out);
  printf("%s: exit %d after %.1f s: %s\n", what, status, elapsed, line);
  if (line_out) snprintf(line_out, line_size, "%s", line);
}

int main(void) {
  char data[4096], ini[4096], args[8192], run[4096], missing[4096];
  fx_path(data, sizeof data, "clips.h5");
  fx_path(ini, sizeof ini, "run.ini");
  fx_path(missing, sizeof missing, "no_such_clips.h5");
  if (fx_write_clips(data, 20, 8, 0, 3) || fx_write_ini(ini, data, "unused")) return 1;
  const char *common = "--set train.steps=200 --set train.threads=1 --set data.batch=2 --set train.ckpt_every=0";

  fx_path(run, sizeof run, "missing_file");
  DX_FMT(args, "--config %s --set train.run_dir=%s %s --rank-set 1 data.path=%s", ini, run, common, missing);
  expect_failure("missing file on rank 1", args, "dist_train: rank 1: ", NULL, 0);
  CHECK_MSG(strstr(out, "no_such_clips.h5") != NULL, "the message does not name the file:\n%s", out);

  fx_path(run, sizeof run, "mid_run");
  DX_FMT(args, "--config %s --set train.run_dir=%s %s --fail-at 1:5", ini, run, common);
  expect_failure("rank 1 fails at step 5", args, "dist_train: rank 1: injected failure before step 5", NULL, 0);

  fx_path(run, sizeof run, "mid_run_zero1");
  DX_FMT(args, "--config %s --set train.run_dir=%s %s --zero1 --fail-at 0:3", ini, run, common);
  expect_failure("rank 0 fails at step 3 with zero1", args, "dist_train: rank 0: injected failure before step 3", NULL, 0);

  fx_path(run, sizeof run, "both");
  DX_FMT(args, "--config %s --set train.run_dir=%s %s --rank-set 0 data.path=%s --rank-set 1 data.path=%s", ini, run,
         common, missing, missing);
  expect_failure("both ranks fail", args, "dist_train: rank 0 (first of 2 failing ranks): ", NULL, 0);

  char lines[2][2048], dirs[2][2048];
  for (int z = 0; z < 2; z++) {
    fx_path(run, sizeof run, z ? "diverge_zero1" : "diverge");
    DX_FMT(args,
           "--config %s --set train.run_dir=%s %s --set train.lr=1e6 --set train.warmup=0 --set train.grad_clip=0 %s", ini,
           run, common, z ? "--zero1" : "");
    expect_failure(z ? "divergence with zero1" : "divergence", args, "dist_train: rank 0 (first of 2 failing ranks): step ",
                   lines[z], sizeof lines[z]);
    diag_dir(lines[z], dirs[z], sizeof dirs[z]);
  }
  char a[2200], b[2200];
  DX_FMT(a, "%s/optim.safetensors", dirs[0]);
  DX_FMT(b, "%s/optim.safetensors", dirs[1]);
  dx_diff d;
  CHECK_MSG(dx_compare_st(a, b, &d) == 0 && d.tensors > 0 && d.missing == 0 && d.differing == 0,
            "diagnostic moments: %d tensors, %d missing, %lld differ ('%s', '%s')", d.tensors, d.missing,
            (long long)d.differing, a, b);
  return test_finish("dist_fail");
}
