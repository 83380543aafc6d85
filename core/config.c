#include "core/config.h"

#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/fileio.h"

/* Config files are a few kilobytes; a megabyte means the wrong file was named. */
#define CONFIG_FILE_MAX (1u << 20)
/* How much of an offending value or override an error message repeats. */
#define QUOTE_MAX 60
/* Names longer than this get no "did you mean" (and are never valid anyway). */
#define NAME_MAX_SUGGEST 64

/* ---- small text helpers --------------------------------------------------------------- */

/* The C locale's isspace, which is also what inih strips: the program's locale must not
 * change what a config file means. */
static bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static bool is_word_char(char c, bool allow_dot) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || (allow_dot && c == '.');
}

static bool is_word(const char *s, bool allow_dot) {
  if (!s || !*s) return false;
  for (; *s; s++)
    if (!is_word_char(*s, allow_dot)) return false;
  return true;
}

static void trim(const char **s, size_t *n) {
  while (*n > 0 && is_space(**s)) (*s)++, (*n)--;
  while (*n > 0 && is_space((*s)[*n - 1])) (*n)--;
}

/* A bounded copy of a value for an error message, so one bad 500-byte line cannot crowd the
 * rest of the message out. */
static const char *quote(const char *s, char *buf, size_t size) {
  size_t n = strlen(s);
  if (n < size && n <= QUOTE_MAX) return s;
  size_t keep = QUOTE_MAX < size - 4 ? QUOTE_MAX : size - 4;
  memcpy(buf, s, keep);
  memcpy(buf + keep, "...", 4);
  return buf;
}

/* The shortest %g text that strtod turns back into exactly v: "0.1" rather than
 * "0.10000000000000001", and still bit-exact. */
static void format_double(double v, char *buf, size_t size) {
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, size, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) return;
  }
}

/* Range bounds are doubles; for integer keys they read better as integers. */
static void format_bound(const duet_cfg_key *k, double v, char *buf, size_t size) {
  if (k->type != DUET_CFG_DOUBLE && fabs(v) < 9e18 && v == floor(v))
    snprintf(buf, size, "%lld", (long long)v);
  else
    format_double(v, buf, size);
}

static bool is_numeric(duet_cfg_type t) {
  return t == DUET_CFG_INT || t == DUET_CFG_INT64 || t == DUET_CFG_DOUBLE;
}

static bool has_range(const duet_cfg_key *k) { return is_numeric(k->type) && k->min <= k->max; }

static int count_choices(const duet_cfg_key *k) {
  int n = 0;
  while (k->choices && k->choices[n]) n++;
  return n;
}

/* "a, b, c" into buf, cut short when it does not fit. */
static void list_choices(const duet_cfg_key *k, const char *sep, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; k->choices && k->choices[i] && used < size; i++) {
    int w = snprintf(buf + used, size - used, "%s%s", i ? sep : "", k->choices[i]);
    if (w < 0) break;
    used += (size_t)w;
  }
}

/* ---- tables ----------------------------------------------------------------------------- */

static int check_key(const duet_cfg_key *k, duet_err *err) {
  const char *sec = k->section ? k->section : "(null)", *name = k->name ? k->name : "(null)";
  if (!is_word(k->section, true) || !is_word(k->name, false))
    return duet_err_set(err, DUET_EINVAL,
                        "config table: key '%s.%s': section and name must be non-empty and use "
                        "only letters, digits, '_' and '-' ('.' too in a section)",
                        sec, name);
  if (k->type < DUET_CFG_INT || k->type > DUET_CFG_ENUM)
    return duet_err_set(err, DUET_EINVAL, "config table: %s.%s: unknown type %d", sec, name,
                        (int)k->type);
  if (is_numeric(k->type) && (isnan(k->min) || isnan(k->max) || k->min == k->max))
    return duet_err_set(err, DUET_EINVAL,
                        "config table: %s.%s: range [%g, %g] allows at most one value; "
                        "give min > max for no range",
                        sec, name, k->min, k->max);
  if (k->help && strpbrk(k->help, "\r\n"))
    return duet_err_set(err, DUET_EINVAL, "config table: %s.%s: help must be one line", sec, name);
  if (k->type == DUET_CFG_ENUM) {
    int n = count_choices(k);
    if (n == 0)
      return duet_err_set(err, DUET_EINVAL, "config table: %s.%s: an enum needs choices", sec, name);
    for (int i = 0; i < n; i++) {
      if (!is_word(k->choices[i], true))
        return duet_err_set(err, DUET_EINVAL, "config table: %s.%s: bad choice name '%s'", sec,
                            name, k->choices[i]);
      for (int j = 0; j < i; j++)
        if (strcmp(k->choices[i], k->choices[j]) == 0)
          return duet_err_set(err, DUET_EINVAL, "config table: %s.%s: choice '%s' given twice",
                              sec, name, k->choices[i]);
    }
  }
  return DUET_OK;
}

