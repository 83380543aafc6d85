/* duet-infer: sample a clip (MP4 with sound, optional PNG frames and WAV) from a checkpoint. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef DUET_HAVE_FFMPEG
#include <libavutil/log.h>
#endif

#include "data/image.h"
#include "data/media.h"
#include "core/cpu_products.h"
#include "infer/pipeline.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: duet-infer --ckpt DIR --out clip.mp4 [options]\n"
          "\n"
          "Samples a video and its soundtrack from a checkpoint (e.g. runs/tiny/last).\n"
          "\n"
          "  --ckpt DIR            checkpoint directory (holds model.safetensors)\n"
          "  --out FILE.mp4        output: H.264 video + AAC audio\n"
          "  --task NAME           t2av (default), i2av, extend, inpaint, edit, v2a, a2v, t2v, t2a\n"
          "  --prompt TEXT         caption (empty = unconditional)\n"
          "  --image FILE          i2av: the first frame (any image FFmpeg reads; scaled and centre-cropped)\n"
          "  --video FILE          extend, inpaint, edit, v2a: input clip (its sound serves a2v-like tasks too)\n"
          "  --audio FILE          a2v (and extend/inpaint when --video has no sound): input sound\n"
          "  --mask FILE           inpaint, edit: an image, white = regenerate (applied to every frame)\n"
          "  --mask-box T0,T1,Y0,Y1,X0,X1  inpaint, edit: regenerate frames [T0,T1) x rows [Y0,Y1) x cols [X0,X1)\n"
          "  --keep-frames K       extend: keep the first K frames (default: half)\n"
          "  --edit-audio          edit: also regenerate the sound over the edited frames\n"
          "  --steps N             sampler steps (default 25)\n"
          "  --sampler euler|heun  (default heun)\n"
          "  --cfg-video S         guidance scale for video (default 3; 1 = off)\n"
          "  --cfg-audio S         guidance scale for audio (default 3)\n"
          "  --sync-cfg-video S    cross-modal guidance of the video by the audio (default 1 = off):\n"
          "                        away from the pass with the audio left out, for models trained\n"
          "                        with some flow.task_t2v (docs/model.md, \"Sampling\")\n"
          "  --sync-cfg-audio S    the same for the audio, guided by the video (needs flow.task_t2a);\n"
          "                        also for v2a\n"
          "  --shift S             schedule shift (default: the training config's flow.time_shift)\n"
          "  --audio-lag L         run the audio L behind the video in flow time (-1..1, default 0;\n"
          "                        negative: the video behind), for models trained with\n"
          "                        flow.audio_lag_prob > 0 (docs/model.md)\n"
          "  --no-clamp            let the clean estimates leave the codecs' ranges during sampling\n"
          "                        (pixels [-1, 1], log-mel latent at most 1; by default they are held\n"
          "                        there at every step)\n"
          "  --seed N              (default 0)\n"
          "  --matmul-precision P  f32 (default) or bf16: the CPU's matrix products take bf16 inputs,\n"
          "                        summed in f32 (oneDNN; Intel AMX where present; docs/core.md)\n"
          "  --no-ema              sample with the raw weights instead of the EMA weights\n"
          "  --frames-dir DIR      also write frame_0000.png ...\n"
          "  --wav FILE            also write the soundtrack as 16-bit WAV\n"
          "  --force               overwrite existing outputs\n"
          "  --help\n");
}

typedef struct progress_state {
  double start;
} progress_state;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void on_progress(int step, int steps, void *ctx) {
  progress_state *p = ctx;
  double el = now() - p->start, rate = step / (el > 0 ? el : 1e-9);
  fprintf(stderr, "\rsampling: step %d/%d  %.2f steps/s  ETA %.0fs   ", step, steps, rate, (steps - step) / rate);
  if (step == steps) fputc('\n', stderr);
}

static int fail(const char *msg) {
  fprintf(stderr, "duet-infer: %s\n", msg);
  return 1;
}

static int parse_int(const char *s, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || end == s || v < -2147483647L || v > 2147483647L) return 0;
  *out = (int)v;
  return 1;
}

static int parse_double(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end || end == s) return 0;
  *out = v;
  return 1;
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

int main(int argc, char **argv) {
  const char *ckpt = NULL, *out = NULL, *task_name = "t2av", *prompt = "", *image = NULL, *video = NULL;
  const char *audio = NULL, *mask = NULL, *mask_box = NULL, *frames_dir = NULL, *wav = NULL;
  int keep_frames = -1, edit_audio = 0, use_ema = 1, force = 0, steps = 25, seed = 0;
  double cfg_v = 3, cfg_a = 3, sync_v = 1, sync_a = 1, shift = -1, clamp = 1, audio_lag = 0;
  const char *sampler = "heun", *matmul = "f32";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define TAKE(var)                                                  \
  do {                                                             \
    if (!v) {                                                      \
      fprintf(stderr, "duet-infer: %s needs a value\n", a);        \
      return 2;                                                    \
    }                                                              \
    var = v;                                                       \
    i++;                                                           \
  } while (0)
    const char *num = NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
    else if (!strcmp(a, "--ckpt")) TAKE(ckpt);
    else if (!strcmp(a, "--out")) TAKE(out);
    else if (!strcmp(a, "--task")) TAKE(task_name);
    else if (!strcmp(a, "--prompt")) TAKE(prompt);
    else if (!strcmp(a, "--image")) TAKE(image);
    else if (!strcmp(a, "--video")) TAKE(video);
    else if (!strcmp(a, "--audio")) TAKE(audio);
    else if (!strcmp(a, "--mask")) TAKE(mask);
    else if (!strcmp(a, "--mask-box")) TAKE(mask_box);
    else if (!strcmp(a, "--frames-dir")) TAKE(frames_dir);
    else if (!strcmp(a, "--wav")) TAKE(wav);
    else if (!strcmp(a, "--sampler")) TAKE(sampler);
    else if (!strcmp(a, "--matmul-precision")) TAKE(matmul);
    else if (!strcmp(a, "--edit-audio")) edit_audio = 1;
    else if (!strcmp(a, "--no-ema")) use_ema = 0;
    else if (!strcmp(a, "--no-clamp")) clamp = 0;
    else if (!strcmp(a, "--force")) force = 1;
    else if (!strcmp(a, "--keep-frames")) { TAKE(num); if (!parse_int(num, &keep_frames)) goto bad_number; }
    else if (!strcmp(a, "--steps")) { TAKE(num); if (!parse_int(num, &steps)) goto bad_number; }
    else if (!strcmp(a, "--seed")) { TAKE(num); if (!parse_int(num, &seed)) goto bad_number; }
    else if (!strcmp(a, "--cfg-video")) { TAKE(num); if (!parse_double(num, &cfg_v)) goto bad_number; }
    else if (!strcmp(a, "--cfg-audio")) { TAKE(num); if (!parse_double(num, &cfg_a)) goto bad_number; }
    else if (!strcmp(a, "--sync-cfg-video")) { TAKE(num); if (!parse_double(num, &sync_v)) goto bad_number; }
    else if (!strcmp(a, "--sync-cfg-audio")) { TAKE(num); if (!parse_double(num, &sync_a)) goto bad_number; }
    else if (!strcmp(a, "--shift")) { TAKE(num); if (!parse_double(num, &shift)) goto bad_number; }
    else if (!strcmp(a, "--audio-lag")) { TAKE(num); if (!parse_double(num, &audio_lag)) goto bad_number; }
    else {
      fprintf(stderr, "duet-infer: unknown option %s (see --help)\n", a);
      return 2;
    }
    continue;
  bad_number:
    fprintf(stderr, "duet-infer: %s: not a number: %s\n", a, num);
    return 2;
#undef TAKE
  }
  if (!ckpt || !out) {
    usage(stderr);
    return 2;
  }
  int task, is_edit;
  if (duet_pipeline_task_parse(task_name, &task, &is_edit) != DUET_OK) {
    fprintf(stderr, "duet-infer: unknown task '%s' (see --help)\n", task_name);
    return 2;
  }
  if (strcmp(sampler, "heun") && strcmp(sampler, "euler")) {
    fprintf(stderr, "duet-infer: --sampler must be euler or heun, not '%s'\n", sampler);
    return 2;
  }
  if (strcmp(matmul, "f32") && strcmp(matmul, "bf16")) {
    fprintf(stderr, "duet-infer: --matmul-precision must be f32 or bf16, not '%s'\n", matmul);
    return 2;
  }
  const char *outputs[2] = {out, wav};
  for (int i = 0; i < 2; i++)
    if (outputs[i] && exists(outputs[i]) && !force) {
      fprintf(stderr, "duet-infer: %s exists (use --force to overwrite)\n", outputs[i]);
      return 1;
    }

#ifdef DUET_HAVE_FFMPEG
  av_log_set_level(AV_LOG_ERROR); /* the encoders' own chatter is not ours to print */
