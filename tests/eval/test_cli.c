/* The duet-eval command line on good and bad inputs: a good MP4, one without audio, a one-frame
 * video, one with a silent track, a corrupt file and a clip file with ground-truth events. Bad
 * inputs must give a one-line message naming the file, be listed as failed in metrics.json
 * while the others are measured, and make the exit status non-zero. Skipped without ffmpeg. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "data/clips.h"
#include "testlib.h"

static char dir[512];

static int sh(const char *fmt, const char *a, const char *b) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, fmt, a, b);
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  if (s && fread(s, 1, (size_t)n, f) != (size_t)n) n = 0;
  if (s) s[n] = '\0';
  fclose(f);
  return s;
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* Runs duet-eval with args (stdout and stderr to files in dir); returns its exit status. */
static int run(const char *args) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "%s %s > %s/out.txt 2> %s/err.txt", DUET_EVAL_BIN, args, dir, dir);
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static char *err_text(void) {
  char p[600];
  snprintf(p, sizeof p, "%s/err.txt", dir);
  return slurp(p);
}

static cJSON *metrics(const char *out) {
  char p[1024];
  snprintf(p, sizeof p, "%s/metrics.json", out);
  char *s = slurp(p);
  cJSON *j = s ? cJSON_Parse(s) : NULL;
  free(s);
  return j;
}

static const char *FLASHES =
    "-f lavfi -i \"color=c=black:s=128x96:r=25:d=3,format=yuv420p,drawbox=x=32:y=24:w=64:h=48:"
    "color=white:t=fill:enable='between(n,12,13)+between(n,33,34)+between(n,51,52)'\" ";
static const char *BEEPS = /* 80 ms late */
    "-f lavfi -i \"aevalsrc='0.5*sin(2*PI*880*t)*(between(t,0.56,0.64)+between(t,1.40,1.48)+"
    "between(t,2.12,2.20))':s=48000:d=3\" ";

static void make_inputs(void) {
  char cmd[8192];
  const char *enc = "-c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac ";
  snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -loglevel error -y %s%s%s%s/good.mp4", FLASHES,
           BEEPS, enc, dir);
  CHECK(system(cmd) == 0);
  snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -loglevel error -y %s-c:v libx264 -pix_fmt yuv420p "
           "%s/noaudio.mp4", FLASHES, dir);
  CHECK(system(cmd) == 0);
  snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -loglevel error -y -f lavfi -i "
           "\"color=c=white:s=128x96:r=25:d=0.04,format=yuv420p\" %s%s%s/oneframe.mp4", BEEPS,
           enc, dir);
  CHECK(system(cmd) == 0);
  snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -loglevel error -y %s-f lavfi -i "
           "anullsrc=r=48000:cl=mono -t 3 %s%s/silence.mp4", FLASHES, enc, dir);
  CHECK(system(cmd) == 0);
  /* Corrupt: the good file's first 3 KB. */
  char a[600], b[600];
  snprintf(a, sizeof a, "%s/good.mp4", dir);
  snprintf(b, sizeof b, "%s/corrupt.mp4", dir);
  CHECK(sh("head -c 3000 %s > %s", a, b) == 0);
}

/* Two clips of a flash on frames 10-11 and a beep at 0.4 s, with those times as events. */
static void make_clip_file(const char *path) {
  duet_clip_shape s = {0};
  s.fps = 25;
  s.sample_rate = 16000;
  s.frames = 50;
  s.height = 32;
  s.width = 48;
  s.audio_samples = 32000;
  s.max_events = 4;
  duet_clip_writer *w;
  duet_err err = {0};
  int rc = duet_clip_writer_open(&w, path, &s, 1, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc) return;
  size_t vb = (size_t)50 * 32 * 48 * 3;
  uint8_t *v = calloc(vb, 1);
  float *au = calloc(32000, sizeof(float));
  for (int f = 10; f < 12; f++) memset(v + (size_t)f * 32 * 48 * 3, 255, (size_t)32 * 48 * 3);
  for (int f = 30; f < 32; f++) memset(v + (size_t)f * 32 * 48 * 3, 255, (size_t)32 * 48 * 3);
  for (int i = 0; i < 1280; i++) {
    au[6400 + i] = (float)(0.5 * sin(2 * M_PI * 600.0 * i / 16000));
    au[19200 + i] = au[6400 + i];
  }
  float ev[2] = {0.4f, 1.2f};
  for (int c = 0; c < 2; c++) {
    duet_clip clip = {0};
    clip.video = v;
    clip.audio = au;
    clip.caption = "flash and beep";
    clip.events = ev;
    clip.n_events = 2;
    CHECK_MSG(duet_clip_writer_append(w, &clip, &err) == 0, "%s", err.msg);
  }
  CHECK_MSG(duet_clip_writer_close(w, 1, &err) == 0, "%s", err.msg);
  free(v);
  free(au);
}

