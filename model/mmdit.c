#include "model/mmdit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMESTEP_DIM 256

static int mlp_hidden(const duet_model_config *c, int width) { return (int)(c->mlp_ratio * width + 0.5); }

static void stream_make(duet_layer_builder *lb, duet_stream_weights *s, const char *prefix, int width,
                        int heads, int hidden, int pre_only) {
  char p[192];
  int64_t dh[1] = {width / heads};
  s->pre_only = pre_only;
  snprintf(p, sizeof p, "%s.ada", prefix);
  duet_linear_layer_make(lb, &s->ada, p, width, (pre_only ? 2 : 6) * width, 1, 1);
  snprintf(p, sizeof p, pre_only ? "%s.attn.kv" : "%s.attn.qkv", prefix);
  duet_linear_layer_make(lb, &s->qkv, p, width, (pre_only ? 2 : 3) * width, 1, 0);
  if (!pre_only) s->q_norm = duet_layer_param(lb, prefix, "attn.q_norm.weight", 1, dh, DUET_INIT_ONE, 0);
  s->k_norm = duet_layer_param(lb, prefix, "attn.k_norm.weight", 1, dh, DUET_INIT_ONE, 0);
  if (pre_only) return;
  snprintf(p, sizeof p, "%s.attn.proj", prefix);
  duet_linear_layer_make(lb, &s->proj, p, width, width, 1, 0);
  snprintf(p, sizeof p, "%s.mlp", prefix);
  duet_mlp_make(lb, &s->mlp, p, width, hidden);
}

static void cross_make(duet_layer_builder *lb, duet_cross_weights *c, const char *prefix, int width,
                       int heads, int kv_width) {
  char p[192];
  int64_t dh[1] = {width / heads};
  snprintf(p, sizeof p, "%s.ada", prefix);
  duet_linear_layer_make(lb, &c->ada, p, width, 3 * width, 1, 1);
  snprintf(p, sizeof p, "%s.q", prefix);
  duet_linear_layer_make(lb, &c->q, p, width, width, 1, 0);
  snprintf(p, sizeof p, "%s.kv", prefix);
  duet_linear_layer_make(lb, &c->kv, p, kv_width, 2 * width, 1, 0);
  c->q_norm = duet_layer_param(lb, prefix, "q_norm.weight", 1, dh, DUET_INIT_ONE, 0);
  c->k_norm = duet_layer_param(lb, prefix, "k_norm.weight", 1, dh, DUET_INIT_ONE, 0);
  snprintf(p, sizeof p, "%s.proj", prefix);
  duet_linear_layer_make(lb, &c->proj, p, width, width, 1, 0);
}

static void aligned_make(duet_layer_builder *lb, duet_aligned_weights *w, int block, const duet_model_config *c) {
  char p[128];
  int S = (c->video_height / c->patch_h) * (c->video_width / c->patch_w), R = duet_model_audio_per_video_step(c);
  snprintf(p, sizeof p, "blocks.%d.aligned.video_down", block);
  duet_linear_layer_make(lb, &w->video_down, p, c->width_video, c->aligned_width, 1, 0);
  snprintf(p, sizeof p, "blocks.%d.aligned.audio_from_video", block);
  duet_linear_layer_make(lb, &w->audio_from_video, p, S * c->aligned_width, R * c->width_audio, 1, 1);
  snprintf(p, sizeof p, "blocks.%d.aligned.video_from_audio", block);
  duet_linear_layer_make(lb, &w->video_from_audio, p, R * c->width_audio, c->width_video, 1, 1);
}

static void branch_io_make(duet_layer_builder *lb, duet_branch_io *io, const char *name, int in_dim,
                           int out_dim, int ref_dim, int width, int text_width, int text_in) {
  char p[128];
  snprintf(p, sizeof p, "%s.embed", name);
  duet_linear_layer_make(lb, &io->embed, p, in_dim, width, 1, 0);
  if (ref_dim) {
    snprintf(p, sizeof p, "%s.ref_embed", name);
    duet_linear_layer_make(lb, &io->ref_embed, p, ref_dim, width, 1, 0);
  }
  if (text_in) {
    snprintf(p, sizeof p, "%s.text_in", name);
    duet_linear_layer_make(lb, &io->text_in, p, text_width, width, 1, 0);
  }
  snprintf(p, sizeof p, "%s.t_mlp.fc1", name);
  duet_linear_layer_make(lb, &io->t_mlp1, p, TIMESTEP_DIM, width, 1, 0);
  snprintf(p, sizeof p, "%s.t_mlp.fc2", name);
  duet_linear_layer_make(lb, &io->t_mlp2, p, width, width, 1, 0);
  snprintf(p, sizeof p, "%s.pooled_in", name);
  duet_linear_layer_make(lb, &io->pooled_in, p, text_width, width, 1, 0);
  snprintf(p, sizeof p, "%s.final.ada", name);
  duet_linear_layer_make(lb, &io->final_ada, p, width, 2 * width, 1, 1);
  snprintf(p, sizeof p, "%s.final.out", name);
  duet_linear_layer_make(lb, &io->final_out, p, width, out_dim, 1, 1);
}

