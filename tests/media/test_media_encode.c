/* Round trips through the writers: MP4 (H.264 + AAC) back through duet_media_read within a
 * PSNR bound and with audio in place, odd sizes padded to even, and WAV exact to 16 bits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../testlib.h"
#include "data/media.h"
#include "media_util.h"

/* Smooth colour ramps plus a moving square: content a codec at a sane quality keeps well. */
static uint8_t *make_frames(int frames, int h, int w) {
  uint8_t *v = malloc((size_t)frames * h * w * 3);
  for (int t = 0; t < frames; t++)
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) {
        uint8_t *p = v + (((size_t)t * h + y) * w + x) * 3;
        p[0] = (uint8_t)(40 + 160 * x / w);
        p[1] = (uint8_t)(40 + 160 * y / h);
        p[2] = (uint8_t)(120 + 60 * sin(0.2 * t));
        int sx = 4 + (t * 2) % (w - 16), sy = h / 3;
        if (x >= sx && x < sx + 10 && y >= sy && y < sy + 10) p[0] = p[1] = p[2] = 235;
      }
  return v;
}

static void test_mp4(int h, int w) {
  const int frames = 32, rate = 16000;
  const double fps = 16.0;
  uint8_t *video = make_frames(frames, h, w);
  int64_t n = 2 * rate;
  float *audio = malloc((size_t)n * sizeof *audio);
  for (int64_t i = 0; i < n; i++) audio[i] = 0.5f * sinf(2.0f * 3.14159265f * 440.0f * i / rate);
  char name[64];
  snprintf(name, sizeof name, "rt_%dx%d.mp4", w, h);
  const char *path = mt_path(name);
  duet_err err = {0};
  int rc = duet_media_write_mp4(path, video, frames, h, w, fps, audio, n, rate, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  CHECK(!mt_file_exists(tmp));

  duet_media m;
  duet_media_opts o = {.need_audio = 1};
  rc = duet_media_read(path, &o, &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (!rc) {
    int eh = h + (h & 1), ew = w + (w & 1);
    CHECK_EQ_INT(m.frames, frames);
    CHECK_EQ_INT(m.height, eh);
    CHECK_EQ_INT(m.width, ew);
    CHECK_NEAR(m.fps, fps, 1e-6);
    CHECK_EQ_INT(m.sample_rate, rate);
    CHECK_NEAR((double)m.audio_samples, (double)n, 1024.0);
    /* The w x h corner of every decoded frame against the original. */
    uint8_t *crop = malloc((size_t)frames * h * w * 3);
    for (int t = 0; t < frames; t++)
      for (int y = 0; y < h; y++)
        memcpy(crop + (((size_t)t * h + y) * w) * 3, m.video + (((size_t)t * eh + y) * ew) * 3,
               (size_t)w * 3);
    double psnr = mt_psnr(crop, video, (size_t)frames * h * w * 3);
    CHECK_MSG(psnr > 36.0, "PSNR %.2f dB at %dx%d", psnr, w, h);
    free(crop);
    /* The padding repeats the edge, so it looks like the last column and row. */
    if (ew > w) {
      const uint8_t *f = m.video;
      CHECK(abs((int)f[(size_t)(ew - 1) * 3] - (int)f[(size_t)(ew - 2) * 3]) < 16);
    }
    /* Audio: in place (no lag from encoder priming) and close in value. */
    int best_lag = 0;
    double best = -1e30;
    for (int lag = -64; lag <= 64; lag++) {
      double c = 0;
      for (int64_t i = 2000; i < 30000; i++) c += (double)audio[i] * m.audio[i + lag];
      if (c > best) {
        best = c;
        best_lag = lag;
      }
    }
    CHECK_EQ_INT(best_lag, 0);
    double se = 0, ss = 0;
    for (int64_t i = 2000; i < 30000; i++) {
      double d = (double)m.audio[i] - audio[i];
      se += d * d;
      ss += (double)audio[i] * audio[i];
    }
    double snr = 10.0 * log10(ss / (se + 1e-30));
    CHECK_MSG(snr > 30.0, "audio SNR %.1f dB", snr);
    duet_media_free(&m);
  }

  /* Without audio: a video-only file. */
  snprintf(name, sizeof name, "mute_%dx%d.mp4", w, h);
  path = mt_path(name);
  rc = duet_media_write_mp4(path, video, frames, h, w, fps, NULL, 0, 0, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  o.need_audio = 0;
  rc = duet_media_read(path, &o, &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (!rc) {
    CHECK(!m.has_audio);
    CHECK_EQ_INT(m.frames, frames);
    duet_media_free(&m);
  }
  free(video);
  free(audio);
}

/* A rate AAC does not take (15 kHz) is resampled to one it does, and reads back at 15 kHz. */
static void test_mp4_odd_rate(void) {
  const int rate = 15000;
  uint8_t *video = make_frames(16, 32, 32);
  float *audio = calloc(rate, sizeof *audio);
  for (int i = 7500; i < 7800; i++) audio[i] = 0.5f * sinf(2.0f * 3.14159265f * 1000.0f * i / rate);
  duet_err err = {0};
  const char *path = mt_path("rate.mp4");
  int rc = duet_media_write_mp4(path, video, 16, 32, 32, 16.0, audio, rate, rate, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  duet_media m;
  duet_media_opts o = {.sample_rate = rate, .need_audio = 1};
  rc = duet_media_read(path, &o, &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (!rc) {
    CHECK_NEAR(mt_onset(m.audio, m.audio_samples, rate, 0.0, 0.05), 0.5, 1.0 / 16);
    duet_media_free(&m);
  }
  free(video);
  free(audio);
}

static uint32_t rd32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static void test_wav(void) {
  const int64_t n = 5000;
  float *x = malloc(n * sizeof *x);
  for (int64_t i = 0; i < n; i++) x[i] = (float)(2.0 * ((i * 7919) % 10007) / 10007.0 - 1.0);
  x[0] = 1.0f;
  x[1] = -1.0f;
  x[2] = 0.0f;
  x[3] = 2.5f; /* clips */
  const char *path = mt_path("a.wav");
  duet_err err = {0};
  int rc = duet_media_write_wav(path, x, n, 16000, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  CHECK_EQ_INT(mt_file_size(path), 44 + 2 * n);
  FILE *f = fopen(path, "rb");
  uint8_t *b = malloc((size_t)(44 + 2 * n));
  CHECK(f && fread(b, 1, (size_t)(44 + 2 * n), f) == (size_t)(44 + 2 * n));
  if (f) fclose(f);
  CHECK(!memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WAVEfmt ", 8) && !memcmp(b + 36, "data", 4));
  CHECK_EQ_INT(rd32(b + 4), 36 + 2 * n);
  CHECK_EQ_INT(rd16(b + 20), 1);
  CHECK_EQ_INT(rd16(b + 22), 1);
  CHECK_EQ_INT(rd32(b + 24), 16000);
  CHECK_EQ_INT(rd16(b + 34), 16);
  CHECK_EQ_INT(rd32(b + 40), 2 * n);
  double worst = 0;
  for (int64_t i = 0; i < n; i++) {
    double v = (int16_t)rd16(b + 44 + 2 * i) / 32768.0;
    double want = x[i] > 1.0f ? 1.0 : x[i];
    if (fabs(v - want) > worst) worst = fabs(v - want);
  }
  CHECK_MSG(worst <= 1.0 / 32768 + 1e-12, "worst WAV error %.3g", worst);
  free(b);

  /* FFmpeg reads it back the same. */
  const char *raw = mt_path("a.f32");
  CHECK_EQ_INT(mt_run("ffmpeg -y -i %s -f f32le -acodec pcm_f32le %s", path, raw), 0);
  CHECK_EQ_INT(mt_file_size(raw), 4 * n);
  f = fopen(raw, "rb");
  float *y = malloc(n * sizeof *y);
  CHECK(f && fread(y, sizeof *y, n, f) == (size_t)n);
  if (f) fclose(f);
  worst = 0;
  for (int64_t i = 0; i < n; i++) {
    double want = x[i] > 1.0f ? 1.0 : x[i];
    if (fabs(y[i] - want) > worst) worst = fabs(y[i] - want);
  }
  CHECK_MSG(worst <= 1.0 / 32768 + 1e-12, "worst WAV error via ffmpeg %.3g", worst);
  free(y);

  /* A path in a missing folder fails cleanly and leaves nothing. */
  const char *bad = mt_path("no/such/dir/a.wav");
  rc = duet_media_write_wav(bad, x, n, 16000, &err);
  CHECK_EQ_INT(rc, DUET_EIO);
  CHECK(strstr(err.msg, "no/such/dir") != NULL);
  uint8_t frame[12 * 3] = {0};
  rc = duet_media_write_mp4(mt_path("no/such/dir/a.mp4"), frame, 1, 2, 6, 16.0, NULL, 0, 0, &err);
  CHECK(rc < 0);
  CHECK(strstr(err.msg, "no/such/dir") != NULL);
  free(x);
}

int main(void) {
  mt_require_ffmpeg();
  test_mp4(64, 64);
  test_mp4(45, 63);
  test_mp4_odd_rate();
  test_wav();
  mt_run("rm -rf %s", test_tmpdir());
  return test_finish("test_media_encode");
}
