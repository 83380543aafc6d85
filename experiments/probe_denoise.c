/* probe_denoise: how well a checkpoint removes noise, by flow time.
 *
 * For clips of a clip file and a list of flow times t, noises each clip's latents to
 * x_t = (1 - t) x_0 + t eps, asks the model for the velocity v (its own caption, no guidance,
 * the t2av inputs: nothing kept) and reports the error of its clean estimate
 * x0_hat = x_t - t v against x_0, beside the error of x_t itself (what "doing nothing" leaves).
 * A ratio above 1 means the model adds error at that time. The sampler's last steps run at
 * small t, so a model that is poor there leaves visible grain in every sample.
 *
 * It then starts the sampler (Euler, no guidance) from each clip noised to t = 0.1 ... 1 and
 * reports how far the result lands from the clip, and how rough its frames are next to the
 * data's: if samples started at high t are grainy but those started at low t are clean, the
 * network fails early in the path, not at the end.
 *
 * usage: probe_denoise --ckpt DIR --clips FILE.h5 [--count N] [--first I] [--no-ema] [--png FILE] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "data/clips.h"
#include "data/image.h"
#include "infer/pipeline.h"
#include "model/text_encoder.h"

static const double kTimes[] = {0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.98};
enum { kNumTimes = sizeof kTimes / sizeof kTimes[0] };

/* One model call: the t2av inputs (nothing kept) at flow time t for both modalities. */
typedef struct probe {
  duet_pipeline *p;
  duet_graph g;
  const float *zeros_v, *zeros_a, *ones_v, *ones_a;
  const int32_t *ids;
  const uint8_t *tmask;
} probe;

static int predict(probe *pr, float *xtv, float *xta, float t, const float **v, const float **a, duet_err *err) {
  const duet_model_config *c = &pr->p->model_cfg;
  int T = c->video_frames, H = c->video_height, W = c->video_width, L = c->text_len;
  duet_graph *g = &pr->g;
  duet_graph_reset(g);
  int64_t vs[5] = {1, T, H, W, c->video_channels}, vm[5] = {1, T, H, W, 1};
  int64_t as[3] = {1, c->audio_frames, c->audio_channels}, am[3] = {1, c->audio_frames, 1};
  int64_t ts[1] = {1}, ls[2] = {1, L};
  duet_mmdit_inputs in = {
      duet_graph_from_host(g, DUET_F32, DUET_CPU, 5, vs, xtv),
      duet_graph_from_host(g, DUET_F32, DUET_CPU, 5, vs, (float *)pr->zeros_v),
      duet_graph_from_host(g, DUET_F32, DUET_CPU, 5, vm, (float *)pr->ones_v),
      duet_graph_from_host(g, DUET_F32, DUET_CPU, 3, as, xta),
      duet_graph_from_host(g, DUET_F32, DUET_CPU, 3, as, (float *)pr->zeros_a),
      duet_graph_from_host(g, DUET_F32, DUET_CPU, 3, am, (float *)pr->ones_a),
      duet_graph_from_host(g, DUET_F32, DUET_CPU, 1, ts, &t),
      duet_graph_from_host(g, DUET_F32, DUET_CPU, 1, ts, &t),
      duet_graph_from_host(g, DUET_I32, DUET_CPU, 2, ls, (int32_t *)pr->ids),
      duet_graph_from_host(g, DUET_U8, DUET_CPU, 2, ls, (uint8_t *)pr->tmask),
      NULL,
      NULL,
  };
  duet_mmdit_outputs out;
  int rc = duet_mmdit_forward(pr->p->model, g, &in, &out, err);
  if (rc) return rc;
  *v = out.video_v->data;
  *a = out.audio_v->data;
  return DUET_OK;
}

/* Mean absolute difference of horizontally adjacent pixels: grain that the data does not have
 * shows up here even where a sample cannot be compared with a clip. */
static double roughness(const float *x, int T, int H, int W, int C) {
  double sum = 0;
  for (int t = 0; t < T; t++)
    for (int y = 0; y < H; y++)
      for (int xx = 0; xx + 1 < W; xx++)
        for (int c = 0; c < C; c++) {
          int64_t i = (((int64_t)t * H + y) * W + xx) * C + c;
          sum += fabs(x[i + C] - x[i]);
        }
  return sum / ((double)T * H * (W - 1) * C);
}

/* Euler steps of the flow from t0 down to 0 (the sampler without guidance), in place. */
static int integrate(probe *pr, float *xv, float *xa, int64_t vn, int64_t an, double t0, duet_err *err) {
  int steps = (int)ceil(25 * t0);
  if (steps < 2) steps = 2;
  for (int i = 0; i < steps; i++) {
    double ta = t0 * (1.0 - (double)i / steps), tb = t0 * (1.0 - (double)(i + 1) / steps);
    const float *v, *a;
    int rc = predict(pr, xv, xa, (float)ta, &v, &a, err);
    if (rc) return rc;
    for (int64_t j = 0; j < vn; j++) xv[j] += (float)(tb - ta) * v[j];
    for (int64_t j = 0; j < an; j++) xa[j] += (float)(tb - ta) * a[j];
  }
  return DUET_OK;
}

