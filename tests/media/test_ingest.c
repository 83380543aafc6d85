/* duet-ingest end to end: inputs made with the ffmpeg tool (MP4 and Matroska, with and
 * without audio, truncated, not media at all), a captions sidecar, then the clip file read
 * back: clip count, captions, sources, a flash and a beep in the right clip at the right
 * frame, audio phase continuous across read chunks; the tool's summary, its refusal to
 * overwrite and that a failed run leaves nothing behind. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../testlib.h"
#include "data/clips.h"
#include "data/ingest.h"
#include "media_util.h"

#define A_VIDEO                                                                        \
  "color=c=black:s=160x120:r=25:d=7,"                                                  \
  "drawbox=x=40:y=30:w=80:h=60:c=white:t=fill:enable='between(n,75,76)'"
#define A_AUDIO "aevalsrc=exprs='if(between(t,4.5,4.6),0.5*sin(2*PI*1000*t),0)':s=44100:d=7"

static int make_inputs(void) {
  int rc = 0;
  rc |= mt_run("ffmpeg -y -f lavfi -i \"" A_VIDEO "\" -f lavfi -i \"" A_AUDIO "\" -c:v libx264 "
               "-pix_fmt yuv420p -c:a aac -shortest %s", mt_path("a.mp4"));
  rc |= mt_run("ffmpeg -y -f lavfi -i \"testsrc2=s=150x100:r=24:d=4.2\" -f lavfi -i "
               "\"sine=f=300:r=48000:d=4.2\" -ac 2 -c:v libx264 -pix_fmt yuv420p -c:a libopus "
               "-shortest %s || ffmpeg -y -f lavfi -i \"testsrc2=s=150x100:r=24:d=4.2\" -f lavfi "
               "-i \"sine=f=300:r=48000:d=4.2\" -ac 2 -c:v libx264 -pix_fmt yuv420p -c:a aac "
               "-shortest %s", mt_path("b.mkv"), mt_path("b.mkv"));
  rc |= mt_run("ffmpeg -y -f lavfi -i \"testsrc2=s=160x120:r=25:d=3\" -an -c:v libx264 "
               "-pix_fmt yuv420p %s", mt_path("mute.mp4"));
  rc |= mt_run("ffmpeg -y -f lavfi -i \"testsrc2=s=160x120:r=25:d=6,noise=alls=20:allf=t\" -f lavfi "
               "-i \"sine=d=6\" -c:v libx264 -pix_fmt yuv420p -c:a aac -movflags +faststart "
               "-shortest %s", mt_path("whole.mp4"));
  rc |= mt_truncate_copy(mt_path("whole.mp4"), mt_path("cut.mp4"),
                         mt_file_size(mt_path("whole.mp4")) * 7 / 10);
  /* Long enough (150 s) to need more than one read chunk. */
  rc |= mt_run("ffmpeg -y -f lavfi -i \"color=c=gray:s=64x48:r=8:d=150\" -f lavfi -i "
               "\"sine=f=440:r=16000:d=150\" -c:v libx264 -preset ultrafast -pix_fmt yuv420p "
               "-c:a aac -b:a 96k -shortest %s", mt_path("long.mp4"));
  rc |= mt_write_text(mt_path("notes.txt"), "no pictures here\n");
  char caps[2048];
  snprintf(caps, sizeof caps,
           "{\"file\": \"a.mp4\", \"caption\": \"a dark room\"}\n"
           "\n"
           "{\"file\": \"%s\", \"start\": 4, \"end\": 6, \"caption\": \"a beep\"}\n"
           "{\"file\": \"b.mkv\", \"start\": 0, \"caption\": \"a test card hums\"}\n"
           "{\"file\": \"ghost.mp4\", \"caption\": \"never seen\"}\n",
           mt_path("a.mp4"));
  rc |= mt_write_text(mt_path("caps.jsonl"), caps);
  return rc;
}

