/* Every dataset written by duet_clip_writer reads back as written: with and without the
 * optional datasets, f32 and i16 audio, inline and threaded compression, more clips than one
 * row chunk, and an empty file. The stored chunks also decode with clips_codec to the bytes
 * HDF5's own filters give, which is what the loader relies on. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clipgen.h"
#include "data/clips_raw.h"
#include "data/loader.h"
#include "testlib.h"

static void check_raw_chunks(duet_clip_file *f, int64_t i) {
  for (int which = 0; which < 2; which++) {
    const duet_chunk_pipeline *p = duet_clip_file_chunk_pipeline(f, which);
    CHECK(p != NULL);
    if (!p) continue;
    size_t bytes = duet_clip_file_stored_bytes(f, which), n = 0;
    size_t cap = duet_deflate_bound(bytes);
    uint8_t *raw = malloc(cap), *mine = malloc(bytes), *hdf5 = malloc(bytes),
            *stage = malloc(bytes);
    uint32_t mask = 0;
    duet_err err = {0};
    duet_inflater inf;
    CHECK(duet_inflater_init(&inf, &err) == 0);
    CHECK(duet_clip_file_read_chunk(f, which, i, raw, cap, &n, &mask, &err) == 0);
    CHECK(n > 0 && n <= cap);
    CHECK_MSG(duet_chunk_decode(&inf, p, mask, duet_clip_file_stored_elem(f, which), raw, n,
                                mine, bytes, stage, &err) == 0, "%s", err.msg);
    CHECK(duet_clip_file_read_stored(f, which, i, hdf5, &err) == 0);
    CHECK(memcmp(mine, hdf5, bytes) == 0);
    duet_inflater_free(&inf);
    free(raw);
    free(mine);
    free(hdf5);
    free(stage);
  }
}

static void check_file(const char *path, int64_t n, const clipgen_opts *o) {
  const duet_clip_shape *s = &o->shape;
  duet_clip_file *f = NULL;
  duet_err err = {0};
  int rc = duet_clip_file_open(&f, path, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc) return;
  const duet_clip_shape *g = duet_clip_file_shape(f);
  CHECK_EQ_INT(duet_clip_file_count(f), n);
  CHECK_NEAR(g->fps, s->fps, 0);
  CHECK_EQ_INT(g->sample_rate, s->sample_rate);
  CHECK_EQ_INT(g->frames, s->frames);
  CHECK_EQ_INT(g->height, s->height);
  CHECK_EQ_INT(g->width, s->width);
  CHECK_EQ_INT(g->audio_samples, s->audio_samples);
  CHECK_EQ_INT(g->text_len, s->text_len);
  CHECK_EQ_INT(g->text_dim, s->text_dim);
  CHECK_EQ_INT(g->max_events, s->max_events);
  CHECK_EQ_INT(duet_clip_file_has_text_emb(f), s->text_len > 0);
  CHECK_EQ_INT(duet_clip_file_has_events(f), s->max_events > 0);
  CHECK_EQ_INT(duet_clip_file_has_source(f), o->with_source && n > 0);
  CHECK_EQ_INT(duet_clip_file_audio_is_i16(f), o->writer.audio_i16);

  size_t vn = (size_t)s->frames * s->height * s->width * 3;
  uint8_t *video = malloc(vn);
  float *audio = malloc(sizeof(float) * (size_t)s->audio_samples);
  float *events = malloc(sizeof(float) * (size_t)(s->max_events + 1));
  float *want_events = malloc(sizeof(float) * (size_t)(s->max_events + 1));
  float *text = malloc(sizeof(float) * (size_t)(s->text_len * s->text_dim + 1));
  uint8_t *mask = malloc((size_t)s->text_len + 1);
  /* int16 stores round(x * 32768): at most half a step off. */
  float tol = o->writer.audio_i16 ? 0.5f / 32768.0f + 1e-7f : 0.0f;
  for (int64_t i = 0; i < n; i++) {
    char *caption = NULL, *source = NULL;
    int n_events = -1;
    rc = duet_clip_file_read(f, i, video, audio, &caption, &source, events, &n_events, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc) break;
    CHECK_EQ_INT(clipgen_expect_video(i, s, video), 0);
    CHECK_EQ_INT(clipgen_expect_audio(i, s, audio, tol), 0);
    char want[160];
    clipgen_caption(i, want, sizeof want);
    CHECK_MSG(caption && strcmp(caption, want) == 0, "clip %lld caption '%s'", (long long)i,
              caption ? caption : "(null)");
    int has = o->with_source && clipgen_source(i, want, sizeof want);
    CHECK_MSG(has ? (source && strcmp(source, want) == 0) : source == NULL,
              "clip %lld source '%s'", (long long)i, source ? source : "(null)");
    if (s->max_events > 0) {
      int k = clipgen_events(i, s->max_events, want_events);
      CHECK_EQ_INT(n_events, k);
      for (int e = 0; e < k && e < n_events; e++) CHECK_NEAR(events[e], want_events[e], 0);
    } else {
      CHECK_EQ_INT(n_events, 0);
    }
    if (s->text_len > 0) {
      CHECK(duet_clip_file_read_text_emb(f, i, text, mask, &err) == 0);
      int bad = 0;
      for (int l = 0; l < s->text_len; l++) {
        bad += mask[l] != clipgen_mask(i, l, s->text_len);
        for (int d = 0; d < s->text_dim; d++)
          bad += text[l * s->text_dim + d] != clipgen_text(i, l, d);
      }
      CHECK_EQ_INT(bad, 0);
    }
    if (i % 7 == 0) check_raw_chunks(f, i);
    free(caption);
    free(source);
  }
  /* Out of range is an error that names the file, not a crash. */
  rc = duet_clip_file_read(f, n, video, NULL, NULL, NULL, NULL, NULL, &err);
  CHECK(rc == DUET_EINVAL);
  CHECK(strstr(err.msg, path) != NULL);
  free(video);
  free(audio);
  free(events);
  free(want_events);
  free(text);
  free(mask);
  duet_clip_file_close(f);
}

