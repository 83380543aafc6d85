/* The loader's life cycle: checking the config, the ring of batch buffers, the threads that
 * fill it and the consumer side (next, position, seek). */
#include "data/loader.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/loader_internal.h"

/* ---- threads ---- */

/* Raw steps the I/O thread keeps staged before it helps decoding: with helpers, one more than
 * the step being decoded, so they never wait for a read. */
static int read_ahead_limit(const duet_loader *l) { return l->nthreads > 1 ? 2 : 1; }

static int raw_steps_pending(const duet_loader *l) {
  int n = 0;
  for (int64_t q = l->seq_consume; q < l->seq_read; q++) {
    const duet_loader_slot *s = &l->slots[q % l->nslots];
    n += s->state == SLOT_READ && s->claimed < s->b.count;
  }
  return n;
}

/* With the lock held: takes one clip of the oldest step still being decoded, decodes it
 * unlocked, and marks the step READY after its last clip. Returns 0 when there was none. */
static int decode_one(duet_loader *l, duet_decode_scratch *sc) {
  for (int64_t q = l->seq_consume; q < l->seq_read; q++) {
    duet_loader_slot *s = &l->slots[q % l->nslots];
    if (s->state != SLOT_READ || s->claimed >= s->b.count) continue;
    int k = s->claimed++;
    pthread_mutex_unlock(&l->mu);
    duet_err err;
    int rc = duet_loader_decode(l, s, k, sc, &err);
    if (rc)
      duet_err_prefix(&err, "%s: clip %lld: ", l->path, (long long)s->b.clip_index[k]);
    pthread_mutex_lock(&l->mu);
    if (rc && !s->rc) {
      s->rc = rc;
      s->err = err;
    }
    if (++s->decoded == s->b.count) {
      s->state = SLOT_READY;
      pthread_cond_broadcast(&l->cv);
    }
    return 1;
  }
  return 0;
}