static void test_help_and_usage(void) {
  CHECK_EQ_INT(run("--help"), 0);
  char p[600];
  snprintf(p, sizeof p, "%s/out.txt", dir);
  char *s = slurp(p);
  CHECK(s && strstr(s, "usage: duet-eval sync"));
  free(s);
  CHECK_EQ_INT(run("sync"), 2);
  CHECK_EQ_INT(run("frobnicate x"), 2);
  CHECK_EQ_INT(run("sync --max-lag nope x.mp4"), 2);
  s = err_text();
  CHECK(s && strstr(s, "--max-lag"));
  free(s);
}

static void test_mixed_inputs(void) {
  char args[4096], out[600];
  snprintf(out, sizeof out, "%s/mixed", dir);
  snprintf(args, sizeof args,
           "sync -q --out %s %s/good.mp4 %s/noaudio.mp4 %s/oneframe.mp4 %s/silence.mp4 "
           "%s/corrupt.mp4 %s/missing.mp4",
           out, dir, dir, dir, dir, dir, dir);
  CHECK_EQ_INT(run(args), 1);
  /* One line per failed input, each naming its file. */
  char *e = err_text();
  CHECK(e != NULL);
  if (e) {
    printf("stderr of the mixed run:\n%s", e);
    const char *bad[] = {"noaudio.mp4", "oneframe.mp4", "silence.mp4", "corrupt.mp4",
                         "missing.mp4"};
    int lines = 0;
    for (char *p = e; (p = strstr(p, "duet-eval: ")); p++) lines++;
    CHECK_EQ_INT(lines, 5);
    for (int i = 0; i < 5; i++) CHECK_MSG(strstr(e, bad[i]) != NULL, "no message for %s", bad[i]);
    CHECK(strstr(e, "good.mp4") == NULL);
    free(e);
  }
  cJSON *j = metrics(out);
  CHECK(j != NULL);
  if (!j) return;
  const cJSON *clips = cJSON_GetObjectItem(j, "clips");
  CHECK_EQ_INT(cJSON_GetArraySize(clips), 6);
  CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "summary"), "failed")->valueint, 5);
  const cJSON *good = cJSON_GetArrayItem(clips, 0);
  CHECK(!strcmp(cJSON_GetObjectItem(good, "status")->valuestring, "ok"));
  double off = cJSON_GetObjectItem(cJSON_GetObjectItem(good, "offset"), "offset_ms")->valuedouble;
  CHECK_MSG(fabs(off - 80) <= 40, "good.mp4: offset %.1f ms, truth +80 ms", off);
  CHECK(cJSON_GetObjectItem(good, "av_align") != NULL);
  for (int i = 1; i < 6; i++) {
    const cJSON *c = cJSON_GetArrayItem(clips, i);
    CHECK(!strcmp(cJSON_GetObjectItem(c, "status")->valuestring, "failed"));
    const char *msg = cJSON_GetObjectItem(c, "error")->valuestring;
    const char *name = cJSON_GetObjectItem(c, "input")->valuestring;
    const char *base = strrchr(name, '/');
    CHECK_MSG(strstr(msg, base + 1) != NULL, "message '%s' does not name %s", msg, name);
  }
  cJSON_Delete(j);
  char p[1024];
  snprintf(p, sizeof p, "%s/report.md", out);
  char *md = slurp(p);
  CHECK(md && strstr(md, "## Failed inputs") && strstr(md, "001-good_mp4-offset.png"));
  free(md);
  snprintf(p, sizeof p, "%s/001-good_mp4-offset.png", out);
  CHECK(exists(p));
  snprintf(p, sizeof p, "%s/001-good_mp4-sheet.png", out);
  CHECK(exists(p));
  snprintf(p, sizeof p, "%s/metrics.json.tmp", out);
  CHECK(!exists(p));
}

static void test_single_and_folder(void) {
  char args[2048], out[600];
  snprintf(out, sizeof out, "%s/single", dir);
  snprintf(args, sizeof args, "sync --out %s --no-avalign %s/good.mp4", out, dir);
  CHECK_EQ_INT(run(args), 0);
  cJSON *j = metrics(out);
  CHECK(j && !cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "clips"), 0),
                                  "av_align"));
  cJSON_Delete(j);
  /* A folder: its media files, sorted; the bad ones fail, the run exits 1. */
  snprintf(out, sizeof out, "%s/folder", dir);
  snprintf(args, sizeof args, "sync -q --figures 0 --out %s %s", out, dir);
  CHECK_EQ_INT(run(args), 1);
  j = metrics(out);
  CHECK(j != NULL);
  if (j) {
    const cJSON *s = cJSON_GetObjectItem(j, "summary");
    CHECK(cJSON_GetObjectItem(s, "inputs")->valueint >= 5);
    CHECK(cJSON_GetObjectItem(s, "measured")->valueint >= 1);
  }
  cJSON_Delete(j);
}

