/* Mono 16-bit PCM WAV, written under a temporary name and renamed into place. Needs no
 * FFmpeg, so it works in every build. */
#include "data/media.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static void put_u16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

/* Scale by 32768 so that a reader dividing by 32768 (FFmpeg, libsndfile, numpy users) gets
 * back every value in [-1, 1) to within half a step; only +1.0 itself clips, by one step. */
static int16_t to_s16(float x) {
  if (!(x == x)) return 0; /* NaN */
  float v = roundf(x * 32768.0f);
  if (v > 32767.0f) v = 32767.0f;
  if (v < -32768.0f) v = -32768.0f;
  return (int16_t)v;
}

int duet_media_write_wav(const char *path, const float *audio, int64_t samples, int sample_rate,
                         duet_err *err) {
  if (!path || samples < 0 || (samples > 0 && !audio) || sample_rate <= 0)
    return duet_err_set(err, DUET_EINVAL, "%s: bad WAV arguments", path ? path : "(null)");
  /* The RIFF size fields are 32-bit. */
  if (samples > (int64_t)(UINT32_MAX - 44) / 2)
    return duet_err_set(err, DUET_EINVAL, "%s: %lld samples is too long for WAV", path,
                        (long long)samples);
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 5);
  if (!tmp) return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", path);
  memcpy(tmp, path, plen);
  memcpy(tmp + plen, ".tmp", 5);

  int rc = 0;
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    rc = duet_err_set(err, DUET_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    free(tmp);
    return rc;
  }
  uint32_t data_bytes = (uint32_t)(samples * 2);
  uint8_t h[44];
  memcpy(h, "RIFF", 4);
  put_u32(h + 4, 36 + data_bytes);
  memcpy(h + 8, "WAVEfmt ", 8);
  put_u32(h + 16, 16);
  put_u16(h + 20, 1); /* PCM */
  put_u16(h + 22, 1); /* mono */
  put_u32(h + 24, (uint32_t)sample_rate);
  put_u32(h + 28, (uint32_t)sample_rate * 2);
  put_u16(h + 32, 2);
  put_u16(h + 34, 16);
  memcpy(h + 36, "data", 4);
  put_u32(h + 40, data_bytes);
  int ok = fwrite(h, 1, sizeof h, f) == sizeof h;

  uint8_t block[8192];
  for (int64_t i = 0; ok && i < samples;) {
    int n = 0;
    for (; n < (int)sizeof block / 2 && i < samples; n++, i++)
      put_u16(block + 2 * n, (uint16_t)to_s16(audio[i]));
    ok = fwrite(block, 2, (size_t)n, f) == (size_t)n;
  }
  if (fclose(f) != 0) ok = 0;
  if (!ok) {
    rc = duet_err_set(err, DUET_EIO, "%s: write failed: %s", tmp, strerror(errno));
  } else if (rename(tmp, path) != 0) {
    rc = duet_err_set(err, DUET_EIO, "%s: cannot rename into place: %s", path, strerror(errno));
  }
  if (rc) remove(tmp);
  free(tmp);
  return rc;
}