static void check_output(const char *out) {
  duet_clip_file *f = NULL;
  duet_err err = {0};
  int rc = duet_clip_file_open(&f, out, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc) return;
  const duet_clip_shape *s = duet_clip_file_shape(f);
  CHECK_EQ_INT(duet_clip_file_count(f), 5);
  CHECK_EQ_INT(s->frames, 32);
  CHECK_EQ_INT(s->height, 64);
  CHECK_EQ_INT(s->width, 64);
  CHECK_EQ_INT(s->audio_samples, 32000);
  CHECK_EQ_INT(s->sample_rate, 16000);
  CHECK(duet_clip_file_has_source(f));
  const char *want_cap[5] = {"a dark room", "a dark room", "a beep", "a test card hums",
                             "a test card hums"};
  const char *want_src[5] = {"a.mp4@0.000", "a.mp4@2.000", "a.mp4@4.000", "b.mkv@0.000",
                             "b.mkv@2.000"};
  uint8_t *video = malloc((size_t)32 * 64 * 64 * 3);
  float *audio = malloc(sizeof(float) * 32000);
  for (int i = 0; i < 5 && i < duet_clip_file_count(f); i++) {
    char *cap = NULL, *src = NULL;
    rc = duet_clip_file_read(f, i, video, audio, &cap, &src, NULL, NULL, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc) continue;
    CHECK_MSG(!strcmp(cap, want_cap[i]), "clip %d caption '%s'", i, cap);
    size_t ls = strlen(src), lw = strlen(want_src[i]);
    CHECK_MSG(ls >= lw && !strcmp(src + ls - lw, want_src[i]), "clip %d source '%s'", i, src);
    if (i < 3) {
      /* Flash on source frames 75-76 (3.00-3.08 s): frame 16 of the clip from 2 s only. */
      for (int k = 0; k < 32; k++) {
        int bright = mt_mean(video + (size_t)k * 64 * 64 * 3, 64, 24, 24, 40, 40, 1) > 200;
        CHECK_MSG(bright == (i == 1 && k == 16), "clip %d frame %d bright=%d", i, k, bright);
      }
      /* Beep at 4.5 s: 0.5 s into the clip from 4 s, silence elsewhere. */
      if (i == 2) CHECK_NEAR(mt_onset(audio, 32000, 16000, 0.0, 0.05), 0.5, 1.0 / 16);
      else CHECK(mt_rms(audio, 32000, 0, 32000) < 0.01);
    } else {
      CHECK(mt_rms(audio, 32000, 0, 32000) > 0.05); /* the 300 Hz tone */
    }
    free(cap);
    free(src);
  }
  free(video);
  free(audio);
  duet_clip_file_close(f);
}

