/* Sharding: for world sizes 1..4, N in {10, 13, 16} and several batch sizes, every clip is
 * seen exactly once per epoch across ranks, every rank ends the epoch at the same step, counts
 * follow duet_loader_shard, and the ranks' slices laid end to end are the epoch's permutation
 * whatever the world and batch size. Epochs differ; the same seed repeats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clipgen.h"
#include "data/loader.h"
#include "testlib.h"

#define MAXN 16
#define EPOCHS 2

/* Concatenated clip order of each epoch, as the ranks see it laid end to end. */
static void run(const char *path, int n, int world, int batch, uint64_t seed, int shuffle,
                int64_t order[EPOCHS][MAXN]) {
  duet_loader *l[4] = {0};
  duet_err err = {0};
  for (int r = 0; r < world; r++) {
    duet_loader_config c = {.path = path, .batch_size = batch, .rank = r, .world_size = world,
                            .seed = seed, .shuffle = shuffle, .prefetch = 1 + r % 3,
                            .threads = 1 + r % 2};
    CHECK_MSG(duet_loader_open(&l[r], &c, &err) == 0, "%s", err.msg);
    if (!l[r]) goto out;
  }
  int64_t steps = duet_loader_steps_per_epoch(l[0]);
  CHECK_EQ_INT(steps, (n + batch * world - 1) / (batch * world));
  CHECK_EQ_INT(duet_loader_size(l[0]), n);
  for (int e = 0; e < EPOCHS; e++) {
    int seen[MAXN] = {0}, filled = 0;
    for (int64_t step = 0; step < steps; step++) {
      int total = 0;
      for (int r = 0; r < world; r++) {
        const duet_batch *b = NULL;
        CHECK_MSG(duet_loader_next(l[r], &b, &err) == 0, "%s", err.msg);
        if (!b) goto out;
        CHECK_EQ_INT(b->pos.epoch, e);
        CHECK_EQ_INT(b->epoch_end, step == steps - 1);
        int64_t first;
        int count;
        int64_t take = duet_loader_shard(n, b->pos.consumed, batch, world, r, &first, &count);
        CHECK_EQ_INT(b->count, count);
        CHECK_EQ_INT(b->global_count, take);
        CHECK(b->count >= 0 && b->count <= batch);
        for (int k = 0; k < b->count; k++) {
          int64_t i = b->clip_index[k];
          CHECK(i >= 0 && i < n);
          if (i < 0 || i >= n) continue;
          seen[i]++;
          if (filled < MAXN) order[e][filled++] = i;
          char want[160];
          clipgen_caption(i, want, sizeof want);
          CHECK_MSG(!strcmp(b->captions[k], want), "caption of %lld is '%s'", (long long)i,
                    b->captions[k]);
          CHECK_EQ_INT(b->video[(size_t)k * 12], clipgen_pixel(i, 0, 0, 0, 0));
        }
        for (int k = b->count; k < batch; k++) CHECK_EQ_INT(b->clip_index[k], -1);
        total += b->count;
        CHECK_EQ_INT(duet_loader_position(l[r]).consumed, b->next.consumed);
      }
      CHECK_EQ_INT(total, step < steps - 1 ? batch * world : n - (steps - 1) * batch * world);
    }
    int once = 1;
    for (int i = 0; i < n; i++) once &= seen[i] == 1;
    CHECK_MSG(once, "N=%d W=%d B=%d epoch %d: not every clip exactly once", n, world, batch, e);
  }
out:
  for (int r = 0; r < world; r++) duet_loader_close(l[r]);
}

static int same_order(int64_t a[MAXN], int64_t b[MAXN], int n) {
  return memcmp(a, b, sizeof(int64_t) * (size_t)n) == 0;
}

int main(void) {
  const int sizes[] = {10, 13, 16};
  const int batches[] = {1, 2, 3, 5};
  for (int si = 0; si < 3; si++) {
    int n = sizes[si];
    char path[512];
    snprintf(path, sizeof path, "%s/n%d.h5", test_tmpdir(), n);
    clipgen_opts o = {clipgen_shape(1, 2, 2, 0, 0, 0), 0, {.threads = 1}};
    CHECK(clipgen_write(path, n, &o) == 0);

    int64_t ref[EPOCHS][MAXN], got[EPOCHS][MAXN];
    run(path, n, 1, 1, 42, 1, ref);
    CHECK_MSG(!same_order(ref[0], ref[1], n), "N=%d: epochs 0 and 1 have the same order", n);
    for (int world = 1; world <= 4; world++)
      for (int bi = 0; bi < 4; bi++) {
        memset(got, 0xff, sizeof got);
        run(path, n, world, batches[bi], 42, 1, got);
        for (int e = 0; e < EPOCHS; e++)
          CHECK_MSG(same_order(ref[e], got[e], n), "N=%d W=%d B=%d epoch %d: order differs", n,
                    world, batches[bi], e);
      }

    run(path, n, 2, 3, 43, 1, got);
    CHECK_MSG(!same_order(ref[0], got[0], n), "N=%d: seeds 42 and 43 give the same order", n);
    run(path, n, 3, 2, 42, 0, got);
    int identity = 1;
    for (int e = 0; e < EPOCHS; e++)
      for (int i = 0; i < n; i++) identity &= got[e][i] == i;
    CHECK_MSG(identity, "N=%d: shuffle off is not file order", n);
  }
  return test_finish("test_loader_epochs");
}