int duet_mmdit_create(duet_mmdit **out, const duet_model_config *cfg, duet_param_set *ps, uint64_t seed,
                      duet_err *err) {
  *out = NULL;
  int rc = duet_model_config_validate(cfg, err);
  if (rc) return rc;
  if (cfg->depth > DUET_MMDIT_MAX_BLOCKS || cfg->single_depth > DUET_MMDIT_MAX_BLOCKS)
    return duet_err_set(err, DUET_EINVAL, "model: depth and single_depth must be <= %d", DUET_MMDIT_MAX_BLOCKS);
  duet_mmdit *m = calloc(1, sizeof *m);
  if (!m) return duet_err_set(err, DUET_ENOMEM, "out of memory for the model");
  m->cfg = *cfg;
  m->params = ps;
  if ((rc = duet_positions_make(&m->pos, cfg, err))) {
    free(m);
    return rc;
  }
  duet_layer_builder *lb = &m->builder;
  duet_layer_builder_init(lb, ps, err);
  const duet_model_config *c = cfg;
  int cross = c->fusion == DUET_FUSION_CROSS;
  int C = c->video_channels, M = c->audio_channels;
  int vpatch = c->patch_t * c->patch_h * c->patch_w, apatch = c->patch_a;

  duet_text_encoder_make(lb, &m->text, c);
  branch_io_make(lb, &m->video, "video", vpatch * (2 * C + 1), vpatch * C, c->ref_video_frames ? vpatch * C : 0,
                 c->width_video, c->width_text, cross);
  branch_io_make(lb, &m->audio, "audio", apatch * (2 * M + 1), apatch * M, c->ref_audio_frames ? apatch * M : 0,
                 c->width_audio, c->width_text, cross);
  char p[128];
  for (int i = 0; i < c->depth; i++) {
    duet_dual_block *b = &m->blocks[i];
    int last = i == c->depth - 1;
    snprintf(p, sizeof p, "blocks.%d.video", i);
    stream_make(lb, &b->video, p, c->width_video, c->heads_video, mlp_hidden(c, c->width_video), 0);
    snprintf(p, sizeof p, "blocks.%d.audio", i);
    stream_make(lb, &b->audio, p, c->width_audio, c->heads_audio, mlp_hidden(c, c->width_audio), 0);
    if (cross) {
      snprintf(p, sizeof p, "blocks.%d.video_text", i);
      stream_make(lb, &b->video_text, p, c->width_video, c->heads_video, mlp_hidden(c, c->width_video), last);
      snprintf(p, sizeof p, "blocks.%d.audio_text", i);
      stream_make(lb, &b->audio_text, p, c->width_audio, c->heads_audio, mlp_hidden(c, c->width_audio), last);
      snprintf(p, sizeof p, "blocks.%d.audio_from_video", i);
      cross_make(lb, &b->audio_from_video, p, c->width_audio, c->heads_audio, c->width_video);
      snprintf(p, sizeof p, "blocks.%d.video_from_audio", i);
      cross_make(lb, &b->video_from_audio, p, c->width_video, c->heads_video, c->width_audio);
      if (c->aligned_width > 0) aligned_make(lb, &b->aligned, i, c);
    } else {
      snprintf(p, sizeof p, "blocks.%d.text", i);
      stream_make(lb, &b->text, p, c->width_text, c->heads_video, mlp_hidden(c, c->width_text), last);
    }
  }
  if (c->single_depth > 0)
    duet_linear_layer_make(lb, &m->text_single_in, "single_text_in", c->width_text, c->width_video, 1, 0);
  for (int i = 0; i < c->single_depth; i++) {
    duet_single_block *s = &m->singles[i];
    snprintf(p, sizeof p, "singles.%d.av", i);
    stream_make(lb, &s->av, p, c->width_video, c->heads_video, mlp_hidden(c, c->width_video), 0);
    snprintf(p, sizeof p, "singles.%d.from_text", i);
    cross_make(lb, &s->from_text, p, c->width_video, c->heads_video, c->width_video);
  }
  if (lb->failed) {
    rc = err ? err->code : DUET_EINVAL;
    duet_mmdit_free(m);
    return rc ? rc : DUET_EINVAL;
  }
  duet_layer_builder_init_weights(lb, seed);
  *out = m;
  return DUET_OK;
}