/* Tables are code, so their mistakes are caught on every call rather than trusted: a few
 * hundred string compares, against a silently mis-filled struct. */
static int check_groups(const duet_cfg_group *g, int ng, duet_err *err) {
  if (ng < 0 || (ng > 0 && !g)) return duet_err_set(err, DUET_EINVAL, "config: bad group list");
  for (int gi = 0; gi < ng; gi++) {
    if (g[gi].n < 0 || (g[gi].n > 0 && (!g[gi].keys || !g[gi].target)))
      return duet_err_set(err, DUET_EINVAL, "config: group %d has no keys or no target", gi);
    for (int ki = 0; ki < g[gi].n; ki++) {
      const duet_cfg_key *k = &g[gi].keys[ki];
      int rc = check_key(k, err);
      if (rc) return rc;
      for (int gj = 0; gj <= gi; gj++)
        for (int kj = 0; kj < (gj == gi ? ki : g[gj].n); kj++) {
          const duet_cfg_key *o = &g[gj].keys[kj];
          if (strcmp(k->section, o->section) == 0 && strcmp(k->name, o->name) == 0)
            return duet_err_set(err, DUET_EINVAL, "config table: %s.%s is declared twice",
                                k->section, k->name);
        }
    }
  }
  return DUET_OK;
}

typedef struct found_key {
  const duet_cfg_key *key;
  char *member; /* where the value lives in its target */
  int index;    /* across all groups, for per-key bookkeeping */
} found_key;

static bool find_key(const duet_cfg_group *g, int ng, const char *section, const char *name,
                     found_key *out) {
  int index = 0;
  for (int gi = 0; gi < ng; gi++)
    for (int ki = 0; ki < g[gi].n; ki++, index++) {
      const duet_cfg_key *k = &g[gi].keys[ki];
      if (strcmp(k->section, section) == 0 && strcmp(k->name, name) == 0) {
        out->key = k;
        out->member = (char *)g[gi].target + k->offset;
        out->index = index;
        return true;
      }
    }
  return false;
}

static bool section_known(const duet_cfg_group *g, int ng, const char *section) {
  for (int gi = 0; gi < ng; gi++)
    for (int ki = 0; ki < g[gi].n; ki++)
      if (strcmp(g[gi].keys[ki].section, section) == 0) return true;
  return false;
}

/* Optimal string alignment distance: Levenshtein plus swapping two neighbours, the most
 * common typo in a key name ("stpes"). */
static int edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > NAME_MAX_SUGGEST || lb > NAME_MAX_SUGGEST) return INT_MAX;
  int d[NAME_MAX_SUGGEST + 1][NAME_MAX_SUGGEST + 1];
  for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
  for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
  for (size_t i = 1; i <= la; i++)
    for (size_t j = 1; j <= lb; j++) {
      int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  return d[la][lb];
}

static bool close_enough(int distance, const char *typed) {
  size_t n = strlen(typed);
  return distance <= (n <= 3 ? 1 : n <= 8 ? 2 : 3);
}

/* " (did you mean train.lr?)" for a key no table has, or "" when nothing is near. The same
 * name under another section comes first: it is the likelier slip than a misspelling. */
