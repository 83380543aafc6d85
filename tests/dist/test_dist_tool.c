/* duet-train itself under mpirun: two ranks with train.zero1 train to the same checkpoint as
 * the dist_train driver (the same trainer and dist seam, so bit for bit), and a failure on
 * every rank gives exactly one line, from rank 0, and a non-zero exit. */
#include <stdio.h>
#include <string.h>

#include "dist_fixture.h"
#include "testlib.h"
#include "train_fixture.h"

static char out[1 << 16];

int main(void) {
  char data[4096], ini[4096], args[8192], tool_run[4096], driver_run[4096], a[4200], b[4200];
  fx_path(data, sizeof data, "clips.h5");
  fx_path(ini, sizeof ini, "run.ini");
  fx_path(tool_run, sizeof tool_run, "tool");
  fx_path(driver_run, sizeof driver_run, "driver");
  if (fx_write_clips(data, 20, 8, 0, 21) || fx_write_ini(ini, data, "unused")) return 1;
  const char *common = "--set train.steps=8 --set train.threads=1 --set data.batch=2 --set train.zero1=true";

  DX_FMT(args, "--config %s --set train.run_dir=%s %s", ini, tool_run, common);
  CHECK_EQ_INT(dx_run_bin(2, DUET_TRAIN_TOOL, args, 60, out, sizeof out), 0);
  CHECK_MSG(strstr(out, "2 ranks per step") != NULL, "not two ranks:\n%s", out);
  DX_FMT(args, "--config %s --set train.run_dir=%s %s", ini, driver_run, common);
  CHECK_EQ_INT(dx_run(2, args, 60, out, sizeof out), 0);
  DX_FMT(a, "%s/last", tool_run);
  DX_FMT(b, "%s/last", driver_run);
  double max_abs;
  int64_t differing;
  CHECK(dx_compare_ckpt(a, b, &max_abs, &differing) == 0);
  CHECK_MSG(differing == 0, "duet-train and dist_train: %lld elements differ", (long long)differing);

  fx_path(tool_run, sizeof tool_run, "tool_fail");
  DX_FMT(args, "--config %s --set train.run_dir=%s %s --set data.path=%s/missing.h5", ini, tool_run, common,
         test_tmpdir());
  int rc = dx_run_bin(2, DUET_TRAIN_TOOL, args, 60, out, sizeof out);
  CHECK(rc > 0);
  int lines = 0;
  /* Error lines only: the tiny test model also draws duet-train's capacity warning. */
  for (const char *s = out; (s = strstr(s, "duet-train: ")) != NULL; s++)
    lines += strncmp(s, "duet-train: warning: ", 21) != 0;
  CHECK_MSG(lines == 1 && strstr(out, "duet-train: rank 0 (first of 2 failing ranks): "),
            "%d duet-train lines:\n%s", lines, out);
  return test_finish("dist_tool");
}