void duet_mmdit_free(duet_mmdit *m) {
  if (!m) return;
  duet_positions_free(&m->pos);
  duet_layer_builder_free(&m->builder);
  free(m);
}

/* ---- forward ---- */

/* The k-th of n equal chunks of a [B, n*W] modulation vector. */
static duet_tensor *chunk(duet_graph *g, duet_tensor *mod, int k, int n) {
  if (!mod) return NULL;
  int64_t w = mod->shape[1] / n;
  return duet_slice(g, mod, 1, k * w, w);
}

static duet_tensor *ln(duet_graph *g, duet_tensor *x) { return duet_layernorm(g, x, NULL, NULL, 1e-6); }
/* adaLN: modulate(LN(x)) in one fused op (the normalised tensor is never stored). */
static duet_tensor *ln_modulate(duet_graph *g, duet_tensor *x, duet_tensor *shift, duet_tensor *scale) {
  return duet_norm_modulate(g, x, shift, scale, 0, 1e-6);
}

/* Where and in what dtype the network computes: those of its parameters (the GPU after
 * duet_params_to_device; bf16 while a trainer swaps in bf16 copies of the weights). */
static duet_device model_device(const duet_mmdit *m) { return m->params->device; }
static duet_dtype model_dtype(const duet_mmdit *m) { return m->video.embed.weight->dtype; }

/* A host-built tensor (an input, a mask, positions) on the model's device: the same tensor
 * on the CPU, a copy otherwise (data, so no gradient). */
static duet_tensor *on_model_device(duet_graph *g, const duet_mmdit *m, duet_tensor *t) {
  if (!t || model_device(m) == t->device) return t;
  if (t->device != DUET_CPU) return duet_graph_fail(g, DUET_EINVAL, "model input on device %d, model on %d",
                                                    (int)t->device, (int)model_device(m));
  return duet_graph_from_host(g, t->dtype, model_device(m), t->ndim, t->shape, t->data);
}
/* The same, converted to the compute dtype when it is a float tensor. */
static duet_tensor *compute_input(duet_graph *g, const duet_mmdit *m, duet_tensor *t) {
  t = on_model_device(g, m, t);
  return t && duet_dtype_is_float(t->dtype) ? duet_cast(g, t, model_dtype(m)) : t;
}

/* One stream of a joint attention: its tokens, conditioning and rotary positions. */
typedef struct stream_in {
  const duet_stream_weights *w;
  duet_tensor *x;      /* [B, L, W] */
  duet_tensor *cond;   /* SiLU(cond) [B, W] */
  duet_tensor *pos;    /* rotary positions or NULL (text) */
  const duet_rope_spec *spec;
  duet_tensor *mod;    /* filled: the six modulation vectors */
} stream_in;

/* Joint attention over n streams with separate weights, then each stream's MLP. Updates
 * s[i].x in place. Every stream offers keys and values; pre-only streams ask no queries. */
static void joint_block(duet_graph *g, stream_in *s, int n, duet_tensor *key_mask, int heads) {
  duet_tensor *qs[3], *ks[3], *vs[3];
  int nq = 0;
  for (int i = 0; i < n; i++) {
    if (!s[i].x) return;
    int64_t w = s[i].x->shape[2];
    int pre = s[i].w->pre_only, chunks = pre ? 2 : 6;
    s[i].mod = duet_linear_layer_apply(g, &s[i].w->ada, s[i].cond);
    duet_tensor *h = ln_modulate(g, s[i].x, chunk(g, s[i].mod, 0, chunks), chunk(g, s[i].mod, 1, chunks));
    duet_tensor *proj = duet_linear_layer_apply(g, &s[i].w->qkv, h);
    int64_t kv0 = pre ? 0 : w; /* [q,] k, v along channels */
    duet_tensor *k = duet_head_rmsnorm(g, duet_slice(g, proj, 2, kv0, w), heads, s[i].w->k_norm);
    if (s[i].pos) k = duet_rope(g, k, s[i].pos, heads, s[i].spec);
    ks[i] = k;
    vs[i] = duet_slice(g, proj, 2, kv0 + w, w);
    if (!pre) {
      duet_tensor *q = duet_head_rmsnorm(g, duet_slice(g, proj, 2, 0, w), heads, s[i].w->q_norm);
      if (s[i].pos) q = duet_rope(g, q, s[i].pos, heads, s[i].spec);
      qs[nq++] = q;
    }
  }
  duet_tensor *o = duet_attention(g, duet_concat(g, qs, nq, 1), duet_concat(g, ks, n, 1),
                                  duet_concat(g, vs, n, 1), key_mask, heads);
  int64_t start = 0;
  for (int i = 0; i < n; i++) {
    if (g->failed) return;
    if (s[i].w->pre_only) continue; /* nothing reads this stream after the block */
    int64_t len = s[i].x->shape[1];
    duet_tensor *oi = duet_slice(g, o, 1, start, len);
    start += len;
    duet_tensor *x = duet_gated_residual(g, s[i].x, chunk(g, s[i].mod, 2, 6),
                                         duet_linear_layer_apply(g, &s[i].w->proj, oi));
    duet_tensor *h = ln_modulate(g, x, chunk(g, s[i].mod, 3, 6), chunk(g, s[i].mod, 4, 6));
    s[i].x = duet_gated_residual(g, x, chunk(g, s[i].mod, 5, 6), duet_mlp_apply(g, &s[i].w->mlp, h));
  }
}

