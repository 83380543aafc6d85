/* Private to data/: the clip file object, shared by the code that opens and checks a file
 * (clips.c) and the code that reads from it (clips_read.c). */
#ifndef DUET_DATA_CLIPS_FILE_H
#define DUET_DATA_CLIPS_FILE_H

#include <hdf5.h>

#include "data/clips.h"
#include "data/clips_codec.h"

/* How a caption or source dataset stores its strings. */
typedef struct strings_info {
  int fixed;      /* fixed-length strings (else variable-length) */
  size_t size;    /* stored size of a fixed-length string */
  hid_t mem_type; /* what H5Dread converts to */
} strings_info;

struct duet_clip_file {
  char *path;
  hid_t file, video, audio, caption, source, text_emb, text_mask, events;
  duet_clip_shape shape;
  int64_t n;
  int audio_i16;
  strings_info caption_str, source_str;
  duet_chunk_pipeline pipe[2];
  int raw_ok[2];
  int16_t *audio_scratch;
  char empty[1]; /* what a caption never written reads as */
};

/* "path: message", the form every error of the reader takes. */
int duet_clip_failf(duet_err *err, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "path: what: <HDF5's innermost message>". */
int duet_clip_fail_h5(duet_err *err, const char *path, const char *what);

#endif
