/* Footage -> clip file: decode any container FFmpeg reads, bring it to one shape (scale and
 * centre-crop, constant frame rate, mono audio at one rate), cut it into clips of a fixed
 * length at a fixed stride, caption the clips from a JSON Lines sidecar, and append them to a
 * clip file (data/clips.h). Long files are decoded a window at a time, never whole.
 *
 * A file that cannot be decoded, is truncated, or has no audio (unless silence is allowed) is
 * skipped and the reason kept in the report; the output exists only if at least one clip was
 * written. */
#ifndef DUET_DATA_INGEST_H
#define DUET_DATA_INGEST_H

#include <stdint.h>

#include "core/error.h"

/* ---- captions sidecar ----
 * One JSON object per line: {"file": "...", "start": s, "end": e, "caption": "..."}; start and
 * end (seconds) are optional and default to the whole file. Blank lines are ignored. */
typedef struct duet_captions duet_captions;

/* Every malformed line is an error naming the file and line. */
int duet_captions_load(duet_captions **c, const char *path, duet_err *err);
int duet_captions_count(const duet_captions *c);
/* The entry for `file` that overlaps [start, end) the most, or -1; on a tie the entry with the
 * shorter span (a timed caption beats a whole-file one), then the earlier line.
 * An entry's file matches when the two paths are equal or one ends with the other at a '/'
 * ("clips/a.mp4" matches "/data/clips/a.mp4" and "a.mp4"). */
int duet_captions_match(const duet_captions *c, const char *file, double start, double end);
const char *duet_captions_text(const duet_captions *c, int i);
const char *duet_captions_file(const duet_captions *c, int i);
int duet_captions_line(const duet_captions *c, int i); /* 1-based line in the sidecar */
void duet_captions_free(duet_captions *c);

/* ---- ingestion ---- */
typedef struct duet_ingest_opts {
  int height, width;       /* output frame size (scale so the shorter side fits, then crop) */
  double fps;
  int sample_rate;
  double clip_seconds;     /* clip length; rounded to whole frames */
  double stride_seconds;   /* start of one clip to the start of the next */
  const char *captions;    /* JSON Lines sidecar, or NULL: clips get empty captions */
  int silent_if_no_audio;  /* 1: a file without audio gives silent clips instead of a skip */
  int overwrite;           /* replace an existing output */
  int audio_i16;           /* store audio as int16 */
} duet_ingest_opts;

enum { DUET_INGEST_DONE, DUET_INGEST_SKIPPED, DUET_INGEST_PARTIAL };

typedef struct duet_ingest_file {
  const char *path;        /* as given (not copied) */
  int status;              /* DUET_INGEST_* */
  int64_t clips;           /* clips written from this file */
  double seconds;          /* its duration, 0 when unknown */
  int silent;              /* had no audio stream and got silence */
  char reason[1024];       /* for SKIPPED and PARTIAL: the one-line error */
} duet_ingest_file;

typedef struct duet_ingest_report {
  int n_files;
  duet_ingest_file *files; /* one per input, in order */
  int64_t clips;
  int64_t captioned;       /* clips that got a caption from the sidecar */
  int unused_captions;     /* sidecar entries that matched no clip */
} duet_ingest_report;

typedef struct duet_ingest_progress {
  int file, n_files;       /* the file being read (0-based) */
  const char *path;
  int64_t clips;           /* written so far */
  double footage_seconds;  /* of input consumed so far */
  double fraction;         /* of all input bytes, 0..1 */
} duet_ingest_progress;

typedef void (*duet_ingest_progress_fn)(void *user, const duet_ingest_progress *p);

/* 64x64, 16 fps, 16 kHz, 2 s clips every 2 s. */
void duet_ingest_opts_default(duet_ingest_opts *o);
int duet_ingest_opts_check(const duet_ingest_opts *o, duet_err *err);

/* Ingests `files` into `out`. The report (always filled, even on failure; free it with
 * duet_ingest_report_free) says what happened to each file. Fails, leaving no output, when
 * nothing could be ingested, when the output cannot be written, or when the captions sidecar
 * is malformed. */
int duet_ingest(const char *out, const char *const *files, int n_files,
                const duet_ingest_opts *o, duet_ingest_progress_fn progress, void *user,
                duet_ingest_report *report, duet_err *err);
void duet_ingest_report_free(duet_ingest_report *r);

#endif