#endif
  duet_err err = {0};
  if (duet_cpu_set_matmul_precision(strcmp(matmul, "bf16") ? DUET_MATMUL_F32 : DUET_MATMUL_BF16, &err) != DUET_OK) {
    duet_err_prefix(&err, "--matmul-precision bf16: ");
    return fail(err.msg);
  }
  duet_pipeline *p = NULL;
  if (duet_pipeline_open(&p, ckpt, use_ema, &err) != DUET_OK) return fail(err.msg);
  const duet_model_config *c = &p->model_cfg;
  int T = c->video_frames, H = c->video_height, W = c->video_width;
  int64_t samples = duet_audio_codec_samples(p->audio, c->audio_frames);
  int rc = 0;
  duet_media img = {0}, vid = {0}, aud = {0}, msk = {0};
  uint8_t *mask_buf = NULL;
  duet_av_result res = {0};
  duet_av_request req;
  memset(&req, 0, sizeof req);
  duet_sample_params_defaults(&req.sample);
  req.sample.task = (duet_task)task;
  req.sample.sampler = strcmp(sampler, "euler") ? DUET_SAMPLER_HEUN : DUET_SAMPLER_EULER;
  req.sample.steps = steps;
  req.sample.cfg_video = cfg_v;
  req.sample.cfg_audio = cfg_a;
  req.sample.sync_cfg_video = sync_v;
  req.sample.sync_cfg_audio = sync_a;
  req.sample.time_shift = shift > 0 ? shift : p->flow_cfg.time_shift;
  req.sample.seed = (uint64_t)seed;
  req.sample.clamp_video = clamp;
  req.sample.clamp_audio = clamp;
  req.sample.audio_lag = audio_lag;
  req.prompt = prompt;
  req.is_edit = is_edit;
  req.edit_audio = edit_audio;

  /* Inputs are scaled and centre-cropped to the model's frame, resampled to its rates. */
  duet_media_opts vopts = {W, H, c->fps, p->audio_cfg.sample_rate, 0, (double)T / c->fps, 0};
  if (image) {
    duet_media_opts iopts = {W, H, 0, 0, 0, 0, 0};
    if (duet_media_read(image, &iopts, &img, &err)) { rc = fail(err.msg); goto done; }
    req.image = img.video;
  }
  if (video) {
    if (duet_media_read(video, &vopts, &vid, &err)) { rc = fail(err.msg); goto done; }
    req.video = vid.video;
    req.video_frames = vid.frames < T ? vid.frames : T;
    if (vid.has_audio && !audio) {
      req.audio = vid.audio;
      req.audio_samples = vid.audio_samples < samples ? vid.audio_samples : samples;
    }
  }
  if (audio) {
    duet_media_opts aopts = {0, 0, 0, p->audio_cfg.sample_rate, 0, (double)samples / p->audio_cfg.sample_rate, 1};
    if (duet_media_read(audio, &aopts, &aud, &err)) { rc = fail(err.msg); goto done; }
    req.audio = aud.audio;
    req.audio_samples = aud.audio_samples < samples ? aud.audio_samples : samples;
  }
  if (mask || mask_box) {
    mask_buf = calloc((size_t)T * (size_t)H * (size_t)W, 1);
    if (!mask_buf) { rc = fail("out of memory"); goto done; }
    if (mask) {
      duet_media_opts mopts = {W, H, 0, 0, 0, 0, 0};
      if (duet_media_read(mask, &mopts, &msk, &err)) { rc = fail(err.msg); goto done; }
      for (int t = 0; t < T; t++)
        for (int i = 0; i < H * W; i++) mask_buf[(size_t)t * H * W + i] = msk.video[i * 3] > 127;
    } else {
      int b[6];
      if (sscanf(mask_box, "%d,%d,%d,%d,%d,%d", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6 || b[0] < 0 ||
          b[1] > T || b[0] >= b[1] || b[2] < 0 || b[3] > H || b[2] >= b[3] || b[4] < 0 || b[5] > W || b[4] >= b[5]) {
        fprintf(stderr, "duet-infer: --mask-box %s: expected T0,T1,Y0,Y1,X0,X1 inside %dx%dx%d\n", mask_box, T, H, W);
        rc = 2;
        goto done;
      }
      for (int t = b[0]; t < b[1]; t++)
        for (int y = b[2]; y < b[3]; y++)
          for (int x = b[4]; x < b[5]; x++) mask_buf[((size_t)t * H + y) * W + x] = 1;
    }
    req.mask = mask_buf;
  }
  req.keep_frames = keep_frames > 0 ? keep_frames : T / 2;

  progress_state ps = {now()};
  if (duet_pipeline_run(p, &req, &res, on_progress, &ps, &err)) { rc = fail(err.msg); goto done; }
  if (duet_media_write_mp4(out, res.video, res.frames, res.height, res.width, res.fps, res.audio, res.samples,
                           res.sample_rate, &err)) { rc = fail(err.msg); goto done; }
  if (wav && duet_media_write_wav(wav, res.audio, res.samples, res.sample_rate, &err)) { rc = fail(err.msg); goto done; }
  if (frames_dir) {
    if (mkdir(frames_dir, 0755) != 0 && errno != EEXIST) {
      fprintf(stderr, "duet-infer: %s: cannot create the folder\n", frames_dir);
      rc = 1;
      goto done;
    }
    for (int t = 0; t < res.frames; t++) {
      char path[4096];
      snprintf(path, sizeof path, "%s/frame_%04d.png", frames_dir, t);
      if (duet_image_write_png(path, res.video + (size_t)t * res.height * res.width * 3, res.width, res.height, &err)) {
        rc = fail(err.msg);
        goto done;
      }
    }
  }
  fprintf(stderr, "duet-infer: wrote %s (%d frames %dx%d at %g fps, %.2f s of sound)\n", out, res.frames, res.width,
          res.height, res.fps, (double)res.samples / res.sample_rate);
done:
  duet_av_result_free(&res);
  duet_media_free(&img);
  duet_media_free(&vid);
  duet_media_free(&aud);
  duet_media_free(&msk);
  free(mask_buf);
  duet_pipeline_free(p);
  return rc;
}
