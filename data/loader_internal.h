/* Private to the loader: the ring slot, the loader itself, and the two jobs the threads do on a
 * slot (fill it from the file on the I/O thread; decode one of its clips on any thread). */
#ifndef DUET_DATA_LOADER_INTERNAL_H
#define DUET_DATA_LOADER_INTERNAL_H

#include <pthread.h>
#include <stddef.h>

#include "data/clips_codec.h"
#include "data/clips_raw.h"
#include "data/loader.h"

#define DUET_LOADER_MAX_THREADS 8

/* A slot goes FREE -> FILLING (I/O thread) -> READ (clips being decoded) -> READY ->
 * IN_USE (returned by next) -> FREE (at the following next). */
enum { SLOT_FREE, SLOT_FILLING, SLOT_READ, SLOT_READY, SLOT_IN_USE };

/* Where one clip's stored bytes sit in the slot's raw buffer. decoded: HDF5 already undid the
 * filters (the fallback for pipelines clips_codec does not handle, or unwritten chunks). */
typedef struct duet_raw_part {
  size_t off, n;
  uint32_t mask;
  int decoded;
} duet_raw_part;

typedef struct duet_loader_slot {
  duet_batch b;
  int state;
  int claimed, decoded; /* clips handed to a decoding thread, and finished */
  uint8_t *raw;
  size_t raw_cap, raw_used;
  duet_raw_part *video_part, *audio_part;
  duet_str_arena captions, sources;
  int rc;
  duet_err err;
} duet_loader_slot;

/* What a decoding thread keeps between clips. */
typedef struct duet_decode_scratch {
  duet_inflater inflater;
  uint8_t *frame;  /* a whole stored clip, when it must be cropped or flipped afterwards */
  uint8_t *stage;  /* the middle step of a two-filter pipeline */
  int16_t *pcm16;  /* int16 audio before conversion */
} duet_decode_scratch;

struct duet_loader {
  duet_loader_config cfg;
  char *path;
  duet_clip_file *file;
  duet_clip_shape shape;
  int out_h, out_w, load_text;
  int64_t first, n; /* the split: file clips [first, first + n) */
  size_t video_bytes, out_video_bytes, audio_bytes; /* stored video, cropped video, stored audio */
  const duet_chunk_pipeline *video_pipe, *audio_pipe;

  duet_loader_slot *slots;
  int nslots;
  int64_t seq_read, seq_consume; /* next step the I/O thread fills / the consumer takes */
  duet_loader_pos read_pos;      /* I/O thread only: where the next step to fill starts */
  duet_loader_pos pos;           /* consumer: where the step after the last returned starts */
  int64_t *perm, perm_epoch;
  char empty[1];                 /* the caption of rows past count */

  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t threads[DUET_LOADER_MAX_THREADS];
  int nthreads, started, stop, io_done;
  duet_decode_scratch scratch[DUET_LOADER_MAX_THREADS];
  duet_loader_slot *held;
  int failed;
  duet_err fail;
};

/* I/O thread: composes the step that starts at l->read_pos, reads its stored bytes, strings,
 * events and text, and advances read_pos. Errors go to s->rc / s->err. */
int duet_loader_fill(duet_loader *l, duet_loader_slot *s);
/* Any thread: decodes clip k of a filled slot into the batch (no HDF5 calls). */
int duet_loader_decode(duet_loader *l, duet_loader_slot *s, int k, duet_decode_scratch *sc,
                       duet_err *err);

#endif