static void suggest(const duet_cfg_group *g, int ng, const char *section, const char *name,
                    char *out, size_t size) {
  out[0] = '\0';
  bool known = section_known(g, ng, section);
  const duet_cfg_key *best = NULL;
  int best_d = INT_MAX;
  for (int gi = 0; gi < ng; gi++)
    for (int ki = 0; ki < g[gi].n; ki++) {
      const duet_cfg_key *k = &g[gi].keys[ki];
      if (strcmp(k->name, name) == 0) {
        snprintf(out, size, " (did you mean %s.%s?)", k->section, k->name);
        return;
      }
      int d = known ? (strcmp(k->section, section) == 0 ? edit_distance(name, k->name) : INT_MAX)
                    : edit_distance(section, k->section);
      if (d < best_d) best_d = d, best = k;
    }
  if (!best || !close_enough(best_d, known ? name : section)) return;
  if (known)
    snprintf(out, size, " (did you mean %s.%s?)", best->section, best->name);
  else
    snprintf(out, size, " (did you mean [%s]?)", best->section);
}

/* ---- values ----------------------------------------------------------------------------- */

typedef union cfg_value {
  int i;
  int64_t i64;
  double d;
  bool b;
} cfg_value;

/* Whether a string survives being written as "name = value" and read back: the reader trims
 * the ends, cuts a line at " ;" and at a line break. */
static bool string_writable(const char *s, char *why, size_t whysize) {
  size_t n = strlen(s);
  if (n > 0 && (is_space(s[0]) || is_space(s[n - 1]))) {
    snprintf(why, whysize, "a string cannot begin or end with whitespace");
    return false;
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f) {
      snprintf(why, whysize, "a string cannot hold control characters (byte 0x%02x at %zu)", c, i);
      return false;
    }
    if (c == ';' && i > 0 && is_space(s[i - 1])) {
      snprintf(why, whysize, "a string cannot hold ' ;' (it starts a comment in a config file)");
      return false;
    }
  }
  return true;
}

static bool out_of_range(const duet_cfg_key *k, double v, const char *text, char *why,
                         size_t whysize) {
  if (!has_range(k) || (v >= k->min && v <= k->max)) return false;
  char lo[32], hi[32];
  format_bound(k, k->min, lo, sizeof lo);
  format_bound(k, k->max, hi, sizeof hi);
  snprintf(why, whysize, "%s is out of range [%s, %s]", text, lo, hi);
  return true;
}

/* Reads text (already trimmed) as key k's type; on failure says why in one phrase. */
static bool parse_value(const duet_cfg_key *k, const char *text, cfg_value *out, char *why,
                        size_t whysize) {
  char qbuf[QUOTE_MAX + 4];
  const char *q = quote(text, qbuf, sizeof qbuf);
  char *end;
  switch (k->type) {
  case DUET_CFG_INT:
  case DUET_CFG_INT64: {
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (!*text || end == text || *end) {
      snprintf(why, whysize, "expected an integer, got '%s'", q);
      return false;
    }
    if (errno == ERANGE || (k->type == DUET_CFG_INT && (v < INT_MIN || v > INT_MAX))) {
      snprintf(why, whysize, "%s does not fit in %s", q,
               k->type == DUET_CFG_INT ? "an int" : "a 64-bit integer");
      return false;
    }
    if (out_of_range(k, (double)v, q, why, whysize)) return false;
    if (k->type == DUET_CFG_INT)
      out->i = (int)v;
    else
      out->i64 = (int64_t)v;
    return true;
  }
  case DUET_CFG_DOUBLE: {
    errno = 0;
    double v = strtod(text, &end);
    if (!*text || end == text || *end) {
      snprintf(why, whysize, "expected a number, got '%s'", q);
      return false;
    }
    /* Overflow comes back as inf, so this also catches "1e999". */
    if (!isfinite(v)) {
      snprintf(why, whysize, "expected a finite number, got '%s'", q);
      return false;
    }
    if (errno == ERANGE && v == 0) {
      snprintf(why, whysize, "%s is too small for a double and would read as 0", q);
      return false;
    }
    if (out_of_range(k, v, q, why, whysize)) return false;
    out->d = v;
    return true;
  }
  case DUET_CFG_BOOL: {
    static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0", "no", "off"};
    for (int i = 0; i < 4; i++) {
      if (strcasecmp(text, yes[i]) == 0 || strcasecmp(text, no[i]) == 0) {
        out->b = strcasecmp(text, yes[i]) == 0;
        return true;
      }
    }
    snprintf(why, whysize, "expected true/false, yes/no, on/off or 1/0, got '%s'", q);
    return false;
  }
  case DUET_CFG_STRING:
    if (strlen(text) >= DUET_CFG_STRING_MAX) {
      snprintf(why, whysize, "a string of %zu bytes is too long (at most %d)", strlen(text),
               DUET_CFG_STRING_MAX - 1);
      return false;
    }
    return string_writable(text, why, whysize);
  case DUET_CFG_ENUM:
    for (int i = 0; k->choices[i]; i++)
      if (strcmp(text, k->choices[i]) == 0) {
        out->i = i;
        return true;
      }
    char list[256];
    list_choices(k, ", ", list, sizeof list);
    snprintf(why, whysize, "'%s' is not one of: %s", q, list);
    return false;
  }
  snprintf(why, whysize, "unknown key type");
  return false;
}

