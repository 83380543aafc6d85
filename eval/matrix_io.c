#include "eval/matrix_io.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t dtype_size(duet_npy_dtype t) {
  switch (t) {
    case DUET_DT_U8: return 1;
    case DUET_DT_I16: return 2;
    case DUET_DT_I32: return 4;
    case DUET_DT_I64: return 8;
    case DUET_DT_F32: return 4;
    case DUET_DT_F64: return 8;
  }
  return 0;
}

static int parse_descr(const char *d, duet_npy_dtype *t) {
  /* '|u1', '<i2', '<f4' ...; '=' or '|' mean native, which is little-endian here. */
  if (!d[0] || !d[1]) return -1;
  if (d[0] == '>') return -1;
  const char *k = d + 1;
  if (!strcmp(k, "u1") || !strcmp(k, "b1")) *t = DUET_DT_U8;
  else if (!strcmp(k, "i2")) *t = DUET_DT_I16;
  else if (!strcmp(k, "i4")) *t = DUET_DT_I32;
  else if (!strcmp(k, "i8")) *t = DUET_DT_I64;
  else if (!strcmp(k, "f4")) *t = DUET_DT_F32;
  else if (!strcmp(k, "f8")) *t = DUET_DT_F64;
  else return -1;
  return 0;
}

/* Finds 'key': in the header dict and returns what follows the colon. */
static const char *dict_value(const char *hdr, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, "'%s'", key);
  const char *p = strstr(hdr, pat);
  if (!p) return NULL;
  p = strchr(p + strlen(pat), ':');
  if (!p) return NULL;
  p++;
  while (*p == ' ') p++;
  return p;
}

static void transpose_to_c(duet_npy *a, void *src) {
  /* Fortran order: the first index varies fastest. Reverse the axes' roles by index math. */
  size_t es = dtype_size(a->dtype);
  int64_t idx[4] = {0, 0, 0, 0};
  for (int64_t i = 0; i < a->count; i++) {
    int64_t f = 0, stride = 1;
    for (int d = 0; d < a->ndim; d++) {
      f += idx[d] * stride;
      stride *= a->shape[d];
    }
    memcpy((char *)a->data + (size_t)i * es, (char *)src + (size_t)f * es, es);
    for (int d = a->ndim - 1; d >= 0; d--) {
      if (++idx[d] < a->shape[d]) break;
      idx[d] = 0;
    }
  }
}

int duet_npy_read(const char *path, duet_npy *out, duet_err *err) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "rb");
  if (!f) return duet_err_set(err, DUET_EIO, "%s: cannot open (%s)", path, strerror(errno));
  unsigned char pre[10];
  int rc = DUET_OK;
  char *hdr = NULL;
  void *raw = NULL;
  if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
    rc = duet_err_set(err, DUET_EFORMAT, "%s: not a .npy file", path);
    goto done;
  }
  size_t hlen;
  if (pre[6] == 1) {
    hlen = pre[8] | (size_t)pre[9] << 8;
  } else if (pre[6] == 2 || pre[6] == 3) {
    unsigned char b[2];
    if (fread(b, 1, 2, f) != 2) {
      rc = duet_err_set(err, DUET_EFORMAT, "%s: truncated .npy header", path);
      goto done;
    }
    hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)b[0] << 16 | (size_t)b[1] << 24;
  } else {
    rc = duet_err_set(err, DUET_EFORMAT, "%s: unsupported .npy version %d", path, pre[6]);
    goto done;
  }
  if (hlen > (1u << 20)) {
    rc = duet_err_set(err, DUET_EFORMAT, "%s: implausible .npy header length", path);
    goto done;
  }
  hdr = calloc(hlen + 1, 1);
  if (!hdr || fread(hdr, 1, hlen, f) != hlen) {
    rc = duet_err_set(err, DUET_EFORMAT, "%s: truncated .npy header", path);
    goto done;
  }
  const char *d = dict_value(hdr, "descr"), *fo = dict_value(hdr, "fortran_order"),
             *sh = dict_value(hdr, "shape");
  char descr[16] = {0};
  if (!d || !fo || !sh || sscanf(d, "'%15[^']'", descr) != 1 || parse_descr(descr, &out->dtype)) {
    rc = duet_err_set(err, DUET_EFORMAT, "%s: unsupported .npy dtype or header (%s)", path,
                      d ? descr : "no descr");
    goto done;
  }
  int fortran = !strncmp(fo, "True", 4);
  if (*sh != '(') {
    rc = duet_err_set(err, DUET_EFORMAT, "%s: bad .npy shape", path);
    goto done;
  }
  const char *p = sh + 1;
  out->count = 1;
  while (1) {
    while (*p == ' ' || *p == ',') p++;
    if (*p == ')') break;
    char *end;
    long long v = strtoll(p, &end, 10);
    if (end == p || v < 0 || out->ndim == 4) {
      rc = duet_err_set(err, DUET_EFORMAT, "%s: bad or too many .npy dimensions", path);
      goto done;
    }
    out->shape[out->ndim++] = v;
    out->count *= v;
    p = end;
  }
  size_t bytes = (size_t)out->count * dtype_size(out->dtype);
  out->data = malloc(bytes ? bytes : 1);
  raw = fortran && out->ndim > 1 ? malloc(bytes ? bytes : 1) : NULL;
  if (!out->data || (fortran && out->ndim > 1 && !raw)) {
    rc = duet_err_set(err, DUET_ENOMEM, "%s: out of memory (%zu bytes)", path, bytes);
    goto done;
  }
  if (fread(raw ? raw : out->data, 1, bytes, f) != bytes) {
    rc = duet_err_set(err, DUET_EFORMAT, "%s: truncated .npy data", path);
    goto done;
  }
  if (raw) transpose_to_c(out, raw);
