#include "data/image.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


int duet_image_write_png(const char *path, const uint8_t *rgb, int width, int height, duet_err *err) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
    return duet_err_set(err, DUET_EINVAL, "%s: path too long", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) return duet_err_set(err, DUET_EIO, "%s: cannot create (%s)", tmp, strerror(errno));
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info) {
    png_destroy_write_struct(&png, NULL);
    fclose(f);
    remove(tmp);
    return duet_err_set(err, DUET_ENOMEM, "%s: cannot start a PNG", path);
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    fclose(f);
    remove(tmp);
    return duet_err_set(err, DUET_EIO, "%s: PNG encoding failed", path);
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < height; y++)
    png_write_row(png, (png_const_bytep)(rgb + (size_t)y * width * 3));
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  if (fclose(f) != 0) {
    remove(tmp);
    return duet_err_set(err, DUET_EIO, "%s: write failed (%s)", tmp, strerror(errno));
  }
  if (rename(tmp, path) != 0) {
    int e = errno;
    remove(tmp);
    return duet_err_set(err, DUET_EIO, "%s: cannot rename into place (%s)", path, strerror(e));
  }
  return DUET_OK;
}
