/* Crop and flip change only the picture: the audio arrives exactly as stored, the video is the
 * chosen window of the stored frames (mirrored when flipped), and what a clip gets is the
 * counter RNG's pure function of (seed, epoch, clip). Batches do not depend on the number of
 * threads; int16 audio converts as the reader converts it; and a corrupt chunk comes back from
 * next as an error naming the file and clip, again on every later call. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clipgen.h"
#include "data/loader.h"
#include "testlib.h"

#define N 6
#define T 4
#define H 12
#define W 16
#define S (T * 8)

/* Written independently of duet_augment_video, so the two check each other. */
static uint8_t expected_pixel(int64_t clip, duet_augment a, int out_w, int t, int y, int x, int c) {
  int sx = a.flip ? a.crop_x + out_w - 1 - x : a.crop_x + x;
  return clipgen_pixel(clip, t, a.crop_y + y, sx, c);
}

static void check_epochs(const char *path, duet_augment_config aug, int *flips, int *moves) {
  duet_loader_config c = {.path = path, .batch_size = 4, .seed = 9, .shuffle = 1, .augment = aug};
  duet_loader *l = NULL;
  duet_err err = {0};
  CHECK_MSG(duet_loader_open(&l, &c, &err) == 0, "%s", err.msg);
  if (!l) return;
  int oh = aug.crop_height ? aug.crop_height : H, ow = aug.crop_width ? aug.crop_width : W;
  for (int step = 0; step < 6; step++) {
    const duet_batch *b = NULL;
    CHECK_MSG(duet_loader_next(l, &b, &err) == 0, "%s", err.msg);
    if (!b) break;
    CHECK(b->height == oh && b->width == ow);
    for (int k = 0; k < b->count; k++) {
      int64_t i = b->clip_index[k];
      duet_augment a = b->augment[k];
      duet_augment want = duet_augment_decide(&aug, 9, b->pos.epoch, i, H, W);
      CHECK(a.crop_y == want.crop_y && a.crop_x == want.crop_x && a.flip == want.flip);
      CHECK(a.crop_y >= 0 && a.crop_y + oh <= H && a.crop_x >= 0 && a.crop_x + ow <= W);
      if (!aug.random_crop) CHECK(a.crop_y == (H - oh) / 2 && a.crop_x == (W - ow) / 2);
      if (!aug.flip) CHECK(a.flip == 0);
      *flips += a.flip;
      *moves += a.crop_y != (H - oh) / 2 || a.crop_x != (W - ow) / 2;
      const uint8_t *v = b->video + (size_t)k * T * oh * ow * 3;
      int bad = 0;
      for (int t = 0; t < T; t++)
        for (int y = 0; y < oh; y++)
          for (int x = 0; x < ow; x++)
            for (int ch = 0; ch < 3; ch++)
              bad += v[(((size_t)t * oh + y) * ow + x) * 3 + ch] != expected_pixel(i, a, ow, t, y, x, ch);
      CHECK_MSG(bad == 0, "clip %lld: %d pixels are not the crop", (long long)i, bad);
      const duet_clip_shape *s = duet_loader_shape(l);
      CHECK_EQ_INT(clipgen_expect_audio(i, s, b->audio + (size_t)k * S, 0), 0);
    }
  }
  duet_loader_close(l);
}

static uint64_t batch_hash(const duet_batch *b) {
  uint64_t h = 1469598103934665603ull;
  size_t vn = (size_t)b->batch_size * b->frames * b->height * b->width * 3;
  for (size_t i = 0; i < vn; i++) h = (h ^ b->video[i]) * 1099511628211ull;
  const uint8_t *a = (const uint8_t *)b->audio;
  for (size_t i = 0; i < sizeof(float) * (size_t)b->batch_size * (size_t)b->audio_samples; i++)
    h = (h ^ a[i]) * 1099511628211ull;
  return h;
}

/* Hashes of every batch of two epochs. */
static void hashes(const char *path, int threads, int prefetch, uint64_t *out) {
  duet_loader_config c = {.path = path, .batch_size = 4, .seed = 3, .shuffle = 1,
                          .threads = threads, .prefetch = prefetch};
  c.augment = (duet_augment_config){8, 10, 1, 1};
  duet_loader *l = NULL;
  duet_err err = {0};
  CHECK(duet_loader_open(&l, &c, &err) == 0);
  for (int s = 0; l && s < 4; s++) {
    const duet_batch *b = NULL;
    CHECK(duet_loader_next(l, &b, &err) == 0);
    out[s] = b ? batch_hash(b) : 0;
  }
  duet_loader_close(l);
}

