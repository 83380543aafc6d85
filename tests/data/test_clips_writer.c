/* The writer never leaves a half-written file at its path: it refuses to overwrite unless
 * asked, replaces only on commit, deletes on abort, and a killed writer leaves nothing there.
 * Bad clips and shapes are refused with messages that name the file; every thread count
 * writes the same clips. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clipgen.h"
#include "testlib.h"

static int exists(const char *path) { return access(path, F_OK) == 0; }

static int64_t clips_in(const char *path) {
  duet_clip_file *f = NULL;
  duet_err err = {0};
  if (duet_clip_file_open(&f, path, &err)) return -1;
  int64_t n = duet_clip_file_count(f);
  duet_clip_file_close(f);
  return n;
}

static void check_all(const char *path, int64_t n, const duet_clip_shape *s) {
  duet_clip_file *f = NULL;
  duet_err err = {0};
  CHECK_MSG(duet_clip_file_open(&f, path, &err) == 0, "%s", err.msg);
  if (!f) return;
  CHECK_EQ_INT(duet_clip_file_count(f), n);
  size_t vn = (size_t)s->frames * s->height * s->width * 3;
  uint8_t *video = malloc(vn);
  float *audio = malloc(sizeof(float) * (size_t)s->audio_samples);
  int bad = 0;
  for (int64_t i = 0; i < n; i++) {
    CHECK(duet_clip_file_read(f, i, video, audio, NULL, NULL, NULL, NULL, &err) == 0);
    bad += clipgen_expect_video(i, s, video) + clipgen_expect_audio(i, s, audio, 0);
  }
  CHECK_EQ_INT(bad, 0);
  free(video);
  free(audio);
  duet_clip_file_close(f);
}

int main(void) {
  const char *dir = test_tmpdir();
  char path[512], tmp[520];
  snprintf(path, sizeof path, "%s/clips.h5", dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  clipgen_opts o = {clipgen_shape(3, 8, 8, 0, 0, 2), 1, {0}};
  duet_err err = {0};

  /* Aborting leaves nothing, neither the file nor its temporary. */
  duet_clip_writer *w = NULL;
  CHECK(duet_clip_writer_open(&w, path, &o.shape, 0, &err) == 0);
  CHECK(exists(tmp) && !exists(path));
  CHECK(duet_clip_writer_close(w, 0, &err) == 0);
  CHECK(!exists(tmp) && !exists(path));

  /* Refuses to overwrite. */
  CHECK(clipgen_write(path, 5, &o) == 0);
  CHECK(!exists(tmp));
  w = NULL;
  int rc = duet_clip_writer_open(&w, path, &o.shape, 0, &err);
  CHECK(rc != 0 && w == NULL);
  CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, "already exists"), "%s", err.msg);
  CHECK_EQ_INT(clips_in(path), 5);

  /* Overwrite replaces only on commit: until then readers see the old file. */
  o.writer.overwrite = 1;
  CHECK(duet_clip_writer_open_opts(&w, path, &o.shape, &o.writer, &err) == 0);
  CHECK_EQ_INT(clips_in(path), 5);
  CHECK(duet_clip_writer_close(w, 0, &err) == 0);
  CHECK_EQ_INT(clips_in(path), 5);
  CHECK(clipgen_write(path, 7, &o) == 0);
  CHECK_EQ_INT(clips_in(path), 7);

  /* A writer killed mid-way leaves no file at its path. */
  char killed[512];
  snprintf(killed, sizeof killed, "%s/killed.h5", dir);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    duet_clip_writer *kw = NULL;
    duet_err kerr;
    if (duet_clip_writer_open(&kw, killed, &o.shape, 0, &kerr) != 0) _exit(2);
    uint8_t video[3 * 8 * 8 * 3] = {0};
    float audio[24] = {0};
    duet_clip c = {.video = video, .audio = audio, .caption = "doomed"};
    for (int i = 0; i < 300; i++) duet_clip_writer_append(kw, &c, &kerr);
    raise(SIGKILL);
    _exit(3);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  CHECK(!exists(killed));
  /* Its stale temporary does not stand in the way of the next writer. */
  CHECK(clipgen_write(killed, 2, &o) == 0);
  CHECK_EQ_INT(clips_in(killed), 2);

  /* Bad clips are refused without spoiling the writer. */
  char bad[512];
  snprintf(bad, sizeof bad, "%s/bad.h5", dir);
  w = NULL;
  CHECK(duet_clip_writer_open(&w, bad, &o.shape, 0, &err) == 0);
  uint8_t video[3 * 8 * 8 * 3] = {0};
  float audio[24] = {0}, events[3] = {0.1f, 0.2f, 0.3f}, emb[4] = {0};
  duet_clip c = {.video = video, .audio = audio, .caption = "x", .events = events, .n_events = 3};
  CHECK(duet_clip_writer_append(w, &c, &err) == DUET_EINVAL);
  CHECK_MSG(strstr(err.msg, bad) && strstr(err.msg, "3 events"), "%s", err.msg);
  c.n_events = 2;
  c.text_emb = emb;
  CHECK(duet_clip_writer_append(w, &c, &err) == DUET_EINVAL);
  CHECK_MSG(strstr(err.msg, "text_len = 0"), "%s", err.msg);
  c.text_emb = NULL;
  c.video = NULL;
  CHECK(duet_clip_writer_append(w, &c, &err) == DUET_EINVAL);
  c.video = video;
  events[1] = NAN;
  CHECK(duet_clip_writer_append(w, &c, &err) == DUET_EINVAL);
  events[1] = 0.2f;
  CHECK(duet_clip_writer_append(w, &c, &err) == 0);
  CHECK_EQ_INT(duet_clip_writer_count(w), 1);
  CHECK(duet_clip_writer_close(w, 1, &err) == 0);
  CHECK_EQ_INT(clips_in(bad), 1);

  /* Shapes that cannot be stored. */
  duet_clip_shape s = o.shape;
  s.audio_samples *= 2;
  snprintf(bad, sizeof bad, "%s/never.h5", dir);
  w = NULL;
  CHECK(duet_clip_writer_open(&w, bad, &s, 0, &err) == DUET_EINVAL);
  CHECK_MSG(strstr(err.msg, bad) && strstr(err.msg, "within one frame"), "%s", err.msg);
  s = o.shape;
  s.width = 0;
  CHECK(duet_clip_writer_open(&w, bad, &s, 0, &err) == DUET_EINVAL);
  s = o.shape;
  s.text_len = 4;
  CHECK(duet_clip_writer_open(&w, bad, &s, 0, &err) == DUET_EINVAL);
  CHECK(!exists(bad));
  snprintf(bad, sizeof bad, "%s/no/such/dir/x.h5", dir);
  CHECK(duet_clip_writer_open(&w, bad, &o.shape, 0, &err) == DUET_EIO);
  CHECK_MSG(strstr(err.msg, bad) != NULL, "%s", err.msg);

  /* Every thread count writes the same clips. */
  for (int threads = 1; threads <= 4; threads++) {
    char tp[512];
    snprintf(tp, sizeof tp, "%s/threads%d.h5", dir, threads);
    clipgen_opts to = {clipgen_shape(2, 12, 12, 0, 0, 0), 0, {.threads = threads}};
    CHECK(clipgen_write(tp, 41, &to) == 0);
    check_all(tp, 41, &to.shape);
  }

  return test_finish("test_clips_writer");
}
