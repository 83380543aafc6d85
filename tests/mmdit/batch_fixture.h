/* A fixed random batch for the tiny model. */
#ifndef DUET_TESTS_MMDIT_BATCH_FIXTURE_H
#define DUET_TESTS_MMDIT_BATCH_FIXTURE_H

#include <stdlib.h>

#include "core/rng.h"
#include "model/flow.h"

typedef struct batch_fixture {
  float *video, *audio;
  int32_t *ids;
  uint8_t *mask;
  duet_flow_batch batch;
} batch_fixture;

static inline void batch_fixture_make(batch_fixture *f, const duet_model_config *c, int B, uint64_t seed) {
  int64_t vn = (int64_t)B * c->video_frames * c->video_height * c->video_width * c->video_channels;
  int64_t an = (int64_t)B * c->audio_frames * c->audio_channels;
  f->video = malloc(sizeof(float) * (size_t)vn);
  f->audio = malloc(sizeof(float) * (size_t)an);
  f->ids = malloc(sizeof(int32_t) * (size_t)(B * c->text_len));
  f->mask = malloc((size_t)(B * c->text_len));
  duet_rng_fill_uniform_f32(seed, 1, 0, f->video, vn, -1, 1);
  duet_rng_fill_normal_f32(seed, 2, 0, f->audio, an, 0, 1);
  const char *captions[4] = {"a red ball bounces", "two blue squares", "a bell rings", "rain"};
  for (int b = 0; b < B; b++)
    duet_text_tokenize(c, captions[b % 4], f->ids + b * c->text_len, f->mask + b * c->text_len);
  f->batch = (duet_flow_batch){B, f->video, f->audio, f->ids, NULL, f->mask};
}

static inline void batch_fixture_free(batch_fixture *f) {
  free(f->video);
  free(f->audio);
  free(f->ids);
  free(f->mask);
}

#endif
