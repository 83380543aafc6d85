/* The pixel video codec: all 256 values round-trip exactly, the range is [-1, 1], decoding
 * rounds and clamps, and shapes and bad values are reported. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/video_codec.h"
#include "testlib.h"

int main(void) {
  duet_video_codec vc;
  duet_err err = {0};
  CHECK(duet_video_codec_init(&vc, DUET_VIDEO_CODEC_PIXELS, &err) == DUET_OK);
  CHECK_EQ_INT(vc.channels, 3);
  CHECK(vc.t_down == 1 && vc.h_down == 1 && vc.w_down == 1);
  CHECK(duet_video_codec_init(&vc, (duet_video_codec_kind)7, &err) == DUET_EINVAL);
  CHECK(duet_video_codec_init(&vc, DUET_VIDEO_CODEC_PIXELS, &err) == DUET_OK);

  int64_t lt, lh, lw;
  CHECK(duet_video_codec_latent_shape(&vc, 16, 64, 96, &lt, &lh, &lw, &err) == DUET_OK);
  CHECK(lt == 16 && lh == 64 && lw == 96);
  CHECK(duet_video_codec_latent_shape(&vc, 0, 64, 96, &lt, &lh, &lw, &err) == DUET_EINVAL);

  /* One clip holding every value in every channel: 2 frames x 16 x 16 x 3 = 1536 = 6 x 256. */
  enum { T = 2, H = 16, W = 16, N = T * H * W * 3 };
  uint8_t rgb[N], back[N];
  float lat[N];
  for (int i = 0; i < N; i++) rgb[i] = (uint8_t)(i * 7 % 256);
  CHECK(duet_video_codec_encode(&vc, rgb, T, H, W, lat, &err) == DUET_OK);
  int in_range = 1, exact_scale = 1;
  for (int i = 0; i < N; i++) {
    in_range &= lat[i] >= -1.0f && lat[i] <= 1.0f;
    exact_scale &= fabs(lat[i] - (rgb[i] / 127.5 - 1.0)) < 1e-6;
  }
  CHECK(in_range);
  CHECK(exact_scale);
  CHECK(duet_video_codec_decode(&vc, lat, T, H, W, back, &err) == DUET_OK);
  CHECK(memcmp(rgb, back, N) == 0);
  int seen[256] = {0}, all = 1;
  for (int i = 0; i < N; i++) seen[rgb[i]] = 1;
  for (int v = 0; v < 256; v++) all &= seen[v];
  CHECK(all);

  /* The ends map to the ends of the range exactly. */
  uint8_t ends[3] = {0, 255, 128};
  float le[3];
  CHECK(duet_video_codec_encode(&vc, ends, 1, 1, 1, le, &err) == DUET_OK);
  CHECK(le[0] == -1.0f && le[1] == 1.0f);
  CHECK_NEAR(le[2], 0.5 / 127.5, 1e-7);

  /* Rounding to nearest and clamping, including infinities. */
  float odd[3] = {-1.0f + 1.4f / 127.5f, -1.0f + 1.6f / 127.5f, 3.0f};
  uint8_t o[3];
  CHECK(duet_video_codec_decode(&vc, odd, 1, 1, 1, o, &err) == DUET_OK);
  CHECK(o[0] == 1 && o[1] == 2 && o[2] == 255);
  float far[3] = {-INFINITY, INFINITY, -1.7f};
  CHECK(duet_video_codec_decode(&vc, far, 1, 1, 1, o, &err) == DUET_OK);
  CHECK(o[0] == 0 && o[1] == 255 && o[2] == 0);

  /* A NaN is an error that names the first one. */
  float bad[6] = {0, 0, NAN, 0, NAN, 0};
  uint8_t ob[6];
  CHECK(duet_video_codec_decode(&vc, bad, 2, 1, 1, ob, &err) == DUET_ENUMERIC);
  CHECK_MSG(strstr(err.msg, "value 2 ") != NULL, "%s", err.msg);

  /* Large enough to take the parallel path: still exact. */
  int64_t big_n = 8 * 64 * 64 * 3;
  uint8_t *big = malloc((size_t)big_n), *big_back = malloc((size_t)big_n);
  float *big_lat = malloc(sizeof *big_lat * (size_t)big_n);
  for (int64_t i = 0; i < big_n; i++) big[i] = (uint8_t)((i * 2654435761u) >> 13);
  CHECK(duet_video_codec_encode(&vc, big, 8, 64, 64, big_lat, &err) == DUET_OK);
  CHECK(duet_video_codec_decode(&vc, big_lat, 8, 64, 64, big_back, &err) == DUET_OK);
  CHECK(memcmp(big, big_back, (size_t)big_n) == 0);
  free(big);
  free(big_back);
  free(big_lat);

  duet_video_codec_free(&vc);
  return test_finish("model_video_codec");
}
