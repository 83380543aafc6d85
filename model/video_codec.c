#include "model/video_codec.h"

#include <string.h>

int duet_video_codec_init(duet_video_codec *vc, duet_video_codec_kind kind, duet_err *err) {
  memset(vc, 0, sizeof *vc);
  switch (kind) {
    case DUET_VIDEO_CODEC_PIXELS:
      *vc = (duet_video_codec){.kind = kind, .channels = 3, .t_down = 1, .h_down = 1, .w_down = 1};
      return DUET_OK;
  }
  return duet_err_set(err, DUET_EINVAL, "video codec: unknown kind %d", (int)kind);
}

void duet_video_codec_free(duet_video_codec *vc) {
  if (vc) memset(vc, 0, sizeof *vc);
}

int duet_video_codec_latent_shape(const duet_video_codec *vc, int64_t frames, int64_t height,
                                  int64_t width, int64_t *lt, int64_t *lh, int64_t *lw,
                                  duet_err *err) {
  if (vc->t_down < 1 || vc->h_down < 1 || vc->w_down < 1 || vc->channels < 1)
    return duet_err_set(err, DUET_EINVAL, "video codec: not initialised");
  if (frames < 1 || height < 1 || width < 1)
    return duet_err_set(err, DUET_EINVAL, "video codec: clip size %lldx%lldx%lld must be positive",
                        (long long)frames, (long long)height, (long long)width);
  if (frames % vc->t_down || height % vc->h_down || width % vc->w_down)
    return duet_err_set(err, DUET_EINVAL,
                        "video codec: clip size %lldx%lldx%lld is not a multiple of the "
                        "downsampling %dx%dx%d",
                        (long long)frames, (long long)height, (long long)width, vc->t_down,
                        vc->h_down, vc->w_down);
  *lt = frames / vc->t_down;
  *lh = height / vc->h_down;
  *lw = width / vc->w_down;
  return DUET_OK;
}

/* Below this many values a parallel region costs more than it saves. */
#define PARALLEL_MIN 65536

int duet_video_codec_encode(const duet_video_codec *vc, const uint8_t *rgb, int64_t frames,
                            int64_t height, int64_t width, float *latent, duet_err *err) {
  int64_t lt, lh, lw;
  int rc = duet_video_codec_latent_shape(vc, frames, height, width, &lt, &lh, &lw, err);
  if (rc) return rc;
  if (vc->kind != DUET_VIDEO_CODEC_PIXELS)
    return duet_err_set(err, DUET_ENOTSUP, "video codec: kind %d cannot encode", (int)vc->kind);
  int64_t n = frames * height * width * 3;
#pragma omp parallel for simd schedule(static) if (n > PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) latent[i] = (float)rgb[i] / 127.5f - 1.0f;
  return DUET_OK;
}

int duet_video_codec_decode(const duet_video_codec *vc, const float *latent, int64_t frames,
                            int64_t height, int64_t width, uint8_t *rgb, duet_err *err) {
  int64_t lt, lh, lw;
  int rc = duet_video_codec_latent_shape(vc, frames, height, width, &lt, &lh, &lw, err);
  if (rc) return rc;
  if (vc->kind != DUET_VIDEO_CODEC_PIXELS)
    return duet_err_set(err, DUET_ENOTSUP, "video codec: kind %d cannot decode", (int)vc->kind);
  int64_t n = frames * height * width * 3, nan_at = INT64_MAX;
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN) reduction(min : nan_at)
  for (int64_t i = 0; i < n; i++) {
    float v = (latent[i] + 1.0f) * 127.5f;
    /* Clamp before converting: a float outside u8's range makes the conversion undefined. */
    if (v != v) {
      if (i < nan_at) nan_at = i;
      v = 0;
    }
    v = v < 0 ? 0 : (v > 255 ? 255 : v);
    rgb[i] = (uint8_t)(v + 0.5f);
  }
  if (nan_at != INT64_MAX)
    return duet_err_set(err, DUET_ENUMERIC, "video codec: latent value %lld is NaN",
                        (long long)nan_at);
  return DUET_OK;
}
