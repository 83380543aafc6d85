/* PNG files (libpng): RGB8 frames out, for contact sheets, sampled frames and figures. */
#ifndef DUET_DATA_IMAGE_H
#define DUET_DATA_IMAGE_H

#include <stdint.h>

#include "core/error.h"

/* Writes rgb [height, width, 3] as an 8-bit RGB PNG, atomically (path + ".tmp", rename). */
int duet_image_write_png(const char *path, const uint8_t *rgb, int width, int height, duet_err *err);

#endif