done:
  fclose(f);
  free(hdr);
  free(raw);
  if (rc) duet_npy_free(out);
  return rc;
}

void duet_npy_free(duet_npy *a) {
  free(a->data);
  memset(a, 0, sizeof *a);
}

double duet_npy_get(const duet_npy *a, int64_t i) {
  switch (a->dtype) {
    case DUET_DT_U8: return ((const uint8_t *)a->data)[i];
    case DUET_DT_I16: return ((const int16_t *)a->data)[i];
    case DUET_DT_I32: return ((const int32_t *)a->data)[i];
    case DUET_DT_I64: return (double)((const int64_t *)a->data)[i];
    case DUET_DT_F32: return ((const float *)a->data)[i];
    case DUET_DT_F64: return ((const double *)a->data)[i];
  }
  return NAN;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !strcmp(s + n - m, suffix);
}

/* Parses one CSV line into vals; returns the count, or -1 if a field is not a number. */
static int64_t parse_row(char *line, double **vals, int64_t *cap) {
  int64_t n = 0;
  char *p = line;
  while (1) {
    while (*p == ' ' || *p == '\t') p++;
    if (!*p || *p == '\n' || *p == '\r' || *p == '#') break;
    char *end;
    double v = strtod(p, &end);
    if (end == p) return -1;
    if (n == *cap) {
      int64_t nc = *cap ? *cap * 2 : 64;
      double *nv = realloc(*vals, sizeof(double) * (size_t)nc);
      if (!nv) return -2;
      *vals = nv;
      *cap = nc;
    }
    (*vals)[n++] = v;
    p = end;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == ',' || *p == ';') p++;
  }
  return n;
}

static int read_csv(const char *path, double **data, int64_t *rows, int64_t *cols, duet_err *err) {
  FILE *f = fopen(path, "r");
  if (!f) return duet_err_set(err, DUET_EIO, "%s: cannot open (%s)", path, strerror(errno));
  char *line = NULL;
  size_t lcap = 0;
  double *row = NULL, *all = NULL;
  int64_t rcap = 0, acap = 0, nrows = 0, ncols = -1, lineno = 0;
  int rc = DUET_OK;
  while (getline(&line, &lcap, f) != -1) {
    lineno++;
    int64_t n = parse_row(line, &row, &rcap);
    if (n == -2) {
      rc = duet_err_set(err, DUET_ENOMEM, "%s: out of memory", path);
      break;
    }
    if (n == -1) {
      if (nrows == 0 && ncols < 0 && lineno == 1) continue; /* header */
      rc = duet_err_set(err, DUET_EFORMAT, "%s:%lld: not a number", path, (long long)lineno);
      break;
    }
    if (n == 0) continue;
    if (ncols >= 0 && n != ncols) {
      rc = duet_err_set(err, DUET_EFORMAT, "%s:%lld: %lld columns, expected %lld", path,
                        (long long)lineno, (long long)n, (long long)ncols);
      break;
    }
    ncols = n;
    if ((nrows + 1) * ncols > acap) {
      int64_t nc = acap ? acap * 2 : 1024;
      while (nc < (nrows + 1) * ncols) nc *= 2;
      double *na = realloc(all, sizeof(double) * (size_t)nc);
      if (!na) {
        rc = duet_err_set(err, DUET_ENOMEM, "%s: out of memory", path);
        break;
      }
      all = na;
      acap = nc;
    }
    memcpy(all + nrows * ncols, row, sizeof(double) * (size_t)ncols);
    nrows++;
  }
  fclose(f);
  free(line);
  free(row);
  if (!rc && nrows == 0) rc = duet_err_set(err, DUET_EFORMAT, "%s: no numeric rows", path);
  if (rc) {
    free(all);
    return rc;
  }
  *data = all;
  *rows = nrows;
  *cols = ncols;
  return DUET_OK;
}

int duet_matrix_read(const char *path, double **data, int64_t *rows, int64_t *cols,
                     duet_err *err) {
  *data = NULL;
  *rows = *cols = 0;
  if (!ends_with(path, ".npy")) return read_csv(path, data, rows, cols, err);
  duet_npy a;
  int rc = duet_npy_read(path, &a, err);
  if (rc) return rc;
  if (a.ndim < 1 || a.ndim > 2 || a.count == 0) {
    duet_npy_free(&a);
    return duet_err_set(err, DUET_EFORMAT, "%s: expected a non-empty 1-D or 2-D array", path);
  }
  double *m = malloc(sizeof(double) * (size_t)a.count);
  if (!m) {
    duet_npy_free(&a);
    return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", path);
  }
  for (int64_t i = 0; i < a.count; i++) {
    m[i] = duet_npy_get(&a, i);
    if (!isfinite(m[i])) {
      free(m);
      duet_npy_free(&a);
      return duet_err_set(err, DUET_ENUMERIC, "%s: element %lld is not finite", path,
                          (long long)i);
    }
  }
  *rows = a.shape[0];
  *cols = a.ndim == 2 ? a.shape[1] : 1;
  *data = m;
  duet_npy_free(&a);
  return DUET_OK;
}
