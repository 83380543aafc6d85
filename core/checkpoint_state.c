/* Trainer scalars and state.json. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/checkpoint.h"
#include "core/fileio.h"

#define STATE_FORMAT "duet-train-state"
#define STATE_VERSION 1
#define STATE_MAX_BYTES (64u << 20)

void duet_scalars_init(duet_scalars *s) { memset(s, 0, sizeof *s); }

void duet_scalars_free(duet_scalars *s) {
  for (int i = 0; i < s->count; i++) free(s->items[i].key);
  free(s->items);
  memset(s, 0, sizeof *s);
}

const duet_scalar *duet_scalars_find(const duet_scalars *s, const char *key) {
  for (int i = 0; i < s->count; i++)
    if (strcmp(s->items[i].key, key) == 0) return &s->items[i];
  return NULL;
}

static duet_scalar *slot(duet_scalars *s, const char *key, duet_err *err) {
  duet_scalar *found = (duet_scalar *)duet_scalars_find(s, key);
  if (found) return found;
  if (!key[0]) {
    duet_err_set(err, DUET_EINVAL, "scalar key is empty");
    return NULL;
  }
  if (s->count == s->capacity) {
    int cap = s->capacity ? s->capacity * 2 : 16;
    duet_scalar *items = realloc(s->items, sizeof *items * (size_t)cap);
    if (!items) {
      duet_err_set(err, DUET_ENOMEM, "out of memory for scalar '%s'", key);
      return NULL;
    }
    s->items = items;
    s->capacity = cap;
  }
  duet_scalar *x = &s->items[s->count];
  memset(x, 0, sizeof *x);
  if (!(x->key = strdup(key))) {
    duet_err_set(err, DUET_ENOMEM, "out of memory for scalar '%s'", key);
    return NULL;
  }
  s->count++;
  return x;
}

int duet_scalars_set_i64(duet_scalars *s, const char *key, int64_t v, duet_err *err) {
  duet_scalar *x = slot(s, key, err);
  if (!x) return err ? err->code : DUET_ENOMEM;
  x->kind = DUET_SCALAR_I64;
  x->i = v;
  x->f = 0;
  return DUET_OK;
}

int duet_scalars_set_f64(duet_scalars *s, const char *key, double v, duet_err *err) {
  duet_scalar *x = slot(s, key, err);
  if (!x) return err ? err->code : DUET_ENOMEM;
  x->kind = DUET_SCALAR_F64;
  x->f = v;
  x->i = 0;
  return DUET_OK;
}

int duet_scalars_get_i64(const duet_scalars *s, const char *key, int64_t *v, duet_err *err) {
  const duet_scalar *x = duet_scalars_find(s, key);
  if (!x) return duet_err_set(err, DUET_EINVAL, "no scalar '%s'", key);
  if (x->kind != DUET_SCALAR_I64) return duet_err_set(err, DUET_EINVAL, "scalar '%s' is a double, not an integer", key);
  *v = x->i;
  return DUET_OK;
}

int duet_scalars_get_f64(const duet_scalars *s, const char *key, double *v, duet_err *err) {
  const duet_scalar *x = duet_scalars_find(s, key);
  if (!x) return duet_err_set(err, DUET_EINVAL, "no scalar '%s'", key);
  if (x->kind != DUET_SCALAR_F64) return duet_err_set(err, DUET_EINVAL, "scalar '%s' is an integer, not a double", key);
  *v = x->f;
  return DUET_OK;
}

void duet_train_state_init(duet_train_state *s) {
  memset(s, 0, sizeof *s);
  duet_scalars_init(&s->scalars);
}

void duet_train_state_free(duet_train_state *s) {
  duet_scalars_free(&s->scalars);
  memset(s, 0, sizeof *s);
}

/* ---- writing ---- */

const char *duet_format_double(char *buf, size_t size, double v) {
  for (int digits = 1; digits <= 17; digits++) {
    snprintf(buf, size, "%.*g", digits, v);
    if (strtod(buf, NULL) == v && signbit(strtod(buf, NULL)) == signbit(v)) break;
  }
  return buf;
}

static int add_i64(cJSON *obj, const char *key, int64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%lld", (long long)v);
  return cJSON_AddStringToObject(obj, key, buf) != NULL;
}

static int add_u64(cJSON *obj, const char *key, uint64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
  return cJSON_AddStringToObject(obj, key, buf) != NULL;
}

