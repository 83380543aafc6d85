/* The text encoder shared by both branches: a small transformer trained with the model, reading
 * the caption's bytes or its hashed words, or a projection of precomputed embeddings from any
 * external encoder. */
#ifndef DUET_MODEL_TEXT_ENCODER_H
#define DUET_MODEL_TEXT_ENCODER_H

#include "model/config.h"
#include "model/layers.h"

#define DUET_TEXT_VOCAB 257 /* bytes: 0 = padding, byte b = b + 1 */
#define DUET_TEXT_MAX_LAYERS 32

typedef struct duet_text_block {
  duet_tensor *ln1_w, *ln1_b, *ln2_w, *ln2_b;
  duet_linear_layer qkv, proj;
  duet_mlp mlp;
} duet_text_block;

typedef struct duet_text_encoder {
  duet_text_source source;
  int len, width, heads, layers;
  duet_tensor *tok_emb, *pos_emb;     /* bytes, words: [vocab, width]; all: [len, width] */
  duet_linear_layer emb_in;           /* precomputed: D -> width */
  duet_text_block blocks[DUET_TEXT_MAX_LAYERS];
  duet_tensor *ln_f_w, *ln_f_b;
} duet_text_encoder;

void duet_text_encoder_make(duet_layer_builder *lb, duet_text_encoder *enc, const duet_model_config *cfg);

/* A caption -> ids [c->text_len] and mask [c->text_len], 0 = padding; longer captions are cut.
 * bytes: byte b is id b + 1. words: a word is a run of ASCII letters and digits (lowercased) or
 * of non-ASCII bytes; any other non-space character is a word of its own; each word is hashed
 * (FNV-1a) to an id in 1..text_vocab-1. NULL or "" gives an all-padding (unconditional) caption.
 * Precomputed: all padding (the embeddings come from the data). */
void duet_text_tokenize(const duet_model_config *c, const char *caption, int32_t *ids, uint8_t *mask);

/* The id of one word of n bytes under words tokenization with the given vocabulary. */
int32_t duet_text_word_id(const char *word, int n, int vocab);

/* text: i32 ids [B, L] (bytes, words) or f32 [B, L, D] (precomputed); mask u8 [B, L].
 * Returns tokens [B, L, width] and, in *pooled, the masked mean [B, width] (zero for an
 * all-padding caption). */
duet_tensor *duet_text_encode(duet_graph *g, const duet_text_encoder *enc, duet_tensor *text,
                              duet_tensor *mask, duet_tensor **pooled);

#endif