/* x attends to y: q from modulate(LN(x)), keys/values from LN(y) projected into x's width. */
static duet_tensor *cross_block(duet_graph *g, const duet_cross_weights *w, duet_tensor *x, duet_tensor *y,
                                duet_tensor *cond, duet_tensor *q_pos, duet_tensor *k_pos,
                                const duet_rope_spec *spec, duet_tensor *key_mask, int heads) {
  if (!x || !y) return NULL;
  int64_t width = x->shape[2];
  duet_tensor *mod = duet_linear_layer_apply(g, &w->ada, cond);
  duet_tensor *h = ln_modulate(g, x, chunk(g, mod, 0, 3), chunk(g, mod, 1, 3));
  duet_tensor *q = duet_head_rmsnorm(g, duet_linear_layer_apply(g, &w->q, h), heads, w->q_norm);
  duet_tensor *kv = duet_linear_layer_apply(g, &w->kv, ln(g, y));
  duet_tensor *k = duet_head_rmsnorm(g, duet_slice(g, kv, 2, 0, width), heads, w->k_norm);
  duet_tensor *v = duet_slice(g, kv, 2, width, width);
  if (q_pos) {
    q = duet_rope(g, q, q_pos, heads, spec);
    k = duet_rope(g, k, k_pos, heads, spec);
  }
  duet_tensor *o = duet_attention(g, q, k, v, key_mask, heads);
  return duet_gated_residual(g, x, chunk(g, mod, 2, 3), duet_linear_layer_apply(g, &w->proj, o));
}

/* The time-aligned exchange (duet_aligned_weights): each branch's clip tokens add what the other
 * branch holds at the same instant, read from the states both had after the cross-attentions.
 * vref / aref: reference tokens at the front of xv / xa, which take no part. Unlike
 * cross-attention, nothing here has to learn which tokens share an instant: a video token
 * step's tokens and the audio tokens of that step meet by construction. */
static void aligned_exchange(duet_graph *g, const duet_model_config *c, const duet_aligned_weights *w,
                             duet_tensor **xv, duet_tensor **xa, int vref, int aref) {
  duet_tensor *v = *xv, *a = *xa;
  if (!v || !a || g->failed) return;
  int gt = c->video_frames / c->patch_t, S = (c->video_height / c->patch_h) * (c->video_width / c->patch_w);
  int na = duet_model_audio_tokens(c), R = duet_model_audio_per_video_step(c);
  int64_t B = v->shape[0], wv = v->shape[2], wa = a->shape[2];
  duet_tensor *vc = vref ? duet_slice(g, v, 1, vref, (int64_t)gt * S) : v;
  duet_tensor *ac = aref ? duet_slice(g, a, 1, aref, na) : a;

  int64_t step_v[3] = {B, gt, (int64_t)S * c->aligned_width}, tok_a[3] = {B, na, wa};
  duet_tensor *hv = duet_reshape(g, duet_linear_layer_apply(g, &w->video_down, ln(g, vc)), 3, step_v);
  duet_tensor *da = duet_reshape(g, duet_linear_layer_apply(g, &w->audio_from_video, hv), 3, tok_a);

  int64_t step_a[3] = {B, gt, (int64_t)R * wa}, one_v[4] = {B, gt, 1, wv}, tok_v[3] = {B, (int64_t)gt * S, wv};
  duet_tensor *dv = duet_reshape(g, duet_linear_layer_apply(g, &w->video_from_audio, duet_reshape(g, ln(g, ac), 3, step_a)),
                                 4, one_v);
  /* One vector per step, repeated for each of the step's S video tokens. */
  duet_tensor **copies = duet_graph_alloc(g, sizeof *copies * (size_t)S); /* fails the graph when out of memory */
  if (!copies) return;
  for (int i = 0; i < S; i++) copies[i] = dv;
  dv = duet_reshape(g, duet_concat(g, copies, S, 2), 3, tok_v);

  vc = duet_add(g, vc, dv);
  ac = duet_add(g, ac, da);
  if (vref) {
    duet_tensor *parts[2] = {duet_slice(g, v, 1, 0, vref), vc};
    vc = duet_concat(g, parts, 2, 1);
  }
  if (aref) {
    duet_tensor *parts[2] = {duet_slice(g, a, 1, 0, aref), ac};
    ac = duet_concat(g, parts, 2, 1);
  }
  *xv = vc;
  *xa = ac;
}

