/* Augmentations that keep sound and picture in sync: a spatial crop (the same window on every
 * frame) and a horizontal mirror. Neither touches time, so audio, events and captions stay
 * valid as they are. What a clip gets is a pure function of (seed, epoch, clip index) through
 * the counter RNG, so a resumed run, or a run on another number of ranks, augments each clip
 * exactly as an uninterrupted one would. */
#ifndef DUET_DATA_AUGMENT_H
#define DUET_DATA_AUGMENT_H

#include <stdint.h>

#include "core/error.h"

typedef struct duet_augment_config {
  int crop_height, crop_width; /* output frame size; 0, 0 keeps the stored size */
  int random_crop;             /* 1: a random window per (epoch, clip); 0: the centre */
  int flip;                    /* 1: mirror left-right with probability 1/2 */
} duet_augment_config;

/* What one clip gets. */
typedef struct duet_augment {
  int crop_y, crop_x; /* top-left corner of the window in the stored frame */
  int flip;
} duet_augment;

/* Checks the config against a stored frame size; messages start with `what`. */
int duet_augment_check(const duet_augment_config *c, int height, int width, const char *what,
                       duet_err *err);
/* The output frame size the config gives for a stored frame size. */
void duet_augment_out_size(const duet_augment_config *c, int height, int width, int *out_h,
                           int *out_w);
duet_augment duet_augment_decide(const duet_augment_config *c, uint64_t seed, int64_t epoch,
                                 int64_t clip, int height, int width);
/* Copies the window of every frame of src [frames, height, width, 3] into
 * dst [frames, out_h, out_w, 3], mirrored when a.flip. */
void duet_augment_video(const uint8_t *src, int frames, int height, int width, uint8_t *dst,
                        int out_h, int out_w, duet_augment a);

#endif
