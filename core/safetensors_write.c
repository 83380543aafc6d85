/* The safetensors writer: collects named tensors and metadata, then writes header and data in
 * one pass into an atomic file. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/safetensors.h"

/* Conversion while writing goes through a bounded buffer instead of a whole converted copy. */
#define CONVERT_CHUNK_ELEMS (1 << 16)

typedef struct st_entry {
  char *name;
  const duet_tensor *t;
  duet_tensor *host; /* a host copy of a device tensor (owned; t points at it), else NULL */
  duet_dtype dtype; /* as stored */
  uint64_t begin, end;
  int order; /* position of add, for a stable sort */
} st_entry;

typedef struct st_meta {
  char *key, *value;
} st_meta;

struct duet_st_writer {
  st_entry *entries;
  int count, cap;
  st_meta *meta;
  int n_meta, cap_meta;
};

duet_st_writer *duet_st_writer_new(duet_err *err) {
  duet_st_writer *w = calloc(1, sizeof *w);
  if (!w) duet_err_set(err, DUET_ENOMEM, "safetensors writer: out of memory");
  return w;
}

void duet_st_writer_free(duet_st_writer *w) {
  if (!w) return;
  for (int i = 0; i < w->count; i++) {
    free(w->entries[i].name);
    duet_tensor_free(w->entries[i].host);
  }
  for (int i = 0; i < w->n_meta; i++) {
    free(w->meta[i].key);
    free(w->meta[i].value);
  }
  free(w->entries);
  free(w->meta);
  free(w);
}

static int grow(void **items, int *cap, size_t size) {
  int n = *cap ? *cap * 2 : 16;
  void *p = realloc(*items, size * (size_t)n);
  if (!p) return -1;
  *items = p;
  *cap = n;
  return 0;
}

int duet_st_writer_add_as(duet_st_writer *w, const char *name, const duet_tensor *t, duet_dtype dtype,
                          duet_err *err) {
  if (!name[0] || strcmp(name, "__metadata__") == 0)
    return duet_err_set(err, DUET_EINVAL, "safetensors: '%s' cannot name a tensor", name);
  if (!duet_st_dtype_name(t->dtype) || !duet_st_dtype_name(dtype))
    return duet_err_set(err, DUET_EINVAL, "safetensors: tensor '%s': unknown dtype", name);
  if (dtype != t->dtype && !(duet_dtype_is_float(dtype) && duet_dtype_is_float(t->dtype)))
    return duet_err_set(err, DUET_EINVAL, "safetensors: tensor '%s': cannot store %s as %s", name,
                        duet_dtype_name(t->dtype), duet_dtype_name(dtype));
  if (t->numel > 0 && !t->data)
    return duet_err_set(err, DUET_EINVAL, "safetensors: tensor '%s' has no storage", name);
  for (int i = 0; i < w->count; i++)
    if (strcmp(w->entries[i].name, name) == 0)
      return duet_err_set(err, DUET_EINVAL, "safetensors: tensor '%s' added twice", name);
  if (w->count == w->cap && grow((void **)&w->entries, &w->cap, sizeof *w->entries))
    return duet_err_set(err, DUET_ENOMEM, "safetensors: out of memory");
  st_entry *e = &w->entries[w->count];
  memset(e, 0, sizeof *e);
  e->name = strdup(name);
  if (!e->name) return duet_err_set(err, DUET_ENOMEM, "safetensors: out of memory");
  e->t = t;
  if (t->device != DUET_CPU) {
    /* Copied now: the file has the same bytes as for a CPU tensor, and the device copy may
     * change before write. */
    e->host = duet_tensor_new(t->dtype, t->ndim, t->shape, err);
    if (!e->host) {
      free(e->name);
      return duet_err_prefix(err, "safetensors: tensor '%s': ", name);
    }
    duet_tensor_download(t, e->host->data);
    e->t = e->host;
  }
  e->dtype = dtype;
  e->order = w->count++;
  return DUET_OK;
}

int duet_st_writer_add(duet_st_writer *w, const char *name, const duet_tensor *t, duet_err *err) {
  return duet_st_writer_add_as(w, name, t, t->dtype, err);
}

int duet_st_writer_add_params(duet_st_writer *w, const duet_param_set *ps, const char *prefix,
                              duet_err *err) {
  for (int i = 0; i < ps->count; i++) {
    char key[1024];
    int n = snprintf(key, sizeof key, "%s%s", prefix ? prefix : "", ps->items[i]->name);
    if (n < 0 || (size_t)n >= sizeof key)
      return duet_err_set(err, DUET_EINVAL, "safetensors: name '%s' too long", ps->items[i]->name);
    int rc = duet_st_writer_add(w, key, ps->items[i], err);
    if (rc) return rc;
  }
  return DUET_OK;
}

int duet_st_writer_meta(duet_st_writer *w, const char *key, const char *value, duet_err *err) {
  char *v = strdup(value);
  if (!v) return duet_err_set(err, DUET_ENOMEM, "safetensors: out of memory");
  for (int i = 0; i < w->n_meta; i++)
    if (strcmp(w->meta[i].key, key) == 0) {
      free(w->meta[i].value);
      w->meta[i].value = v;
      return DUET_OK;
    }
  char *k = strdup(key);
  if (!k || (w->n_meta == w->cap_meta && grow((void **)&w->meta, &w->cap_meta, sizeof *w->meta))) {
    free(k);
    free(v);
    return duet_err_set(err, DUET_ENOMEM, "safetensors: out of memory");
  }
  w->meta[w->n_meta++] = (st_meta){k, v};
  return DUET_OK;
}

