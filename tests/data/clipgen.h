/* Test clips whose every value is a known function of (clip, position), so a test can check
 * any byte it reads back without keeping the originals. */
#ifndef DUET_TESTS_DATA_CLIPGEN_H
#define DUET_TESTS_DATA_CLIPGEN_H

#include <stdint.h>

#include "data/clips.h"

typedef struct clipgen_opts {
  duet_clip_shape shape;
  int with_source; /* every third clip has none */
  duet_clip_writer_opts writer;
} clipgen_opts;

/* A small shape: frames x height x width, audio as long as the video at fps 8, 64 Hz. */
duet_clip_shape clipgen_shape(int frames, int height, int width, int text_len, int text_dim,
                              int max_events);

uint8_t clipgen_pixel(int64_t clip, int t, int y, int x, int c);
float clipgen_sample(int64_t clip, int64_t s);
void clipgen_caption(int64_t clip, char *buf, int n);
/* Returns 0 when the clip has no source. */
int clipgen_source(int64_t clip, char *buf, int n);
int clipgen_events(int64_t clip, int max_events, float *events);
float clipgen_text(int64_t clip, int l, int d);
uint8_t clipgen_mask(int64_t clip, int l, int text_len);

/* Number of values that differ from clip's (audio within tol). */
int clipgen_expect_video(int64_t clip, const duet_clip_shape *s, const uint8_t *video);
int clipgen_expect_audio(int64_t clip, const duet_clip_shape *s, const float *audio, float tol);

/* Writes n clips to path through duet_clip_writer; returns 0 or prints the error. */
int clipgen_write(const char *path, int64_t n, const clipgen_opts *o);

/* Copies a file (for truncation and corruption tests). */
int clipgen_copy(const char *from, const char *to, long long keep_bytes);

#endif