static void test_clip_file(void) {
  char h5[600], out[600], args[2048];
  snprintf(h5, sizeof h5, "%s/clips/events.h5", dir);
  snprintf(out, sizeof out, "%s/clips", dir);
  mkdir(out, 0755);
  make_clip_file(h5);
  snprintf(out, sizeof out, "%s/clips-out", dir);
  snprintf(args, sizeof args, "sync -q --out %s %s", out, h5);
  CHECK_EQ_INT(run(args), 0);
  cJSON *j = metrics(out);
  CHECK(j != NULL);
  if (!j) return;
  const cJSON *clips = cJSON_GetObjectItem(j, "clips");
  CHECK_EQ_INT(cJSON_GetArraySize(clips), 2);
  const cJSON *c = cJSON_GetArrayItem(clips, 1);
  CHECK(strstr(cJSON_GetObjectItem(c, "input")->valuestring, "events.h5#1") != NULL);
  const cJSON *ev = cJSON_GetObjectItem(c, "events");
  CHECK(ev != NULL);
  if (ev) {
    CHECK_EQ_INT(cJSON_GetObjectItem(ev, "truth")->valueint, 2);
    CHECK_NEAR(cJSON_GetObjectItem(ev, "recall")->valuedouble, 1.0, 0);
  }
  double off = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "offset"), "offset_ms")->valuedouble;
  CHECK_NEAR(off, 0.0, 40.0);
  cJSON_Delete(j);
}

static void test_quality(void) {
  char args[2048], out[600], p[1024];
  snprintf(out, sizeof out, "%s/quality", dir);
  snprintf(args, sizeof args, "quality -q --out %s --ref %s/good.mp4 --test %s/good.mp4", out, dir,
           dir);
  CHECK_EQ_INT(run(args), 0);
  cJSON *j = metrics(out);
  CHECK(j != NULL);
  if (j) {
    const cJSON *v = cJSON_GetObjectItem(j, "video");
    CHECK(v && cJSON_IsNull(cJSON_GetObjectItem(v, "psnr_db"))); /* identical: infinite */
    CHECK(v && fabs(cJSON_GetObjectItem(v, "ssim")->valuedouble - 1.0) < 1e-12);
    const cJSON *a = cJSON_GetObjectItem(j, "audio");
    CHECK(a && cJSON_GetObjectItem(a, "log_spectral_distance_db")->valuedouble == 0.0);
  }
  cJSON_Delete(j);
  /* Feature sets as CSV: N(0, 1) against the same shifted by 2 in one coordinate. */
  snprintf(p, sizeof p, "%s/a.csv", dir);
  FILE *fa = fopen(p, "w");
  snprintf(p, sizeof p, "%s/b.csv", dir);
  FILE *fb = fopen(p, "w");
  fputs("x,y\n", fa);
  for (int i = 0; i < 4; i++) {
    double x = i % 2 ? 1 : -1, y = i < 2 ? 1 : -1;
    fprintf(fa, "%g,%g\n", x, y);
    fprintf(fb, "%g,%g\n", x + 2, y);
  }
  fclose(fa);
  fclose(fb);
  snprintf(args, sizeof args,
           "quality -q --out %s --features-ref %s/a.csv --features-test %s/b.csv", out, dir, dir);
  CHECK_EQ_INT(run(args), 0);
  j = metrics(out);
  CHECK(j != NULL);
  if (j) {
    const cJSON *f = cJSON_GetObjectItem(j, "features");
    CHECK_NEAR(cJSON_GetObjectItem(f, "frechet_distance")->valuedouble, 4.0, 1e-9);
  }
  cJSON_Delete(j);
  /* Mismatched dimensions are an error naming both files. */
  snprintf(p, sizeof p, "%s/c.csv", dir);
  fa = fopen(p, "w");
  fputs("1,2,3\n4,5,6\n", fa);
  fclose(fa);
  snprintf(args, sizeof args,
           "quality -q --out %s --features-ref %s/a.csv --features-test %s/c.csv", out, dir, dir);
  CHECK_EQ_INT(run(args), 1);
  char *e = err_text();
  CHECK(e && strstr(e, "c.csv") && strstr(e, "a.csv"));
  free(e);
}

int main(void) {
  if (system("ffmpeg -hide_banner -version > /dev/null 2>&1") != 0) {
    printf("eval_cli: ffmpeg not found, skipped\n");
    return 77;
  }
  snprintf(dir, sizeof dir, "%s", test_tmpdir());
  make_inputs();
  test_help_and_usage();
  test_mixed_inputs();
  test_single_and_folder();
  test_clip_file();
  test_quality();
  return test_finish("eval_cli");
}
