/* duet_twin_dump: one forward and backward pass of the MMDiT on fixed random data, written to
 * a safetensors file for the PyTorch twin (experiments/torch_twin/duet_twin.py) to check.
 *
 *   duet_twin_dump [--config FILE.ini] [--set section.key=value ...] [--seed N] [--batch B]
 *                  [--f64] [--bench N] --out FILE.safetensors
 *
 * The model is built from the defaults, then FILE.ini ([model] and [flow]), then each --set.
 * Every parameter is then moved off its initial value by small random numbers: adaLN-Zero and
 * the output layers start at zero (and norm weights at one), which would leave most of the
 * network untested. Inputs are random: x_t, condition and a 0/1 mask for both branches, flow
 * times in (0, 1), captions of several lengths (one empty, so that fully masked attention rows
 * are exercised), references when the config has them. The scalar
 *     loss = sum(video_v * Rv) + sum(audio_v * Ra)
 * with fixed random Rv, Ra makes d loss / d video_v = Rv, so every gradient is checked against a
 * generic upstream gradient.
 *
 * The file holds every parameter under its name, every input as "in.<name>", Rv and Ra as
 * "in.Rv"/"in.Ra", the outputs "out.video_v"/"out.audio_v", the scalar "out.loss", every
 * parameter gradient as "grad.<name>" and the gradients of the float inputs as
 * "grad.in.<name>"; its metadata holds the resolved config ("duet.config", the text a
 * checkpoint carries) and "twin.dtype".
 *
 * --f64 runs the whole pass in double precision (parameters are widened in place after the
 * f32 initialisation, so their values are the same as in an f32 run): a twin in float64 must
 * then agree to ~1e-12, which separates a wrong formula from f32 rounding.
 *
 * --bench N then times N more forward + backward passes of the same batch (the dumped pass
 * is the warm-up) and prints ms per pass and tokens per second, the C side of
 * bench_twin.py's comparison. --out may be left out when benchmarking. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/graph.h"
#include "core/ops.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "model/config_keys.h"
#include "model/mmdit.h"
#include "model/text_encoder.h"

/* RNG streams of this tool (seed is the --seed). */
enum { S_PERTURB = 1000, S_VIDEO_XT, S_VIDEO_COND, S_VIDEO_MASK, S_AUDIO_XT, S_AUDIO_COND, S_AUDIO_MASK,
       S_TIMES, S_TEXT, S_RV, S_RA, S_REF_VIDEO, S_REF_AUDIO };

static void die(const char *what, const duet_err *err) {
  fprintf(stderr, "duet_twin_dump: %s: %s\n", what, err ? err->msg : "failed");
  exit(1);
}

static void usage(void) {
  fprintf(stderr,
          "usage: duet_twin_dump [--config FILE.ini] [--set section.key=value ...] [--seed N] [--batch B]\n"
          "                      [--f64] [--bench N] [--out FILE.safetensors]\n");
  exit(2);
}

/* A heap tensor of dtype dt filled from f32 host values. */
static duet_tensor *from_f32(duet_dtype dt, int ndim, const int64_t *shape, const float *v) {
  duet_err err;
  duet_tensor *t = duet_tensor_new(dt, ndim, shape, &err);
  if (!t) die("allocating an input", &err);
  for (int64_t i = 0; i < t->numel; i++) duet_tensor_set(t, i, v[i]);
  return t;
}

static float *normal(uint64_t seed, uint64_t stream, int64_t n, float std) {
  float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
  if (!v) die("out of memory", NULL);
  duet_rng_fill_normal_f32(seed, stream, 0, v, n, 0.0f, std);
  return v;
}

static float *uniform(uint64_t seed, uint64_t stream, int64_t n, float lo, float hi) {
  float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
  if (!v) die("out of memory", NULL);
  duet_rng_fill_uniform_f32(seed, stream, 0, v, n, lo, hi);
  return v;
}

/* Every parameter away from its initial value: zero- and one-initialised tensors (adaLN-Zero,
 * output layers, biases, norm weights) get noise of about the scale a trained model has. */