/* cond = MLP(timestep embedding of t) + projection of the pooled text. */
static duet_tensor *branch_cond(duet_graph *g, const duet_branch_io *io, duet_tensor *t, duet_tensor *pooled) {
  duet_tensor *e = duet_timestep_embedding(g, t, TIMESTEP_DIM, 10000.0, 1000.0);
  /* Times stay f32 (bf16 would blur 1000 t); the embedding joins the compute dtype. */
  if (e && pooled) e = duet_cast(g, e, pooled->dtype);
  e = duet_linear_layer_apply(g, &io->t_mlp2, duet_silu(g, duet_linear_layer_apply(g, &io->t_mlp1, e)));
  return duet_add(g, e, duet_linear_layer_apply(g, &io->pooled_in, pooled));
}

/* [x_t, cond, mask] along channels, patchified and embedded; references prepended. */
static duet_tensor *embed_video(duet_graph *g, const duet_mmdit *m, const duet_mmdit_inputs *in) {
  const duet_model_config *c = &m->cfg;
  duet_tensor *parts[3] = {in->video_xt, in->video_cond, in->video_mask};
  duet_tensor *x = duet_concat(g, parts, 3, 4);
  x = duet_patchify3d(g, x, c->patch_t, c->patch_h, c->patch_w);
  x = duet_linear_layer_apply(g, &m->video.embed, x);
  if (in->ref_video) {
    duet_tensor *r = duet_patchify3d(g, in->ref_video, c->patch_t, c->patch_h, c->patch_w);
    duet_tensor *both[2] = {duet_linear_layer_apply(g, &m->video.ref_embed, r), x};
    x = duet_concat(g, both, 2, 1);
  }
  return x;
}

static duet_tensor *embed_audio(duet_graph *g, const duet_mmdit *m, const duet_mmdit_inputs *in) {
  const duet_model_config *c = &m->cfg;
  duet_tensor *parts[3] = {in->audio_xt, in->audio_cond, in->audio_mask};
  duet_tensor *x = duet_concat(g, parts, 3, 2);
  x = duet_patchify1d(g, x, c->patch_a);
  x = duet_linear_layer_apply(g, &m->audio.embed, x);
  if (in->ref_audio) {
    duet_tensor *r = duet_patchify1d(g, in->ref_audio, c->patch_a);
    duet_tensor *both[2] = {duet_linear_layer_apply(g, &m->audio.ref_embed, r), x};
    x = duet_concat(g, both, 2, 1);
  }
  return x;
}

static duet_tensor *final_layer(duet_graph *g, const duet_branch_io *io, duet_tensor *x, duet_tensor *cond,
                                int64_t ref_tokens) {
  if (!x) return NULL;
  duet_tensor *mod = duet_linear_layer_apply(g, &io->final_ada, cond);
  duet_tensor *h = ln_modulate(g, x, chunk(g, mod, 0, 2), chunk(g, mod, 1, 2));
  if (ref_tokens) h = duet_slice(g, h, 1, ref_tokens, h->shape[1] - ref_tokens);
  return duet_linear_layer_apply(g, &io->final_out, h);
}

/* u8 [B, n_ones + L]: the branch tokens always attend, text tokens by their mask. */
static duet_tensor *joint_key_mask(duet_graph *g, duet_tensor *text_mask, int64_t n_ones, int text_first) {
  if (!text_mask || g->failed) return NULL;
  int64_t B = text_mask->shape[0], L = text_mask->shape[1];
  int64_t shape[2] = {B, n_ones + L};
  duet_tensor *k = duet_graph_new(g, DUET_U8, DUET_CPU, 2, shape);
  if (!k) return NULL;
  uint8_t *d = k->data;
  const uint8_t *tm = text_mask->data;
  for (int64_t b = 0; b < B; b++) {
    uint8_t *row = d + b * (n_ones + L);
    uint8_t *ones = text_first ? row + L : row, *txt = text_first ? row : row + n_ones;
    memset(ones, 1, (size_t)n_ones);
    memcpy(txt, tm + b * L, (size_t)L);
  }
  return k;
}

