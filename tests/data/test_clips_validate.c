/* A bad file fails at open with one line that names the file and what is wrong, and HDF5
 * prints nothing of its own while we find out. */
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clipgen.h"
#include "h5make.h"
#include "testlib.h"

/* Opens path with stderr captured; returns the open's code, leaves the message in err and
 * what reached stderr in printed. */
static int open_quietly(const char *path, duet_err *err, char *printed, size_t n) {
  char cap[600];
  snprintf(cap, sizeof cap, "%s/stderr.txt", test_tmpdir());
  fflush(stderr);
  int saved = dup(2);
  int fd = open(cap, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(fd, 2);
  close(fd);
  duet_clip_file *f = NULL;
  int rc = duet_clip_file_open(&f, path, err);
  duet_clip_file_close(f);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  FILE *in = fopen(cap, "r");
  size_t got = in ? fread(printed, 1, n - 1, in) : 0;
  printed[got] = '\0';
  if (in) fclose(in);
  return rc;
}

static void expect_refused(const char *path, int code, const char *what) {
  duet_err err = {0};
  char printed[4096];
  int rc = open_quietly(path, &err, printed, sizeof printed);
  CHECK_MSG(rc == code, "%s: code %d, expected %d (%s)", path, rc, code, err.msg);
  CHECK_MSG(strncmp(err.msg, path, strlen(path)) == 0, "message does not start with the file: %s",
            err.msg);
  CHECK_MSG(strstr(err.msg, what) != NULL, "message '%s' lacks '%s'", err.msg, what);
  CHECK_MSG(strchr(err.msg, '\n') == NULL, "message is not one line: %s", err.msg);
  CHECK_MSG(printed[0] == '\0', "something reached stderr: %s", printed);
  if (getenv("DUET_TEST_VERBOSE")) printf("%s\n", err.msg);
}

int main(void) {
  const char *dir = test_tmpdir();
  char path[512];

  static const struct {
    h5make_break brk;
    const char *what;
  } cases[] = {
      {H5MAKE_FORMAT_WRONG, "attribute 'format' is 'not-clips', expected 'duet-clips'"},
      {H5MAKE_FORMAT_MISSING, "missing attribute 'format'"},
      {H5MAKE_VERSION, "version 2"},
      {H5MAKE_VIDEO_FRAMES, "dataset 'video' has shape [3,2,6,10,3] but attributes say frames=4"},
      {H5MAKE_VIDEO_TYPE, "dataset 'video' has type int16, expected uint8"},
      {H5MAKE_AUDIO_TYPE, "dataset 'audio' has type float64, expected float32 or int16"},
      {H5MAKE_AUDIO_COUNT, "dataset 'audio' has shape [2,32] but 'video' says clips=3"},
      {H5MAKE_CAPTION_MISSING, "missing dataset 'caption'"},
      {H5MAKE_CAPTION_TYPE, "dataset 'caption' has type int32, expected string"},
      {H5MAKE_VIDEO_CONTIGUOUS, "dataset 'video' is not chunked"},
      {H5MAKE_VIDEO_CHUNKS, "dataset 'video' has chunks [2,4,6,10,3], expected one clip per chunk [1,4,6,10,3]"},
      {H5MAKE_MASK_MISSING, "dataset 'text_emb' is present but 'text_mask' is missing"},
      {H5MAKE_DURATION, "they must agree to within one frame"},
      {H5MAKE_FRAMES_TEXT, "attribute 'frames' is string, expected a number"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    snprintf(path, sizeof path, "%s/broken%zu.h5", dir, i);
    h5make_opts o = {.brk = cases[i].brk};
    CHECK(h5make_write(path, &o) == 0);
    expect_refused(path, DUET_EFORMAT, cases[i].what);
  }

  /* The same file unbroken opens. */
  snprintf(path, sizeof path, "%s/valid.h5", dir);
  h5make_opts ok = {0};
  CHECK(h5make_write(path, &ok) == 0);
  duet_err err = {0};
  char printed[4096];
  CHECK_MSG(open_quietly(path, &err, printed, sizeof printed) == 0, "%s", err.msg);

  /* A good file cut short, at several places. */
  char good[512];
  snprintf(good, sizeof good, "%s/good.h5", dir);
  clipgen_opts go = {clipgen_shape(4, 16, 16, 0, 0, 2), 1, {0}};
  CHECK(clipgen_write(good, 20, &go) == 0);
  struct stat st;
  CHECK(stat(good, &st) == 0);
  const long long cuts[] = {st.st_size * 6 / 10, st.st_size - 1, 1000, 40};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    snprintf(path, sizeof path, "%s/cut%zu.h5", dir, i);
    CHECK(clipgen_copy(good, path, cuts[i]) == 0);
    expect_refused(path, DUET_EFORMAT, "truncated");
  }

  /* Not HDF5 at all, empty, missing, a directory. */
  snprintf(path, sizeof path, "%s/notes.h5", dir);
  FILE *txt = fopen(path, "w");
  fputs("these are not the clips you are looking for\n", txt);
  fclose(txt);
  expect_refused(path, DUET_EFORMAT, "not an HDF5 file");
  snprintf(path, sizeof path, "%s/zero.h5", dir);
  fclose(fopen(path, "w"));
  expect_refused(path, DUET_EFORMAT, "not an HDF5 file");
  snprintf(path, sizeof path, "%s/absent.h5", dir);
  expect_refused(path, DUET_EIO, "No such file or directory");
  expect_refused(dir, DUET_EIO, "is a directory");

  /* Our silencing is scoped: the application's own HDF5 error printer is still in place. */
  H5E_auto2_t func = NULL;
  void *data = NULL;
  H5Eget_auto2(H5E_DEFAULT, &func, &data);
  CHECK(func != NULL);

  return test_finish("test_clips_validate");
}
