/* Captions to token ids: bytes, and hashed words (case-insensitive, punctuation on its own,
 * cut at text_len, 0 = padding), with no two words of the synthetic captions sharing an id. */
#include <string.h>

#include "model/text_encoder.h"
#include "testlib.h"
#include "tiny_config.h"

#define L 8

static int tokens(duet_model_config *c, const char *caption, int32_t *ids, uint8_t *mask) {
  c->text_len = L;
  duet_text_tokenize(c, caption, ids, mask);
  int n = 0;
  while (n < L && mask[n]) n++;
  for (int i = n; i < L; i++) CHECK(mask[i] == 0 && ids[i] == 0);
  return n;
}

static void test_bytes(void) {
  duet_model_config c = tiny_model_config();
  int32_t ids[L];
  uint8_t mask[L];
  CHECK_EQ_INT(tokens(&c, "ab", ids, mask), 2);
  CHECK_EQ_INT(ids[0], 'a' + 1);
  CHECK_EQ_INT(ids[1], 'b' + 1);
  CHECK_EQ_INT(tokens(&c, "a long caption", ids, mask), L); /* cut at text_len bytes */
  CHECK_EQ_INT(ids[L - 1], 'c' + 1);                         /* "a long c|aption" */
  CHECK_EQ_INT(tokens(&c, "", ids, mask), 0);
  CHECK_EQ_INT(tokens(&c, NULL, ids, mask), 0);
}

static void test_words(void) {
  duet_model_config c = tiny_model_config();
  c.text_source = DUET_TEXT_WORDS;
  c.text_vocab = 4096;
  int32_t ids[L], again[L];
  uint8_t mask[L];
  /* "A" and "a" are one word; the comma is a word; runs of spaces separate nothing more. */
  CHECK_EQ_INT(tokens(&c, "A large  red ball, bounces", ids, mask), 6);
  CHECK_EQ_INT(ids[0], duet_text_word_id("a", 1, 4096));
  CHECK_EQ_INT(ids[1], duet_text_word_id("large", 5, 4096));
  CHECK_EQ_INT(ids[2], duet_text_word_id("red", 3, 4096));
  CHECK_EQ_INT(ids[3], duet_text_word_id("ball", 4, 4096));
  CHECK_EQ_INT(ids[4], duet_text_word_id(",", 1, 4096));
  CHECK_EQ_INT(ids[5], duet_text_word_id("bounces", 7, 4096));
  CHECK_EQ_INT(tokens(&c, "a LARGE Red ball , bounces", again, mask), 6);
  CHECK(memcmp(ids, again, sizeof ids) == 0);
  /* Cut at text_len words; a word is not split by the cut. */
  CHECK_EQ_INT(tokens(&c, "one two three four five six seven eight nine", ids, mask), L);
  CHECK_EQ_INT(ids[L - 1], duet_text_word_id("eight", 5, 4096));
  /* A word with non-ASCII letters (UTF-8) stays one token. */
  CHECK_EQ_INT(tokens(&c, "ein \xc3\xa4pfel", ids, mask), 2);
  CHECK_EQ_INT(tokens(&c, "  ", ids, mask), 0);
  CHECK_EQ_INT(tokens(&c, NULL, ids, mask), 0);

  /* Every word duet-synth writes gets its own id at the default vocabulary, and every id is
   * inside the table. */
  static const char *const synth_words[] = {
      "a", "small", "medium", "large", "red", "green", "blue", "yellow", "orange", "purple", "pink",
      "cyan", "black", "grey", "brown", "wooden", "metal", "rubber", "glass", "ball", "square",
      "triangle", "bounces", "flies", "above", "on", "floor", "hits", "wall", "and", "comes", "to",
      "rest", "no", "once", "twice", "three", "four", "five", "six", "seven", "eight", "nine",
      "ten", "eleven", "twelve", "times", ",", ";"};
  int n = (int)(sizeof synth_words / sizeof synth_words[0]);
  for (int i = 0; i < n; i++) {
    int32_t a = duet_text_word_id(synth_words[i], (int)strlen(synth_words[i]), 4096);
    CHECK(a >= 1 && a < 4096);
    for (int j = 0; j < i; j++)
      CHECK_MSG(a != duet_text_word_id(synth_words[j], (int)strlen(synth_words[j]), 4096), "'%s' and '%s' collide",
                synth_words[i], synth_words[j]);
  }
  /* Precomputed embeddings take no ids: the caption gives all padding. */
  c.text_source = DUET_TEXT_PRECOMPUTED;
  CHECK_EQ_INT(tokens(&c, "a red ball", ids, mask), 0);
}

int main(void) {
  test_bytes();
  test_words();
  return test_finish("test_text_tokens");
}
