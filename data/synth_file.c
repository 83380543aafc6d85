/* A synthetic dataset written to a clip file: clips are generated in batches by OpenMP threads
 * and appended in index order, so the file does not depend on the thread count. The writer
 * compresses on its own threads while the next batch is generated. */
#include "data/synth.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/clips.h"

typedef struct batch {
  int cap;
  uint8_t *video;
  float *audio;
  duet_synth_scene *scenes;
} batch;

static void batch_free(batch *b) {
  free(b->video);
  free(b->audio);
  free(b->scenes);
}

static int batch_alloc(batch *b, int cap, size_t video_n, size_t audio_n, duet_err *err) {
  b->cap = cap;
  b->video = malloc((size_t)cap * video_n);
  b->audio = malloc((size_t)cap * audio_n * sizeof(float));
  b->scenes = malloc((size_t)cap * sizeof *b->scenes);
  if (!b->video || !b->audio || !b->scenes) {
    batch_free(b);
    return duet_err_set(err, DUET_ENOMEM, "out of memory for a batch of %d clips", cap);
  }
  return 0;
}

int duet_synth_write(const char *path, const duet_synth_params *p,
                     const duet_synth_write_opts *o, duet_err *err) {
  int rc = duet_synth_params_check(p, err);
  if (rc) return rc;
  if (o->count < 1) return duet_err_set(err, DUET_EINVAL, "count must be at least 1");
  if (o->threads < 0) return duet_err_set(err, DUET_EINVAL, "threads must be >= 0");
  const int threads = o->threads > 0 ? o->threads : omp_get_max_threads();
  const size_t video_n = (size_t)p->frames * p->height * p->width * 3;
  const int64_t audio_n = duet_synth_audio_samples(p);

  duet_clip_shape shape = {.fps = p->fps, .sample_rate = p->sample_rate, .frames = p->frames,
                           .height = p->height, .width = p->width, .audio_samples = audio_n,
                           .max_events = duet_synth_max_events(p)};
  duet_clip_writer_opts wo = {.overwrite = o->overwrite, .threads = 0,
                              .audio_i16 = o->audio_i16};
  duet_clip_writer *w = NULL;
  if ((rc = duet_clip_writer_open_opts(&w, path, &shape, &wo, err))) return rc;

  /* A few clips per thread amortise the fork/join; keep a batch's memory modest. */
  int per = (int)(((size_t)64 << 20) / (video_n + (size_t)audio_n * 4 + 1));
  int cap = threads * 8;
  if (cap > per) cap = per > threads ? per : threads;
  if (cap > o->count) cap = (int)o->count;
  batch b = {0};
  if ((rc = batch_alloc(&b, cap, video_n, (size_t)audio_n, err))) {
    duet_clip_writer_close(w, 0, NULL);
    return rc;
  }

  for (int64_t first = 0; first < o->count && !rc; first += cap) {
    int n = (int)(o->count - first < cap ? o->count - first : cap);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int k = 0; k < n; k++) {
      duet_synth_scene_make(p, first + k, &b.scenes[k]);
      duet_synth_render_video(p, &b.scenes[k], b.video + (size_t)k * video_n);
      duet_synth_render_audio(p, &b.scenes[k], first + k, b.audio + (size_t)k * audio_n);
    }
    for (int k = 0; k < n && !rc; k++) {
      const duet_synth_scene *s = &b.scenes[k];
      float events[DUET_SYNTH_MAX_EVENTS];
      for (int e = 0; e < s->n_events; e++) events[e] = (float)s->events[e].t;
      char source[96];
      snprintf(source, sizeof source, "duet-synth seed=%llu clip=%lld",
               (unsigned long long)p->seed, (long long)(first + k));
      duet_clip clip = {.video = b.video + (size_t)k * video_n,
                        .audio = b.audio + (size_t)k * audio_n,
                        .caption = s->caption,
                        .source = source,
                        .events = events,
                        .n_events = s->n_events};
      rc = duet_clip_writer_append(w, &clip, err);
    }
    if (!rc && o->progress) o->progress(o->user, first + n, o->count);
  }
  batch_free(&b);
  if (rc) {
    duet_clip_writer_close(w, 0, NULL);
    return rc;
  }
  return duet_clip_writer_close(w, 1, err);
}
