/* duet_media_read on files made by the ffmpeg tool with known content: a 160x120 25 fps clip,
 * black with a red bar near the left edge and a green bar at the very edge (which the centre
 * crop must remove), a white flash on source frames 30-32 (1.20-1.32 s), and a stereo 1 kHz
 * beep from 0.5 to 0.6 s. Light noise spreads the file's bytes evenly over time, so cutting it
 * in half cuts it at about 1.5 s. */
#include <stdlib.h>
#include <string.h>

#include "../testlib.h"
#include "data/media.h"
#include "media_util.h"

#define VIDEO_FILTER                                                                  \
  "color=c=black:s=160x120:r=25:d=3,noise=alls=12:allf=t+u,"                          \
  "drawbox=x=0:y=0:w=20:h=120:c=0x00ff00:t=fill,"                                     \
  "drawbox=x=20:y=0:w=20:h=120:c=0xff0000:t=fill,"                                    \
  "drawbox=x=50:y=20:w=60:h=80:c=white:t=fill:enable='between(n,30,32)'"
#define BEEP "if(between(t,0.5,0.6),0.5*sin(2*PI*1000*t),0)"

static int make_inputs(void) {
  int rc = mt_run("ffmpeg -y -f lavfi -i \"" VIDEO_FILTER "\" -f lavfi -i \"aevalsrc=exprs='" BEEP
                  "|" BEEP "':s=44100:c=stereo:d=3\" -c:v libx264 -pix_fmt yuv420p -crf 12 "
                  "-c:a aac -b:a 128k -movflags +faststart -shortest %s",
                  mt_path("av.mp4"));
  rc |= mt_run("ffmpeg -y -f lavfi -i \"" VIDEO_FILTER "\" -f lavfi -i \"aevalsrc=exprs='" BEEP
               "':s=44100:d=3\" -c:v libx264 -pix_fmt yuv420p -c:a aac -shortest %s",
               mt_path("tail_index.mp4"));
  rc |= mt_run("ffmpeg -y -f lavfi -i \"" VIDEO_FILTER "\" -an -c:v libx264 -pix_fmt yuv420p %s",
               mt_path("silent.mp4"));
  rc |= mt_write_text(mt_path("notes.mp4"), "these are not the frames you are looking for\n");
  int64_t n = mt_file_size(mt_path("av.mp4"));
  rc |= mt_truncate_copy(mt_path("av.mp4"), mt_path("cut.mp4"), n / 2);
  n = mt_file_size(mt_path("tail_index.mp4"));
  rc |= mt_truncate_copy(mt_path("tail_index.mp4"), mt_path("cut_tail_index.mp4"), n * 3 / 4);
  return rc;
}

static int is_flash(const duet_media *m, int k) {
  const uint8_t *f = m->video + (size_t)k * m->width * m->height * 3;
  return mt_mean(f, m->width, 24, 20, 40, 44, 1) > 200.0;
}

static void test_full_read(void) {
  duet_media m;
  duet_err err = {0};
  duet_media_opts o = {.width = 64, .height = 64, .fps = 16, .sample_rate = 16000,
                       .need_audio = 1};
  int rc = duet_media_read(mt_path("av.mp4"), &o, &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc) return;
  CHECK_EQ_INT(m.frames, 48);
  CHECK_EQ_INT(m.width, 64);
  CHECK_EQ_INT(m.height, 64);
  CHECK_NEAR(m.fps, 16.0, 1e-9);
  CHECK_NEAR(m.duration, 3.0, 0.05);
  CHECK(m.has_audio);
  CHECK_EQ_INT(m.sample_rate, 16000);
  /* AAC ends on a whole 1024-sample frame at 44.1 kHz (23 ms). */
  CHECK_NEAR((double)m.audio_samples, 48000.0, 400.0);

  /* Output frame k shows the source frame nearest k/16 s: frames 19 (1.1875 s -> 1.20) and
   * 20 (1.25 s -> 1.24) land on the flash, 18 and 21 do not. */
  for (int k = 0; k < m.frames; k++)
    CHECK_MSG(is_flash(&m, k) == (k == 19 || k == 20), "frame %d flash=%d", k, is_flash(&m, k));

  /* Scale to 85x64, crop 10.67 px each side: the green edge bar is gone, the red bar starts
   * at column 0 and is about 10.7 px wide. */
  const uint8_t *f0 = m.video;
  CHECK(mt_mean(f0, 64, 1, 8, 9, 56, 0) > 200.0);
  CHECK(mt_mean(f0, 64, 1, 8, 9, 56, 1) < 40.0);
  CHECK(mt_mean(f0, 64, 13, 8, 60, 56, 0) < 20.0);
  int green = 0;
  for (int i = 0; i < 64 * 64; i++) green += f0[i * 3 + 1] > 128 && f0[i * 3] < 100;
  CHECK_EQ_INT(green, 0);

  /* Beep: onset at 0.5 s and end at 0.6 s, each within one video frame; both channels carry
   * it at 0.5, so the mono mean is a 0.5 sine (RMS 0.354). */
  double on = mt_onset(m.audio, m.audio_samples, 16000, 0.0, 0.05);
  CHECK_NEAR(on, 0.5, 1.0 / 16);
  CHECK_NEAR(mt_rms(m.audio, m.audio_samples, 8400, 9400), 0.3536, 0.03);
  CHECK(mt_rms(m.audio, m.audio_samples, 10400, 48000) < 0.01);
  CHECK(mt_rms(m.audio, m.audio_samples, 0, 7500) < 0.01);
  duet_media_free(&m);
}