static int by_size_then_order(const void *a, const void *b) {
  const st_entry *x = a, *y = b;
  size_t sx = duet_dtype_size(x->dtype), sy = duet_dtype_size(y->dtype);
  if (sx != sy) return sx > sy ? -1 : 1;
  return (x->order > y->order) - (x->order < y->order);
}

/* Integers go in as raw JSON text: cJSON keeps numbers as doubles, which would round offsets
 * beyond 2^53 and print large values in exponent form. */
static int add_raw_int_array(cJSON *obj, const char *key, const int64_t *v, int n) {
  cJSON *arr = cJSON_AddArrayToObject(obj, key);
  if (!arr) return -1;
  for (int i = 0; i < n; i++) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v[i]);
    cJSON *item = cJSON_CreateRaw(buf);
    if (!item || !cJSON_AddItemToArray(arr, item)) {
      cJSON_Delete(item);
      return -1;
    }
  }
  return 0;
}

static char *build_header(duet_st_writer *w, size_t *len) {
  cJSON *root = cJSON_CreateObject();
  if (!root) return NULL;
  int bad = 0;
  if (w->n_meta) {
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    bad |= !meta;
    for (int i = 0; !bad && i < w->n_meta; i++) bad |= !cJSON_AddStringToObject(meta, w->meta[i].key, w->meta[i].value);
  }
  for (int i = 0; !bad && i < w->count; i++) {
    const st_entry *e = &w->entries[i];
    cJSON *o = cJSON_AddObjectToObject(root, e->name);
    int64_t offs[2] = {(int64_t)e->begin, (int64_t)e->end};
    bad |= !o || !cJSON_AddStringToObject(o, "dtype", duet_st_dtype_name(e->dtype)) ||
           add_raw_int_array(o, "shape", e->t->shape, e->t->ndim) || add_raw_int_array(o, "data_offsets", offs, 2);
  }
  char *json = bad ? NULL : cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  if (!json) return NULL;
  size_t n = strlen(json), padded = (n + 7) & ~(size_t)7;
  char *out = malloc(padded + 1);
  if (out) {
    memcpy(out, json, n);
    memset(out + n, ' ', padded - n);
    out[padded] = '\0';
    *len = padded;
  }
  cJSON_free(json);
  return out;
}

static int write_converted(duet_atomic_file *af, const st_entry *e, void *buf, duet_err *err) {
  const duet_tensor *t = e->t;
  size_t esize = duet_dtype_size(e->dtype);
  for (int64_t lo = 0; lo < t->numel; lo += CONVERT_CHUNK_ELEMS) {
    int64_t n = t->numel - lo < CONVERT_CHUNK_ELEMS ? t->numel - lo : CONVERT_CHUNK_ELEMS;
    duet_tensor src, dst;
    duet_tensor_init_header(&src, t->dtype, DUET_CPU, 1, &n, NULL);
    duet_tensor_init_header(&dst, e->dtype, DUET_CPU, 1, &n, NULL);
    src.data = (char *)t->data + (size_t)lo * duet_dtype_size(t->dtype);
    dst.data = buf;
    int rc = duet_tensor_convert(&dst, &src, err);
    if (!rc) rc = duet_atomic_write(af, buf, (size_t)n * esize, err);
    if (rc) return rc;
  }
  return DUET_OK;
}

int duet_st_writer_write(duet_st_writer *w, const char *path, duet_err *err) {
  qsort(w->entries, (size_t)w->count, sizeof *w->entries, by_size_then_order);
  uint64_t off = 0;
  int need_convert = 0;
  for (int i = 0; i < w->count; i++) {
    st_entry *e = &w->entries[i];
    e->begin = off;
    off += (uint64_t)e->t->numel * duet_dtype_size(e->dtype);
    e->end = off;
    need_convert |= e->dtype != e->t->dtype;
  }
  size_t hlen = 0;
  char *header = build_header(w, &hlen);
  if (!header) return duet_err_set(err, DUET_ENOMEM, "%s: out of memory building the header", path);
  void *buf = need_convert ? malloc((size_t)CONVERT_CHUNK_ELEMS * 8) : NULL;
  if (need_convert && !buf) {
    free(header);
    return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", path);
  }
  uint8_t lenbytes[8];
  for (int i = 0; i < 8; i++) lenbytes[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
  duet_atomic_file af;
  int rc = duet_atomic_open(&af, path, err);
  if (!rc) rc = duet_atomic_write(&af, lenbytes, 8, err);
  if (!rc) rc = duet_atomic_write(&af, header, hlen, err);
  for (int i = 0; !rc && i < w->count; i++) {
    const st_entry *e = &w->entries[i];
    if (e->dtype == e->t->dtype) rc = duet_atomic_write(&af, e->t->data, duet_tensor_bytes(e->t), err);
    else rc = write_converted(&af, e, buf, err);
  }
  if (!rc) rc = duet_atomic_commit(&af, err);
  else duet_atomic_abort(&af);
  free(header);
  free(buf);
  return rc;
}
