/* duet-synth to a clip file: the same clips whatever the thread count, truth stored with them
 * (events, captions, sources), no overwrite without asking, and the tool's command line. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../testlib.h"
#include "data/clips.h"
#include "data/synth.h"
#include "media_util.h"

#define COUNT 48

static void compare_files(const char *pa, const char *pb, const duet_synth_params *p) {
  duet_clip_file *a = NULL, *b = NULL;
  duet_err err = {0};
  CHECK_MSG(duet_clip_file_open(&a, pa, &err) == 0, "%s", err.msg);
  CHECK_MSG(duet_clip_file_open(&b, pb, &err) == 0, "%s", err.msg);
  if (!a || !b) {
    if (a) duet_clip_file_close(a);
    if (b) duet_clip_file_close(b);
    return;
  }
  const duet_clip_shape *s = duet_clip_file_shape(a);
  CHECK_EQ_INT(duet_clip_file_count(a), COUNT);
  CHECK_EQ_INT(duet_clip_file_count(b), COUNT);
  CHECK_EQ_INT(s->frames, p->frames);
  CHECK_EQ_INT(s->audio_samples, duet_synth_audio_samples(p));
  CHECK_EQ_INT(s->max_events, duet_synth_max_events(p));
  CHECK(duet_clip_file_has_events(a));
  size_t vn = (size_t)s->frames * s->height * s->width * 3;
  uint8_t *va = malloc(vn), *vb = malloc(vn), *vt = malloc(vn);
  float *aa = malloc(sizeof(float) * s->audio_samples), *ab = malloc(sizeof(float) * s->audio_samples);
  float *at = malloc(sizeof(float) * s->audio_samples);
  float ea[DUET_SYNTH_MAX_EVENTS], eb[DUET_SYNTH_MAX_EVENTS];
  static duet_synth_scene scene;
  int same = 1, truth = 1;
  for (int i = 0; i < COUNT; i++) {
    char *ca = NULL, *cb = NULL, *sa = NULL, *sb = NULL;
    int na = 0, nb = 0;
    duet_clip_file_read(a, i, va, aa, &ca, &sa, ea, &na, &err);
    duet_clip_file_read(b, i, vb, ab, &cb, &sb, eb, &nb, &err);
    same &= !memcmp(va, vb, vn) && !memcmp(aa, ab, sizeof(float) * s->audio_samples) &&
            ca && cb && !strcmp(ca, cb) && sa && sb && !strcmp(sa, sb) && na == nb &&
            !memcmp(ea, eb, sizeof(float) * na);
    /* What is stored is what the generator makes for that index. */
    duet_synth_clip(p, i, &scene, vt, at, NULL);
    truth &= !memcmp(va, vt, vn) && !memcmp(aa, at, sizeof(float) * s->audio_samples) &&
             ca && !strcmp(ca, scene.caption) && na == scene.n_events;
    for (int e = 0; e < na && e < scene.n_events; e++) truth &= ea[e] == (float)scene.events[e].t;
    char want[96];
    snprintf(want, sizeof want, "seed=%llu clip=%d", (unsigned long long)p->seed, i);
    truth &= sa && strstr(sa, want) != NULL;
    free(ca);
    free(cb);
    free(sa);
    free(sb);
  }
  CHECK(same);
  CHECK(truth);
  free(va);
  free(vb);
  free(vt);
  free(aa);
  free(ab);
  free(at);
  duet_clip_file_close(a);
  duet_clip_file_close(b);
}

