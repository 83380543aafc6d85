/* Composing and decoding one step's batch: which clips (the sharding rule), reading their
 * stored bytes on the I/O thread, and turning those into the batch on a decoding thread. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "data/loader_internal.h"

/* Stream purpose tag for the per-epoch permutation. */
#define SHUFFLE_PURPOSE 0x73687566666c65ull /* "shuffle" */

int64_t duet_loader_shard(int64_t n, int64_t consumed, int batch_size, int world_size, int rank,
                          int64_t *first, int *count) {
  int64_t g = (int64_t)batch_size * world_size;
  int64_t m = n - consumed;
  if (m > g) m = g;
  if (m < 0) m = 0;
  /* An even split: with m = B * W every rank gets B; otherwise the first m % W ranks get one
   * more than the rest. */
  int64_t q = m / world_size, r = m % world_size;
  *count = (int)(q + (rank < r));
  *first = consumed + rank * q + (rank < r ? rank : r);
  return m;
}

static void make_permutation(duet_loader *l, int64_t epoch) {
  if (l->cfg.shuffle) {
    uint64_t stream = duet_rng_stream_id(SHUFFLE_PURPOSE, (uint64_t)epoch, (uint64_t)l->cfg.split);
    duet_rng_permutation(l->cfg.seed, stream, l->perm, l->n);
  } else {
    for (int64_t i = 0; i < l->n; i++) l->perm[i] = i;
  }
  l->perm_epoch = epoch;
}

static int reserve_raw(duet_loader_slot *s, size_t extra) {
  if (s->raw_used + extra <= s->raw_cap) return 0;
  size_t cap = s->raw_cap ? s->raw_cap : 1 << 16;
  while (cap < s->raw_used + extra) cap += cap / 2;
  uint8_t *p = realloc(s->raw, cap);
  if (!p) return -1;
  s->raw = p;
  s->raw_cap = cap;
  return 0;
}

/* Reads clip i's stored video or audio into the slot's raw buffer: the chunk as stored when
 * clips_codec can decode it, else the bytes HDF5 decodes. */
static int read_part(duet_loader *l, duet_loader_slot *s, int which, int64_t i,
                     duet_raw_part *part) {
  const duet_chunk_pipeline *pipe = which == DUET_CLIP_VIDEO ? l->video_pipe : l->audio_pipe;
  size_t stored = which == DUET_CLIP_VIDEO ? l->video_bytes : l->audio_bytes;
  part->off = s->raw_used;
  part->decoded = 0;
  if (pipe) {
    size_t n = 0;
    int rc = duet_clip_file_read_chunk(l->file, which, i, s->raw + s->raw_used,
                                       s->raw_cap - s->raw_used, &n, &part->mask, &s->err);
    if (rc) return rc;
    if (n > s->raw_cap - s->raw_used) {
      /* Grows rarely: only when a chunk is larger than any before it in this slot. */
      if (reserve_raw(s, n))
        return duet_err_set(&s->err, DUET_ENOMEM, "%s: out of memory", l->path);
      rc = duet_clip_file_read_chunk(l->file, which, i, s->raw + s->raw_used, n, &n, &part->mask,
                                     &s->err);
      if (rc) return rc;
    }
    if (n > 0) {
      part->n = n;
      s->raw_used += n;
      return 0;
    }
  }
  if (reserve_raw(s, stored))
    return duet_err_set(&s->err, DUET_ENOMEM, "%s: out of memory", l->path);
  int rc = duet_clip_file_read_stored(l->file, which, i, s->raw + s->raw_used, &s->err);
  if (rc) return rc;
  part->n = stored;
  part->decoded = 1;
  s->raw_used += stored;
  return 0;
}

static void clear_rows(duet_loader *l, duet_batch *b, int from) {
  int B = b->batch_size;
  if (from >= B) return;
  size_t rows = (size_t)(B - from);
  memset(b->video + (size_t)from * l->out_video_bytes, 0, rows * l->out_video_bytes);
  memset(b->audio + (size_t)from * b->audio_samples, 0, rows * (size_t)b->audio_samples * sizeof(float));
  if (b->text_emb) {
    memset(b->text_emb + (size_t)from * b->text_len * b->text_dim, 0,
           rows * (size_t)b->text_len * b->text_dim * sizeof(float));
    memset(b->text_mask + (size_t)from * b->text_len, 0, rows * (size_t)b->text_len);
  }
  for (int k = from; k < B; k++) {
    b->captions[k] = l->empty;
    b->sources[k] = NULL;
    b->n_events[k] = 0;
    b->clip_index[k] = -1;
    b->augment[k] = (duet_augment){0, 0, 0};
    if (b->events)
      for (int e = 0; e < b->max_events; e++) b->events[(size_t)k * b->max_events + e] = NAN;
  }
}