static void test_library(void) {
  const char *files[] = {mt_path("a.mp4"), mt_path("mute.mp4"), mt_path("cut.mp4"),
                         mt_path("notes.txt"), mt_path("b.mkv")};
  duet_ingest_opts o;
  duet_ingest_opts_default(&o);
  o.captions = mt_path("caps.jsonl");
  const char *out = mt_path("out.h5");
  duet_ingest_report rep;
  duet_err err = {0};
  int rc = duet_ingest(out, files, 5, &o, NULL, NULL, &rep, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  CHECK_EQ_INT(rep.clips, 5);
  CHECK_EQ_INT(rep.captioned, 5);
  CHECK_EQ_INT(rep.unused_captions, 1);
  CHECK_EQ_INT(rep.files[0].status, DUET_INGEST_DONE);
  CHECK_EQ_INT(rep.files[0].clips, 3);
  CHECK_EQ_INT(rep.files[4].status, DUET_INGEST_DONE);
  CHECK_EQ_INT(rep.files[4].clips, 2);
  CHECK_EQ_INT(rep.files[1].status, DUET_INGEST_SKIPPED);
  CHECK_MSG(strstr(rep.files[1].reason, "no audio stream") != NULL, "%s", rep.files[1].reason);
  CHECK_EQ_INT(rep.files[2].status, DUET_INGEST_SKIPPED);
  CHECK_MSG(strstr(rep.files[2].reason, "truncated") && strstr(rep.files[2].reason, "cut.mp4"),
            "%s", rep.files[2].reason);
  CHECK_EQ_INT(rep.files[3].status, DUET_INGEST_SKIPPED);
  CHECK_MSG(strstr(rep.files[3].reason, "not a media file") != NULL, "%s", rep.files[3].reason);
  duet_ingest_report_free(&rep);
  check_output(out);

  /* Refuses to overwrite; the file stays as it was. */
  int64_t size = mt_file_size(out);
  rc = duet_ingest(out, files, 1, &o, NULL, NULL, &rep, &err);
  CHECK(rc != 0);
  CHECK_MSG(strstr(err.msg, "exists") != NULL, "%s", err.msg);
  CHECK_EQ_INT(mt_file_size(out), size);
  duet_ingest_report_free(&rep);

  /* Silence for the mute file when asked. */
  o.silent_if_no_audio = 1;
  o.overwrite = 1;
  o.captions = NULL;
  rc = duet_ingest(out, &files[1], 1, &o, NULL, NULL, &rep, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  CHECK_EQ_INT(rep.clips, 1);
  CHECK(rep.files[0].silent);
  duet_ingest_report_free(&rep);
  duet_clip_file *f = NULL;
  if (duet_clip_file_open(&f, out, &err) == 0) {
    float *audio = malloc(sizeof(float) * 32000);
    CHECK(duet_clip_file_read(f, 0, NULL, audio, NULL, NULL, NULL, NULL, &err) == 0);
    CHECK(mt_rms(audio, 32000, 0, 32000) == 0.0);
    free(audio);
    duet_clip_file_close(f);
  }

  /* Nothing ingestible: an error and no output at all. */
  const char *bad[] = {mt_path("notes.txt"), mt_path("cut.mp4")};
  const char *none = mt_path("none.h5");
  rc = duet_ingest(none, bad, 2, &o, NULL, NULL, &rep, &err);
  CHECK(rc != 0);
  CHECK_MSG(strstr(err.msg, "nothing ingested") != NULL, "%s", err.msg);
  CHECK(!mt_file_exists(none));
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp", none);
  CHECK(!mt_file_exists(tmp));
  duet_ingest_report_free(&rep);

  /* A malformed sidecar names its line. */
  mt_write_text(mt_path("bad.jsonl"), "{\"file\": \"a.mp4\", \"caption\": \"ok\"}\n{\"file\": 3}\n");
  o.captions = mt_path("bad.jsonl");
  rc = duet_ingest(none, files, 1, &o, NULL, NULL, &rep, &err);
  CHECK_EQ_INT(rc, DUET_EFORMAT);
  CHECK_MSG(strstr(err.msg, "bad.jsonl:2") != NULL, "%s", err.msg);
  CHECK(!mt_file_exists(none));
  duet_ingest_report_free(&rep);
}

/* 150 s in 74 overlapping clips (3 s every 2 s): more than one read chunk, and each clip's
 * 440 Hz tone in the phase its start time predicts. */
static void test_long_file(void) {
  const char *files[] = {mt_path("long.mp4")};
  duet_ingest_opts o;
  duet_ingest_opts_default(&o);
  o.clip_seconds = 3.0;
  o.height = 48;
  o.width = 64;
  const char *out = mt_path("long.h5");
  duet_ingest_report rep;
  duet_err err = {0};
  int rc = duet_ingest(out, files, 1, &o, NULL, NULL, &rep, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  CHECK_EQ_INT(rep.clips, 74);
  duet_ingest_report_free(&rep);
  duet_clip_file *f = NULL;
  if (rc || duet_clip_file_open(&f, out, &err)) return;
  float *audio = malloc(sizeof(float) * 48000);
  double worst = 1.0;
  for (int i = 0; i < duet_clip_file_count(f); i++) {
    char *src = NULL;
    if (duet_clip_file_read(f, i, NULL, audio, NULL, &src, NULL, NULL, &err)) break;
    double t0 = atof(strrchr(src, '@') + 1);
    CHECK_NEAR(t0, 2.0 * i, 1e-9);
    /* Correlation with the tone as it should sound from t0 (the source's amplitude is 1/8). */
    double c = 0, e = 0;
    for (int k = 1000; k < 47000; k++) {
      double ref = sin(2 * M_PI * 440.0 * (t0 + k / 16000.0));
      c += ref * audio[k];
      e += (double)audio[k] * audio[k];
    }
    double corr = c / sqrt(e * 23000.0 + 1e-30);
    if (corr < worst) worst = corr;
    free(src);
  }
  CHECK_MSG(worst > 0.95, "worst tone correlation %.3f", worst);
  free(audio);
  duet_clip_file_close(f);
}

static int tool(const char *args, const char *log) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "./bin/duet-ingest %s >/dev/null 2>%s", args, log);
  int st = system(cmd);
  return st == -1 ? -1 : (WIFEXITED(st) ? WEXITSTATUS(st) : 128);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return calloc(1, 1);
  char *b = calloc(1, 65536);
  size_t n = fread(b, 1, 65535, f);
  b[n] = '\0';
  fclose(f);
  return b;
}

static void test_tool(void) {
  if (!mt_file_exists("bin/duet-ingest")) {
    fprintf(stderr, "bin/duet-ingest not built; tool checks skipped\n");
    return;
  }
  char args[4096], out[512], log[512];
  snprintf(out, sizeof out, "%s", mt_path("tool.h5"));
  snprintf(log, sizeof log, "%s", mt_path("tool.log"));
  snprintf(args, sizeof args, "--out %s --captions %s %s %s %s %s %s", out, mt_path("caps.jsonl"),
           mt_path("a.mp4"), mt_path("mute.mp4"), mt_path("cut.mp4"), mt_path("notes.txt"),
           mt_path("b.mkv"));
  CHECK_EQ_INT(tool(args, log), 0);
  char *text = slurp(log);
  CHECK_MSG(strstr(text, "wrote 5 clips (5 captioned) from 2 of 5 files") != NULL, "%s", text);
  CHECK_MSG(strstr(text, "skipped 3 files") && strstr(text, "mute.mp4: no audio stream") &&
                strstr(text, "cut.mp4: truncated") && strstr(text, "notes.txt: not a media file"),
            "%s", text);
  CHECK_MSG(strstr(text, "1 caption entry matched no clip") != NULL, "%s", text);
  free(text);
  check_output(out);

  /* Again without --force: refused, exit 1, file untouched. */
  int64_t size = mt_file_size(out);
  CHECK_EQ_INT(tool(args, log), 1);
  text = slurp(log);
  CHECK_MSG(strstr(text, "exists") && strstr(text, "--force"), "%s", text);
  free(text);
  CHECK_EQ_INT(mt_file_size(out), size);

  snprintf(args, sizeof args, "--out %s --frobnicate %s", mt_path("x.h5"), mt_path("a.mp4"));
  CHECK_EQ_INT(tool(args, log), 2);
  text = slurp(log);
  CHECK_MSG(strstr(text, "--frobnicate") != NULL, "%s", text);
  free(text);

  snprintf(args, sizeof args, "--out %s %s", mt_path("x.h5"), mt_path("notes.txt"));
  CHECK_EQ_INT(tool(args, log), 1);
  CHECK(!mt_file_exists(mt_path("x.h5")));
  CHECK_EQ_INT(mt_run("./bin/duet-ingest --help"), 0);
}

int main(void) {
  mt_require_ffmpeg();
  if (make_inputs() != 0) {
    fprintf(stderr, "could not make the test inputs with ffmpeg\n");
    return 1;
  }
  test_library();
  test_long_file();
  test_tool();
  mt_run("rm -rf %s", test_tmpdir());
  return test_finish("test_ingest");
}
