/* Clip files: paired video + audio clips of one shape in HDF5 (schema in docs/data-format.md).
 *
 * A writer creates a file under a temporary name and appends clips one at a time; closing it
 * with commit=1 renames it into place, commit=0 removes it, so a reader never sees a
 * half-written file. A reader validates the whole layout on open and reads clips by index. */
#ifndef DUET_DATA_CLIPS_H
#define DUET_DATA_CLIPS_H

#include <stdint.h>

#include "core/error.h"

#define DUET_CLIPS_FORMAT "duet-clips"
#define DUET_CLIPS_VERSION 1

typedef struct duet_clip_shape {
  double fps;            /* video frames per second */
  int sample_rate;       /* audio samples per second */
  int frames;            /* T */
  int height, width;     /* H, W */
  int64_t audio_samples; /* S */
  int text_len, text_dim;/* L, D of text_emb/text_mask; 0 when the file has none */
  int max_events;        /* E of events; 0 when the file has none */
} duet_clip_shape;

/* One clip in memory. Buffers are owned by whoever filled them. */
typedef struct duet_clip {
  uint8_t *video;        /* [T, H, W, 3], RGB */
  float *audio;          /* [S], mono in [-1, 1] */
  const char *caption;   /* UTF-8 */
  const char *source;    /* optional: original file and start time, or NULL */
  const float *text_emb; /* optional [L, D] when the file has text_emb */
  const uint8_t *text_mask; /* optional [L] */
  const float *events;   /* optional [n_events] seconds */
  int n_events;
} duet_clip;

/* Checks that a shape can be stored: positive sizes, and audio as long as the video to within
 * one frame (frames / fps against audio_samples / sample_rate), since a clip whose tracks
 * differ in length cannot be in sync. Messages start with `path`. */
int duet_clip_shape_check(const duet_clip_shape *shape, const char *path, duet_err *err);

typedef struct duet_clip_writer duet_clip_writer;

/* Writer options; all zero gives the defaults. */
typedef struct duet_clip_writer_opts {
  int overwrite;  /* 1: replace an existing file at path (on commit) */
  int threads;    /* compression threads: 0 = one per online CPU; 1 = compress inside append */
  int level;      /* deflate level 1..9; 0 = 1, the fastest, since the loader's inflate speed
                     barely depends on it and files are written once */
  int audio_i16;  /* 1: store audio as int16, round(x * 32768) clamped (half the bytes) */
} duet_clip_writer_opts;

/* Creates `path` (written as path + ".tmp" until closed). Fails if `path` exists and
 * overwrite is 0. Same as duet_clip_writer_open_opts with {overwrite} and defaults. */
int duet_clip_writer_open(duet_clip_writer **w, const char *path, const duet_clip_shape *shape,
                          int overwrite, duet_err *err);
int duet_clip_writer_open_opts(duet_clip_writer **w, const char *path,
                               const duet_clip_shape *shape, const duet_clip_writer_opts *opts,
                               duet_err *err);
/* Copies the clip and returns: video and audio are compressed on the writer's threads and
 * stored in order as they finish, so a generator calling append in a loop keeps every core
 * busy without batching clips itself. The caller may reuse its buffers at once. An error in a
 * clip compressed in the background is returned by a later append or by close. Not for
 * concurrent use by several threads. */
int duet_clip_writer_append(duet_clip_writer *w, const duet_clip *clip, duet_err *err);
int64_t duet_clip_writer_count(const duet_clip_writer *w);
/* commit=1: flush, close, fsync and rename into place; commit=0: close and delete. Frees w,
 * also when committing fails (the temporary file is then deleted). */
int duet_clip_writer_close(duet_clip_writer *w, int commit, duet_err *err);

typedef struct duet_clip_file duet_clip_file;

/* Opens and validates a clip file; every failure names the file and what is wrong. */
int duet_clip_file_open(duet_clip_file **f, const char *path, duet_err *err);
const duet_clip_shape *duet_clip_file_shape(const duet_clip_file *f);
int64_t duet_clip_file_count(const duet_clip_file *f);
int duet_clip_file_has_text_emb(const duet_clip_file *f);
int duet_clip_file_has_events(const duet_clip_file *f);
int duet_clip_file_has_source(const duet_clip_file *f);
/* 1 when audio is stored as int16 (read back as float, divided by 32768). */
int duet_clip_file_audio_is_i16(const duet_clip_file *f);
const char *duet_clip_file_path(const duet_clip_file *f);
/* Reads clip i into caller buffers: video [T*H*W*3], audio [S] (either may be NULL to skip).
 * caption/source, when not NULL, receive malloc'd strings the caller frees. events, when not
 * NULL, receives up to max_events times and *n_events their count (NaN padding dropped). */
int duet_clip_file_read(duet_clip_file *f, int64_t i, uint8_t *video, float *audio,
                        char **caption, char **source, float *events, int *n_events,
                        duet_err *err);
int duet_clip_file_read_text_emb(duet_clip_file *f, int64_t i, float *text_emb,
                                 uint8_t *text_mask, duet_err *err);
/* A file object serves one thread at a time; open the file twice to read from two. */
void duet_clip_file_close(duet_clip_file *f);

#endif