static int add_f64(cJSON *obj, const char *key, double v) {
  if (isnan(v)) return cJSON_AddStringToObject(obj, key, "nan") != NULL;
  if (isinf(v)) return cJSON_AddStringToObject(obj, key, v > 0 ? "inf" : "-inf") != NULL;
  char buf[40];
  return cJSON_AddRawToObject(obj, key, duet_format_double(buf, sizeof buf, v)) != NULL;
}

int duet_train_state_write(const char *path, const duet_train_state *s, duet_err *err) {
  cJSON *root = cJSON_CreateObject();
  int ok = root != NULL;
  ok = ok && cJSON_AddStringToObject(root, "format", STATE_FORMAT);
  ok = ok && cJSON_AddNumberToObject(root, "version", STATE_VERSION);
  ok = ok && add_i64(root, "step", s->step);
  cJSON *rng = ok ? cJSON_AddObjectToObject(root, "rng") : NULL;
  ok = ok && rng && add_u64(rng, "seed", s->rng.seed) && add_u64(rng, "stream", s->rng.stream) &&
       add_u64(rng, "offset", s->rng.offset);
  cJSON *loader = ok ? cJSON_AddObjectToObject(root, "loader") : NULL;
  ok = ok && loader && add_i64(loader, "epoch", s->epoch) && add_i64(loader, "samples_consumed", s->samples_consumed);
  cJSON *ints = ok ? cJSON_AddObjectToObject(root, "int64") : NULL;
  cJSON *floats = ok ? cJSON_AddObjectToObject(root, "float64") : NULL;
  ok = ok && ints && floats;
  for (int i = 0; ok && i < s->scalars.count; i++) {
    const duet_scalar *x = &s->scalars.items[i];
    ok = x->kind == DUET_SCALAR_I64 ? add_i64(ints, x->key, x->i) : add_f64(floats, x->key, x->f);
  }
  char *text = ok ? cJSON_Print(root) : NULL;
  cJSON_Delete(root);
  if (!text) return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", path);
  size_t n = strlen(text);
  /* A final newline keeps the file friendly to cat and diff. */
  char *withnl = malloc(n + 2);
  int rc;
  if (!withnl) rc = duet_err_set(err, DUET_ENOMEM, "%s: out of memory", path);
  else {
    memcpy(withnl, text, n);
    withnl[n] = '\n';
    rc = duet_write_file_atomic(path, withnl, n + 1, err);
  }
  free(withnl);
  cJSON_free(text);
  return rc;
}

/* ---- reading ---- */

typedef struct reader {
  const char *path;
  duet_err *err;
} reader;

static const cJSON *member(reader *r, const cJSON *obj, const char *where, const char *key) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!x) duet_err_set(r->err, DUET_EFORMAT, "%s: '%s%s' missing", r->path, where, key);
  return x;
}

static int parse_i64(reader *r, const cJSON *x, const char *what, int64_t *out) {
  const char *s = cJSON_IsString(x) ? x->valuestring : NULL;
  char *end = NULL;
  errno = 0;
  long long v = s && *s ? strtoll(s, &end, 10) : 0;
  if (!s || !*s || *end || errno == ERANGE || s[0] == '+' || s[0] == ' ')
    return duet_err_set(r->err, DUET_EFORMAT, "%s: '%s' must be a string of decimal digits (a 64-bit integer)", r->path,
                        what);
  *out = (int64_t)v;
  return DUET_OK;
}

static int parse_u64(reader *r, const cJSON *x, const char *what, uint64_t *out) {
  const char *s = cJSON_IsString(x) ? x->valuestring : NULL;
  char *end = NULL;
  errno = 0;
  unsigned long long v = s && *s >= '0' && *s <= '9' ? strtoull(s, &end, 10) : 0;
  if (!s || !(*s >= '0' && *s <= '9') || *end || errno == ERANGE)
    return duet_err_set(r->err, DUET_EFORMAT, "%s: '%s' must be a string of decimal digits (an unsigned 64-bit integer)",
                        r->path, what);
  *out = (uint64_t)v;
  return DUET_OK;
}

static int parse_f64(reader *r, const cJSON *x, const char *what, double *out) {
  if (cJSON_IsNumber(x)) {
    *out = x->valuedouble;
    return DUET_OK;
  }
  const char *s = cJSON_IsString(x) ? x->valuestring : "";
  if (strcmp(s, "nan") == 0) *out = NAN;
  else if (strcmp(s, "inf") == 0) *out = INFINITY;
  else if (strcmp(s, "-inf") == 0) *out = -INFINITY;
  else
    return duet_err_set(r->err, DUET_EFORMAT, "%s: '%s' must be a number, \"nan\", \"inf\" or \"-inf\"", r->path,
                        what);
  return DUET_OK;
}

