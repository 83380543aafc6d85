#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* nftw; before any header */
#endif
#include "testlib.h"

#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int test_failures = 0;
int test_checks = 0;

/* The scratch folder, empty until a test asks for it. */
static char tmpdir[256];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  if (remove(path) != 0) perror(path);
  return 0;
}

/* A passing test leaves nothing behind; a failing one keeps its scratch folder so the files
 * it wrote can be looked at, and says where it is. */
int test_finish(const char *name) {
  printf("%s: %d passed, %d failed\n", name, test_checks - test_failures, test_failures);
  if (tmpdir[0]) {
    if (test_failures)
      fprintf(stderr, "%s: scratch files kept in %s\n", name, tmpdir);
    else if (access(tmpdir, F_OK) == 0)
      nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  }
  return test_failures ? 1 : 0;
}

/* A fresh, empty folder per test process. mkdtemp, not the pid alone: a folder left by an
 * earlier process with a recycled pid would hand this test its stale files. */
const char *test_tmpdir(void) {
  char *dir = tmpdir;
  if (!dir[0]) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof tmpdir, "%s/duet-test-%ld-XXXXXX", base ? base : "/tmp", (long)getpid());
    if (!mkdtemp(dir)) {
      perror("test_tmpdir: mkdtemp");
      exit(2);
    }
  }
  return dir;
}
