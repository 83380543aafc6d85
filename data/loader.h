/* The training loader: batches from one clip file, sharded across ranks, shuffled per epoch,
 * read ahead on background threads, resumable from a position saved in a checkpoint.
 *
 * Order. Epoch e visits the n clips of the split in the permutation given by (seed, e) through
 * the counter RNG (file order when shuffle is 0). A global step takes the next
 * min(B * W, remaining) entries of that permutation, B = batch_size, W = world_size, and splits
 * them across ranks as evenly as possible, in rank order: with a full global batch every rank
 * gets B clips; the last global batch of an epoch may give some ranks fewer, even 0, and
 * `count` says how many (weight by it). Every clip is seen exactly once per epoch, and every
 * rank sees the epoch end at the same step.
 *
 * Position. (epoch, clips consumed by all ranks together in that epoch) names where the next
 * global batch starts. It is the same on every rank and does not depend on the world size, so
 * a run saved at one world size can continue at another: the remaining clips of the epoch are
 * then split over the new ranks, and later epochs are identical.
 *
 * Threads. One I/O thread makes every HDF5 call: it reads each clip's stored chunks as they
 * are on disk. Decompression, crop/flip and audio conversion run on up to `threads` threads,
 * the I/O thread included; with threads = 1 one thread does everything. Batches live in a ring
 * of `prefetch` buffers allocated at open, so the steady state allocates nothing. */
#ifndef DUET_DATA_LOADER_H
#define DUET_DATA_LOADER_H

#include <stdint.h>

#include "core/error.h"
#include "data/augment.h"
#include "data/clips.h"

typedef struct duet_loader_pos {
  int64_t epoch;
  int64_t consumed; /* clips of the split consumed by all ranks in this epoch, 0..n-1 */
} duet_loader_pos;

/* Which clips a loader serves. The held-out clips are the last K of the file, K = val_clips,
 * or ceil(val_fraction * N) when val_clips is 0; a writer that wants a random validation set
 * shuffles before writing. */
typedef enum duet_split {
  DUET_SPLIT_ALL = 0, /* every clip */
  DUET_SPLIT_TRAIN,   /* all but the held-out clips */
  DUET_SPLIT_VAL,     /* only the held-out clips */
} duet_split;

typedef struct duet_loader_config {
  const char *path;
  int batch_size;          /* B: clips per rank per step */
  int rank, world_size;    /* world_size 0 is taken as 1 */
  uint64_t seed;
  int shuffle;             /* 1: a new permutation every epoch; 0: file order */
  int prefetch;            /* batches held ahead of the consumer; 0 = 3 */
  int threads;             /* 1..8: the I/O thread plus threads-1 decoding threads; 0 = 2 */
  duet_split split;
  int64_t val_clips;
  double val_fraction;
  duet_augment_config augment;
  int skip_text_emb;       /* 1: leave text_emb/text_mask unread even when the file has them */
  duet_loader_pos start;   /* where to begin: {0, 0}, or a position from a checkpoint */
} duet_loader_config;

/* One rank's share of one global step. Arrays have batch_size rows; rows [count, batch_size)
 * are zero (video, audio, text), "" (captions), NaN (events) and -1 (clip_index). */
typedef struct duet_batch {
  int count;             /* clips on this rank, 0..batch_size */
  int global_count;      /* clips across all ranks in this step */
  int batch_size;
  int frames, height, width; /* height and width after cropping */
  int64_t audio_samples;
  uint8_t *video;        /* [B, T, H', W', 3] RGB */
  float *audio;          /* [B, S] mono in [-1, 1] */
  char **captions;       /* [B] UTF-8 */
  char **sources;        /* [B] or NULL entries when the file has none */
  int text_len, text_dim;
  float *text_emb;       /* [B, L, D], or NULL when not loaded */
  uint8_t *text_mask;    /* [B, L], or NULL */
  int max_events;
  float *events;         /* [B, E] seconds, NaN padded; NULL when the file has none */
  int *n_events;         /* [B] */
  int64_t *clip_index;   /* [B] index of each clip in the file */
  duet_augment *augment; /* [B] the crop and flip each clip got */
  duet_loader_pos pos;   /* where this step started */
  duet_loader_pos next;  /* where the next one starts: save this in a checkpoint */
  int epoch_end;         /* 1: this step finished its epoch (next is {epoch + 1, 0}) */
} duet_batch;

typedef struct duet_loader duet_loader;

/* Opens and validates the file, checks the config, starts the threads. */
int duet_loader_open(duet_loader **l, const duet_loader_config *cfg, duet_err *err);
/* The next batch of this rank, valid until the next call to next, seek or close. An error
 * from the background threads (a corrupt clip, say) is returned here, and again on every
 * later call. */
int duet_loader_next(duet_loader *l, const duet_batch **batch, duet_err *err);
/* Where the batch after the last one returned by next starts (cfg.start before the first).
 * Call it from the thread that calls next. */
duet_loader_pos duet_loader_position(const duet_loader *l);
/* Drops what was read ahead and continues from pos. */
int duet_loader_seek(duet_loader *l, duet_loader_pos pos, duet_err *err);
/* Clips in the split, and global steps in an epoch that starts at consumed = 0. */
int64_t duet_loader_size(const duet_loader *l);
int64_t duet_loader_steps_per_epoch(const duet_loader *l);
const duet_clip_shape *duet_loader_shape(const duet_loader *l);
void duet_loader_close(duet_loader *l);

/* The sharding rule on its own: for the global step that starts at `consumed` in an epoch of
 * n clips, rank gets permutation entries [*first, *first + *count). Returns the number of
 * clips the step takes across all ranks. */
int64_t duet_loader_shard(int64_t n, int64_t consumed, int batch_size, int world_size, int rank,
                          int64_t *first, int *count);

#endif
