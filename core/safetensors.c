/* The safetensors reader: header validation, tensor reads with pread, loading by name. */
#include "core/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONVERT_CHUNK_ELEMS (1 << 16)
/* Largest integer a JSON number (parsed as a double) carries exactly. */
#define JSON_INT_MAX 9007199254740992.0

static const char *const st_names[DUET_DTYPE_COUNT] = {"F32", "BF16", "F64", "I32", "U8"};

const char *duet_st_dtype_name(duet_dtype dt) { return (unsigned)dt < DUET_DTYPE_COUNT ? st_names[dt] : NULL; }

int duet_st_dtype_parse(const char *name) {
  for (int i = 0; i < DUET_DTYPE_COUNT; i++)
    if (strcmp(name, st_names[i]) == 0) return i;
  return -1;
}

struct duet_st_file {
  char *path;
  int fd;
  uint64_t data_start, data_len;
  duet_st_info *info; /* by offset */
  int count;
  int *by_name;       /* indices into info, sorted by name */
  char **meta_keys, **meta_values;
  int n_meta;
};

const char *duet_st_path(const duet_st_file *f) { return f->path; }
int duet_st_count(const duet_st_file *f) { return f->count; }
const duet_st_info *duet_st_info_at(const duet_st_file *f, int i) {
  return i >= 0 && i < f->count ? &f->info[i] : NULL;
}
int duet_st_meta_count(const duet_st_file *f) { return f->n_meta; }
void duet_st_meta_at(const duet_st_file *f, int i, const char **key, const char **value) {
  *key = f->meta_keys[i];
  *value = f->meta_values[i];
}

const char *duet_st_meta(const duet_st_file *f, const char *key) {
  for (int i = 0; i < f->n_meta; i++)
    if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
  return NULL;
}

const duet_st_info *duet_st_find(const duet_st_file *f, const char *name) {
  int lo = 0, hi = f->count - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    int c = strcmp(f->info[f->by_name[mid]].name, name);
    if (c == 0) return &f->info[f->by_name[mid]];
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return NULL;
}

void duet_st_close(duet_st_file *f) {
  if (!f) return;
  if (f->fd >= 0) close(f->fd);
  for (int i = 0; i < f->count; i++) free((char *)f->info[i].name);
  for (int i = 0; i < f->n_meta; i++) {
    free(f->meta_keys[i]);
    free(f->meta_values[i]);
  }
  free(f->info);
  free(f->by_name);
  free(f->meta_keys);
  free(f->meta_values);
  free(f->path);
  free(f);
}