static void perturb(duet_param_set *ps, uint64_t seed) {
  for (int i = 0; i < ps->count; i++) {
    duet_tensor *p = ps->items[i];
    float *d = p->data;
    int64_t fan_in = p->ndim == 2 ? p->shape[1] : 1;
    float std = p->ndim == 2 ? 0.5f / sqrtf((float)fan_in) : 0.1f;
    if (strstr(p->name, "tok_emb") || strstr(p->name, "pos_emb")) std = 0.02f;
    float *noise = normal(seed, S_PERTURB + 100 + (uint64_t)i, p->numel, std);
    for (int64_t j = 0; j < p->numel; j++) d[j] += noise[j];
    free(noise);
  }
}

/* Widens a tensor's storage to f64 in place (values unchanged). */
static void widen(duet_tensor *t) {
  if (!t || t->dtype != DUET_F32) return;
  size_t bytes = ((size_t)t->numel * sizeof(double) + 63) / 64 * 64;
  double *d = aligned_alloc(64, bytes ? bytes : 64);
  if (!d) die("out of memory", NULL);
  const float *s = t->data;
  for (int64_t i = 0; i < t->numel; i++) d[i] = s[i];
  if (t->owns_data) free(t->data);
  t->data = d;
  t->owns_data = 1;
  t->dtype = DUET_F64;
}

typedef struct named {
  const char *name;
  duet_tensor *t;
  int want_grad;
} named;