/* memcpy rather than typed stores: the member may be a C enum, and offsets come from a table
 * the compiler cannot check. */
static void store_value(const duet_cfg_key *k, char *member, const char *text, const cfg_value *v) {
  switch (k->type) {
  case DUET_CFG_INT:
  case DUET_CFG_ENUM: memcpy(member, &v->i, sizeof v->i); break;
  case DUET_CFG_INT64: memcpy(member, &v->i64, sizeof v->i64); break;
  case DUET_CFG_DOUBLE: memcpy(member, &v->d, sizeof v->d); break;
  case DUET_CFG_BOOL: memcpy(member, &v->b, sizeof v->b); break;
  case DUET_CFG_STRING:
    /* Zero the tail too, so equal configs are equal structs byte for byte. */
    memset(member, 0, DUET_CFG_STRING_MAX);
    memcpy(member, text, strlen(text));
    break;
  }
}

/* The member's value as it would be written; false (with why) when it cannot even be
 * turned into text. Whether the text reads back is the caller's check. */
static bool format_value(const duet_cfg_key *k, const char *member, char *out, size_t size,
                         char *why, size_t whysize) {
  switch (k->type) {
  case DUET_CFG_INT: {
    int v;
    memcpy(&v, member, sizeof v);
    snprintf(out, size, "%d", v);
    return true;
  }
  case DUET_CFG_INT64: {
    int64_t v;
    memcpy(&v, member, sizeof v);
    snprintf(out, size, "%" PRId64, v);
    return true;
  }
  case DUET_CFG_DOUBLE: {
    double v;
    memcpy(&v, member, sizeof v);
    format_double(v, out, size);
    return true;
  }
  case DUET_CFG_BOOL: {
    /* Read as bytes: a bool member holding anything but 0 or 1 would be undefined to read. */
    unsigned char bytes[sizeof(bool)];
    memcpy(bytes, member, sizeof bytes);
    bool any = false;
    for (size_t i = 0; i < sizeof bytes; i++) any = any || bytes[i];
    snprintf(out, size, "%s", any ? "true" : "false");
    return true;
  }
  case DUET_CFG_STRING: {
    const char *nul = memchr(member, '\0', DUET_CFG_STRING_MAX);
    if (!nul) {
      snprintf(why, whysize, "the string is not NUL-terminated within %d bytes", DUET_CFG_STRING_MAX);
      return false;
    }
    snprintf(out, size, "%s", member);
    return true;
  }
  case DUET_CFG_ENUM: {
    int v, n = count_choices(k);
    memcpy(&v, member, sizeof v);
    if (v < 0 || v >= n) {
      snprintf(why, whysize, "holds %d, which is no choice (0 to %d)", v, n - 1);
      return false;
    }
    snprintf(out, size, "%s", k->choices[v]);
    return true;
  }
  }
  snprintf(why, whysize, "unknown key type");
  return false;
}