static int parse_state(reader *r, const cJSON *root, duet_train_state *s) {
  const cJSON *x;
  char what[512];
  if (!cJSON_IsObject(root)) return duet_err_set(r->err, DUET_EFORMAT, "%s: not a JSON object", r->path);
  if (!(x = member(r, root, "", "format"))) return DUET_EFORMAT;
  if (!cJSON_IsString(x) || strcmp(x->valuestring, STATE_FORMAT) != 0)
    return duet_err_set(r->err, DUET_EFORMAT, "%s: 'format' is not \"%s\"", r->path, STATE_FORMAT);
  if (!(x = member(r, root, "", "version"))) return DUET_EFORMAT;
  if (!cJSON_IsNumber(x) || x->valuedouble != STATE_VERSION)
    return duet_err_set(r->err, DUET_EFORMAT, "%s: version %g not supported (this build reads %d)", r->path,
                        cJSON_IsNumber(x) ? x->valuedouble : -1.0, STATE_VERSION);
  const cJSON *rng, *loader, *ints, *floats;
  if (!(x = member(r, root, "", "step")) || parse_i64(r, x, "step", &s->step)) return DUET_EFORMAT;
  if (!(rng = member(r, root, "", "rng")) || !(loader = member(r, root, "", "loader")) ||
      !(ints = member(r, root, "", "int64")) || !(floats = member(r, root, "", "float64")))
    return DUET_EFORMAT;
  if (!cJSON_IsObject(rng) || !cJSON_IsObject(loader) || !cJSON_IsObject(ints) || !cJSON_IsObject(floats))
    return duet_err_set(r->err, DUET_EFORMAT, "%s: 'rng', 'loader', 'int64' and 'float64' must be objects", r->path);
  if (!(x = member(r, rng, "rng.", "seed")) || parse_u64(r, x, "rng.seed", &s->rng.seed) ||
      !(x = member(r, rng, "rng.", "stream")) || parse_u64(r, x, "rng.stream", &s->rng.stream) ||
      !(x = member(r, rng, "rng.", "offset")) || parse_u64(r, x, "rng.offset", &s->rng.offset) ||
      !(x = member(r, loader, "loader.", "epoch")) || parse_i64(r, x, "loader.epoch", &s->epoch) ||
      !(x = member(r, loader, "loader.", "samples_consumed")) ||
      parse_i64(r, x, "loader.samples_consumed", &s->samples_consumed))
    return DUET_EFORMAT;
  for (const cJSON *it = ints->child; it; it = it->next) {
    int64_t v = 0;
    snprintf(what, sizeof what, "int64.%s", it->string);
    if (duet_scalars_find(&s->scalars, it->string))
      return duet_err_set(r->err, DUET_EFORMAT, "%s: scalar '%s' appears twice", r->path, it->string);
    if (parse_i64(r, it, what, &v) || duet_scalars_set_i64(&s->scalars, it->string, v, r->err)) return DUET_EFORMAT;
  }
  for (const cJSON *it = floats->child; it; it = it->next) {
    double v = 0;
    snprintf(what, sizeof what, "float64.%s", it->string);
    if (duet_scalars_find(&s->scalars, it->string))
      return duet_err_set(r->err, DUET_EFORMAT, "%s: scalar '%s' appears twice", r->path, it->string);
    if (parse_f64(r, it, what, &v) || duet_scalars_set_f64(&s->scalars, it->string, v, r->err)) return DUET_EFORMAT;
  }
  return DUET_OK;
}

int duet_train_state_read(const char *path, duet_train_state *s, duet_err *err) {
  char *text;
  size_t n;
  int rc = duet_read_file(path, STATE_MAX_BYTES, &text, &n, err);
  if (rc) return rc;
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
  if (!root) {
    rc = duet_err_set(err, DUET_EFORMAT, "%s: not valid JSON (error near byte %lld)", path,
                      end ? (long long)(end - text) : -1LL);
    free(text);
    return rc;
  }
  for (const char *p = end; p < text + n && !rc; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
      rc = duet_err_set(err, DUET_EFORMAT, "%s: text after the JSON object at byte %lld", path, (long long)(p - text));
  duet_train_state tmp;
  duet_train_state_init(&tmp);
  reader r = {path, err};
  if (!rc) rc = parse_state(&r, root, &tmp);
  if (rc) {
    /* Out-of-memory from the dictionary keeps its own code; everything else is a format error. */
    rc = err && err->code ? err->code : DUET_EFORMAT;
    duet_train_state_free(&tmp);
  } else {
    duet_train_state_free(s);
    *s = tmp;
  }
  cJSON_Delete(root);
  free(text);
  return rc;
}
