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
  char old[sizeof err->msg];
  memcpy(old, err->msg, sizeof old);
  snprintf(err->msg, sizeof err->msg, "%s%s", prefix, old);
  return err->code;
}

void duet_err_clear(duet_err *err) {
  if (err) {
    err->code = 0;
    err->msg[0] = '\0';
  }
}