/* ---- applying one name = value ------------------------------------------------------------ */

/* Where a value came from, for the message: a file and line, or an override. */
typedef struct origin {
  const char *file;
  int line;
  const char *assignment;
  duet_err *err;
} origin;

static int fail(const origin *o, const char *section, const char *name, int code, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));

static int fail(const origin *o, const char *section, const char *name, int code, const char *fmt,
                ...) {
  char problem[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(problem, sizeof problem, fmt, ap);
  va_end(ap);
  if (o->assignment) {
    char qbuf[2 * QUOTE_MAX];
    return duet_err_set(o->err, code, "--set %s: %s", quote(o->assignment, qbuf, sizeof qbuf), problem);
  }
  if (!*section) return duet_err_set(o->err, code, "%s:%d: %s: %s", o->file, o->line, name, problem);
  return duet_err_set(o->err, code, "%s:%d: %s.%s: %s", o->file, o->line, section, name, problem);
}

/* Checks one value for section.name and, when apply, stores it. seen (per key: the line that
 * set it, 0 if none) catches a key given twice in one file. */
static int apply_one(const duet_cfg_group *g, int ng, const origin *o, const char *section,
                     const char *name, const char *value, size_t vlen, bool apply, int *seen) {
  if (!*section) return fail(o, section, name, DUET_EINVAL, "key outside any [section]");
  found_key f;
  if (!find_key(g, ng, section, name, &f)) {
    char hint[200];
    suggest(g, ng, section, name, hint, sizeof hint);
    if (!section_known(g, ng, section))
      return fail(o, section, name, DUET_EINVAL, "unknown section [%s]%s", section, hint);
    return fail(o, section, name, DUET_EINVAL, "unknown key%s", hint);
  }
  if (seen) {
    if (seen[f.index])
      return fail(o, section, name, DUET_EINVAL, "given twice (first on line %d)", seen[f.index]);
    seen[f.index] = o->line;
  }
  if (vlen >= DUET_CFG_STRING_MAX)
    return fail(o, section, name, DUET_EINVAL, "a value of %zu bytes is too long (at most %d)", vlen,
                DUET_CFG_STRING_MAX - 1);
  char text[DUET_CFG_STRING_MAX];
  memcpy(text, value, vlen);
  text[vlen] = '\0';
  cfg_value v;
  char why[512];
  if (!parse_value(f.key, text, &v, why, sizeof why)) return fail(o, section, name, DUET_EINVAL, "%s", why);
  if (apply) store_value(f.key, f.member, text, &v);
  return DUET_OK;
}

/* ---- files -------------------------------------------------------------------------------- */

typedef struct parse_ctx {
  const duet_cfg_group *groups;
  int ngroups;
  const char *text;
  size_t len, pos;
  const char *line; /* the current line, leading whitespace skipped, without its '\n' */
  size_t line_len;
  bool apply;
  int *seen;
  origin o;
  int rc;
  int err_line;
} parse_ctx;

/* inih's line reader. Two things are done here rather than by inih's options, which this
 * library fixes at build time (or in process-wide globals): leading whitespace is dropped, so
 * an indented line is an ordinary line and never a continuation of the value above; and a
 * line longer than inih's buffer is handed over cut short, while on_pair takes the value
 * from the whole line kept here. */
static char *read_line(char *buf, int size, void *stream) {
  parse_ctx *c = stream;
  if (c->rc || c->pos >= c->len || size < 3) return NULL;
  const char *start = c->text + c->pos;
  const char *nl = memchr(start, '\n', c->len - c->pos);
  size_t n = nl ? (size_t)(nl - start) : c->len - c->pos;
  c->pos += n + (nl ? 1 : 0);
  c->o.line++;
  while (n > 0 && is_space(*start)) start++, n--;
  c->line = start;
  c->line_len = n;
  size_t keep = n < (size_t)size - 2 ? n : (size_t)size - 2;
  memcpy(buf, start, keep);
  buf[keep] = '\n';
  buf[keep + 1] = '\0';
  return buf;
}

/* The value part of the current line by inih's own rules (after the first '=' or ':', up to
 * a ';' that follows whitespace, trimmed), taken from the whole line: inih's copy stops at
 * its 200-byte buffer, shorter than a string value may be. */
static void line_value(const parse_ctx *c, const char **value, size_t *vlen) {
  const char *s = c->line, *end = c->line + c->line_len;
  while (s < end && *s != '=' && *s != ':') s++;
  if (s < end) s++;
  const char *e = s;
  bool was_space = false;
  for (; e < end; e++) {
    if (*e == ';' && was_space) break;
    was_space = is_space(*e);
  }
  size_t n = (size_t)(e - s);
  trim(&s, &n);
  *value = s;
  *vlen = n;
}

static int on_pair(void *user, const char *section, const char *name, const char *value) {
  (void)value; /* see line_value */
  parse_ctx *c = user;
  if (c->rc) return 0;
  const char *v;
  size_t vlen;
  line_value(c, &v, &vlen);
  int rc = apply_one(c->groups, c->ngroups, &c->o, section, name, v, vlen, c->apply, c->seen);
  if (rc) {
    c->rc = rc;
    c->err_line = c->o.line;
    return 0;
  }
  return 1;
}

static int total_keys(const duet_cfg_group *g, int ng) {
  int n = 0;
  for (int i = 0; i < ng; i++) n += g[i].n;
  return n;
}

static int load_text(const duet_cfg_group *g, int ng, const char *text, size_t len, const char *name,
                     duet_err *err) {
  int *seen = calloc((size_t)total_keys(g, ng) + 1, sizeof *seen);
  if (!seen) return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", name);
  /* Pass one checks the whole file; only when it is clean does pass two store, so a bad
   * line at the end leaves the targets as they were. */
  int rc = DUET_OK;
  for (int pass = 0; pass < 2 && !rc; pass++) {
    parse_ctx c = {.groups = g, .ngroups = ng, .text = text, .len = len, .apply = pass == 1, .seen = seen};
    c.o.file = name;
    c.o.err = err;
    memset(seen, 0, ((size_t)total_keys(g, ng) + 1) * sizeof *seen);
    int r = ini_parse_stream(read_line, &c, on_pair, &c);
    /* inih reports the first bad line; a line it could not parse at all calls no handler. */
    if (r > 0 && (!c.rc || r < c.err_line))
      rc = duet_err_set(err, DUET_EFORMAT,
                        "%s:%d: syntax error: expected [section], name = value or a comment", name, r);
    else if (c.rc)
      rc = c.rc;
    else if (r < 0)
      rc = duet_err_set(err, DUET_ENOMEM, "%s: the INI parser ran out of memory", name);
  }
  free(seen);
  return rc;
}

int duet_config_load_string_multi(const duet_cfg_group *groups, int ngroups, const char *text,
                                  const char *name, duet_err *err) {
  int rc = check_groups(groups, ngroups, err);
  if (rc) return rc;
  if (!name) name = "<config>";
  if (!text) return duet_err_set(err, DUET_EINVAL, "%s: no text", name);
  return load_text(groups, ngroups, text, strlen(text), name, err);
}

int duet_config_load_file_multi(const duet_cfg_group *groups, int ngroups, const char *path,
                                duet_err *err) {
  int rc = check_groups(groups, ngroups, err);
  if (rc) return rc;
  if (!path) return duet_err_set(err, DUET_EINVAL, "config: no file name");
  char *data;
  size_t size;
  rc = duet_read_file(path, CONFIG_FILE_MAX, &data, &size, err);
  if (rc) return rc;
  if (memchr(data, '\0', size))
    rc = duet_err_set(err, DUET_EFORMAT, "%s: holds a NUL byte; not a config file", path);
  else
    rc = load_text(groups, ngroups, data, size, path, err);
  free(data);
  return rc;
}

int duet_config_load_file(const duet_cfg_key *keys, int n, void *target, const char *path,
                          duet_err *err) {
  duet_cfg_group g = {keys, n, target};
  return duet_config_load_file_multi(&g, 1, path, err);
}

int duet_config_load_string(const duet_cfg_key *keys, int n, void *target, const char *text,
                            const char *name, duet_err *err) {
  duet_cfg_group g = {keys, n, target};
  return duet_config_load_string_multi(&g, 1, text, name, err);
}

/* ---- overrides ---------------------------------------------------------------------------- */

int duet_config_set_multi(const duet_cfg_group *groups, int ngroups, const char *assignment,
                          duet_err *err) {
  int rc = check_groups(groups, ngroups, err);
  if (rc) return rc;
  if (!assignment) return duet_err_set(err, DUET_EINVAL, "--set: no assignment");
  origin o = {.assignment = assignment, .err = err};
  const char *eq = strchr(assignment, '=');
  const char *key = assignment;
  size_t klen = eq ? (size_t)(eq - assignment) : 0;
  trim(&key, &klen);
  /* The last dot splits, so a section name may itself hold dots ("bench.synth.steps"). */
  const char *dot = NULL;
  for (size_t i = 0; i < klen; i++)
    if (key[i] == '.') dot = key + i;
  char section[128], name[128];
  size_t slen = dot ? (size_t)(dot - key) : 0, nlen = dot ? klen - slen - 1 : 0;
  if (!eq || !dot || slen == 0 || nlen == 0)
    return fail(&o, "", "", DUET_EINVAL, "expected section.key=value");
  if (slen >= sizeof section || nlen >= sizeof name) return fail(&o, "", "", DUET_EINVAL, "unknown key");
  memcpy(section, key, slen);
  section[slen] = '\0';
  memcpy(name, dot + 1, nlen);
  name[nlen] = '\0';
  const char *value = eq + 1;
  size_t vlen = strlen(value);
  trim(&value, &vlen);
  return apply_one(groups, ngroups, &o, section, name, value, vlen, true, NULL);
}

int duet_config_set(const duet_cfg_key *keys, int n, void *target, const char *assignment,
                    duet_err *err) {
  duet_cfg_group g = {keys, n, target};
  return duet_config_set_multi(&g, 1, assignment, err);
}

/* ---- writing ------------------------------------------------------------------------------ */

typedef struct textbuf {
  char *p;
  size_t len, cap;
  bool failed;
} textbuf;

static void tb_printf(textbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tb_printf(textbuf *b, const char *fmt, ...) {
  if (b->failed) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->failed = true;
    return;
  }
  if (b->len + (size_t)n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + (size_t)n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->failed = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* Whether key (gi, ki) is the first of its section in table order: sections are written in
 * the order they first appear, each with all of its keys from every group. */
static bool first_of_section(const duet_cfg_group *g, int gi, int ki) {
  const char *section = g[gi].keys[ki].section;
  for (int gj = 0; gj <= gi; gj++)
    for (int kj = 0; kj < (gj == gi ? ki : g[gj].n); kj++)
      if (strcmp(g[gj].keys[kj].section, section) == 0) return false;
  return true;
}

static int format_key(const duet_cfg_group *grp, const duet_cfg_key *k, textbuf *b, duet_err *err) {
  const char *member = (const char *)grp->target + k->offset;
  char value[DUET_CFG_STRING_MAX + 64], why[512];
  cfg_value scratch;
  /* Reading the text back through the parser is the one sure test that it will load. */
  if (!format_value(k, member, value, sizeof value, why, sizeof why) ||
      !parse_value(k, value, &scratch, why, sizeof why))
    return duet_err_set(err, DUET_EINVAL, "%s.%s: cannot be written so that it reads back: %s",
                        k->section, k->name, why);
  if (k->help && *k->help) tb_printf(b, "; %s\n", k->help);
  tb_printf(b, "%s = %s\n", k->name, value);
  return DUET_OK;
}

int duet_config_format_multi(const duet_cfg_group *groups, int ngroups, char **text, duet_err *err) {
  *text = NULL;
  int rc = check_groups(groups, ngroups, err);
  if (rc) return rc;
  textbuf b = {0};
  tb_printf(&b, "%s", "");
  bool first = true;
  for (int gi = 0; gi < ngroups && !rc; gi++)
    for (int ki = 0; ki < groups[gi].n && !rc; ki++) {
      if (!first_of_section(groups, gi, ki)) continue;
      const char *section = groups[gi].keys[ki].section;
      tb_printf(&b, "%s[%s]\n", first ? "" : "\n", section);
      first = false;
      for (int gj = gi; gj < ngroups && !rc; gj++)
        for (int kj = gj == gi ? ki : 0; kj < groups[gj].n && !rc; kj++)
          if (strcmp(groups[gj].keys[kj].section, section) == 0)
            rc = format_key(&groups[gj], &groups[gj].keys[kj], &b, err);
    }
  if (!rc && b.failed) rc = duet_err_set(err, DUET_ENOMEM, "config: out of memory while formatting");
  if (rc) {
    free(b.p);
    return rc;
  }
  *text = b.p;
  return DUET_OK;
}

int duet_config_write_multi(const duet_cfg_group *groups, int ngroups, const char *path,
                            duet_err *err) {
  if (!path) return duet_err_set(err, DUET_EINVAL, "config: no file name");
  char *text;
  int rc = duet_config_format_multi(groups, ngroups, &text, err);
  if (rc) return duet_err_prefix(err, "%s: ", path);
  rc = duet_write_file_atomic(path, text, strlen(text), err);
  free(text);
  return rc;
}

int duet_config_write(const duet_cfg_key *keys, int n, const void *target, const char *path,
                      duet_err *err) {
  /* The group's target is not const because loading writes through it; writing only reads. */
  duet_cfg_group g = {keys, n, (void *)target};
  return duet_config_write_multi(&g, 1, path, err);
}

/* ---- help --------------------------------------------------------------------------------- */

static void describe_type(const duet_cfg_key *k, char *buf, size_t size) {
  static const char *const names[] = {"int", "int64", "double", "bool", "string", "enum"};
  if (k->type == DUET_CFG_ENUM) {
    list_choices(k, "|", buf, size);
    return;
  }
  if (k->type < DUET_CFG_INT || k->type > DUET_CFG_ENUM) {
    snprintf(buf, size, "?");
    return;
  }
  if (!has_range(k)) {
    snprintf(buf, size, "%s", names[k->type]);
    return;
  }
  char lo[32], hi[32];
  format_bound(k, k->min, lo, sizeof lo);
  format_bound(k, k->max, hi, sizeof hi);
  snprintf(buf, size, "%s in [%s, %s]", names[k->type], lo, hi);
}

void duet_config_print_help(FILE *f, const duet_cfg_key *keys, int n) {
  if (!f || !keys) return;
  int key_w = 0, type_w = 0;
  char type[256];
  for (int i = 0; i < n; i++) {
    const duet_cfg_key *k = &keys[i];
    int w = (int)(strlen(k->section ? k->section : "?") + 1 + strlen(k->name ? k->name : "?"));
    if (w > key_w) key_w = w;
    describe_type(k, type, sizeof type);
    w = (int)strlen(type);
    if (w > type_w) type_w = w;
  }
  /* One very long choice list should not push every other help text off the screen. */
  if (type_w > 28) type_w = 28;
  for (int i = 0; i < n; i++) {
    const duet_cfg_key *k = &keys[i];
    char full[256];
    snprintf(full, sizeof full, "%s.%s", k->section ? k->section : "?", k->name ? k->name : "?");
    describe_type(k, type, sizeof type);
    fprintf(f, "  %-*s  %-*s  %s\n", key_w, full, type_w, type, k->help ? k->help : "");
  }
}
