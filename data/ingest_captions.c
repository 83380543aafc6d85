/* The captions sidecar of duet-ingest: JSON Lines, one caption per file or per time span. */
#include "data/ingest.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
  char *file, *text;
  double start, end; /* end = INFINITY when open */
  int line;
} entry;

struct duet_captions {
  entry *e;
  int n, cap;
};

void duet_captions_free(duet_captions *c) {
  if (!c) return;
  for (int i = 0; i < c->n; i++) {
    free(c->e[i].file);
    free(c->e[i].text);
  }
  free(c->e);
  free(c);
}

static int is_blank(const char *s) {
  for (; *s; s++)
    if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n') return 0;
  return 1;
}

/* A number, or absent/null (leaving *out alone). */
static int get_time(const cJSON *o, const char *key, double *out, const char *path, int line,
                    duet_err *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v || cJSON_IsNull(v)) return 0;
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0)
    return duet_err_set(err, DUET_EFORMAT, "%s:%d: \"%s\" must be a number of seconds >= 0",
                        path, line, key);
  *out = v->valuedouble;
  return 0;
}

static int parse_line(duet_captions *c, const char *text, const char *path, int line,
                      duet_err *err) {
  cJSON *o = cJSON_Parse(text);
  if (!o || !cJSON_IsObject(o)) {
    cJSON_Delete(o);
    return duet_err_set(err, DUET_EFORMAT, "%s:%d: not a JSON object", path, line);
  }
  int rc = 0;
  const cJSON *file = cJSON_GetObjectItemCaseSensitive(o, "file");
  const cJSON *cap = cJSON_GetObjectItemCaseSensitive(o, "caption");
  entry e = {.start = 0.0, .end = INFINITY, .line = line};
  if (!cJSON_IsString(file) || !file->valuestring[0])
    rc = duet_err_set(err, DUET_EFORMAT, "%s:%d: \"file\" must be a non-empty string", path, line);
  else if (!cJSON_IsString(cap))
    rc = duet_err_set(err, DUET_EFORMAT, "%s:%d: \"caption\" must be a string", path, line);
  if (!rc) rc = get_time(o, "start", &e.start, path, line, err);
  if (!rc) rc = get_time(o, "end", &e.end, path, line, err);
  if (!rc && !(e.end > e.start))
    rc = duet_err_set(err, DUET_EFORMAT, "%s:%d: \"end\" (%g) must be after \"start\" (%g)", path,
                      line, e.end, e.start);
  if (!rc && c->n == c->cap) {
    int cap_n = c->cap ? c->cap * 2 : 64;
    entry *ne = realloc(c->e, sizeof *ne * (size_t)cap_n);
    if (!ne) rc = duet_err_set(err, DUET_ENOMEM, "%s: out of memory", path);
    else {
      c->e = ne;
      c->cap = cap_n;
    }
  }
  if (!rc) {
    e.file = strdup(file->valuestring);
    e.text = strdup(cap->valuestring);
    if (!e.file || !e.text) {
      free(e.file);
      free(e.text);
      rc = duet_err_set(err, DUET_ENOMEM, "%s: out of memory", path);
    } else {
      c->e[c->n++] = e;
    }
  }
  cJSON_Delete(o);
  return rc;
}

int duet_captions_load(duet_captions **out, const char *path, duet_err *err) {
  *out = NULL;
  FILE *f = fopen(path, "r");
  if (!f) return duet_err_set(err, DUET_EIO, "%s: %s", path, strerror(errno));
  duet_captions *c = calloc(1, sizeof *c);
  if (!c) {
    fclose(f);
    return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", path);
  }
  char *buf = NULL;
  size_t cap = 0;
  int rc = 0, line = 0;
  ssize_t got;
  while (!rc && (got = getline(&buf, &cap, f)) >= 0) {
    line++;
    if ((size_t)got != strlen(buf)) {
      rc = duet_err_set(err, DUET_EFORMAT, "%s:%d: contains a NUL byte", path, line);
      break;
    }
    if (is_blank(buf)) continue;
    rc = parse_line(c, buf, path, line, err);
  }
  if (!rc && ferror(f)) rc = duet_err_set(err, DUET_EIO, "%s: read error", path);
  free(buf);
  fclose(f);
  if (rc) {
    duet_captions_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

int duet_captions_count(const duet_captions *c) { return c ? c->n : 0; }
const char *duet_captions_text(const duet_captions *c, int i) { return c->e[i].text; }
const char *duet_captions_file(const duet_captions *c, int i) { return c->e[i].file; }
int duet_captions_line(const duet_captions *c, int i) { return c->e[i].line; }

static const char *skip_dot_slash(const char *s) {
  while (s[0] == '.' && s[1] == '/') s += 2;
  return s;
}

/* a ends with b, and the match starts at a path component. */
static int ends_at_component(const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b);
  if (nb > na) return 0;
  if (strcmp(a + na - nb, b) != 0) return 0;
  return na == nb || a[na - nb - 1] == '/';
}

static int same_file(const char *a, const char *b) {
  a = skip_dot_slash(a);
  b = skip_dot_slash(b);
  return ends_at_component(a, b) || ends_at_component(b, a);
}

int duet_captions_match(const duet_captions *c, const char *file, double start, double end) {
  if (!c) return -1;
  int best = -1;
  double best_overlap = 0.0, best_len = INFINITY;
  for (int i = 0; i < c->n; i++) {
    const entry *e = &c->e[i];
    if (!same_file(e->file, file)) continue;
    double lo = e->start > start ? e->start : start, hi = e->end < end ? e->end : end;
    double overlap = hi - lo, len = e->end - e->start;
    /* More overlap wins; on a tie the narrower entry, which says more about this moment
     * than one that spans the whole file. */
    if (overlap > best_overlap || (overlap > 0 && overlap == best_overlap && len < best_len)) {
      best = i;
      best_overlap = overlap;
      best_len = len;
    }
  }
  return best;
}
