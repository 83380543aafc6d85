#include "train_fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core/rng.h"
#include "data/clips.h"
#include "testlib.h"

int fx_write_clips(const char *path, int n, int text_len, int text_dim, uint64_t seed) {
  duet_clip_shape shape = {FX_FPS, FX_RATE, FX_FRAMES, FX_SIZE, FX_SIZE, FX_SAMPLES, text_dim ? text_len : 0, text_dim, 0};
  duet_clip_writer_opts wo = {.overwrite = 1, .threads = 1};
  duet_clip_writer *w;
  duet_err err;
  if (duet_clip_writer_open_opts(&w, path, &shape, &wo, &err)) {
    fprintf(stderr, "fixture: %s\n", err.msg);
    return -1;
  }
  size_t vbytes = (size_t)FX_FRAMES * FX_SIZE * FX_SIZE * 3;
  uint8_t *video = malloc(vbytes);
  float *audio = malloc(sizeof(float) * FX_SAMPLES);
  float *emb = text_dim ? malloc(sizeof(float) * (size_t)text_len * text_dim) : NULL;
  uint8_t *mask = text_dim ? malloc((size_t)text_len) : NULL;
  int rc = 0;
  for (int i = 0; i < n && !rc; i++) {
    duet_rng r = duet_rng_make(seed, (uint64_t)i);
    for (size_t j = 0; j < vbytes; j++) video[j] = (uint8_t)(duet_rng_u32(&r) & 0xff);
    double freq = 200 + 100 * (i % 12);
    for (int s = 0; s < FX_SAMPLES; s++)
      audio[s] = (float)(0.5 * sin(2 * M_PI * freq * s / FX_RATE) + 0.05 * (duet_rng_uniform(&r) - 0.5));
    char caption[64];
    snprintf(caption, sizeof caption, "clip %d: a tone of %.0f hz", i, freq);
    for (int j = 0; emb && j < text_len * text_dim; j++) emb[j] = (float)duet_rng_normal_f64(&r);
    for (int j = 0; mask && j < text_len; j++) mask[j] = j < 1 + i % text_len;
    duet_clip c = {.video = video, .audio = audio, .caption = caption, .text_emb = emb, .text_mask = mask};
    if (duet_clip_writer_append(w, &c, &err)) rc = -1;
  }
  if (duet_clip_writer_close(w, rc == 0, rc == 0 ? &err : NULL) && rc == 0) rc = -1;
  if (rc) fprintf(stderr, "fixture: %s\n", err.msg);
  free(video);
  free(audio);
  free(emb);
  free(mask);
  return rc;
}

void fx_ini_text(char *buf, size_t size, const char *data_path, const char *run_dir) {
  snprintf(buf, size,
           "; tiny model for the train tests\n"
           "[model]\n"
           "video_frames = %d\nvideo_height = %d\nvideo_width = %d\n"
           "patch_t = 2\npatch_h = 4\npatch_w = 4\nfps = %d\n"
           "audio_frames = 16\naudio_channels = 8\npatch_a = 4\naudio_rate = 64\n"
           "width_video = 32\nwidth_audio = 16\nwidth_text = 16\n"
           "heads_video = 2\nheads_audio = 1\nheads_text = 1\n"
           "depth = 1\ntext_len = 8\ntext_layers = 1\nrope_time_pairs = 2\n"
           "[flow]\ntask_t2av = 1\ntask_i2av = 0.5\ntask_v2a = 0.5\n"
           "[audio]\nn_mels = 8\n"
           "[data]\npath = %s\nval_clips = 4\nbatch = 3\nread_ahead = 2\nthreads = 1\n"
           "[train]\nsteps = 8\nlr = 1e-3\nwarmup = 2\nschedule = cosine\naccum = 2\nseed = 7\n"
           "log_every = 0\nval_every = 4\nval_batches = 2\nckpt_every = 4\nrun_dir = %s\n",
           FX_FRAMES, FX_SIZE, FX_SIZE, FX_FPS, data_path, run_dir);
}

int fx_write_ini(const char *path, const char *data_path, const char *run_dir) {
  char text[4096];
  fx_ini_text(text, sizeof text, data_path, run_dir);
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fputs(text, f);
  return fclose(f);
}

int fx_config(duet_train_config *c, const char *data_path, const char *run_dir) {
  char text[4096];
  fx_ini_text(text, sizeof text, data_path, run_dir);
  duet_err err;
  if (duet_train_config_parse(c, text, "fixture", &err)) {
    fprintf(stderr, "fixture config: %s\n", err.msg);
    return -1;
  }
  return 0;
}

const char *fx_path(char *buf, size_t size, const char *name) {
  snprintf(buf, size, "%s/%s", test_tmpdir(), name);
  return buf;
}

int fx_run_tool(const char *args, char *out, size_t size) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "%s %s 2>&1", DUET_TRAIN_BIN, args);
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  size_t n = fread(out, 1, size - 1, p);
  out[n] = '\0';
  /* Drain the rest so the child is not killed by a closed pipe. */
  char sink[4096];
  while (fread(sink, 1, sizeof sink, p) > 0) {
  }
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int fx_count_lines(const char *s) {
  int n = 0;
  for (; *s; s++)
    if (*s == '\n' || s[1] == '\0') n++;
  return n;
}
