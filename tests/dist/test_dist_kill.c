/* A rank killed outright (SIGKILL, as the out-of-memory killer would) mid-run: the survivor
 * may be blocked in a collective, which no error flag can reach, so this is the launcher's
 * part: OpenMPI's mpirun sees a process die, kills the rest of the job and exits non-zero. The
 * job must end within 60 s of the kill, naming the killed rank, and leave no rank behind. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist_fixture.h"
#include "testlib.h"
#include "train_fixture.h"

static char out[1 << 16];

static long read_pid(const char *dir, int rank) {
  char path[4200], text[64];
  DX_FMT(path, "%s/rank_%d.pid", dir, rank);
  if (dx_read_text(path, text, sizeof text)) return -1;
  return strtol(text, NULL, 10);
}

/* Lines in <run>/metrics.jsonl, i.e. steps rank 0 has logged. */
static int steps_logged(const char *run) {
  char path[4200];
  static char text[1 << 16];
  DX_FMT(path, "%s/metrics.jsonl", run);
  if (dx_read_text(path, text, sizeof text)) return 0;
  int n = 0;
  for (const char *s = text; *s; s++) n += *s == '\n';
  return n;
}

int main(void) {
  char data[4096], ini[4096], args[8192], run[4096], pids[4096], cmd[9000], path[4200];
  fx_path(data, sizeof data, "clips.h5");
  fx_path(ini, sizeof ini, "run.ini");
  fx_path(run, sizeof run, "run");
  fx_path(pids, sizeof pids, "pids");
  if (fx_write_clips(data, 20, 8, 0, 9) || fx_write_ini(ini, data, "unused")) return 1;
  DX_FMT(cmd, "mkdir -p '%s'", pids);
  CHECK(system(cmd) == 0);
  DX_FMT(args,
         "--config %s --set train.run_dir=%s --set train.steps=1000000 --set train.threads=1 --set data.batch=2 "
         "--set train.ckpt_every=0 --set train.val_every=0 --pid-dir %s",
         ini, run, pids);
  dx_command(cmd, sizeof cmd, 2, args);
  DX_FMT(path, "%s/kill.out", test_tmpdir());
  pid_t job = dx_spawn(cmd, path);
  CHECK(job > 0);

  /* Until both ranks run and a few steps (with their collectives) are done. */
  long p0 = -1, p1 = -1;
  for (int i = 0; i < 1500 && (p0 < 0 || p1 < 0 || steps_logged(run) < 5); i++) {
    usleep(20000);
    p0 = read_pid(pids, 0);
    p1 = read_pid(pids, 1);
  }
  CHECK_MSG(p0 > 0 && p1 > 0 && steps_logged(run) >= 5, "the job did not start (pids %ld %ld)", p0, p1);
  if (p1 > 0) CHECK(kill((pid_t)p1, SIGKILL) == 0);
  double elapsed = 0;
  int status = dx_wait(job, 60, &elapsed);
  dx_read_text(path, out, sizeof out);
  CHECK_MSG(status > 0, "exit status %d after %.1f s; output:\n%s", status, elapsed, out);
  CHECK_MSG(elapsed < 60, "took %.1f s", elapsed);
  CHECK_MSG(strstr(out, "rank 1") != NULL, "the output does not name rank 1:\n%s", out);
  /* The survivor is gone too (mpirun kills it; allow it a moment to be reaped). */
  int alive = 1;
  for (int i = 0; i < 100 && alive; i++) {
    alive = p0 > 0 && kill((pid_t)p0, 0) == 0;
    if (alive) usleep(50000);
  }
  CHECK_MSG(!alive, "rank 0 (pid %ld) still runs", p0);
  if (alive) kill((pid_t)p0, SIGKILL);
  printf("killed rank 1 after %d steps: mpirun exited %d after %.1f s\n", steps_logged(run), status, elapsed);
  return test_finish("dist_kill");
}
