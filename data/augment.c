#include "data/augment.h"

#include <string.h>

#include "core/rng.h"

/* Stream purpose tag, so augmentation numbers never coincide with the shuffle's. */
#define AUGMENT_PURPOSE 0x6175676d656e74ull /* "augment" */

int duet_augment_check(const duet_augment_config *c, int height, int width, const char *what,
                       duet_err *err) {
  if (c->crop_height < 0 || c->crop_width < 0 || (c->crop_height > 0) != (c->crop_width > 0))
    return duet_err_set(err, DUET_EINVAL,
                        "%s: crop must give both height and width, or neither (got %dx%d)", what,
                        c->crop_height, c->crop_width);
  if (c->crop_height > height || c->crop_width > width)
    return duet_err_set(err, DUET_EINVAL, "%s: crop %dx%d is larger than the frames (%dx%d)", what,
                        c->crop_height, c->crop_width, height, width);
  return 0;
}

void duet_augment_out_size(const duet_augment_config *c, int height, int width, int *out_h,
                           int *out_w) {
  *out_h = c->crop_height > 0 ? c->crop_height : height;
  *out_w = c->crop_width > 0 ? c->crop_width : width;
}

duet_augment duet_augment_decide(const duet_augment_config *c, uint64_t seed, int64_t epoch,
                                 int64_t clip, int height, int width) {
  int oh, ow;
  duet_augment_out_size(c, height, width, &oh, &ow);
  duet_augment a = {(height - oh) / 2, (width - ow) / 2, 0};
  duet_rng r = duet_rng_make(seed, duet_rng_stream_id(AUGMENT_PURPOSE, (uint64_t)epoch,
                                                      (uint64_t)clip));
  /* Draws are made in a fixed order whatever the config, so turning flip on does not change
   * the crops. */
  uint64_t y = duet_rng_below(&r, (uint64_t)(height - oh) + 1);
  uint64_t x = duet_rng_below(&r, (uint64_t)(width - ow) + 1);
  uint32_t f = duet_rng_u32(&r);
  if (c->random_crop) {
    a.crop_y = (int)y;
    a.crop_x = (int)x;
  }
  a.flip = c->flip ? (int)(f >> 31) : 0;
  return a;
}

void duet_augment_video(const uint8_t *src, int frames, int height, int width, uint8_t *dst,
                        int out_h, int out_w, duet_augment a) {
  size_t in_row = (size_t)width * 3, out_row = (size_t)out_w * 3;
  for (int t = 0; t < frames; t++) {
    const uint8_t *frame = src + (size_t)t * height * in_row;
    uint8_t *out = dst + (size_t)t * out_h * out_row;
    for (int y = 0; y < out_h; y++) {
      const uint8_t *s = frame + (size_t)(a.crop_y + y) * in_row + (size_t)a.crop_x * 3;
      uint8_t *d = out + (size_t)y * out_row;
      if (!a.flip) {
        memcpy(d, s, out_row);
        continue;
      }
      for (int x = 0; x < out_w; x++) {
        const uint8_t *p = s + (size_t)(out_w - 1 - x) * 3;
        d[3 * x] = p[0];
        d[3 * x + 1] = p[1];
        d[3 * x + 2] = p[2];
      }
    }
  }
}
