/* Private to data/: what the loader's I/O thread needs from a clip file beyond clips.h, so
 * that decompression can run on other threads: stored chunks as they are on disk, and strings
 * for a whole batch read into memory the loader owns. */
#ifndef DUET_DATA_CLIPS_RAW_H
#define DUET_DATA_CLIPS_RAW_H

#include <stddef.h>
#include <stdint.h>

#include "data/clips.h"
#include "data/clips_codec.h"

enum { DUET_CLIP_VIDEO = 0, DUET_CLIP_AUDIO = 1 };
enum { DUET_CLIP_CAPTION = 0, DUET_CLIP_SOURCE = 1 };

/* The filter pipeline of video or audio when its stored chunks can be decoded with
 * clips_codec (only shuffle and deflate, host byte order), else NULL: then use
 * duet_clip_file_read_stored. */
const duet_chunk_pipeline *duet_clip_file_chunk_pipeline(const duet_clip_file *f, int which);
/* Bytes of one decoded clip, and of one element, in the stored type (u8; f32 or i16). */
size_t duet_clip_file_stored_bytes(const duet_clip_file *f, int which);
size_t duet_clip_file_stored_elem(const duet_clip_file *f, int which);

/* Reads clip i's stored chunk as it is on disk and sets *n to its size and *mask to its
 * filter mask. When *n > cap nothing is read, so the caller can grow its buffer and call
 * again; *n = 0 means the chunk was never written (read it with read_stored). */
int duet_clip_file_read_chunk(duet_clip_file *f, int which, int64_t i, void *buf, size_t cap,
                              size_t *n, uint32_t *mask, duet_err *err);
/* Reads clip i decoded by HDF5, in the stored type. */
int duet_clip_file_read_stored(duet_clip_file *f, int which, int64_t i, void *buf,
                               duet_err *err);

/* Growable bytes that hold a batch's strings; it only grows, so steady state allocates
 * nothing. */
typedef struct duet_str_arena {
  char *buf;
  size_t cap, used;
} duet_str_arena;

/* Reads captions or sources of clips idx[0..n) into the arena (reset first) and points
 * out[k] into it. A missing string becomes "" for captions and NULL for sources. */
int duet_clip_file_read_strings(duet_clip_file *f, int which, const int64_t *idx, int n,
                                duet_str_arena *arena, char **out, duet_err *err);

#endif
