#include "model/text_encoder.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

void duet_text_encoder_make(duet_layer_builder *lb, duet_text_encoder *enc, const duet_model_config *cfg) {
  memset(enc, 0, sizeof *enc);
  enc->source = cfg->text_source;
  enc->len = cfg->text_len;
  enc->width = cfg->width_text;
  enc->heads = cfg->heads_text;
  enc->layers = duet_text_reads_ids(cfg->text_source) ? cfg->text_layers : 0;
  if (enc->layers > DUET_TEXT_MAX_LAYERS) {
    duet_err_set(lb->err, DUET_EINVAL, "model.text_layers=%d exceeds %d", enc->layers, DUET_TEXT_MAX_LAYERS);
    lb->failed = 1;
    return;
  }
  int w = enc->width;
  int64_t vocab[2] = {cfg->text_source == DUET_TEXT_WORDS ? cfg->text_vocab : DUET_TEXT_VOCAB, w};
  int64_t pos[2] = {enc->len, w}, vec[1] = {w};
  if (duet_text_reads_ids(enc->source)) {
    enc->tok_emb = duet_layer_param(lb, "text", "tok_emb", 2, vocab, DUET_INIT_NORMAL, 0.02f);
  } else {
    duet_linear_layer_make(lb, &enc->emb_in, "text.emb_in", cfg->text_emb_dim, w, 1, 0);
  }
  enc->pos_emb = duet_layer_param(lb, "text", "pos_emb", 2, pos, DUET_INIT_NORMAL, 0.02f);
  char p[128];
  for (int i = 0; i < enc->layers; i++) {
    duet_text_block *b = &enc->blocks[i];
    snprintf(p, sizeof p, "text.blocks.%d", i);
    b->ln1_w = duet_layer_param(lb, p, "ln1.weight", 1, vec, DUET_INIT_ONE, 0);
    b->ln1_b = duet_layer_param(lb, p, "ln1.bias", 1, vec, DUET_INIT_ZERO, 0);
    b->ln2_w = duet_layer_param(lb, p, "ln2.weight", 1, vec, DUET_INIT_ONE, 0);
    b->ln2_b = duet_layer_param(lb, p, "ln2.bias", 1, vec, DUET_INIT_ZERO, 0);
    snprintf(p, sizeof p, "text.blocks.%d.attn.qkv", i);
    duet_linear_layer_make(lb, &b->qkv, p, w, 3 * w, 1, 0);
    snprintf(p, sizeof p, "text.blocks.%d.attn.proj", i);
    duet_linear_layer_make(lb, &b->proj, p, w, w, 1, 0);
    snprintf(p, sizeof p, "text.blocks.%d.mlp", i);
    duet_mlp_make(lb, &b->mlp, p, w, 4 * w);
  }
  enc->ln_f_w = duet_layer_param(lb, "text", "ln_f.weight", 1, vec, DUET_INIT_ONE, 0);
  enc->ln_f_b = duet_layer_param(lb, "text", "ln_f.bias", 1, vec, DUET_INIT_ZERO, 0);
}

int32_t duet_text_word_id(const char *word, int n, int vocab) {
  uint64_t h = 14695981039346656037ull; /* FNV-1a, 64 bits */
  for (int i = 0; i < n; i++) {
    h ^= (unsigned char)tolower((unsigned char)word[i]);
    h *= 1099511628211ull;
  }
  return 1 + (int32_t)(h % (uint64_t)(vocab - 1));
}

/* A byte that continues a word: ASCII letters and digits, and every byte of a UTF-8 sequence
 * (so a word in another script stays one word). */
static int word_byte(unsigned char b) { return isalnum(b) || b >= 0x80; }

static int tokenize_words(const char *s, int len, int vocab, int32_t *ids) {
  int n = 0;
  for (size_t i = 0; s[i] && n < len;) {
    unsigned char b = (unsigned char)s[i];
    if (isspace(b)) {
      i++;
      continue;
    }
    size_t j = i + 1;
    if (word_byte(b))
      while (s[j] && word_byte((unsigned char)s[j])) j++;
    ids[n++] = duet_text_word_id(s + i, (int)(j - i), vocab);
    i = j;
  }
  return n;
}