static void *io_main(void *arg) {
  duet_loader *l = arg;
  pthread_mutex_lock(&l->mu);
  while (!l->stop) {
    duet_loader_slot *s = &l->slots[l->seq_read % l->nslots];
    int can_fill = !l->io_done && s->state == SLOT_FREE;
    if (can_fill && raw_steps_pending(l) < read_ahead_limit(l)) {
      s->state = SLOT_FILLING;
      l->seq_read++;
      pthread_mutex_unlock(&l->mu);
      int rc = duet_loader_fill(l, s);
      pthread_mutex_lock(&l->mu);
      s->claimed = s->decoded = 0;
      if (rc) {
        /* Nothing after a failed read is produced: the consumer meets the error in order. */
        l->io_done = 1;
        s->claimed = s->decoded = s->b.count;
      }
      s->state = rc || s->b.count == 0 ? SLOT_READY : SLOT_READ;
      pthread_cond_broadcast(&l->cv);
      continue;
    }
    if (decode_one(l, &l->scratch[0])) continue;
    pthread_cond_wait(&l->cv, &l->mu);
  }
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

typedef struct helper_arg {
  duet_loader *l;
  int index;
} helper_arg;

static void *decode_main(void *arg) {
  duet_loader *l = ((helper_arg *)arg)->l;
  duet_decode_scratch *sc = &l->scratch[((helper_arg *)arg)->index];
  free(arg);
  pthread_mutex_lock(&l->mu);
  while (!l->stop)
    if (!decode_one(l, sc)) pthread_cond_wait(&l->cv, &l->mu);
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

static void stop_threads(duet_loader *l) {
  pthread_mutex_lock(&l->mu);
  l->stop = 1;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
  for (int i = 0; i < l->started; i++) pthread_join(l->threads[i], NULL);
  l->started = 0;
}

static int start_threads(duet_loader *l, duet_err *err) {
  l->stop = 0;
  l->io_done = 0;
  if (pthread_create(&l->threads[0], NULL, io_main, l) != 0)
    return duet_err_set(err, DUET_ENOMEM, "%s: cannot start the loader's I/O thread", l->path);
  l->started = 1;
  for (int i = 1; i < l->nthreads; i++) {
    helper_arg *a = malloc(sizeof *a);
    if (!a || (*a = (helper_arg){l, i}, pthread_create(&l->threads[i], NULL, decode_main, a)) != 0) {
      free(a);
      stop_threads(l);
      return duet_err_set(err, DUET_ENOMEM, "%s: cannot start the loader's threads", l->path);
    }
    l->started++;
  }
  return 0;
}

/* ---- set-up ---- */

static int check_config(const duet_loader_config *c, duet_err *err) {
  const char *p = c->path ? c->path : "(no path)";
  if (!c->path) return duet_err_set(err, DUET_EINVAL, "loader: no path given");
  if (c->batch_size <= 0)
    return duet_err_set(err, DUET_EINVAL, "%s: batch_size must be positive (is %d)", p, c->batch_size);
  int world = c->world_size ? c->world_size : 1;
  if (world < 0 || c->rank < 0 || c->rank >= world)
    return duet_err_set(err, DUET_EINVAL, "%s: rank %d is not in 0..%d", p, c->rank, world - 1);
  if (c->prefetch < 0 || c->prefetch > 64)
    return duet_err_set(err, DUET_EINVAL, "%s: prefetch %d is not in 0..64", p, c->prefetch);
  if (c->threads < 0 || c->threads > DUET_LOADER_MAX_THREADS)
    return duet_err_set(err, DUET_EINVAL, "%s: threads %d is not in 0..%d", p, c->threads,
                        DUET_LOADER_MAX_THREADS);
  if (c->val_clips < 0 || !(c->val_fraction >= 0 && c->val_fraction < 1))
    return duet_err_set(err, DUET_EINVAL, "%s: val_clips must be >= 0 and val_fraction in [0, 1)", p);
  if (c->split < DUET_SPLIT_ALL || c->split > DUET_SPLIT_VAL)
    return duet_err_set(err, DUET_EINVAL, "%s: unknown split %d", p, (int)c->split);
  return 0;
}

static int choose_split(duet_loader *l, int64_t total, duet_err *err) {
  const duet_loader_config *c = &l->cfg;
  int64_t held = c->val_clips > 0 ? c->val_clips : (int64_t)ceil(c->val_fraction * (double)total);
  if (held > total)
    return duet_err_set(err, DUET_EINVAL, "%s: %lld clips held out but the file has %lld",
                        l->path, (long long)held, (long long)total);
  l->first = 0;
  l->n = total;
  if (c->split == DUET_SPLIT_TRAIN) l->n = total - held;
  if (c->split == DUET_SPLIT_VAL) {
    l->first = total - held;
    l->n = held;
  }
  static const char *const names[] = {"file", "train split", "validation split"};
  if (l->n == 0)
    return duet_err_set(err, DUET_EINVAL, "%s: the %s has no clips%s", l->path, names[c->split],
                        c->split == DUET_SPLIT_VAL ? " (set val_clips or val_fraction)" : "");
  return 0;
}

static int alloc_slot(duet_loader *l, duet_loader_slot *s) {
  duet_batch *b = &s->b;
  size_t B = (size_t)l->cfg.batch_size;
  b->batch_size = l->cfg.batch_size;
  b->frames = l->shape.frames;
  b->height = l->out_h;
  b->width = l->out_w;
  b->audio_samples = l->shape.audio_samples;
  b->video = malloc(B * l->out_video_bytes);
  b->audio = malloc(B * (size_t)b->audio_samples * sizeof(float));
  b->captions = calloc(B, sizeof(char *));
  b->sources = calloc(B, sizeof(char *));
  b->n_events = calloc(B, sizeof(int));
  b->clip_index = calloc(B, sizeof(int64_t));
  b->augment = calloc(B, sizeof(duet_augment));
  s->video_part = calloc(B, sizeof(duet_raw_part));
  s->audio_part = calloc(B, sizeof(duet_raw_part));
  /* Room for the worst case of deflate, so that files written here never make it grow; other
   * writers' chunks that are larger still grow it in read_part. */
  s->raw_cap = B * (duet_deflate_bound(l->video_bytes) + duet_deflate_bound(l->audio_bytes));
  s->raw = malloc(s->raw_cap);
  if (!b->video || !b->audio || !b->captions || !b->sources || !b->n_events || !b->clip_index ||
      !b->augment || !s->video_part || !s->audio_part || !s->raw)
    return -1;
  if (l->load_text) {
    b->text_len = l->shape.text_len;
    b->text_dim = l->shape.text_dim;
    b->text_emb = malloc(B * (size_t)b->text_len * b->text_dim * sizeof(float));
    b->text_mask = malloc(B * (size_t)b->text_len);
    if (!b->text_emb || !b->text_mask) return -1;
  }
  if (l->shape.max_events > 0) {
    b->max_events = l->shape.max_events;
    b->events = malloc(B * (size_t)b->max_events * sizeof(float));
    if (!b->events) return -1;
  }
  return 0;
}

static void free_slot(duet_loader_slot *s) {
  duet_batch *b = &s->b;
  free(b->video);
  free(b->audio);
  free(b->captions);
  free(b->sources);
  free(b->text_emb);
  free(b->text_mask);
  free(b->events);
  free(b->n_events);
  free(b->clip_index);
  free(b->augment);
  free(s->video_part);
  free(s->audio_part);
  free(s->raw);
  free(s->captions.buf);
  free(s->sources.buf);
}

static int alloc_scratch(duet_loader *l, duet_decode_scratch *sc, duet_err *err) {
  int rc = duet_inflater_init(&sc->inflater, err);
  if (rc) return rc;
  size_t stage = l->video_bytes > l->audio_bytes ? l->video_bytes : l->audio_bytes;
  sc->stage = malloc(stage);
  sc->frame = malloc(l->video_bytes);
  sc->pcm16 = malloc(l->audio_bytes);
  if (!sc->stage || !sc->frame || !sc->pcm16)
    return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", l->path);
  return 0;
}

void duet_loader_close(duet_loader *l) {
  if (!l) return;
  stop_threads(l);
  for (int i = 0; i < l->nslots; i++) free_slot(&l->slots[i]);
  for (int i = 0; i < DUET_LOADER_MAX_THREADS; i++) {
    duet_decode_scratch *sc = &l->scratch[i];
    duet_inflater_free(&sc->inflater);
    free(sc->stage);
    free(sc->frame);
    free(sc->pcm16);
  }
  duet_clip_file_close(l->file);
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->cv);
  free(l->slots);
  free(l->perm);
  free(l->path);
  free(l);
}

static int normalize_pos(const duet_loader *l, duet_loader_pos *p, duet_err *err) {
  if (p->epoch < 0 || p->consumed < 0 || p->consumed > l->n)
    return duet_err_set(err, DUET_EINVAL,
                        "%s: position (epoch %lld, clip %lld) is outside an epoch of %lld clips",
                        l->path, (long long)p->epoch, (long long)p->consumed, (long long)l->n);
  if (p->consumed == l->n) *p = (duet_loader_pos){p->epoch + 1, 0};
  return 0;
}

static void reset_ring(duet_loader *l, duet_loader_pos pos) {
  for (int i = 0; i < l->nslots; i++) l->slots[i].state = SLOT_FREE;
  l->held = NULL;
  l->seq_read = l->seq_consume = 0;
  l->read_pos = l->pos = pos;
  l->failed = 0;
}

int duet_loader_open(duet_loader **out, const duet_loader_config *cfg, duet_err *err) {
  *out = NULL;
  int rc = check_config(cfg, err);
  if (rc) return rc;
  duet_loader *l = calloc(1, sizeof *l);
  if (!l) return duet_err_set(err, DUET_ENOMEM, "loader: out of memory");
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
  l->cfg = *cfg;
  l->cfg.world_size = cfg->world_size ? cfg->world_size : 1;
  l->cfg.prefetch = cfg->prefetch ? cfg->prefetch : 3;
  l->cfg.threads = cfg->threads ? cfg->threads : 2;
  l->nthreads = l->cfg.threads;
  l->perm_epoch = -1;
  l->path = strdup(cfg->path);
  l->cfg.path = l->path;
  if (!l->path) {
    duet_loader_close(l);
    return duet_err_set(err, DUET_ENOMEM, "loader: out of memory");
  }
  rc = duet_clip_file_open(&l->file, cfg->path, err);
  if (!rc) {
    l->shape = *duet_clip_file_shape(l->file);
    rc = duet_augment_check(&cfg->augment, l->shape.height, l->shape.width, l->path, err);
  }
  if (!rc) rc = choose_split(l, duet_clip_file_count(l->file), err);
  duet_loader_pos start = cfg->start;
  if (!rc) rc = normalize_pos(l, &start, err);
  if (rc) {
    duet_loader_close(l);
    return rc;
  }
  duet_augment_out_size(&cfg->augment, l->shape.height, l->shape.width, &l->out_h, &l->out_w);
  l->load_text = duet_clip_file_has_text_emb(l->file) && !cfg->skip_text_emb;
  l->video_bytes = duet_clip_file_stored_bytes(l->file, DUET_CLIP_VIDEO);
  l->audio_bytes = duet_clip_file_stored_bytes(l->file, DUET_CLIP_AUDIO);
  l->out_video_bytes = (size_t)l->shape.frames * l->out_h * l->out_w * 3;
  l->video_pipe = duet_clip_file_chunk_pipeline(l->file, DUET_CLIP_VIDEO);
  l->audio_pipe = duet_clip_file_chunk_pipeline(l->file, DUET_CLIP_AUDIO);

  l->perm = malloc(sizeof(int64_t) * (size_t)l->n);
  l->nslots = l->cfg.prefetch + 1; /* + the one the consumer holds */
  l->slots = calloc((size_t)l->nslots, sizeof *l->slots);
  rc = (!l->perm || !l->slots) ? duet_err_set(err, DUET_ENOMEM, "%s: out of memory", l->path) : 0;
  for (int i = 0; i < l->nslots && !rc; i++)
    if (alloc_slot(l, &l->slots[i]))
      rc = duet_err_set(err, DUET_ENOMEM, "%s: out of memory for %d batches of %d clips", l->path,
                        l->nslots, cfg->batch_size);
  for (int i = 0; i < l->nthreads && !rc; i++) rc = alloc_scratch(l, &l->scratch[i], err);
  if (!rc) {
    reset_ring(l, start);
    rc = start_threads(l, err);
  }
  if (rc) {
    duet_loader_close(l);
    return rc;
  }
  *out = l;
  return 0;
}

/* ---- consumer ---- */

int duet_loader_next(duet_loader *l, const duet_batch **batch, duet_err *err) {
  *batch = NULL;
  pthread_mutex_lock(&l->mu);
  if (l->held) {
    l->held->state = SLOT_FREE;
    l->held = NULL;
    pthread_cond_broadcast(&l->cv);
  }
  if (l->failed) {
    if (err) *err = l->fail;
    pthread_mutex_unlock(&l->mu);
    return l->failed;
  }
  duet_loader_slot *s = &l->slots[l->seq_consume % l->nslots];
  while (s->state != SLOT_READY) pthread_cond_wait(&l->cv, &l->mu);
  l->seq_consume++;
  if (s->rc) {
    l->failed = s->rc;
    l->fail = s->err;
    s->state = SLOT_FREE;
    if (err) *err = l->fail;
    pthread_mutex_unlock(&l->mu);
    return l->failed;
  }
  s->state = SLOT_IN_USE;
  l->held = s;
  l->pos = s->b.next;
  pthread_mutex_unlock(&l->mu);
  *batch = &s->b;
  return 0;
}

/* pos is written only by next and seek, on the consumer's thread, so reading it there needs
 * no lock. */
duet_loader_pos duet_loader_position(const duet_loader *l) { return l->pos; }

int duet_loader_seek(duet_loader *l, duet_loader_pos pos, duet_err *err) {
  int rc = normalize_pos(l, &pos, err);
  if (rc) return rc;
  stop_threads(l);
  reset_ring(l, pos);
  return start_threads(l, err);
}

int64_t duet_loader_size(const duet_loader *l) { return l->n; }

int64_t duet_loader_steps_per_epoch(const duet_loader *l) {
  int64_t g = (int64_t)l->cfg.batch_size * l->cfg.world_size;
  return (l->n + g - 1) / g;
}

const duet_clip_shape *duet_loader_shape(const duet_loader *l) { return &l->shape; }
