#include "media_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../testlib.h"

#ifdef DUET_HAVE_FFMPEG
#include <libavutil/log.h>
#endif

int mt_run(const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  char full[4200];
  snprintf(full, sizeof full, "( %s ) >/dev/null 2>&1", cmd);
  int st = system(full);
  if (st == -1) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

void mt_require_ffmpeg(void) {
#ifndef DUET_HAVE_FFMPEG
  printf("skipped: duet built without FFmpeg\n");
  exit(77);
#else
  av_log_set_level(AV_LOG_QUIET);
  if (mt_run("ffmpeg -hide_banner -version") != 0) {
    printf("skipped: the ffmpeg tool is not installed\n");
    exit(77);
  }
#endif
}

const char *mt_path(const char *name) {
  static char slots[64][512];
  static int next;
  char *p = slots[next++ % 64];
  snprintf(p, 512, "%s/%s", test_tmpdir(), name);
  return p;
}

double mt_mean(const uint8_t *frame, int width, int x0, int y0, int x1, int y1, int c) {
  double s = 0;
  int n = 0;
  for (int y = y0; y < y1; y++)
    for (int x = x0; x < x1; x++, n++) s += frame[((size_t)y * width + x) * 3 + c];
  return n ? s / n : 0.0;
}

double mt_rms(const float *audio, int64_t n, int64_t from, int64_t to) {
  if (from < 0) from = 0;
  if (to > n) to = n;
  double s = 0;
  for (int64_t i = from; i < to; i++) s += (double)audio[i] * audio[i];
  return to > from ? sqrt(s / (double)(to - from)) : 0.0;
}

double mt_onset(const float *audio, int64_t n, int rate, double from_s, double thr) {
  int64_t win = rate / 100;
  /* 1 ms steps: the 10 ms window's start is the onset to within a millisecond. */
  int64_t step = rate / 1000 > 0 ? rate / 1000 : 1;
  for (int64_t i = (int64_t)(from_s * rate); i + win <= n; i += step)
    if (mt_rms(audio, n, i, i + win) > thr) return (double)(i + win) / rate;
  return -1.0;
}

double mt_psnr(const uint8_t *a, const uint8_t *b, size_t n) {
  double se = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - b[i];
    se += d * d;
  }
  double mse = se / (double)n;
  return mse > 0 ? 10.0 * log10(255.0 * 255.0 / mse) : 99.0;
}

int mt_file_exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

int64_t mt_file_size(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (int64_t)sb.st_size : -1;
}

int mt_truncate_copy(const char *src, const char *dst, int64_t bytes) {
  FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
  int ok = in && out;
  char buf[65536];
  while (ok && bytes > 0) {
    size_t want = bytes < (int64_t)sizeof buf ? (size_t)bytes : sizeof buf;
    size_t got = fread(buf, 1, want, in);
    if (got == 0) break;
    ok = fwrite(buf, 1, got, out) == got;
    bytes -= (int64_t)got;
  }
  if (in) fclose(in);
  if (out && fclose(out) != 0) ok = 0;
  return ok ? 0 : -1;
}

int mt_write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  int ok = fputs(text, f) >= 0;
  if (fclose(f) != 0) ok = 0;
  return ok ? 0 : -1;
}
