/* Errors: functions that can fail return 0 on success or a negative DUET_E* code, and, when
 * given a duet_err, leave a one-line message in it that a command-line tool can print as is. */
#ifndef DUET_CORE_ERROR_H
#define DUET_CORE_ERROR_H

#include <stdarg.h>

enum {
  DUET_OK = 0,
  DUET_EINVAL = -1,   /* bad argument, shape or value */
  DUET_EIO = -2,      /* a file could not be read or written */
  DUET_EFORMAT = -3,  /* a file is malformed, truncated or of the wrong kind */
  DUET_ENOMEM = -4,
  DUET_ENOTSUP = -5,  /* valid but not supported here (e.g. a backend not built) */
  DUET_ENUMERIC = -6, /* NaN or Inf where a finite number was needed */
};

typedef struct duet_err {
  int code;
  char msg[1024];
} duet_err;

/* Sets the message (printf-style) when err is not NULL and returns code, so that callers
 * can write `return duet_err_set(err, DUET_EIO, "%s: cannot open", path);`. */
int duet_err_set(duet_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int duet_err_vset(duet_err *err, int code, const char *fmt, va_list ap);

/* Prefixes an existing message with more context ("loading ckpt: " + msg). */
int duet_err_prefix(duet_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void duet_err_clear(duet_err *err);

#endif
