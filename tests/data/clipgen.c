#include "clipgen.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

duet_clip_shape clipgen_shape(int frames, int height, int width, int text_len, int text_dim,
                              int max_events) {
  duet_clip_shape s = {0};
  s.fps = 8;
  s.sample_rate = 64;
  s.frames = frames;
  s.height = height;
  s.width = width;
  s.audio_samples = (int64_t)frames * 8;
  s.text_len = text_len;
  s.text_dim = text_dim;
  s.max_events = max_events;
  return s;
}

uint8_t clipgen_pixel(int64_t clip, int t, int y, int x, int c) {
  return (uint8_t)(clip * 37 + t * 11 + y * 5 + x * 3 + c * 101 + ((x * y) >> 2));
}

float clipgen_sample(int64_t clip, int64_t s) {
  return 0.5f * sinf(0.3f * (float)s + (float)clip) + 0.001f * (float)(clip % 100);
}

void clipgen_caption(int64_t clip, char *buf, int n) {
  snprintf(buf, (size_t)n, "clip %lld: a ball bounces \xc3\xbc%s", (long long)clip,
           clip % 4 == 3 ? " and keeps bouncing for a rather long while, longer than the rest" : "");
}

int clipgen_source(int64_t clip, char *buf, int n) {
  if (clip % 3 == 2) return 0;
  snprintf(buf, (size_t)n, "footage/take%lld.mp4@%lld.5", (long long)(clip / 7), (long long)clip);
  return 1;
}

int clipgen_events(int64_t clip, int max_events, float *events) {
  int k = (int)(clip % (max_events + 1));
  for (int e = 0; e < k; e++) events[e] = 0.125f * (float)(e + 1) + 0.01f * (float)(clip % 10);
  return k;
}

float clipgen_text(int64_t clip, int l, int d) {
  return (float)(clip % 50) + 0.01f * (float)l - 0.001f * (float)d;
}

uint8_t clipgen_mask(int64_t clip, int l, int text_len) {
  return l < (int)(clip % text_len) + 1;
}

int clipgen_write(const char *path, int64_t n, const clipgen_opts *o) {
  const duet_clip_shape *s = &o->shape;
  size_t vn = (size_t)s->frames * s->height * s->width * 3;
  uint8_t *video = malloc(vn);
  float *audio = malloc(sizeof(float) * (size_t)s->audio_samples);
  float *events = malloc(sizeof(float) * (size_t)(s->max_events + 1));
  float *text = malloc(sizeof(float) * (size_t)(s->text_len * s->text_dim + 1));
  uint8_t *mask = malloc((size_t)s->text_len + 1);
  duet_clip_writer *w = NULL;
  duet_err err = {0};
  int rc = duet_clip_writer_open_opts(&w, path, s, &o->writer, &err);
  for (int64_t i = 0; i < n && !rc; i++) {
    for (int t = 0; t < s->frames; t++)
      for (int y = 0; y < s->height; y++)
        for (int x = 0; x < s->width; x++)
          for (int c = 0; c < 3; c++)
            video[(((size_t)t * s->height + y) * s->width + x) * 3 + c] = clipgen_pixel(i, t, y, x, c);
    for (int64_t k = 0; k < s->audio_samples; k++) audio[k] = clipgen_sample(i, k);
    char caption[160], source[160];
    clipgen_caption(i, caption, sizeof caption);
    duet_clip clip = {0};
    clip.video = video;
    clip.audio = audio;
    clip.caption = caption;
    if (o->with_source && clipgen_source(i, source, sizeof source)) clip.source = source;
    if (s->max_events > 0) {
      clip.n_events = clipgen_events(i, s->max_events, events);
      clip.events = events;
    }
    if (s->text_len > 0) {
      for (int l = 0; l < s->text_len; l++) {
        mask[l] = clipgen_mask(i, l, s->text_len);
        for (int d = 0; d < s->text_dim; d++) text[l * s->text_dim + d] = clipgen_text(i, l, d);
      }
      clip.text_emb = text;
      clip.text_mask = mask;
    }
    rc = duet_clip_writer_append(w, &clip, &err);
  }
  if (w) {
    int crc = duet_clip_writer_close(w, rc == 0, rc ? NULL : &err);
    if (!rc) rc = crc;
  }
  if (rc) fprintf(stderr, "clipgen_write: %s\n", err.msg);
  free(video);
  free(audio);
  free(events);
  free(text);
  free(mask);
  return rc;
}

int clipgen_copy(const char *from, const char *to, long long keep_bytes) {
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  int rc = (in && out) ? 0 : -1;
  char buf[65536];
  long long left = keep_bytes < 0 ? -1 : keep_bytes;
  while (!rc && left != 0) {
    size_t want = left < 0 || left > (long long)sizeof buf ? sizeof buf : (size_t)left;
    size_t got = fread(buf, 1, want, in);
    if (got == 0) break;
    if (fwrite(buf, 1, got, out) != got) rc = -1;
    if (left > 0) left -= (long long)got;
  }
  if (in) fclose(in);
  if (out && fclose(out) != 0) rc = -1;
  return rc;
}

int clipgen_expect_video(int64_t clip, const duet_clip_shape *s, const uint8_t *video) {
  int bad = 0;
  for (int t = 0; t < s->frames; t++)
    for (int y = 0; y < s->height; y++)
      for (int x = 0; x < s->width; x++)
        for (int c = 0; c < 3; c++)
          bad += video[(((size_t)t * s->height + y) * s->width + x) * 3 + c] !=
                 clipgen_pixel(clip, t, y, x, c);
  return bad;
}

int clipgen_expect_audio(int64_t clip, const duet_clip_shape *s, const float *audio, float tol) {
  int bad = 0;
  for (int64_t k = 0; k < s->audio_samples; k++)
    bad += !(fabsf(audio[k] - clipgen_sample(clip, k)) <= tol);
  return bad;
}