/* A caption far longer than any batch's string buffer so far makes it grow, in the reader and
 * in the loader alike. */
static void check_long_caption(const char *path) {
  duet_clip_shape s = clipgen_shape(1, 2, 2, 0, 0, 0);
  uint8_t video[12] = {0};
  float audio[8] = {0};
  size_t long_n = 300000;
  char *long_caption = malloc(long_n + 1);
  for (size_t i = 0; i < long_n; i++) long_caption[i] = (char)('a' + i % 26);
  long_caption[long_n] = '\0';
  duet_clip_writer *w = NULL;
  duet_err err = {0};
  CHECK(duet_clip_writer_open(&w, path, &s, 0, &err) == 0);
  for (int i = 0; w && i < 5; i++) {
    duet_clip c = {.video = video, .audio = audio, .caption = i == 3 ? long_caption : "short"};
    CHECK(duet_clip_writer_append(w, &c, &err) == 0);
  }
  CHECK(duet_clip_writer_close(w, 1, &err) == 0);

  duet_clip_file *f = NULL;
  CHECK(duet_clip_file_open(&f, path, &err) == 0);
  char *caption = NULL;
  CHECK(f && duet_clip_file_read(f, 3, NULL, NULL, &caption, NULL, NULL, NULL, &err) == 0);
  CHECK(caption && strcmp(caption, long_caption) == 0);
  free(caption);
  duet_clip_file_close(f);

  duet_loader_config c = {.path = path, .batch_size = 5};
  duet_loader *l = NULL;
  CHECK(duet_loader_open(&l, &c, &err) == 0);
  for (int step = 0; l && step < 3; step++) {
    const duet_batch *b = NULL;
    CHECK(duet_loader_next(l, &b, &err) == 0);
    for (int k = 0; b && k < b->count; k++)
      CHECK(!strcmp(b->captions[k], b->clip_index[k] == 3 ? long_caption : "short"));
  }
  duet_loader_close(l);
  free(long_caption);
}

int main(void) {
  char path[512];
  const char *dir = test_tmpdir();

  /* Everything, default writer (threads per CPU). */
  clipgen_opts full = {clipgen_shape(4, 6, 10, 5, 3, 4), 1, {0}};
  snprintf(path, sizeof path, "%s/full.h5", dir);
  CHECK(clipgen_write(path, 23, &full) == 0);
  check_file(path, 23, &full);

  /* int16 audio, compression inside append, a higher level. */
  clipgen_opts pcm = {clipgen_shape(3, 5, 7, 2, 4, 1), 1, {.threads = 1, .level = 6, .audio_i16 = 1}};
  snprintf(path, sizeof path, "%s/pcm16.h5", dir);
  CHECK(clipgen_write(path, 9, &pcm) == 0);
  check_file(path, 9, &pcm);

  /* No optional datasets; more clips than a row chunk, so rows flush and datasets grow. */
  clipgen_opts bare = {clipgen_shape(2, 4, 4, 0, 0, 0), 0, {.threads = 3}};
  snprintf(path, sizeof path, "%s/bare.h5", dir);
  CHECK(clipgen_write(path, 600, &bare) == 0);
  check_file(path, 600, &bare);

  /* An empty file is valid. */
  snprintf(path, sizeof path, "%s/empty.h5", dir);
  CHECK(clipgen_write(path, 0, &full) == 0);
  check_file(path, 0, &full);

  snprintf(path, sizeof path, "%s/long.h5", dir);
  check_long_caption(path);

  return test_finish("test_clips_roundtrip");
}