/* Overwrites the middle of clip i's stored video chunk. */
static int corrupt_chunk(const char *path, int64_t i) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, "video", H5P_DEFAULT);
  hsize_t off[5] = {(hsize_t)i, 0, 0, 0, 0}, size = 0;
  haddr_t addr = 0;
  unsigned mask = 0;
  herr_t rc = H5Dget_chunk_info_by_coord(d, off, &mask, &addr, &size);
  H5Dclose(d);
  H5Fclose(f);
  if (rc < 0 || size < 16) return -1;
  FILE *fp = fopen(path, "r+b");
  if (!fp) return -1;
  fseek(fp, (long)(addr + size / 2), SEEK_SET);
  uint8_t junk[8] = {0xde, 0xad, 0xbe, 0xef, 0x01, 0x23, 0x45, 0x67};
  fwrite(junk, 1, sizeof junk, fp);
  return fclose(fp);
}

int main(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/aug.h5", test_tmpdir());
  clipgen_opts o = {clipgen_shape(T, H, W, 0, 0, 0), 0, {0}};
  CHECK(clipgen_write(path, N, &o) == 0);

  int flips = 0, moves = 0;
  check_epochs(path, (duet_augment_config){8, 10, 1, 1}, &flips, &moves);
  CHECK(flips > 0 && flips < 12);
  CHECK(moves > 0);
  flips = moves = 0;
  check_epochs(path, (duet_augment_config){8, 10, 0, 0}, &flips, &moves);
  CHECK(flips == 0 && moves == 0);
  check_epochs(path, (duet_augment_config){0, 0, 0, 1}, &flips, &moves);
  CHECK(flips > 0 && moves == 0);
  check_epochs(path, (duet_augment_config){0}, &flips, &moves);

  /* A crop larger than the frame is refused at open. */
  duet_loader_config bad = {.path = path, .batch_size = 2, .augment = {H + 1, W, 1, 0}};
  duet_loader *l = NULL;
  duet_err err = {0};
  CHECK(duet_loader_open(&l, &bad, &err) == DUET_EINVAL);
  CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, "larger than"), "%s", err.msg);

  /* The number of threads and buffers does not change a single byte. */
  uint64_t ref[4], got[4];
  hashes(path, 1, 1, ref);
  for (int threads = 1; threads <= 4; threads++) {
    hashes(path, threads, 1 + threads % 3, got);
    CHECK_MSG(!memcmp(ref, got, sizeof ref), "threads=%d gives other batches", threads);
  }

  /* int16 audio arrives as the reader converts it. */
  char pcm[512];
  snprintf(pcm, sizeof pcm, "%s/pcm.h5", test_tmpdir());
  clipgen_opts po = {clipgen_shape(T, H, W, 0, 0, 0), 0, {.audio_i16 = 1}};
  CHECK(clipgen_write(pcm, N, &po) == 0);
  duet_clip_file *f = NULL;
  CHECK(duet_clip_file_open(&f, pcm, &err) == 0);
  duet_loader_config pc = {.path = pcm, .batch_size = N, .threads = 2};
  CHECK(duet_loader_open(&l, &pc, &err) == 0);
  const duet_batch *b = NULL;
  CHECK(l && duet_loader_next(l, &b, &err) == 0);
  float want[S];
  for (int k = 0; b && f && k < b->count; k++) {
    CHECK(duet_clip_file_read(f, b->clip_index[k], NULL, want, NULL, NULL, NULL, NULL, &err) == 0);
    CHECK(!memcmp(want, b->audio + (size_t)k * S, sizeof want));
  }
  duet_loader_close(l);
  duet_clip_file_close(f);

  /* A corrupt chunk surfaces from next, names file and clip, and sticks. */
  char broken[512];
  snprintf(broken, sizeof broken, "%s/broken.h5", test_tmpdir());
  CHECK(clipgen_copy(path, broken, -1) == 0);
  CHECK(corrupt_chunk(broken, 4) == 0);
  for (int threads = 1; threads <= 2; threads++) {
    duet_loader_config bc = {.path = broken, .batch_size = 1, .threads = threads};
    l = NULL;
    CHECK(duet_loader_open(&l, &bc, &err) == 0);
    int rc = 0, steps = 0;
    while (l && steps < N && (rc = duet_loader_next(l, &b, &err)) == 0) steps++;
    CHECK_EQ_INT(steps, 4);
    CHECK(rc == DUET_EFORMAT);
    CHECK_MSG(strstr(err.msg, broken) && strstr(err.msg, "clip 4"), "%s", err.msg);
    duet_err again = {0};
    CHECK(l && duet_loader_next(l, &b, &again) == rc && b == NULL);
    CHECK(!strcmp(again.msg, err.msg));
    duet_loader_close(l);
  }
  return test_finish("test_loader_augment");
}