static int check_input(duet_graph *g, const char *name, const duet_tensor *t, int ndim, const int64_t *shape) {
  if (g->failed) return 0;
  if (!t) {
    duet_graph_fail(g, DUET_EINVAL, "model input %s is missing", name);
    return 0;
  }
  int ok = t->ndim == ndim;
  for (int i = 1; ok && i < ndim; i++) ok = shape[i] < 0 || t->shape[i] == shape[i];
  if (!ok) {
    char got[96];
    duet_graph_fail(g, DUET_EINVAL, "model input %s has shape %s, which does not match the model config", name,
                    duet_shape_str(t, got, sizeof got));
  }
  return ok;
}

static double host_value(const duet_tensor *t, int64_t i) {
  return t->dtype == DUET_F64 ? ((const double *)t->data)[i] : (double)((const float *)t->data)[i];
}

/* The velocity a clean prediction x0 [B, ..., C] implies at x_t (host) and times t (host, [B]):
 * v = s x_t - s x0 with s = 1 / max(t, DUET_CLEAN_MIN_TIME) per sample, as one gated residual
 * whose constant part s x_t is formed on the host. */
static duet_tensor *velocity_from_clean(duet_graph *g, const duet_mmdit *m, duet_tensor *x0, const duet_tensor *xt,
                                        const duet_tensor *t, int channels) {
  if (g->failed) return NULL;
  if (xt->device != DUET_CPU || t->device != DUET_CPU)
    return duet_graph_fail(g, DUET_EINVAL, "model: a clean prediction needs x_t and t on the host");
  for (int k = 0; k < 2; k++) {
    const duet_tensor *h = k ? t : xt;
    if (h->dtype != DUET_F32 && h->dtype != DUET_F64)
      return duet_graph_fail(g, DUET_EINVAL, "model: a clean prediction reads %s as f32 or f64, not %s",
                             k ? "t" : "x_t", duet_dtype_name(h->dtype));
  }
  int64_t B = x0->shape[0], rows = x0->numel / (B * channels);
  int64_t tok[3] = {B, rows, channels}, gs[2] = {B, channels};
  duet_tensor *sxt = duet_graph_new(g, x0->dtype, DUET_CPU, 3, tok), *gate = duet_graph_new(g, x0->dtype, DUET_CPU, 2, gs);
  if (!sxt || !gate) return NULL;
  int64_t per = rows * channels;
  for (int64_t b = 0; b < B; b++) {
    double tb = host_value(t, b), s = 1.0 / (tb > DUET_CLEAN_MIN_TIME ? tb : DUET_CLEAN_MIN_TIME);
    for (int64_t i = b * per; i < (b + 1) * per; i++) {
      if (x0->dtype == DUET_F64) ((double *)sxt->data)[i] = s * host_value(xt, i);
      else ((float *)sxt->data)[i] = (float)(s * host_value(xt, i));
    }
    for (int64_t c = 0; c < channels; c++) {
      if (x0->dtype == DUET_F64) ((double *)gate->data)[b * channels + c] = -s;
      else ((float *)gate->data)[b * channels + c] = (float)-s;
    }
  }
  duet_tensor *v = duet_gated_residual(g, on_model_device(g, m, sxt), on_model_device(g, m, gate),
                                       duet_reshape(g, x0, 3, tok));
  return duet_reshape(g, v, x0->ndim, x0->shape);
}

