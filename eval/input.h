/* What duet-eval reads: media files (through data/media.h), folders of them, and clip files
 * (HDF5, through data/clips.h), each clip of which is one input with its ground-truth events
 * when the file has them. */
#ifndef DUET_EVAL_INPUT_H
#define DUET_EVAL_INPUT_H

#include <stdint.h>

#include "core/error.h"
#include "eval/eval.h"

typedef struct duet_eval_source {
  char *path;    /* file to read */
  int64_t clip;  /* index in a clip file, or -1 for a media file */
  char *name;    /* how reports call it: the path, or path#index */
  char *error;   /* set when the input already failed while being listed */
} duet_eval_source;

typedef struct duet_eval_sources {
  duet_eval_source *items;
  int count, cap;
} duet_eval_sources;

/* Expands arguments into sources: a folder gives its media and clip files (sorted, not
 * recursive), a clip file (.h5, .hdf5) one source per clip, anything else one media source.
 * An argument that cannot be listed becomes a source with `error` set rather than failing the
 * whole run; only running out of memory fails. */
int duet_eval_sources_collect(char *const *args, int n_args, duet_eval_sources *out,
                              duet_err *err);
void duet_eval_sources_free(duet_eval_sources *s);

/* A clip loaded into memory; clip points into the buffers it owns. */
typedef struct duet_eval_loaded {
  duet_eval_clip clip;
  uint8_t *video;
  float *audio;
  double *events;
} duet_eval_loaded;

/* Reads a source in full (native size, rate and frame rate). need_video / need_audio: a file
 * without that stream is an error naming it. Messages start with the source's name. */
int duet_eval_source_load(const duet_eval_source *s, int need_video, int need_audio,
                          duet_eval_loaded *out, duet_err *err);
void duet_eval_loaded_free(duet_eval_loaded *l);

/* 1 when the path names a clip file by its extension. */
int duet_is_clip_file(const char *path);

#endif