int main(int argc, char **argv) {
  duet_err err;
  duet_model_config mc;
  duet_flow_config fc;
  duet_model_config_defaults(&mc);
  duet_flow_config_defaults(&fc);
  duet_cfg_group groups[2] = {{duet_model_keys, duet_model_key_count, &mc}, {duet_flow_keys, duet_flow_key_count, &fc}};
  const char *out_path = NULL;
  uint64_t seed = 7;
  int B = 3, f64 = 0, bench = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--config") && i + 1 < argc) {
      if (duet_config_load_file_multi(groups, 2, argv[++i], &err)) die("config", &err);
    } else if (!strcmp(a, "--set") && i + 1 < argc) {
      if (duet_config_set_multi(groups, 2, argv[++i], &err)) die("--set", &err);
    } else if (!strcmp(a, "--seed") && i + 1 < argc) {
      seed = strtoull(argv[++i], NULL, 10);
    } else if (!strcmp(a, "--batch") && i + 1 < argc) {
      B = atoi(argv[++i]);
    } else if (!strcmp(a, "--out") && i + 1 < argc) {
      out_path = argv[++i];
    } else if (!strcmp(a, "--bench") && i + 1 < argc) {
      bench = atoi(argv[++i]);
    } else if (!strcmp(a, "--f64")) {
      f64 = 1;
    } else {
      usage();
    }
  }
  if ((!out_path && bench < 1) || B < 1) usage();
  duet_dtype dt = f64 ? DUET_F64 : DUET_F32;

  duet_param_set ps;
  duet_params_init(&ps);
  duet_mmdit *m;
  if (duet_mmdit_create(&m, &mc, &ps, seed, &err)) die("building the model", &err);
  perturb(&ps, seed);
  if (f64)
    for (int i = 0; i < ps.count; i++) {
      widen(ps.items[i]);
      widen(ps.items[i]->grad);
    }
  duet_params_zero_grad(&ps);

  /* ---- inputs ---- */
  const duet_model_config *c = &mc;
  int T = c->video_frames, H = c->video_height, W = c->video_width, C = c->video_channels;
  int F = c->audio_frames, M = c->audio_channels, L = c->text_len;
  int64_t vs[5] = {B, T, H, W, C}, vm[5] = {B, T, H, W, 1}, as[3] = {B, F, M}, am[3] = {B, F, 1}, bs[1] = {B};
  int64_t vn = (int64_t)B * T * H * W * C, vpix = (int64_t)B * T * H * W, an = (int64_t)B * F * M, apix = (int64_t)B * F;
  float *v;
  duet_mmdit_inputs in;
  memset(&in, 0, sizeof in);
  in.video_xt = from_f32(dt, 5, vs, v = normal(seed, S_VIDEO_XT, vn, 1.0f)), free(v);
  in.video_cond = from_f32(dt, 5, vs, v = uniform(seed, S_VIDEO_COND, vn, -1, 1)), free(v);
  v = uniform(seed, S_VIDEO_MASK, vpix, 0, 1);
  for (int64_t i = 0; i < vpix; i++) v[i] = v[i] < 0.5f ? 0.0f : 1.0f;
  in.video_mask = from_f32(dt, 5, vm, v), free(v);
  in.audio_xt = from_f32(dt, 3, as, v = normal(seed, S_AUDIO_XT, an, 1.0f)), free(v);
  in.audio_cond = from_f32(dt, 3, as, v = normal(seed, S_AUDIO_COND, an, 1.0f)), free(v);
  v = uniform(seed, S_AUDIO_MASK, apix, 0, 1);
  for (int64_t i = 0; i < apix; i++) v[i] = v[i] < 0.5f ? 0.0f : 1.0f;
  in.audio_mask = from_f32(dt, 3, am, v), free(v);
  v = uniform(seed, S_TIMES, 2 * B, 0.02f, 0.98f);
  in.t_video = from_f32(dt, 1, bs, v);
  in.t_audio = from_f32(dt, 1, bs, v + B), free(v);

  /* Captions: sample b keeps n_b tokens, n = L, about L/2, 0 (the empty caption), ... */
  int64_t ls[2] = {B, L};
  in.text_mask = duet_tensor_new(DUET_U8, 2, ls, &err);
  if (!in.text_mask) die("allocating the text mask", &err);
  uint8_t *tm = in.text_mask->data;
  duet_rng tr = duet_rng_make(seed, S_TEXT);
  for (int b = 0; b < B; b++) {
    int keep = b % 3 == 0 ? L : b % 3 == 1 ? (L + 1) / 2 : 0;
    for (int l = 0; l < L; l++) tm[b * L + l] = l < keep;
  }
  if (c->text_source != DUET_TEXT_PRECOMPUTED) {
    in.text = duet_tensor_new(DUET_I32, 2, ls, &err);
    if (!in.text) die("allocating text ids", &err);
    int32_t *ids = in.text->data;
    uint64_t vocab = c->text_source == DUET_TEXT_WORDS ? (uint64_t)c->text_vocab : DUET_TEXT_VOCAB;
    for (int64_t i = 0; i < (int64_t)B * L; i++) ids[i] = tm[i] ? 1 + (int32_t)duet_rng_below(&tr, vocab - 1) : 0;
  } else {
    int64_t es[3] = {B, L, c->text_emb_dim};
    int64_t en = (int64_t)B * L * c->text_emb_dim;
    v = normal(seed, S_TEXT, en, 1.0f);
    for (int64_t i = 0; i < en; i++)
      if (!tm[i / c->text_emb_dim]) v[i] = 0; /* padding carries zeros, as a dataset would */
    in.text = from_f32(dt, 3, es, v), free(v);
  }
  if (c->ref_video_frames) {
    int64_t rs[5] = {B, c->ref_video_frames, H, W, C};
    in.ref_video = from_f32(dt, 5, rs, v = uniform(seed, S_REF_VIDEO, duet_shape_numel(5, rs), -1, 1)), free(v);
  }
  if (c->ref_audio_frames) {
    int64_t rs[3] = {B, c->ref_audio_frames, M};
    in.ref_audio = from_f32(dt, 3, rs, v = normal(seed, S_REF_AUDIO, duet_shape_numel(3, rs), 1.0f)), free(v);
  }
  duet_tensor *Rv = from_f32(dt, 5, vs, v = normal(seed, S_RV, vn, 1.0f));
  free(v);
  duet_tensor *Ra = from_f32(dt, 3, as, v = normal(seed, S_RA, an, 1.0f));
  free(v);

  named inputs[] = {
      {"in.video_xt", in.video_xt, 1}, {"in.video_cond", in.video_cond, 1}, {"in.video_mask", in.video_mask, 1},
      {"in.audio_xt", in.audio_xt, 1}, {"in.audio_cond", in.audio_cond, 1}, {"in.audio_mask", in.audio_mask, 1},
      {"in.t_video", in.t_video, 1},   {"in.t_audio", in.t_audio, 1},       {"in.text", in.text, 0},
      {"in.text_mask", in.text_mask, 0}, {"in.ref_video", in.ref_video, 1}, {"in.ref_audio", in.ref_audio, 1},
      {"in.Rv", Rv, 0},                {"in.Ra", Ra, 0},
  };
  int n_inputs = (int)(sizeof inputs / sizeof inputs[0]);
  for (int i = 0; i < n_inputs; i++)
    if (inputs[i].t && inputs[i].want_grad) inputs[i].t->requires_grad = 1;

  /* ---- forward and backward ---- */
  duet_graph g;
  duet_graph_init(&g, (size_t)1 << 24);
  duet_mmdit_outputs o;
  if (duet_mmdit_forward(m, &g, &in, &o, &err)) die("forward", &err);
  duet_tensor *loss = duet_add(&g, duet_sum(&g, duet_mul(&g, o.video_v, Rv)), duet_sum(&g, duet_mul(&g, o.audio_v, Ra)));
  if (!duet_graph_ok(&g)) {
    duet_graph_status(&g, &err);
    die("loss", &err);
  }
  if (duet_backward(&g, loss, &err)) die("backward", &err);

  /* ---- the file ---- */
  duet_st_writer *w = duet_st_writer_new(&err);
  if (!w) die("safetensors writer", &err);
  char *cfg_text = NULL;
  if (duet_config_format_multi(groups, 2, &cfg_text, &err)) die("formatting the config", &err);
  int rc = duet_st_writer_meta(w, "duet.config", cfg_text, &err) ||
           duet_st_writer_meta(w, "twin.dtype", f64 ? "float64" : "float32", &err) ||
           duet_st_writer_add_params(w, &ps, NULL, &err) ||
           duet_st_writer_add(w, "out.video_v", o.video_v, &err) || duet_st_writer_add(w, "out.audio_v", o.audio_v, &err) ||
           duet_st_writer_add(w, "out.loss", loss, &err);
  char key[512];
  for (int i = 0; !rc && i < n_inputs; i++) {
    if (!inputs[i].t) continue;
    rc = duet_st_writer_add(w, inputs[i].name, inputs[i].t, &err);
    if (!rc && inputs[i].want_grad && inputs[i].t->grad) {
      snprintf(key, sizeof key, "grad.%s", inputs[i].name);
      rc = duet_st_writer_add(w, key, inputs[i].t->grad, &err);
    }
  }
  for (int i = 0; !rc && i < ps.count; i++) {
    snprintf(key, sizeof key, "grad.%s", ps.items[i]->name);
    rc = duet_st_writer_add(w, key, ps.items[i]->grad, &err);
  }
  if (rc || (out_path && duet_st_writer_write(w, out_path, &err))) die("writing the file", &err);
  printf("%s: %d parameters (%lld values), loss %.9g, %s\n", out_path ? out_path : "(not written)", ps.count,
         (long long)duet_params_numel(&ps), duet_tensor_get(loss, 0), f64 ? "f64" : "f32");

  if (bench > 0) {
    /* Process CPU time beside wall time: on a shared machine the wall time of a one-thread
     * run includes the time other processes held the core, its CPU time does not. */
    struct timespec t0, t1, c0, c1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < bench; i++) {
      duet_graph_reset(&g);
      duet_params_zero_grad(&ps);
      for (int j = 0; j < n_inputs; j++)
        if (inputs[j].t) inputs[j].t->grad = NULL; /* the arena that held them was reset */
      if (duet_mmdit_forward(m, &g, &in, &o, &err)) die("forward", &err);
      loss = duet_add(&g, duet_sum(&g, duet_mul(&g, o.video_v, Rv)), duet_sum(&g, duet_mul(&g, o.audio_v, Ra)));
      if (duet_backward(&g, loss, &err)) die("backward", &err);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    double cpu = (double)(c1.tv_sec - c0.tv_sec) + 1e-9 * (double)(c1.tv_nsec - c0.tv_nsec);
    int64_t tokens = (int64_t)B * (duet_model_video_tokens(c) + duet_model_audio_tokens(c));
    printf("bench: %d forward+backward passes, batch %d, %lld tokens each: %.2f ms/pass, %.0f tokens/s, "
           "CPU time %.2f ms/pass\n",
           bench, B, (long long)tokens, 1e3 * s / bench, (double)tokens * bench / s, 1e3 * cpu / bench);
  }

  duet_st_writer_free(w);
  free(cfg_text);
  duet_graph_free(&g);
  for (int i = 0; i < n_inputs; i++) duet_tensor_free(inputs[i].t);
  duet_mmdit_free(m);
  duet_params_free(&ps);
  return 0;
}
