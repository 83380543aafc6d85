/* Files written by other tools (plain HDF5 with its own gzip and shuffle filters, as h5py
 * writes them) read back right through the reader and through the loader, whose fast path
 * decodes HDF5-compressed chunks itself: int16 audio, fixed-length strings, half-precision
 * text embeddings, gzip without shuffle, and a filter (fletcher32) that only HDF5 decodes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clipgen.h"
#include "data/clips_raw.h"
#include "data/loader.h"
#include "h5make.h"
#include "testlib.h"

static void check_reader(const char *path, const h5make_opts *o) {
  duet_clip_file *f = NULL;
  duet_err err = {0};
  CHECK_MSG(duet_clip_file_open(&f, path, &err) == 0, "%s", err.msg);
  if (!f) return;
  const duet_clip_shape *s = duet_clip_file_shape(f);
  CHECK_EQ_INT(duet_clip_file_count(f), 3);
  CHECK_EQ_INT(s->text_len, 5);
  CHECK_EQ_INT(s->max_events, 4);
  CHECK_EQ_INT(duet_clip_file_audio_is_i16(f), o->i16_audio);
  CHECK_EQ_INT(duet_clip_file_chunk_pipeline(f, DUET_CLIP_VIDEO) != NULL, !o->fletcher);
  float tol = o->i16_audio ? 0.5f / 32768.0f + 1e-7f : 0;
  uint8_t video[4 * 6 * 10 * 3];
  float audio[32], events[4], text[15];
  uint8_t mask[5];
  for (int i = 0; i < 3; i++) {
    char *caption = NULL, *source = NULL, want[160];
    int n_events = 0;
    CHECK_MSG(duet_clip_file_read(f, i, video, audio, &caption, &source, events, &n_events, &err) == 0,
              "%s", err.msg);
    CHECK_EQ_INT(clipgen_expect_video(i, s, video), 0);
    CHECK_EQ_INT(clipgen_expect_audio(i, s, audio, tol), 0);
    clipgen_caption(i, want, sizeof want);
    CHECK_MSG(caption && !strcmp(caption, want), "'%s'", caption ? caption : "(null)");
    int has = clipgen_source(i, want, sizeof want);
    CHECK(has ? source && !strcmp(source, want) : source == NULL);
    float want_events[4];
    CHECK_EQ_INT(n_events, clipgen_events(i, 4, want_events));
    for (int e = 0; e < n_events; e++) CHECK_NEAR(events[e], want_events[e], 0);
    CHECK(duet_clip_file_read_text_emb(f, i, text, mask, &err) == 0);
    for (int l = 0; l < 5; l++) {
      CHECK_EQ_INT(mask[l], clipgen_mask(i, l, 5));
      for (int d = 0; d < 3; d++) {
        float w = clipgen_text(i, l, d);
        /* Half precision keeps 11 significant bits. */
        CHECK_NEAR(text[l * 3 + d], w, o->f16_text ? fabsf(w) * 1e-3 + 1e-4 : 0);
      }
    }
    free(caption);
    free(source);
  }
  duet_clip_file_close(f);
}

static void check_loader(const char *path, const h5make_opts *o, int threads) {
  duet_loader_config c = {.path = path, .batch_size = 2, .seed = 5, .shuffle = 1,
                          .threads = threads};
  duet_loader *l = NULL;
  duet_err err = {0};
  CHECK_MSG(duet_loader_open(&l, &c, &err) == 0, "%s", err.msg);
  if (!l) return;
  float tol = o->i16_audio ? 0.5f / 32768.0f + 1e-7f : 0;
  int seen[3] = {0};
  for (int step = 0; step < 2; step++) {
    const duet_batch *b = NULL;
    CHECK_MSG(duet_loader_next(l, &b, &err) == 0, "%s", err.msg);
    if (!b) break;
    const duet_clip_shape *s = duet_loader_shape(l);
    for (int k = 0; k < b->count; k++) {
      int64_t i = b->clip_index[k];
      CHECK(i >= 0 && i < 3);
      if (i < 0 || i >= 3) continue;
      seen[i]++;
      CHECK_EQ_INT(clipgen_expect_video(i, s, b->video + (size_t)k * 4 * 6 * 10 * 3), 0);
      CHECK_EQ_INT(clipgen_expect_audio(i, s, b->audio + k * 32, tol), 0);
      char want[160];
      clipgen_caption(i, want, sizeof want);
      CHECK(!strcmp(b->captions[k], want));
      CHECK(b->text_emb != NULL);
    }
  }
  CHECK(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
  duet_loader_close(l);
}

int main(void) {
  const h5make_opts variants[] = {
      {0},
      {.i16_audio = 1, .fixed_strings = 1, .f16_text = 1},
      {.no_shuffle = 1},
      {.fletcher = 1, .i16_audio = 1},
  };
  for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
    char path[512];
    snprintf(path, sizeof path, "%s/foreign%zu.h5", test_tmpdir(), v);
    CHECK(h5make_write(path, &variants[v]) == 0);
    check_reader(path, &variants[v]);
    check_loader(path, &variants[v], 1);
    check_loader(path, &variants[v], 2);
  }
  return test_finish("test_clips_compat");
}
