#include "core/error.h"

#include <stdio.h>
#include <string.h>

int duet_err_vset(duet_err *err, int code, const char *fmt, va_list ap) {
  if (err) {
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  }
  return code;
}

int duet_err_set(duet_err *err, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  duet_err_vset(err, code, fmt, ap);
  va_end(ap);
  return code;
}

int duet_err_prefix(duet_err *err, const char *fmt, ...) {
  if (!err) return DUET_EINVAL;
  char prefix[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  /* Build prefix + message in place: shift the old text right, then copy the prefix in. */
  size_t plen = strlen(prefix), mlen = strlen(err->msg), cap = sizeof err->msg - 1;
  if (plen > cap) plen = cap;
  if (plen + mlen > cap) mlen = cap - plen;
  memmove(err->msg + plen, err->msg, mlen);
  memcpy(err->msg, prefix, plen);
  err->msg[plen + mlen] = '\0';
  return err->code;
}

void duet_err_clear(duet_err *err) {
  if (err) {
    err->code = 0;
    err->msg[0] = '\0';
  }
}