static int pread_all(int fd, void *buf, size_t n, uint64_t off) {
  char *p = buf;
  while (n > 0) {
    ssize_t r = pread(fd, p, n, (off_t)off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    p += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
  return 0;
}

/* A JSON number that is a non-negative integer held exactly. */
static int json_uint(const cJSON *item, uint64_t *out) {
  if (!cJSON_IsNumber(item)) return -1;
  double d = item->valuedouble;
  if (!(d >= 0 && d <= JSON_INT_MAX) || d != (double)(uint64_t)d) return -1;
  *out = (uint64_t)d;
  return 0;
}

static int parse_tensor(duet_st_file *f, const cJSON *obj, duet_st_info *ti, duet_err *err) {
  const char *path = f->path, *name = ti->name;
  if (!cJSON_IsObject(obj)) return duet_err_set(err, DUET_EFORMAT, "%s: tensor '%s' is not a JSON object", path, name);
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(obj, "dtype");
  const cJSON *shape = cJSON_GetObjectItemCaseSensitive(obj, "shape");
  const cJSON *offs = cJSON_GetObjectItemCaseSensitive(obj, "data_offsets");
  if (!cJSON_IsString(dt)) return duet_err_set(err, DUET_EFORMAT, "%s: tensor '%s' has no string 'dtype'", path, name);
  int d = duet_st_dtype_parse(dt->valuestring);
  if (d < 0)
    return duet_err_set(err, DUET_EFORMAT, "%s: tensor '%s' has unknown or unsupported dtype '%s' (F32, BF16, F64, I32, U8)",
                        path, name, dt->valuestring);
  ti->dtype = (duet_dtype)d;
  if (!cJSON_IsArray(shape)) return duet_err_set(err, DUET_EFORMAT, "%s: tensor '%s' has no 'shape' array", path, name);
  int ndim = cJSON_GetArraySize(shape);
  if (ndim > DUET_MAX_DIMS)
    return duet_err_set(err, DUET_EFORMAT, "%s: tensor '%s' has %d dims, more than %d", path, name, ndim, DUET_MAX_DIMS);
  ti->ndim = ndim;
  /* numel * size must not overflow: bound it by the buffer, which is at most the file size. */
  uint64_t bytes = duet_dtype_size(ti->dtype);
  int overflow = 0;
  for (int i = 0; i < ndim; i++) {
    uint64_t v;
    if (json_uint(cJSON_GetArrayItem(shape, i), &v))
      return duet_err_set(err, DUET_EFORMAT, "%s: tensor '%s' has a shape entry that is not a non-negative integer", path,
                          name);
    ti->shape[i] = (int64_t)v;
    if (v && bytes > UINT64_MAX / v) overflow = 1;
    else bytes *= v;
  }
  uint64_t b, e;
  if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || json_uint(cJSON_GetArrayItem(offs, 0), &b) ||
      json_uint(cJSON_GetArrayItem(offs, 1), &e) || b > e)
    return duet_err_set(err, DUET_EFORMAT, "%s: tensor '%s' needs 'data_offsets' [begin, end] with 0 <= begin <= end",
                        path, name);
  ti->begin = b;
  ti->end = e;
  if (overflow || bytes != e - b) {
    char sbuf[160], need[32];
    duet_tensor tmp;
    tmp.ndim = ndim;
    memcpy(tmp.shape, ti->shape, sizeof tmp.shape);
    if (overflow) snprintf(need, sizeof need, "too many");
    else snprintf(need, sizeof need, "%llu", (unsigned long long)bytes);
    return duet_err_set(err, DUET_EFORMAT, "%s: tensor '%s' of shape %s and dtype %s needs %s bytes but data_offsets span %llu",
                        path, name, duet_shape_str(&tmp, sbuf, sizeof sbuf), dt->valuestring, need,
                        (unsigned long long)(e - b));
  }
  ti->numel = duet_shape_numel(ndim, ti->shape);
  if (e > f->data_len)
    return duet_err_set(err, DUET_EFORMAT, "%s: tensor '%s' data_offsets [%llu, %llu] lie outside the %llu-byte data buffer",
                        path, name, (unsigned long long)b, (unsigned long long)e, (unsigned long long)f->data_len);
  return DUET_OK;
}

static int parse_metadata(duet_st_file *f, const cJSON *meta, duet_err *err) {
  if (cJSON_IsNull(meta)) return DUET_OK;
  if (!cJSON_IsObject(meta)) return duet_err_set(err, DUET_EFORMAT, "%s: '__metadata__' is not a JSON object", f->path);
  int n = cJSON_GetArraySize(meta);
  f->meta_keys = calloc((size_t)n + 1, sizeof *f->meta_keys);
  f->meta_values = calloc((size_t)n + 1, sizeof *f->meta_values);
  if (!f->meta_keys || !f->meta_values) return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", f->path);
  for (const cJSON *m = meta->child; m; m = m->next) {
    if (!cJSON_IsString(m))
      return duet_err_set(err, DUET_EFORMAT, "%s: metadata '%s' is not a string", f->path, m->string);
    for (int i = 0; i < f->n_meta; i++)
      if (strcmp(f->meta_keys[i], m->string) == 0)
        return duet_err_set(err, DUET_EFORMAT, "%s: metadata key '%s' appears twice", f->path, m->string);
    f->meta_keys[f->n_meta] = strdup(m->string);
    f->meta_values[f->n_meta] = strdup(m->valuestring);
    if (!f->meta_keys[f->n_meta++] || !f->meta_values[f->n_meta - 1])
      return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", f->path);
  }
  return DUET_OK;
}

static int by_offset(const void *a, const void *b) {
  const duet_st_info *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return (x->end > y->end) - (x->end < y->end);
}

/* qsort has no context argument; sorting pointers to the names avoids needing one. */
typedef struct name_ref {
  const char *name;
  int index;
} name_ref;

static int by_name_ref(const void *a, const void *b) {
  return strcmp(((const name_ref *)a)->name, ((const name_ref *)b)->name);
}

static int check_layout(duet_st_file *f, duet_err *err) {
  qsort(f->info, (size_t)f->count, sizeof *f->info, by_offset);
  uint64_t pos = 0;
  for (int i = 0; i < f->count; i++) {
    const duet_st_info *t = &f->info[i];
    if (t->begin < pos)
      return duet_err_set(err, DUET_EFORMAT, "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap", f->path,
                          f->info[i - 1].name, (unsigned long long)f->info[i - 1].begin,
                          (unsigned long long)f->info[i - 1].end, t->name, (unsigned long long)t->begin,
                          (unsigned long long)t->end);
    if (t->begin > pos)
      return duet_err_set(err, DUET_EFORMAT, "%s: %llu unused bytes before tensor '%s' at offset %llu", f->path,
                          (unsigned long long)(t->begin - pos), t->name, (unsigned long long)t->begin);
    pos = t->end;
  }
  if (pos != f->data_len)
    return duet_err_set(err, DUET_EFORMAT, "%s: %llu bytes of trailing data after the last tensor", f->path,
                        (unsigned long long)(f->data_len - pos));
  name_ref *refs = malloc(sizeof *refs * (size_t)(f->count ? f->count : 1));
  f->by_name = malloc(sizeof *f->by_name * (size_t)(f->count ? f->count : 1));
  if (!refs || !f->by_name) {
    free(refs);
    return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", f->path);
  }
  for (int i = 0; i < f->count; i++) refs[i] = (name_ref){f->info[i].name, i};
  qsort(refs, (size_t)f->count, sizeof *refs, by_name_ref);
  int rc = DUET_OK;
  for (int i = 0; i < f->count; i++) {
    f->by_name[i] = refs[i].index;
    if (i > 0 && strcmp(refs[i].name, refs[i - 1].name) == 0 && !rc)
      rc = duet_err_set(err, DUET_EFORMAT, "%s: tensor name '%s' appears twice", f->path, refs[i].name);
  }
  free(refs);
  return rc;
}

static int parse_header(duet_st_file *f, const char *json, size_t n, duet_err *err) {
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(json, n, &end, 0);
  if (!root)
    return duet_err_set(err, DUET_EFORMAT, "%s: header is not valid JSON (error near byte %lld of %zu)", f->path,
                        end ? (long long)(end - json) : -1LL, n);
  int rc = DUET_OK;
  for (const char *p = end; p < json + n && !rc; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
      rc = duet_err_set(err, DUET_EFORMAT, "%s: header has text after its JSON object at byte %lld", f->path,
                        (long long)(p - json));
  if (!rc && !cJSON_IsObject(root)) rc = duet_err_set(err, DUET_EFORMAT, "%s: header is not a JSON object", f->path);
  int n_items = rc ? 0 : cJSON_GetArraySize(root);
  if (!rc) {
    f->info = calloc((size_t)n_items + 1, sizeof *f->info);
    if (!f->info) rc = duet_err_set(err, DUET_ENOMEM, "%s: out of memory", f->path);
  }
  int seen_meta = 0;
  for (const cJSON *item = rc ? NULL : root->child; item && !rc; item = item->next) {
    if (strcmp(item->string, "__metadata__") == 0) {
      if (seen_meta++) rc = duet_err_set(err, DUET_EFORMAT, "%s: '__metadata__' appears twice", f->path);
      else rc = parse_metadata(f, item, err);
      continue;
    }
    duet_st_info *ti = &f->info[f->count];
    ti->name = strdup(item->string);
    if (!ti->name) {
      rc = duet_err_set(err, DUET_ENOMEM, "%s: out of memory", f->path);
      break;
    }
    f->count++;
    rc = parse_tensor(f, item, ti, err);
  }
  cJSON_Delete(root);
  if (!rc) rc = check_layout(f, err);
  return rc;
}

int duet_st_open(duet_st_file **out, const char *path, duet_err *err) {
  *out = NULL;
  duet_st_file *f = calloc(1, sizeof *f);
  if (!f || !(f->path = strdup(path))) {
    free(f);
    return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", path);
  }
  f->fd = open(path, O_RDONLY | O_CLOEXEC);
  int rc = DUET_OK;
  struct stat st;
  uint8_t lb[8];
  uint64_t hlen = 0, size = 0;
  if (f->fd < 0) rc = duet_err_set(err, DUET_EIO, "%s: cannot open: %s", path, strerror(errno));
  else if (fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode))
    rc = duet_err_set(err, DUET_EIO, "%s: not a regular file", path);
  if (!rc) {
    size = (uint64_t)st.st_size;
    if (size < 8)
      rc = duet_err_set(err, DUET_EFORMAT, "%s: %llu bytes, too short for the 8-byte header length", path,
                        (unsigned long long)size);
    else if (pread_all(f->fd, lb, 8, 0))
      rc = duet_err_set(err, DUET_EIO, "%s: cannot read the header length", path);
  }
  if (!rc) {
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | lb[i];
    if (hlen > DUET_ST_MAX_HEADER)
      rc = duet_err_set(err, DUET_EFORMAT, "%s: header length %llu is absurd (limit %llu)", path,
                        (unsigned long long)hlen, DUET_ST_MAX_HEADER);
    else if (hlen > size - 8)
      rc = duet_err_set(err, DUET_EFORMAT, "%s: header length %llu runs past the end of the %llu-byte file (truncated?)",
                        path, (unsigned long long)hlen, (unsigned long long)size);
    else if (hlen < 2)
      rc = duet_err_set(err, DUET_EFORMAT, "%s: header length %llu is too short for a JSON object", path,
                        (unsigned long long)hlen);
  }
  if (!rc) {
    f->data_start = 8 + hlen;
    f->data_len = size - f->data_start;
    char *json = malloc(hlen + 1);
    if (!json) rc = duet_err_set(err, DUET_ENOMEM, "%s: out of memory for a %llu-byte header", path, (unsigned long long)hlen);
    else if (pread_all(f->fd, json, hlen, 8)) rc = duet_err_set(err, DUET_EIO, "%s: cannot read the header", path);
    else {
      json[hlen] = '\0';
      rc = json[0] == '{' ? parse_header(f, json, hlen, err)
                          : duet_err_set(err, DUET_EFORMAT, "%s: header does not start with '{' (not a safetensors file?)", path);
    }
    free(json);
  }
  if (rc) {
    duet_st_close(f);
    return rc;
  }
  *out = f;
  return DUET_OK;
}

static int st_read_host(const duet_st_file *f, const duet_st_info *ti, duet_tensor *dst, duet_err *err);

/* A device destination is filled through a host tensor of its dtype, then one copy. */
int duet_st_read(const duet_st_file *f, const duet_st_info *ti, duet_tensor *dst, duet_err *err) {
  if (dst->device == DUET_CPU) return st_read_host(f, ti, dst, err);
  if (dst->numel != ti->numel)
    return duet_err_set(err, DUET_EINVAL, "%s: '%s' has %lld elements, the destination %lld", f->path, ti->name,
                        (long long)ti->numel, (long long)dst->numel);
  duet_tensor *h = duet_tensor_new(dst->dtype, dst->ndim, dst->shape, err);
  if (!h) return duet_err_prefix(err, "%s: '%s': ", f->path, ti->name);
  int rc = st_read_host(f, ti, h, err);
  if (!rc) duet_tensor_upload(dst, h->data);
  duet_tensor_free(h);
  return rc;
}

static int st_read_host(const duet_st_file *f, const duet_st_info *ti, duet_tensor *dst, duet_err *err) {
  if (dst->numel != ti->numel)
    return duet_err_set(err, DUET_EINVAL, "%s: '%s' has %lld elements, the destination %lld", f->path, ti->name,
                        (long long)ti->numel, (long long)dst->numel);
  uint64_t off = f->data_start + ti->begin;
  if (dst->dtype == ti->dtype) {
    if (ti->end > ti->begin && pread_all(f->fd, dst->data, (size_t)(ti->end - ti->begin), off))
      return duet_err_set(err, DUET_EIO, "%s: cannot read tensor '%s' (file changed or truncated?)", f->path, ti->name);
    return DUET_OK;
  }
  if (!duet_dtype_is_float(dst->dtype) || !duet_dtype_is_float(ti->dtype))
    return duet_err_set(err, DUET_EINVAL, "%s: '%s' is %s, cannot read it into %s", f->path, ti->name,
                        duet_st_dtype_name(ti->dtype), duet_st_dtype_name(dst->dtype));
  size_t esize = duet_dtype_size(ti->dtype), dsize = duet_dtype_size(dst->dtype);
  void *buf = malloc((size_t)CONVERT_CHUNK_ELEMS * esize);
  if (!buf) return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", f->path);
  int rc = DUET_OK;
  for (int64_t lo = 0; lo < ti->numel && !rc; lo += CONVERT_CHUNK_ELEMS) {
    int64_t n = ti->numel - lo < CONVERT_CHUNK_ELEMS ? ti->numel - lo : CONVERT_CHUNK_ELEMS;
    if (pread_all(f->fd, buf, (size_t)n * esize, off + (uint64_t)lo * esize)) {
      rc = duet_err_set(err, DUET_EIO, "%s: cannot read tensor '%s' (file changed or truncated?)", f->path, ti->name);
      break;
    }
    duet_tensor src, dst_part;
    duet_tensor_init_header(&src, ti->dtype, DUET_CPU, 1, &n, NULL);
    duet_tensor_init_header(&dst_part, dst->dtype, DUET_CPU, 1, &n, NULL);
    src.data = buf;
    dst_part.data = (char *)dst->data + (size_t)lo * dsize;
    rc = duet_tensor_convert(&dst_part, &src, err);
  }
  free(buf);
  return rc;
}

int duet_st_read_new(const duet_st_file *f, const char *name, duet_tensor **out, duet_err *err) {
  *out = NULL;
  const duet_st_info *ti = duet_st_find(f, name);
  if (!ti) return duet_err_set(err, DUET_EINVAL, "%s: no tensor '%s'", f->path, name);
  duet_tensor *t = duet_tensor_new(ti->dtype, ti->ndim, ti->shape, err);
  if (!t) return duet_err_prefix(err, "%s: '%s': ", f->path, name);
  int rc = duet_st_read(f, ti, t, err);
  if (rc) {
    duet_tensor_free(t);
    return rc;
  }
  *out = t;
  return DUET_OK;
}

static void copy_name(char *dst, size_t size, const char *src) {
  size_t n = strlen(src);
  if (n >= size) n = size - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

int duet_st_load_tensors(const duet_st_file *f, int n, const char *const *names, duet_tensor *const *dst,
                         const duet_st_load_opts *opts, duet_st_load_report *rep, duet_err *err) {
  static const duet_st_load_opts defaults = {0};
  if (!opts) opts = &defaults;
  duet_st_load_report local;
  if (!rep) rep = &local;
  memset(rep, 0, sizeof *rep);
  const char *prefix = opts->prefix ? opts->prefix : "";
  size_t plen = strlen(prefix);
  const duet_st_info **found = calloc((size_t)n + 1, sizeof *found);
  uint8_t *used = calloc((size_t)f->count + 1, 1);
  int rc = DUET_OK;
  if (!found || !used) rc = duet_err_set(err, DUET_ENOMEM, "%s: out of memory", f->path);
  char key[1024], sbuf[2][160];
  for (int i = 0; i < n && !rc; i++) {
    if (snprintf(key, sizeof key, "%s%s", prefix, names[i]) >= (int)sizeof key) {
      rc = duet_err_set(err, DUET_EINVAL, "%s: name '%s' too long", f->path, names[i]);
      break;
    }
    const duet_st_info *ti = duet_st_find(f, key);
    if (ti) used[ti - f->info] = 1;
    if (!dst[i]) continue;
    if (!ti) {
      if (!rep->missing++) copy_name(rep->first_missing, sizeof rep->first_missing, key);
      continue;
    }
    found[i] = ti;
    duet_tensor shape_of;
    shape_of.ndim = ti->ndim;
    memcpy(shape_of.shape, ti->shape, sizeof shape_of.shape);
    if (!duet_shape_equal(&shape_of, dst[i]))
      rc = duet_err_set(err, DUET_EINVAL, "%s: '%s' has shape %s in the file but %s here", f->path, key,
                        duet_shape_str(&shape_of, sbuf[0], sizeof sbuf[0]), duet_shape_str(dst[i], sbuf[1], sizeof sbuf[1]));
    else if (ti->dtype != dst[i]->dtype &&
             !(opts->convert && duet_dtype_is_float(ti->dtype) && duet_dtype_is_float(dst[i]->dtype)))
      rc = duet_err_set(err, DUET_EINVAL, "%s: '%s' is %s in the file but %s here%s", f->path, key,
                        duet_st_dtype_name(ti->dtype), duet_st_dtype_name(dst[i]->dtype),
                        opts->convert ? "" : " (conversion not requested)");
  }
  for (int i = 0; i < f->count && !rc; i++) {
    if (used[i] || strncmp(f->info[i].name, prefix, plen) != 0) continue;
    if (!rep->unexpected++) copy_name(rep->first_unexpected, sizeof rep->first_unexpected, f->info[i].name);
  }
  int bad_missing = rep->missing && !opts->allow_missing, bad_unexpected = rep->unexpected && !opts->allow_unexpected;
  if (!rc && (bad_missing || bad_unexpected)) {
    char a[400] = "", b[400] = "";
    if (bad_missing) snprintf(a, sizeof a, "%d tensor%s missing from the file (first '%s')", rep->missing,
                              rep->missing == 1 ? "" : "s", rep->first_missing);
    if (bad_unexpected) snprintf(b, sizeof b, "%s%d unexpected key%s in the file (first '%s')", bad_missing ? ", " : "",
                                 rep->unexpected, rep->unexpected == 1 ? "" : "s", rep->first_unexpected);
    rc = duet_err_set(err, DUET_EINVAL, "%s: %s%s", f->path, a, b);
  }
  for (int i = 0; i < n && !rc && !opts->dry_run; i++) {
    if (!found[i]) continue;
    rc = duet_st_read(f, found[i], dst[i], err);
    if (!rc) rep->loaded++;
  }
  free(found);
  free(used);
  return rc;
}

int duet_st_load_params(const duet_st_file *f, duet_param_set *ps, const duet_st_load_opts *opts,
                        duet_st_load_report *rep, duet_err *err) {
  const char **names = malloc(sizeof *names * (size_t)(ps->count + 1));
  if (!names) return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", f->path);
  for (int i = 0; i < ps->count; i++) names[i] = ps->items[i]->name;
  int rc = duet_st_load_tensors(f, ps->count, names, ps->items, opts, rep, err);
  free(names);
  return rc;
}

int duet_st_load_params_file(const char *path, duet_param_set *ps, const duet_st_load_opts *opts,
                             duet_st_load_report *rep, duet_err *err) {
  duet_st_file *f;
  int rc = duet_st_open(&f, path, err);
  if (rc) return rc;
  rc = duet_st_load_params(f, ps, opts, rep, err);
  duet_st_close(f);
  return rc;
}
