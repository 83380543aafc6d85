/* Resuming: a loader opened at a saved position gives exactly the batches an uninterrupted
 * run gives from there (clips, augmentation, bytes), seek does the same, a position taken at
 * world size 2 continues at world size 1 over exactly the clips the epoch has left, and the
 * train and validation splits divide the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clipgen.h"
#include "data/loader.h"
#include "testlib.h"

#define N 13
#define B 2
#define STEPS 12 /* three epochs of ceil(13 / 4) steps at W = 2 */

typedef struct record {
  int count;
  int64_t clip[B];
  duet_augment aug[B];
  uint64_t hash; /* of everything the batch carries */
  duet_loader_pos pos, next;
} record;

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

static record take(const duet_batch *b) {
  record r;
  memset(&r, 0, sizeof r);
  r.count = b->count;
  memcpy(r.clip, b->clip_index, sizeof r.clip);
  memcpy(r.aug, b->augment, sizeof r.aug);
  r.pos = b->pos;
  r.next = b->next;
  uint64_t h = 0xcbf29ce484222325ull;
  h = fnv(h, b->video, (size_t)B * b->frames * b->height * b->width * 3);
  h = fnv(h, b->audio, sizeof(float) * (size_t)B * (size_t)b->audio_samples);
  h = fnv(h, b->text_emb, sizeof(float) * (size_t)B * b->text_len * b->text_dim);
  h = fnv(h, b->text_mask, (size_t)B * b->text_len);
  h = fnv(h, b->events, sizeof(float) * (size_t)B * b->max_events);
  for (int k = 0; k < B; k++) h = fnv(h, b->captions[k], strlen(b->captions[k]));
  r.hash = h;
  return r;
}

static int same(const record *a, const record *b) {
  return a->count == b->count && !memcmp(a->clip, b->clip, sizeof a->clip) &&
         !memcmp(a->aug, b->aug, sizeof a->aug) && a->hash == b->hash &&
         a->pos.epoch == b->pos.epoch && a->pos.consumed == b->pos.consumed &&
         a->next.epoch == b->next.epoch && a->next.consumed == b->next.consumed;
}

static duet_loader_config config(const char *path, int rank, int world, duet_loader_pos start) {
  duet_loader_config c = {.path = path, .batch_size = B, .rank = rank, .world_size = world,
                          .seed = 2026, .shuffle = 1, .prefetch = 2, .start = start};
  c.augment = (duet_augment_config){.crop_height = 6, .crop_width = 5, .random_crop = 1, .flip = 1};
  return c;
}

/* Runs `steps` steps on every rank from start; rec[step][rank]. */
static void run(const char *path, int world, duet_loader_pos start, int steps, record rec[][2]) {
  duet_loader *l[2] = {0};
  duet_err err = {0};
  for (int r = 0; r < world; r++) {
    duet_loader_config c = config(path, r, world, start);
    CHECK_MSG(duet_loader_open(&l[r], &c, &err) == 0, "%s", err.msg);
    if (!l[r]) goto out;
    duet_loader_pos p = duet_loader_position(l[r]);
    CHECK(p.epoch == start.epoch && p.consumed == start.consumed);
  }
  for (int s = 0; s < steps; s++)
    for (int r = 0; r < world; r++) {
      const duet_batch *b = NULL;
      CHECK_MSG(duet_loader_next(l[r], &b, &err) == 0, "%s", err.msg);
      if (!b) goto out;
      rec[s][r] = take(b);
    }
out:
  for (int r = 0; r < world; r++) duet_loader_close(l[r]);
}

