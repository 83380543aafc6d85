#include "data/image.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


int duet_image_write_png(const char *path, const uint8_t *rgb, int width, int height, duet_err *err) {
  if (width < 1 || height < 1) return duet_err_set(err, DUET_EINVAL, "%s: empty image (%dx%d)", path, width, height);
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) return duet_err_set(err, DUET_EIO, "%s: cannot write", tmp);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  png_bytep *rows = malloc(sizeof *rows * (size_t)height);
  int ok = png && info && rows;
  /* libpng reports errors by longjmp; volatile keeps ok meaningful after it. */
  if (ok && setjmp(png_jmpbuf(png))) ok = 0;
  else if (ok) {
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    for (int y = 0; y < height; y++) rows[y] = (png_bytep)(rgb + (size_t)y * (size_t)width * 3);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
  }
  png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
  free(rows);
  if (fclose(f) != 0) ok = 0;
  if (!ok) {
    remove(tmp);
    return duet_err_set(err, DUET_EIO, "%s: cannot write the PNG", path);
  }
  if (rename(tmp, path) != 0) {
    remove(tmp);
    return duet_err_set(err, DUET_EIO, "%s: cannot rename into place", path);
  }
  return DUET_OK;
}