static void test_windows(void) {
  duet_media m;
  duet_err err = {0};
  duet_media_opts o = {.width = 64, .height = 64, .fps = 16, .sample_rate = 16000,
                       .start = 1.0, .duration = 1.0, .need_audio = 1};
  int rc = duet_media_read(mt_path("av.mp4"), &o, &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (!rc) {
    CHECK_EQ_INT(m.frames, 16);
    CHECK_EQ_INT(m.audio_samples, 16000);
    for (int k = 0; k < m.frames; k++) CHECK_MSG(is_flash(&m, k) == (k == 3 || k == 4), "k=%d", k);
    CHECK(mt_rms(m.audio, m.audio_samples, 0, 16000) < 0.01);
    duet_media_free(&m);
  }
  o.start = 0.25;
  o.duration = 0.5;
  rc = duet_media_read(mt_path("av.mp4"), &o, &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (!rc) {
    CHECK_EQ_INT(m.frames, 8);
    CHECK_EQ_INT(m.audio_samples, 8000);
    CHECK_NEAR(mt_onset(m.audio, m.audio_samples, 16000, 0.0, 0.05), 0.25, 1.0 / 16);
    duet_media_free(&m);
  }
  /* A window running past the end gives what there is, not an error. */
  o.start = 2.5;
  o.duration = 2.0;
  rc = duet_media_read(mt_path("av.mp4"), &o, &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (!rc) {
    CHECK_EQ_INT(m.frames, 8);
    duet_media_free(&m);
  }
  o.start = 5.0;
  rc = duet_media_read(mt_path("av.mp4"), &o, &m, &err);
  CHECK_EQ_INT(rc, DUET_EINVAL);
}

static void test_native_and_aspect(void) {
  duet_media m;
  duet_err err = {0};
  duet_media_opts o = {0};
  int rc = duet_media_read(mt_path("av.mp4"), &o, &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (!rc) {
    CHECK_EQ_INT(m.frames, 75);
    CHECK_EQ_INT(m.width, 160);
    CHECK_EQ_INT(m.height, 120);
    CHECK_NEAR(m.fps, 25.0, 1e-6);
    CHECK_EQ_INT(m.sample_rate, 44100);
    CHECK_NEAR((double)m.audio_samples / 44100.0, 3.0, 0.025);
    for (int k = 0; k < m.frames; k++) {
      const uint8_t *f = m.video + (size_t)k * 160 * 120 * 3;
      int flash = mt_mean(f, 160, 60, 30, 100, 90, 1) > 200.0;
      CHECK_MSG(flash == (k >= 30 && k <= 32), "k=%d", k);
    }
    /* The green bar survives at the native size. */
    CHECK(mt_mean(m.video, 160, 2, 10, 18, 110, 1) > 200.0);
    duet_media_free(&m);
  }
  o.width = 80;
  rc = duet_media_read(mt_path("av.mp4"), &o, &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (!rc) {
    CHECK_EQ_INT(m.width, 80);
    CHECK_EQ_INT(m.height, 60);
    duet_media_free(&m);
  }
}

static int one_line(const char *s) { return strchr(s, '\n') == NULL && s[0] != '\0'; }

static void test_bad_inputs(void) {
  duet_media m;
  duet_err err = {0};
  duet_media_opts o = {.width = 64, .height = 64, .fps = 16, .sample_rate = 16000,
                       .need_audio = 1};
  const char *p = mt_path("cut.mp4");
  int rc = duet_media_read(p, &o, &m, &err);
  CHECK_EQ_INT(rc, DUET_EFORMAT);
  CHECK_MSG(strstr(err.msg, p) && strstr(err.msg, "truncated") && one_line(err.msg), "%s", err.msg);
  CHECK(m.video == NULL && m.audio == NULL);

  /* The first second of the cut file is intact: a window there reads. */
  o.duration = 1.0;
  rc = duet_media_read(p, &o, &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (!rc) duet_media_free(&m);
  o.duration = 0;

  p = mt_path("cut_tail_index.mp4");
  rc = duet_media_read(p, &o, &m, &err);
  CHECK_EQ_INT(rc, DUET_EFORMAT);
  CHECK_MSG(strstr(err.msg, p) && strstr(err.msg, "truncated") && one_line(err.msg), "%s", err.msg);

  p = mt_path("silent.mp4");
  rc = duet_media_read(p, &o, &m, &err);
  CHECK_EQ_INT(rc, DUET_EFORMAT);
  CHECK_MSG(strstr(err.msg, p) && strstr(err.msg, "no audio stream"), "%s", err.msg);
  o.need_audio = 0;
  rc = duet_media_read(p, &o, &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (!rc) {
    CHECK(!m.has_audio && m.audio == NULL && m.audio_samples == 0);
    CHECK_EQ_INT(m.frames, 48);
    duet_media_free(&m);
  }

  p = mt_path("notes.mp4");
  rc = duet_media_read(p, &o, &m, &err);
  CHECK_EQ_INT(rc, DUET_EFORMAT);
  CHECK_MSG(strstr(err.msg, p) && strstr(err.msg, "not a media file") && one_line(err.msg), "%s",
            err.msg);

  p = mt_path("missing.mp4");
  rc = duet_media_read(p, &o, &m, &err);
  CHECK_EQ_INT(rc, DUET_EIO);
  CHECK_MSG(strstr(err.msg, p) && one_line(err.msg), "%s", err.msg);
}

int main(void) {
  mt_require_ffmpeg();
  if (make_inputs() != 0) {
    fprintf(stderr, "could not make the test inputs with ffmpeg\n");
    return 1;
  }
  test_full_read();
  test_windows();
  test_native_and_aspect();
  test_bad_inputs();
  mt_run("rm -rf %s", test_tmpdir());
  return test_finish("test_media_decode");
}