void duet_text_tokenize(const duet_model_config *c, const char *caption, int32_t *ids, uint8_t *mask) {
  int len = c->text_len, n = 0;
  if (caption && c->text_source == DUET_TEXT_WORDS) {
    n = tokenize_words(caption, len, c->text_vocab, ids);
  } else if (caption && c->text_source == DUET_TEXT_BYTES) {
    for (; caption[n] && n < len; n++) ids[n] = (int32_t)(unsigned char)caption[n] + 1;
  }
  for (int i = 0; i < n; i++) mask[i] = 1;
  for (; n < len; n++) {
    ids[n] = 0;
    mask[n] = 0;
  }
}

/* Masked mean over tokens as one batched product: [B, 1, L] weights @ [B, L, W]. */
static duet_tensor *masked_mean(duet_graph *g, duet_tensor *tokens, duet_tensor *mask) {
  if (!tokens || !mask) return NULL;
  int64_t B = tokens->shape[0], L = tokens->shape[1], W = tokens->shape[2];
  int64_t ws[3] = {B, 1, L};
  /* Built on the host from the host mask, then copied to the tokens' device if elsewhere. */
  duet_tensor *wts = duet_graph_new(g, tokens->dtype, DUET_CPU, 3, ws);
  if (!wts) return NULL;
  const uint8_t *m = mask->data;
  for (int64_t b = 0; b < B; b++) {
    int64_t count = 0;
    for (int64_t l = 0; l < L; l++) count += m[b * L + l] != 0;
    for (int64_t l = 0; l < L; l++)
      duet_tensor_set(wts, b * L + l, m[b * L + l] && count ? 1.0 / (double)count : 0.0);
  }
  if (tokens->device != DUET_CPU) wts = duet_graph_from_host(g, wts->dtype, tokens->device, 3, ws, wts->data);
  duet_tensor *pooled = duet_matmul(g, wts, tokens, 0, 0);
  int64_t ps[2] = {B, W};
  return duet_reshape(g, pooled, 2, ps);
}

duet_tensor *duet_text_encode(duet_graph *g, const duet_text_encoder *enc, duet_tensor *text,
                              duet_tensor *mask, duet_tensor **pooled) {
  if (g->failed) return NULL;
  if (!text || !mask) return duet_graph_fail(g, DUET_EINVAL, "text encoder: missing text or mask");
  if (text->ndim < 2 || text->shape[1] != enc->len || mask->ndim != 2 || mask->shape[1] != enc->len)
    return duet_graph_fail(g, DUET_EINVAL, "text encoder: expected %d tokens per caption", enc->len);
  duet_tensor *x;
  if (duet_text_reads_ids(enc->source)) {
    if (text->dtype != DUET_I32) return duet_graph_fail(g, DUET_EINVAL, "text encoder: token ids must be i32");
    x = duet_embedding(g, enc->tok_emb, text);
  } else {
    x = duet_linear_layer_apply(g, &enc->emb_in, text);
  }
  x = duet_add(g, x, enc->pos_emb);
  /* mask is read on the host (the pooling weights); attention takes it on x's device. */
  duet_tensor *dev_mask = mask;
  if (x && mask->device != x->device)
    dev_mask = duet_graph_from_host(g, mask->dtype, x->device, mask->ndim, mask->shape, mask->data);
  for (int i = 0; i < enc->layers; i++) {
    const duet_text_block *b = &enc->blocks[i];
    duet_tensor *h = duet_layernorm(g, x, b->ln1_w, b->ln1_b, 1e-6);
    duet_tensor *qkv = duet_linear_layer_apply(g, &b->qkv, h);
    int w = enc->width;
    duet_tensor *q = duet_slice(g, qkv, 2, 0, w), *k = duet_slice(g, qkv, 2, w, w), *v = duet_slice(g, qkv, 2, 2 * w, w);
    duet_tensor *a = duet_attention(g, q, k, v, dev_mask, enc->heads);
    x = duet_add(g, x, duet_linear_layer_apply(g, &b->proj, a));
    h = duet_layernorm(g, x, b->ln2_w, b->ln2_b, 1e-6);
    x = duet_add(g, x, duet_mlp_apply(g, &b->mlp, h));
  }
  x = duet_layernorm(g, x, enc->ln_f_w, enc->ln_f_b, 1e-6);
  if (pooled) *pooled = masked_mean(g, x, mask);
  return x;
}
