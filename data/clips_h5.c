#include "data/clips_h5.h"

#include <stdio.h>
#include <string.h>

void duet_h5_quiet_begin(duet_h5_quiet *q) {
  memset(q, 0, sizeof *q);
  q->is_v2 = 1;
#ifndef H5_NO_DEPRECATED_SYMBOLS
  /* An application that installed a v1 printer cannot be asked for it through the v2 call. */
  H5Eauto_is_v2(H5E_DEFAULT, &q->is_v2);
  if (!q->is_v2) {
    H5Eget_auto1(&q->func1, &q->data);
    H5Eset_auto1(NULL, NULL);
    return;
  }
#endif
  H5Eget_auto2(H5E_DEFAULT, &q->func2, &q->data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void duet_h5_quiet_end(const duet_h5_quiet *q) {
#ifndef H5_NO_DEPRECATED_SYMBOLS
  if (!q->is_v2) {
    H5Eset_auto1(q->func1, q->data);
    return;
  }
#endif
  H5Eset_auto2(H5E_DEFAULT, q->func2, q->data);
}

typedef struct first_error {
  char *buf;
  size_t n;
  int found;
} first_error;

static herr_t take_first(unsigned n, const H5E_error2_t *e, void *arg) {
  first_error *fe = arg;
  (void)n;
  if (!fe->found && e->desc && e->desc[0]) {
    snprintf(fe->buf, fe->n, "%s", e->desc);
    fe->found = 1;
  }
  return 0;
}

const char *duet_h5_error_text(char *buf, size_t n) {
  first_error fe = {buf, n, 0};
  /* Walking upward starts at the function that detected the problem: the most specific. */
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, take_first, &fe);
  H5Eclear2(H5E_DEFAULT);
  if (!fe.found) snprintf(buf, n, "unknown HDF5 error");
  /* Our messages are one line; HDF5's descriptions occasionally are not. */
  for (char *c = buf; *c; c++)
    if (*c == '\n' || *c == '\r') *c = ' ';
  return buf;
}

const char *duet_h5_type_name(hid_t type, char *buf, size_t n) {
  size_t size = H5Tget_size(type);
  switch (H5Tget_class(type)) {
  case H5T_INTEGER:
    snprintf(buf, n, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", size * 8);
    break;
  case H5T_FLOAT: snprintf(buf, n, "float%zu", size * 8); break;
  case H5T_STRING: snprintf(buf, n, "string"); break;
  case H5T_COMPOUND: snprintf(buf, n, "compound"); break;
  case H5T_ENUM: snprintf(buf, n, "enum"); break;
  case H5T_ARRAY: snprintf(buf, n, "array"); break;
  case H5T_VLEN: snprintf(buf, n, "vlen"); break;
  case H5T_OPAQUE: snprintf(buf, n, "opaque"); break;
  case H5T_REFERENCE: snprintf(buf, n, "reference"); break;
  case H5T_BITFIELD: snprintf(buf, n, "bitfield"); break;
  default: snprintf(buf, n, "unknown type"); break;
  }
  return buf;
}