static void test_library(void) {
  duet_synth_params p;
  duet_synth_params_default(&p);
  p.seed = 42;
  p.background_noise = 0.005f;
  char one[512], two[512];
  snprintf(one, sizeof one, "%s", mt_path("t1.h5"));
  snprintf(two, sizeof two, "%s", mt_path("t2.h5"));
  duet_err err = {0};
  duet_synth_write_opts o = {.count = COUNT, .threads = 1};
  CHECK_MSG(duet_synth_write(one, &p, &o, &err) == 0, "%s", err.msg);
  o.threads = 2;
  CHECK_MSG(duet_synth_write(two, &p, &o, &err) == 0, "%s", err.msg);
  compare_files(one, two, &p);

  int64_t size = mt_file_size(one);
  int rc = duet_synth_write(one, &p, &o, &err);
  CHECK(rc < 0);
  CHECK_MSG(strstr(err.msg, "exists") != NULL, "%s", err.msg);
  CHECK_EQ_INT(mt_file_size(one), size);
  o.overwrite = 1;
  CHECK_MSG(duet_synth_write(one, &p, &o, &err) == 0, "%s", err.msg);

  p.max_objects = 9;
  rc = duet_synth_write(mt_path("bad.h5"), &p, &o, &err);
  CHECK_EQ_INT(rc, DUET_EINVAL);
  CHECK(!mt_file_exists(mt_path("bad.h5")));
}

static int tool(const char *args, const char *log) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "./bin/duet-synth %s >/dev/null 2>%s", args, log);
  int st = system(cmd);
  return st == -1 ? -1 : (WIFEXITED(st) ? WEXITSTATUS(st) : 128);
}

static int log_has(const char *log, const char *what) {
  FILE *f = fopen(log, "r");
  if (!f) return 0;
  char buf[8192];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  return strstr(buf, what) != NULL;
}

static void test_tool(void) {
  if (!mt_file_exists("bin/duet-synth")) {
    fprintf(stderr, "bin/duet-synth not built; tool checks skipped\n");
    return;
  }
  char a[512], b[512], log[512], args[2048];
  snprintf(a, sizeof a, "%s", mt_path("tool1.h5"));
  snprintf(b, sizeof b, "%s", mt_path("tool2.h5"));
  snprintf(log, sizeof log, "%s", mt_path("tool.log"));
  snprintf(args, sizeof args, "--out %s --count %d --seed 5 --threads 1", a, COUNT);
  CHECK_EQ_INT(tool(args, log), 0);
  CHECK(log_has(log, "wrote 48 clips"));
  snprintf(args, sizeof args, "--out %s --count %d --seed 5 --threads 2 --quiet", b, COUNT);
  CHECK_EQ_INT(tool(args, log), 0);
  duet_synth_params p;
  duet_synth_params_default(&p);
  p.seed = 5;
  compare_files(a, b, &p);

  snprintf(args, sizeof args, "--out %s --count 4", a);
  CHECK_EQ_INT(tool(args, log), 1);
  CHECK(log_has(log, "exists") && log_has(log, "--force"));
  snprintf(args, sizeof args, "--out %s --count 4 --wobble 3", mt_path("w.h5"));
  CHECK_EQ_INT(tool(args, log), 2);
  CHECK(log_has(log, "--wobble"));
  snprintf(args, sizeof args, "--out %s --fps fast", mt_path("w.h5"));
  CHECK_EQ_INT(tool(args, log), 2);
  CHECK(log_has(log, "--fps") && log_has(log, "fast"));
  CHECK(!mt_file_exists(mt_path("w.h5")));
  CHECK_EQ_INT(tool("--help", log), 0);

  /* Shape flags reach the file. */
  snprintf(args, sizeof args,
           "--out %s --count 3 --seconds 1.5 --fps 12 --height 48 --width 80 --sample-rate 8000 "
           "--objects 1 --force --quiet",
           a);
  CHECK_EQ_INT(tool(args, log), 0);
  duet_clip_file *f = NULL;
  duet_err err = {0};
  if (duet_clip_file_open(&f, a, &err) == 0) {
    const duet_clip_shape *s = duet_clip_file_shape(f);
    CHECK_EQ_INT(s->frames, 18);
    CHECK_EQ_INT(s->height, 48);
    CHECK_EQ_INT(s->width, 80);
    CHECK_NEAR(s->fps, 12.0, 1e-12);
    CHECK_EQ_INT(s->sample_rate, 8000);
    CHECK_EQ_INT(s->audio_samples, 12000);
    CHECK_EQ_INT(duet_clip_file_count(f), 3);
    duet_clip_file_close(f);
  } else {
    CHECK_MSG(0, "%s", err.msg);
  }
}

int main(void) {
  test_library();
  test_tool();
  mt_run("rm -rf %s", test_tmpdir());
  return test_finish("test_synth_file");
}
