#include "testlib.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int test_failures = 0;
int test_checks = 0;

int test_finish(const char *name) {
  printf("%s: %d passed, %d failed\n", name, test_checks - test_failures, test_failures);
  return test_failures ? 1 : 0;
}

/* A fresh, empty folder per test process. mkdtemp, not the pid alone: a folder left by an
 * earlier process with a recycled pid would hand this test its stale files. */
const char *test_tmpdir(void) {
  static char dir[256];
  if (!dir[0]) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/duet-test-%ld-XXXXXX", base ? base : "/tmp", (long)getpid());
    if (!mkdtemp(dir)) {
      perror("test_tmpdir: mkdtemp");
      exit(2);
    }
  }
  return dir;
}