static const double kStarts[] = {0.1, 0.3, 0.5, 0.7, 1.0};
enum { kNumStarts = sizeof kStarts / sizeof kStarts[0] };

/* Copies frames 0, step, 2 step, ... of one clip side by side into row `row` of the grid. */
static void place_row(uint8_t *grid, int row, const uint8_t *rgb, int T, int H, int W, int shown, int step) {
  (void)T;
  int64_t grid_w = (int64_t)W * shown;
  for (int f = 0; f < shown; f++)
    for (int y = 0; y < H; y++)
      memcpy(grid + (((int64_t)row * H + y) * grid_w + (int64_t)f * W) * 3, rgb + (((int64_t)f * step * H + y) * W) * 3,
             (size_t)W * 3);
}

static int fail(duet_err *err) {
  fprintf(stderr, "probe_denoise: %s\n", err->msg);
  return 1;
}

int main(int argc, char **argv) {
  const char *ckpt = NULL, *clips = NULL, *png = NULL;
  int count = 16, first = -1, use_ema = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--ckpt") && i + 1 < argc) ckpt = argv[++i];
    else if (!strcmp(argv[i], "--clips") && i + 1 < argc) clips = argv[++i];
    else if (!strcmp(argv[i], "--count") && i + 1 < argc) count = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--first") && i + 1 < argc) first = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--no-ema")) use_ema = 0;
    else if (!strcmp(argv[i], "--png") && i + 1 < argc) png = argv[++i];
    else {
      fprintf(stderr, "usage: probe_denoise --ckpt DIR --clips FILE.h5 [--count N] [--first I] [--no-ema] [--png FILE]\n"
                      "  (default: the last N clips of the file, the held-out ones in a training run)\n");
      return strcmp(argv[i], "--help") ? 2 : 0;
    }
  }
  if (!ckpt || !clips || count < 1) {
    fprintf(stderr, "probe_denoise: --ckpt and --clips are required (see --help)\n");
    return 2;
  }
  duet_err err = {0};
  duet_pipeline *p = NULL;
  duet_clip_file *f = NULL;
  if (duet_pipeline_open(&p, ckpt, use_ema, &err)) return fail(&err);
  if (duet_clip_file_open(&f, clips, &err)) {
    duet_pipeline_free(p);
    return fail(&err);
  }
  const duet_model_config *c = &p->model_cfg;
  int T = c->video_frames, H = c->video_height, W = c->video_width, L = c->text_len;
  int64_t vn = (int64_t)T * H * W * c->video_channels, vpix = (int64_t)T * H * W;
  int64_t an = (int64_t)c->audio_frames * c->audio_channels, samples = duet_audio_codec_samples(p->audio, c->audio_frames);
  int64_t n = duet_clip_file_count(f);
  if (first < 0) first = (int)(n > count ? n - count : 0);
  if (first + count > n) count = (int)(n - first);

  uint8_t *rgb = malloc((size_t)vn);
  float *wave = malloc(sizeof(float) * (size_t)samples), *x0v = malloc(sizeof(float) * (size_t)vn);
  float *x0a = malloc(sizeof(float) * (size_t)an), *xtv = malloc(sizeof(float) * (size_t)vn);
  float *xta = malloc(sizeof(float) * (size_t)an), *epsv = malloc(sizeof(float) * (size_t)vn);
  float *epsa = malloc(sizeof(float) * (size_t)an), *ones_v = malloc(sizeof(float) * (size_t)vpix);
  float *ones_a = malloc(sizeof(float) * (size_t)c->audio_frames);
  float *zeros_v = calloc((size_t)vn, sizeof(float)), *zeros_a = calloc((size_t)an, sizeof(float));
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)L);
  uint8_t *tmask = malloc((size_t)L);
  double err_model[2][kNumTimes] = {{0}}, err_noisy[2][kNumTimes] = {{0}};
  double err_path[2][kNumStarts] = {{0}}, rough_path[kNumStarts] = {0}, rough_data = 0;
  int frames_shown = T < 8 ? T : 8, frame_step = T / frames_shown;
  uint8_t *grid = png ? malloc((size_t)(kNumStarts + 1) * H * W * frames_shown * 3) : NULL;
  uint8_t *decoded = png ? malloc((size_t)vn) : NULL;
  int rc = 0;
  for (int64_t i = 0; i < vpix; i++) ones_v[i] = 1.0f;
  for (int i = 0; i < c->audio_frames; i++) ones_a[i] = 1.0f;
  probe pr;
  memset(&pr, 0, sizeof pr);
  pr.p = p;
  pr.zeros_v = zeros_v;
  pr.zeros_a = zeros_a;
  pr.ones_v = ones_v;
  pr.ones_a = ones_a;
  pr.ids = ids;
  pr.tmask = tmask;
  duet_graph_init(&pr.g, 1 << 24);
  for (int k = 0; k < count && !rc; k++) {
    char *caption = NULL;
    if ((rc = duet_clip_file_read(f, first + k, rgb, wave, &caption, NULL, NULL, NULL, &err))) break;
    duet_text_tokenize(c, caption, ids, tmask);
    free(caption);
    if ((rc = duet_video_codec_encode(&p->video, rgb, T, H, W, x0v, &err)) ||
        (rc = duet_audio_codec_encode(p->audio, wave, 1, samples, x0a, &err)))
      break;
    duet_rng_fill_normal_f32(7, 1, (uint64_t)k, epsv, vn, 0, 1);
    duet_rng_fill_normal_f32(7, 2, (uint64_t)k, epsa, an, 0, 1);
    for (int ti = 0; ti < kNumTimes && !rc; ti++) {
      float t = (float)kTimes[ti];
      for (int64_t j = 0; j < vn; j++) xtv[j] = (1 - t) * x0v[j] + t * epsv[j];
      for (int64_t j = 0; j < an; j++) xta[j] = (1 - t) * x0a[j] + t * epsa[j];
      const float *v, *a;
      if ((rc = predict(&pr, xtv, xta, t, &v, &a, &err))) break;
      for (int64_t j = 0; j < vn; j++) {
        double e = xtv[j] - t * v[j] - x0v[j], d = xtv[j] - x0v[j];
        err_model[0][ti] += e * e / (double)vn;
        err_noisy[0][ti] += d * d / (double)vn;
      }
      for (int64_t j = 0; j < an; j++) {
        double e = xta[j] - t * a[j] - x0a[j], d = xta[j] - x0a[j];
        err_model[1][ti] += e * e / (double)an;
        err_noisy[1][ti] += d * d / (double)an;
      }
    }
    rough_data += roughness(x0v, T, H, W, c->video_channels);
    if (grid && k == 0 && !rc) {
      if ((rc = duet_video_codec_decode(&p->video, x0v, T, H, W, decoded, &err))) break;
      place_row(grid, 0, decoded, T, H, W, frames_shown, frame_step);
    }
    for (int si = 0; si < kNumStarts && !rc; si++) {
      double t = kStarts[si];
      for (int64_t j = 0; j < vn; j++) xtv[j] = (float)((1 - t) * x0v[j] + t * epsv[j]);
      for (int64_t j = 0; j < an; j++) xta[j] = (float)((1 - t) * x0a[j] + t * epsa[j]);
      if ((rc = integrate(&pr, xtv, xta, vn, an, t, &err))) break;
      for (int64_t j = 0; j < vn; j++) err_path[0][si] += (double)(xtv[j] - x0v[j]) * (xtv[j] - x0v[j]) / (double)vn;
      for (int64_t j = 0; j < an; j++) err_path[1][si] += (double)(xta[j] - x0a[j]) * (xta[j] - x0a[j]) / (double)an;
      rough_path[si] += roughness(xtv, T, H, W, c->video_channels);
      if (grid && k == 0) {
        if ((rc = duet_video_codec_decode(&p->video, xtv, T, H, W, decoded, &err))) break;
        place_row(grid, si + 1, decoded, T, H, W, frames_shown, frame_step);
      }
    }
  }
  duet_graph_free(&pr.g);
  if (!rc) {
    printf("# clean-estimate error by flow time: %s, clips %d..%d of %s (%s weights)\n\n", ckpt, first,
           first + count - 1, clips, use_ema ? "EMA" : "raw");
    printf("| t | video rms(x0_hat - x0) | video rms(x_t - x0) | ratio | audio rms(x0_hat - x0) | audio rms(x_t - x0) | ratio |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int ti = 0; ti < kNumTimes; ti++) {
      double mv = sqrt(err_model[0][ti] / count), nv = sqrt(err_noisy[0][ti] / count);
      double ma = sqrt(err_model[1][ti] / count), na = sqrt(err_noisy[1][ti] / count);
      printf("| %.2f | %.4f | %.4f | %.2f | %.4f | %.4f | %.2f |\n", kTimes[ti], mv, nv, mv / nv, ma, na, ma / na);
    }
    printf("\n# sampled from the clip noised to t (Euler, max(2, 25 t) steps, no guidance); t = 1 is a fresh sample\n\n");
    printf("| from t | video rms(x - x0) | audio rms(x - x0) | video roughness (data: %.4f) |\n", rough_data / count);
    printf("|---:|---:|---:|---:|\n");
    for (int si = 0; si < kNumStarts; si++)
      printf("| %.1f | %.4f | %.4f | %.4f |\n", kStarts[si], sqrt(err_path[0][si] / count), sqrt(err_path[1][si] / count),
             rough_path[si] / count);
    if (grid && duet_image_write_png(png, grid, W * frames_shown, H * (kNumStarts + 1), &err) == DUET_OK)
      printf("\nframes of clip %d (top row: the clip; then one row per starting t): %s\n", first, png);
    else if (grid)
      fprintf(stderr, "probe_denoise: %s\n", err.msg);
  }
  free(rgb); free(wave); free(x0v); free(x0a); free(xtv); free(xta); free(epsv); free(epsa);
  free(grid); free(decoded);
  free(ones_v); free(ones_a); free(zeros_v); free(zeros_a); free(ids); free(tmask);
  duet_clip_file_close(f);
  duet_pipeline_free(p);
  return rc ? fail(&err) : 0;
}