int main(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/resume.h5", test_tmpdir());
  clipgen_opts o = {clipgen_shape(4, 8, 8, 3, 2, 2), 1, {0}};
  CHECK(clipgen_write(path, N, &o) == 0);

  static record straight[STEPS][2], resumed[STEPS][2];
  run(path, 2, (duet_loader_pos){0, 0}, STEPS, straight);
  for (int s = 0; s < STEPS; s++)
    CHECK(straight[s][0].next.epoch == straight[s][1].next.epoch &&
          straight[s][0].next.consumed == straight[s][1].next.consumed);

  /* From a saved position, mid-epoch and at epoch boundaries. */
  const int at[] = {1, 3, 4, 5, 9};
  for (size_t a = 0; a < sizeof at / sizeof at[0]; a++) {
    int j = at[a];
    run(path, 2, straight[j - 1][0].next, STEPS - j, resumed);
    for (int s = j; s < STEPS; s++)
      for (int r = 0; r < 2; r++)
        CHECK_MSG(same(&straight[s][r], &resumed[s - j][r]), "resumed after %d steps: step %d rank %d differs",
                  j, s, r);
  }

  /* Seek back to the start, after reading ahead. */
  duet_loader *l = NULL;
  duet_err err = {0};
  duet_loader_config c = config(path, 1, 2, (duet_loader_pos){0, 0});
  CHECK(duet_loader_open(&l, &c, &err) == 0);
  const duet_batch *b = NULL;
  for (int s = 0; s < 3; s++) CHECK(duet_loader_next(l, &b, &err) == 0);
  CHECK(duet_loader_seek(l, straight[1][1].next, &err) == 0);
  CHECK(duet_loader_position(l).consumed == straight[1][1].next.consumed);
  for (int s = 2; s < 6; s++) {
    CHECK(duet_loader_next(l, &b, &err) == 0);
    if (b) {
      record r = take(b);
      CHECK_MSG(same(&straight[s][1], &r), "after seek: step %d differs", s);
    }
  }
  CHECK(duet_loader_seek(l, (duet_loader_pos){0, N + 1}, &err) == DUET_EINVAL);
  duet_loader_close(l);

  /* Two steps at W = 2, then W = 1 covers exactly the clips the epoch has left. */
  int seen[N] = {0};
  for (int s = 0; s < 2; s++)
    for (int r = 0; r < 2; r++)
      for (int k = 0; k < straight[s][r].count; k++) seen[straight[s][r].clip[k]]++;
  duet_loader_pos p = straight[1][0].next;
  CHECK(p.epoch == 0 && p.consumed == 8);
  static record single[10][2], single_straight[16][2];
  run(path, 1, p, 3 + 7, single); /* 5 clips left: 3 steps of B = 2; then epoch 1 */
  int steps_left = 0;
  for (int s = 0; s < 3; s++) {
    for (int k = 0; k < single[s][0].count; k++) seen[single[s][0].clip[k]]++;
    steps_left++;
    if (single[s][0].next.epoch == 1) break;
  }
  CHECK_EQ_INT(steps_left, 3);
  int once = 1;
  for (int i = 0; i < N; i++) once &= seen[i] == 1;
  CHECK_MSG(once, "W=2 then W=1: not every clip of epoch 0 exactly once");
  /* ... and epoch 1 is what a W = 1 run has from the start. */
  run(path, 1, (duet_loader_pos){0, 0}, 14, single_straight);
  for (int s = 0; s < 7; s++)
    CHECK_MSG(same(&single[3 + s][0], &single_straight[7 + s][0]), "epoch 1 step %d differs at W=1", s);

  /* A position at the end of an epoch is the start of the next; past it is refused. */
  c = config(path, 0, 1, (duet_loader_pos){2, N});
  CHECK(duet_loader_open(&l, &c, &err) == 0);
  CHECK(duet_loader_position(l).epoch == 3 && duet_loader_position(l).consumed == 0);
  duet_loader_close(l);
  c = config(path, 0, 1, (duet_loader_pos){0, N + 1});
  CHECK(duet_loader_open(&l, &c, &err) == DUET_EINVAL);
  CHECK_MSG(strstr(err.msg, path) != NULL, "%s", err.msg);

  /* Held-out clips: the last K of the file. */
  const struct {
    int64_t clips;
    double fraction;
    int held;
  } splits[] = {{3, 0, 3}, {0, 0.25, 4}};
  for (int v = 0; v < 2; v++) {
    int count[N] = {0};
    for (int which = DUET_SPLIT_TRAIN; which <= DUET_SPLIT_VAL; which++) {
      c = config(path, 0, 1, (duet_loader_pos){0, 0});
      c.split = (duet_split)which;
      c.val_clips = splits[v].clips;
      c.val_fraction = splits[v].fraction;
      l = NULL;
      CHECK_MSG(duet_loader_open(&l, &c, &err) == 0, "%s", err.msg);
      if (!l) continue;
      int64_t n = duet_loader_size(l);
      CHECK_EQ_INT(n, which == DUET_SPLIT_VAL ? splits[v].held : N - splits[v].held);
      for (int64_t s = 0; s < duet_loader_steps_per_epoch(l); s++) {
        CHECK(duet_loader_next(l, &b, &err) == 0);
        for (int k = 0; b && k < b->count; k++) {
          int64_t i = b->clip_index[k];
          count[i]++;
          CHECK(which == DUET_SPLIT_VAL ? i >= N - splits[v].held : i < N - splits[v].held);
        }
      }
      duet_loader_close(l);
    }
    once = 1;
    for (int i = 0; i < N; i++) once &= count[i] == 1;
    CHECK_MSG(once, "train and validation splits do not divide the file");
  }
  c = config(path, 0, 1, (duet_loader_pos){0, 0});
  c.split = DUET_SPLIT_VAL;
  CHECK(duet_loader_open(&l, &c, &err) == DUET_EINVAL);
  CHECK_MSG(strstr(err.msg, "val_clips"), "%s", err.msg);

  return test_finish("test_loader_resume");
}