static int read_rows(duet_loader *l, duet_loader_slot *s) {
  duet_batch *b = &s->b;
  int rc = duet_clip_file_read_strings(l->file, DUET_CLIP_CAPTION, b->clip_index, b->count,
                                       &s->captions, b->captions, &s->err);
  if (!rc)
    rc = duet_clip_file_read_strings(l->file, DUET_CLIP_SOURCE, b->clip_index, b->count,
                                     &s->sources, b->sources, &s->err);
  for (int k = 0; k < b->count && !rc; k++) {
    int64_t i = b->clip_index[k];
    if (b->events) {
      float *row = b->events + (size_t)k * b->max_events;
      rc = duet_clip_file_read(l->file, i, NULL, NULL, NULL, NULL, row, &b->n_events[k], &s->err);
      for (int e = b->n_events[k]; e < b->max_events; e++) row[e] = NAN;
    }
    if (!rc && b->text_emb)
      rc = duet_clip_file_read_text_emb(l->file, i, b->text_emb + (size_t)k * b->text_len * b->text_dim,
                                        b->text_mask + (size_t)k * b->text_len, &s->err);
  }
  return rc;
}

int duet_loader_fill(duet_loader *l, duet_loader_slot *s) {
  duet_batch *b = &s->b;
  duet_loader_pos p = l->read_pos;
  if (l->perm_epoch != p.epoch) make_permutation(l, p.epoch);
  int64_t off;
  int count;
  int64_t take = duet_loader_shard(l->n, p.consumed, l->cfg.batch_size, l->cfg.world_size,
                                   l->cfg.rank, &off, &count);
  b->count = count;
  b->global_count = (int)take;
  b->pos = p;
  b->next = (duet_loader_pos){p.epoch, p.consumed + take};
  b->epoch_end = b->next.consumed >= l->n;
  if (b->epoch_end) b->next = (duet_loader_pos){p.epoch + 1, 0};
  l->read_pos = b->next;

  for (int k = 0; k < count; k++) {
    b->clip_index[k] = l->first + l->perm[off + k];
    b->augment[k] = duet_augment_decide(&l->cfg.augment, l->cfg.seed, p.epoch, b->clip_index[k],
                                        l->shape.height, l->shape.width);
  }
  clear_rows(l, b, count);

  s->raw_used = 0;
  s->rc = 0;
  int rc = 0;
  for (int k = 0; k < count && !rc; k++) {
    rc = read_part(l, s, DUET_CLIP_VIDEO, b->clip_index[k], &s->video_part[k]);
    if (!rc) rc = read_part(l, s, DUET_CLIP_AUDIO, b->clip_index[k], &s->audio_part[k]);
  }
  if (!rc) rc = read_rows(l, s);
  s->rc = rc;
  return rc;
}

static void i16_to_float(const int16_t *in, float *out, int64_t n) {
  for (int64_t k = 0; k < n; k++) out[k] = (float)in[k] * (1.0f / 32768.0f);
}

int duet_loader_decode(duet_loader *l, duet_loader_slot *s, int k, duet_decode_scratch *sc,
                       duet_err *err) {
  duet_batch *b = &s->b;
  const duet_augment a = b->augment[k];
  const duet_raw_part *vp = &s->video_part[k], *ap = &s->audio_part[k];
  uint8_t *video_out = b->video + (size_t)k * l->out_video_bytes;
  float *audio_out = b->audio + (size_t)k * b->audio_samples;
  int reshape = l->out_h != l->shape.height || l->out_w != l->shape.width || a.flip;

  const uint8_t *frames = s->raw + vp->off;
  if (!vp->decoded) {
    uint8_t *dst = reshape ? sc->frame : video_out;
    int rc = duet_chunk_decode(&sc->inflater, l->video_pipe, vp->mask, 1, frames, vp->n, dst,
                               l->video_bytes, sc->stage, err);
    if (rc) return rc;
    frames = dst;
  }
  if (reshape)
    duet_augment_video(frames, l->shape.frames, l->shape.height, l->shape.width, video_out,
                       l->out_h, l->out_w, a);
  else if (frames != video_out)
    memcpy(video_out, frames, l->video_bytes);

  const uint8_t *pcm = s->raw + ap->off;
  int i16 = duet_clip_file_audio_is_i16(l->file);
  if (!ap->decoded) {
    void *dst = i16 ? (void *)sc->pcm16 : (void *)audio_out;
    int rc = duet_chunk_decode(&sc->inflater, l->audio_pipe, ap->mask, i16 ? 2 : 4, pcm, ap->n,
                               dst, l->audio_bytes, sc->stage, err);
    if (rc) return rc;
    pcm = dst;
  }
  if (i16) {
    /* The stored bytes may sit unaligned in the raw buffer; pcm16 is aligned. */
    if (pcm != (const uint8_t *)sc->pcm16) memcpy(sc->pcm16, pcm, l->audio_bytes);
    i16_to_float(sc->pcm16, audio_out, b->audio_samples);
  } else if (pcm != (const uint8_t *)audio_out) {
    memcpy(audio_out, pcm, l->audio_bytes);
  }
  return 0;
}