int duet_mmdit_forward(duet_mmdit *m, duet_graph *g, const duet_mmdit_inputs *in, duet_mmdit_outputs *out,
                       duet_err *err) {
  const duet_model_config *c = &m->cfg;
  out->video_v = out->audio_v = NULL;
  int64_t vshape[5] = {-1, c->video_frames, c->video_height, c->video_width, c->video_channels};
  int64_t vmask[5] = {-1, c->video_frames, c->video_height, c->video_width, 1};
  int64_t ashape[3] = {-1, c->audio_frames, c->audio_channels}, amask[3] = {-1, c->audio_frames, 1};
  int64_t rv[5] = {-1, c->ref_video_frames, c->video_height, c->video_width, c->video_channels};
  int64_t ra[3] = {-1, c->ref_audio_frames, c->audio_channels};
  int64_t tshape[1] = {-1};
  check_input(g, "video_xt", in->video_xt, 5, vshape);
  check_input(g, "video_cond", in->video_cond, 5, vshape);
  check_input(g, "video_mask", in->video_mask, 5, vmask);
  check_input(g, "audio_xt", in->audio_xt, 3, ashape);
  check_input(g, "audio_cond", in->audio_cond, 3, ashape);
  check_input(g, "audio_mask", in->audio_mask, 3, amask);
  check_input(g, "t_video", in->t_video, 1, tshape);
  check_input(g, "t_audio", in->t_audio, 1, tshape);
  if (in->ref_video && (!c->ref_video_frames || !check_input(g, "ref_video", in->ref_video, 5, rv)))
    duet_graph_fail(g, DUET_EINVAL, "model input ref_video does not match model.ref_video_frames=%d", c->ref_video_frames);
  if (in->ref_audio && (!c->ref_audio_frames || !check_input(g, "ref_audio", in->ref_audio, 3, ra)))
    duet_graph_fail(g, DUET_EINVAL, "model input ref_audio does not match model.ref_audio_frames=%d", c->ref_audio_frames);
  if (g->failed) return duet_graph_status(g, err);

  /* Inputs are built on the host; the network runs where its parameters are. Masks are read
   * on the host too (key masks, the pooled text), so both copies are kept. */
  duet_mmdit_inputs host_in = *in, dev_in = *in;
  dev_in.video_xt = compute_input(g, m, in->video_xt);
  dev_in.video_cond = compute_input(g, m, in->video_cond);
  dev_in.video_mask = compute_input(g, m, in->video_mask);
  dev_in.audio_xt = compute_input(g, m, in->audio_xt);
  dev_in.audio_cond = compute_input(g, m, in->audio_cond);
  dev_in.audio_mask = compute_input(g, m, in->audio_mask);
  dev_in.ref_video = compute_input(g, m, in->ref_video);
  dev_in.ref_audio = compute_input(g, m, in->ref_audio);
  dev_in.t_video = on_model_device(g, m, in->t_video);
  dev_in.t_audio = on_model_device(g, m, in->t_audio);
  dev_in.text = compute_input(g, m, in->text);
  dev_in.text_mask = on_model_device(g, m, in->text_mask);
  in = &dev_in;

  duet_tensor *pooled = NULL;
  duet_tensor *text = duet_text_encode(g, &m->text, in->text, host_in.text_mask, &pooled);
  duet_tensor *xv = embed_video(g, m, in), *xa = embed_audio(g, m, in);
  duet_tensor *cond_v = branch_cond(g, &m->video, in->t_video, pooled);
  duet_tensor *cond_a = branch_cond(g, &m->audio, in->t_audio, pooled);
  duet_tensor *sv = duet_silu(g, cond_v), *sa = duet_silu(g, cond_a);

  const duet_branch_positions *pv = &m->pos.video, *pa = &m->pos.audio;
  int vfirst = in->ref_video ? 0 : pv->ref_tokens, afirst = in->ref_audio ? 0 : pa->ref_tokens;
  int nv = pv->tokens - vfirst, na = pa->tokens - afirst;
  duet_tensor *pos_v = on_model_device(g, m, duet_positions_tensor(g, pv->self_pos, pv->self_axes, vfirst, nv));
  duet_tensor *pos_a = on_model_device(g, m, duet_positions_tensor(g, pa->self_pos, pa->self_axes, afirst, na));

  if (c->fusion == DUET_FUSION_CROSS) {
    /* Each branch keeps its own copy of the text stream, in its own width. */
    duet_tensor *tv = duet_linear_layer_apply(g, &m->video.text_in, text);
    duet_tensor *ta = duet_linear_layer_apply(g, &m->audio.text_in, text);
    duet_tensor *mask_v = on_model_device(g, m, joint_key_mask(g, host_in.text_mask, nv, 0));
    duet_tensor *mask_a = on_model_device(g, m, joint_key_mask(g, host_in.text_mask, na, 0));
    /* Cross-attention positions: time only, in the attending branch's spec. */
    const duet_rope_spec *cs_a = &pa->cross_spec, *cs_v = &pv->cross_spec;
    duet_tensor *a_q = on_model_device(g, m, duet_positions_cross_tensor(g, pa->times, afirst, na, cs_a->n_axes));
    duet_tensor *a_k = on_model_device(g, m, duet_positions_cross_tensor(g, pv->times, vfirst, nv, cs_a->n_axes));
    duet_tensor *v_q = on_model_device(g, m, duet_positions_cross_tensor(g, pv->times, vfirst, nv, cs_v->n_axes));
    duet_tensor *v_k = on_model_device(g, m, duet_positions_cross_tensor(g, pa->times, afirst, na, cs_v->n_axes));
    for (int i = 0; i < c->depth && !g->failed; i++) {
      const duet_dual_block *b = &m->blocks[i];
      stream_in vs[2] = {{&b->video, xv, sv, pos_v, &pv->self_spec, NULL}, {&b->video_text, tv, sv, NULL, NULL, NULL}};
      joint_block(g, vs, 2, mask_v, c->heads_video);
      xv = vs[0].x;
      tv = vs[1].x;
      stream_in as[2] = {{&b->audio, xa, sa, pos_a, &pa->self_spec, NULL}, {&b->audio_text, ta, sa, NULL, NULL, NULL}};
      joint_block(g, as, 2, mask_a, c->heads_audio);
      xa = as[0].x;
      ta = as[1].x;
      xa = cross_block(g, &b->audio_from_video, xa, xv, sa, a_q, a_k, cs_a, NULL, c->heads_audio);
      xv = cross_block(g, &b->video_from_audio, xv, xa, sv, v_q, v_k, cs_v, NULL, c->heads_video);
      if (c->aligned_width > 0)
        aligned_exchange(g, c, &b->aligned, &xv, &xa, pv->ref_tokens - vfirst, pa->ref_tokens - afirst);
    }
  } else {
    /* One attention over [text; video; audio]; the text stream is conditioned on both times. */
    duet_tensor *st = duet_silu(g, duet_scale(g, duet_add(g, cond_v, cond_a), 0.5));
    duet_tensor *mask = on_model_device(g, m, joint_key_mask(g, host_in.text_mask, nv + na, 1));
    duet_tensor *tx = text;
    for (int i = 0; i < c->depth && !g->failed; i++) {
      const duet_dual_block *b = &m->blocks[i];
      stream_in s[3] = {{&b->text, tx, st, NULL, NULL, NULL},
                        {&b->video, xv, sv, pos_v, &pv->self_spec, NULL},
                        {&b->audio, xa, sa, pos_a, &pa->self_spec, NULL}};
      joint_block(g, s, 3, mask, c->heads_video);
      tx = s[0].x;
      xv = s[1].x;
      xa = s[2].x;
    }
  }

  if (c->single_depth > 0) {
    duet_tensor *ts = duet_linear_layer_apply(g, &m->text_single_in, text);
    for (int i = 0; i < c->single_depth && !g->failed; i++) {
      const duet_single_block *b = &m->singles[i];
      stream_in s[2] = {{&b->av, xv, sv, pos_v, &pv->self_spec, NULL}, {&b->av, xa, sa, pos_a, &pa->self_spec, NULL}};
      joint_block(g, s, 2, NULL, c->heads_video);
      xv = cross_block(g, &b->from_text, s[0].x, ts, sv, NULL, NULL, NULL, in->text_mask, c->heads_video);
      xa = cross_block(g, &b->from_text, s[1].x, ts, sa, NULL, NULL, NULL, in->text_mask, c->heads_video);
    }
  }

  duet_tensor *ov = final_layer(g, &m->video, xv, sv, in->ref_video ? pv->ref_tokens : 0);
  duet_tensor *oa = final_layer(g, &m->audio, xa, sa, in->ref_audio ? pa->ref_tokens : 0);
  /* Predictions of a bf16 network leave in f32 (the loss and the sampler's arithmetic), on the
   * model's device. */
  duet_dtype out_dt = model_dtype(m) == DUET_BF16 ? DUET_F32 : model_dtype(m);
  out->video_v = duet_cast(g, duet_unpatchify3d(g, ov, c->video_frames, c->video_height, c->video_width,
                                                c->video_channels, c->patch_t, c->patch_h, c->patch_w), out_dt);
  out->audio_v = duet_cast(g, duet_unpatchify1d(g, oa, c->audio_frames, c->audio_channels, c->patch_a), out_dt);
  if (c->video_prediction == DUET_PREDICT_CLEAN)
    out->video_v = velocity_from_clean(g, m, out->video_v, host_in.video_xt, host_in.t_video, c->video_channels);
  if (c->audio_prediction == DUET_PREDICT_CLEAN)
    out->audio_v = velocity_from_clean(g, m, out->audio_v, host_in.audio_xt, host_in.t_audio, c->audio_channels);
  return duet_graph_status(g, err);
}
