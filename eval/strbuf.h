/* A growing text buffer for building Markdown. Appends after a failed allocation are dropped
 * and remembered, so callers check once at the end. */
#ifndef DUET_EVAL_STRBUF_H
#define DUET_EVAL_STRBUF_H

#include <stddef.h>

typedef struct duet_strbuf {
  char *s;
  size_t len, cap;
  int failed;
} duet_strbuf;

void duet_sb_printf(duet_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void duet_sb_free(duet_strbuf *b);

#endif
