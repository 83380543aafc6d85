/* loss.png: a PNG of the plot's size that shows each series in its colour, also when a series
 * has non-finite or non-positive values (skipped on the log axis) or nothing at all. */
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "train/loss_plot.h"

typedef struct image {
  int w, h;
  uint8_t *rgb;
} image;

static int read_png(const char *path, image *im) {
  png_image p;
  memset(&p, 0, sizeof p);
  p.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&p, path)) return -1;
  p.format = PNG_FORMAT_RGB;
  im->w = (int)p.width;
  im->h = (int)p.height;
  im->rgb = malloc(PNG_IMAGE_SIZE(p));
  if (!im->rgb || !png_image_finish_read(&p, NULL, im->rgb, 0, NULL)) {
    png_image_free(&p);
    return -1;
  }
  return 0;
}

static int count_colour(const image *im, const uint8_t rgb[3]) {
  int n = 0;
  for (int i = 0; i < im->w * im->h; i++) n += memcmp(im->rgb + 3 * i, rgb, 3) == 0;
  return n;
}

int main(void) {
  enum { N = 300 };
  int64_t xs[N], vx[6];
  float ys[N], vy[6];
  for (int i = 0; i < N; i++) {
    xs[i] = i + 1;
    ys[i] = (float)(3.0 * exp(-i / 80.0) + 0.05 + 0.02 * sin(i));
  }
  ys[17] = NAN;
  ys[18] = INFINITY;
  ys[19] = 0;
  for (int i = 0; i < 6; i++) {
    vx[i] = i * 60;
    vy[i] = (float)(3.0 * exp(-i * 60 / 80.0) + 0.06);
  }
  duet_plot_series s[3] = {
      {xs, ys, N, {31, 119, 180}, "train", 1},
      {vx, vy, 6, {214, 39, 40}, "val", 0},
      {vx, vy, 0, {0, 160, 0}, "empty", 0},
  };
  char path[512];
  snprintf(path, sizeof path, "%s/loss.png", test_tmpdir());
  duet_err err;
  CHECK_MSG(duet_loss_plot_write(path, s, 3, &err) == DUET_OK, "%s", err.msg);
  image im = {0};
  CHECK(read_png(path, &im) == 0);
  CHECK_EQ_INT(im.w, 800);
  CHECK_EQ_INT(im.h, 480);
  if (im.rgb) {
    CHECK(count_colour(&im, s[0].rgb) > 300); /* the smoothed curve spans the plot */
    CHECK(count_colour(&im, s[1].rgb) > 50);  /* line, dots and legend */
    CHECK_EQ_INT(count_colour(&im, s[2].rgb), 0);
  }
  free(im.rgb);

  /* Nothing drawable: empty axes, still a valid file. */
  s[0].n = 0;
  snprintf(path, sizeof path, "%s/empty.png", test_tmpdir());
  CHECK(duet_loss_plot_write(path, s, 1, &err) == DUET_OK);
  CHECK(read_png(path, &im) == 0);
  free(im.rgb);
  return test_finish("train_plot");
}
