/* Reading from an open clip file: one clip for a caller (clips.h), and for the loader's I/O
 * thread stored chunks as they are on disk and a batch's strings at once (clips_raw.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/clips_file.h"
#include "data/clips_h5.h"
#include "data/clips_raw.h"

static int check_index(const duet_clip_file *f, int64_t i, duet_err *err) {
  if (i < 0 || i >= f->n)
    return duet_clip_failf(err, DUET_EINVAL, f->path, "clip %lld is out of range (the file has %lld)",
                 (long long)i, (long long)f->n);
  return 0;
}

/* Reads row i of a dataset whose rows are the clips: all of dims[1..rank). */
static int read_row(duet_clip_file *f, hid_t d, int64_t i, hid_t mem_type, void *buf) {
  hid_t fspace = H5Dget_space(d);
  int rank = H5Sget_simple_extent_ndims(fspace);
  hsize_t start[5] = {(hsize_t)i, 0, 0, 0, 0}, count[5];
  H5Sget_simple_extent_dims(fspace, count, NULL);
  count[0] = 1;
  hid_t mspace = H5Screate_simple(rank, count, NULL);
  int ok = mspace >= 0 && H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
           H5Dread(d, mem_type, mspace, fspace, H5P_DEFAULT, buf) >= 0;
  (void)f;
  if (mspace >= 0) H5Sclose(mspace);
  H5Sclose(fspace);
  return ok ? 0 : -1;
}

static void i16_to_float(const int16_t *in, float *out, int64_t n) {
  for (int64_t k = 0; k < n; k++) out[k] = (float)in[k] * (1.0f / 32768.0f);
}

static int read_clip_strings(duet_clip_file *f, int which, int64_t i, char **out, duet_err *err) {
  duet_str_arena arena = {0};
  char *s = NULL;
  int rc = duet_clip_file_read_strings(f, which, &i, 1, &arena, &s, err);
  *out = NULL;
  if (!rc && s && !(*out = strdup(s))) rc = duet_clip_failf(err, DUET_ENOMEM, f->path, "out of memory");
  free(arena.buf);
  return rc;
}

int duet_clip_file_read(duet_clip_file *f, int64_t i, uint8_t *video, float *audio,
                        char **caption, char **source, float *events, int *n_events,
                        duet_err *err) {
  if (caption) *caption = NULL;
  if (source) *source = NULL;
  if (n_events) *n_events = 0;
  int rc = check_index(f, i, err);
  if (rc) return rc;
  if (video && (rc = duet_clip_file_read_stored(f, DUET_CLIP_VIDEO, i, video, err))) return rc;
  if (audio) {
    if (f->audio_i16) {
      if ((rc = duet_clip_file_read_stored(f, DUET_CLIP_AUDIO, i, f->audio_scratch, err))) return rc;
      i16_to_float(f->audio_scratch, audio, f->shape.audio_samples);
    } else if ((rc = duet_clip_file_read_stored(f, DUET_CLIP_AUDIO, i, audio, err))) {
      return rc;
    }
  }
  if (caption && (rc = read_clip_strings(f, DUET_CLIP_CAPTION, i, caption, err))) return rc;
  if (source && f->source >= 0 && (rc = read_clip_strings(f, DUET_CLIP_SOURCE, i, source, err))) {
    if (caption) {
      free(*caption);
      *caption = NULL;
    }
    return rc;
  }
  if (events && n_events && f->events >= 0) {
    duet_h5_quiet q;
    duet_h5_quiet_begin(&q);
    if (read_row(f, f->events, i, H5T_NATIVE_FLOAT, events) < 0)
      rc = duet_clip_fail_h5(err, f->path, "cannot read events");
    duet_h5_quiet_end(&q);
    if (!rc) {
      int k = 0;
      for (int j = 0; j < f->shape.max_events; j++)
        if (!isnan(events[j])) events[k++] = events[j];
      *n_events = k;
    }
  }
  if (rc) {
    if (caption) free(*caption), *caption = NULL;
    if (source) free(*source), *source = NULL;
  }
  return rc;
}

int duet_clip_file_read_text_emb(duet_clip_file *f, int64_t i, float *text_emb,
                                 uint8_t *text_mask, duet_err *err) {
  int rc = check_index(f, i, err);
  if (rc) return rc;
  if (f->text_emb < 0) return duet_clip_failf(err, DUET_EINVAL, f->path, "the file has no text_emb");
  duet_h5_quiet q;
  duet_h5_quiet_begin(&q);
  if ((text_emb && read_row(f, f->text_emb, i, H5T_NATIVE_FLOAT, text_emb) < 0) ||
      (text_mask && read_row(f, f->text_mask, i, H5T_NATIVE_UINT8, text_mask) < 0)) {
    char what[64];
    snprintf(what, sizeof what, "cannot read text_emb of clip %lld", (long long)i);
    rc = duet_clip_fail_h5(err, f->path, what);
  }
  duet_h5_quiet_end(&q);
  return rc;
}

/* ---- the loader's side door (clips_raw.h) ---- */

const duet_chunk_pipeline *duet_clip_file_chunk_pipeline(const duet_clip_file *f, int which) {
  return f->raw_ok[which] ? &f->pipe[which] : NULL;
}

size_t duet_clip_file_stored_elem(const duet_clip_file *f, int which) {
  return which == DUET_CLIP_VIDEO ? 1 : f->audio_i16 ? 2 : 4;
}

size_t duet_clip_file_stored_bytes(const duet_clip_file *f, int which) {
  const duet_clip_shape *s = &f->shape;
  if (which == DUET_CLIP_VIDEO) return (size_t)s->frames * s->height * s->width * 3;
  return (size_t)s->audio_samples * duet_clip_file_stored_elem(f, which);
}

int duet_clip_file_read_chunk(duet_clip_file *f, int which, int64_t i, void *buf, size_t cap,
                              size_t *n, uint32_t *mask, duet_err *err) {
  *n = 0;
  *mask = 0;
  int rc = check_index(f, i, err);
  if (rc) return rc;
  hid_t d = which == DUET_CLIP_VIDEO ? f->video : f->audio;
  hsize_t off[5] = {(hsize_t)i, 0, 0, 0, 0};
  hsize_t size = 0;
  duet_h5_quiet q;
  duet_h5_quiet_begin(&q);
  /* A chunk never written has no storage; the caller then reads it decoded (fill values). */
  if (H5Dget_chunk_storage_size(d, off, &size) < 0) {
    H5Eclear2(H5E_DEFAULT);
    size = 0;
  }
  *n = (size_t)size;
  if (size > 0 && size <= cap && H5Dread_chunk(d, H5P_DEFAULT, off, mask, buf) < 0) {
    char what[64];
    snprintf(what, sizeof what, "cannot read %s of clip %lld",
             which == DUET_CLIP_VIDEO ? "video" : "audio", (long long)i);
    rc = duet_clip_fail_h5(err, f->path, what);
  }
  duet_h5_quiet_end(&q);
  return rc;
}

int duet_clip_file_read_stored(duet_clip_file *f, int which, int64_t i, void *buf,
                               duet_err *err) {
  int rc = check_index(f, i, err);
  if (rc) return rc;
  hid_t d = which == DUET_CLIP_VIDEO ? f->video : f->audio;
  hid_t mt = which == DUET_CLIP_VIDEO ? H5T_NATIVE_UINT8 : f->audio_i16 ? H5T_NATIVE_SHORT
                                                                        : H5T_NATIVE_FLOAT;
  duet_h5_quiet q;
  duet_h5_quiet_begin(&q);
  if (read_row(f, d, i, mt, buf) < 0) {
    char what[64];
    snprintf(what, sizeof what, "cannot read %s of clip %lld",
             which == DUET_CLIP_VIDEO ? "video" : "audio", (long long)i);
    rc = duet_clip_fail_h5(err, f->path, what);
  }
  duet_h5_quiet_end(&q);
  return rc;
}

typedef struct arena_alloc {
  duet_str_arena *arena;
  int overflow;
} arena_alloc;

static void *arena_take(size_t size, void *info) {
  arena_alloc *x = info;
  size_t need = (size + 7) & ~(size_t)7;
  if (x->arena->used + need > x->arena->cap) {
    x->overflow = 1;
    return NULL;
  }
  void *p = x->arena->buf + x->arena->used;
  x->arena->used += need;
  return p;
}

static void arena_give(void *p, void *info) {
  (void)p;
  (void)info;
}

static int arena_reserve(duet_str_arena *a, size_t n) {
  if (n <= a->cap) return 0;
  size_t cap = a->cap ? a->cap : 256;
  while (cap < n) cap *= 2;
  char *b = realloc(a->buf, cap);
  if (!b) return -1;
  a->buf = b;
  a->cap = cap;
  return 0;
}

int duet_clip_file_read_strings(duet_clip_file *f, int which, const int64_t *idx, int n,
                                duet_str_arena *arena, char **out, duet_err *err) {
  arena->used = 0;
  if (n <= 0) return 0;
  hid_t d = which == DUET_CLIP_CAPTION ? f->caption : f->source;
  const strings_info *si = which == DUET_CLIP_CAPTION ? &f->caption_str : &f->source_str;
  if (d < 0) {
    for (int k = 0; k < n; k++) out[k] = NULL;
    return 0;
  }
  for (int k = 0; k < n; k++)
    if (idx[k] < 0 || idx[k] >= f->n) return check_index(f, idx[k], err);
  /* Points, unlike a union of hyperslabs, are transferred in the order given: the batch's. */
  hsize_t coords_stack[64];
  hsize_t *coords = n <= 64 ? coords_stack : malloc(sizeof(hsize_t) * (size_t)n);
  if (!coords) return duet_clip_failf(err, DUET_ENOMEM, f->path, "out of memory");
  for (int k = 0; k < n; k++) coords[k] = (hsize_t)idx[k];
  hsize_t mdims[1] = {(hsize_t)n};
  duet_h5_quiet q;
  duet_h5_quiet_begin(&q);
  hid_t fspace = H5Dget_space(d);
  hid_t mspace = H5Screate_simple(1, mdims, NULL);
  int rc = 0;
  if (fspace < 0 || mspace < 0 || H5Sselect_elements(fspace, H5S_SELECT_SET, (size_t)n, coords) < 0) {
    rc = duet_clip_fail_h5(err, f->path, "cannot select strings");
  } else if (si->fixed) {
    size_t w = si->size + 1;
    if (arena_reserve(arena, w * (size_t)n) < 0) {
      rc = duet_clip_failf(err, DUET_ENOMEM, f->path, "out of memory");
    } else if (H5Dread(d, si->mem_type, mspace, fspace, H5P_DEFAULT, arena->buf) < 0) {
      rc = duet_clip_fail_h5(err, f->path, "cannot read strings");
    } else {
      arena->used = w * (size_t)n;
      for (int k = 0; k < n; k++) out[k] = arena->buf + w * (size_t)k;
    }
  } else {
    /* HDF5 allocates each string from the arena, so a batch costs no malloc. When the arena
     * is short the read fails, and is retried with a larger one: asking HDF5 for the size
     * first (H5Dvlen_get_buf_size) costs more than the occasional retry. */
    size_t want = arena->cap > 256 * (size_t)n ? arena->cap : 256 * (size_t)n;
    for (int attempt = 0; attempt < 12; attempt++, want *= 4) {
      if (arena_reserve(arena, want) < 0) {
        rc = duet_clip_failf(err, DUET_ENOMEM, f->path, "out of memory");
        break;
      }
      arena->used = 0;
      arena_alloc aa = {arena, 0};
      hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
      int ok = dxpl >= 0 && H5Pset_vlen_mem_manager(dxpl, arena_take, &aa, arena_give, NULL) >= 0 &&
               H5Dread(d, si->mem_type, mspace, fspace, dxpl, out) >= 0;
      if (dxpl >= 0) H5Pclose(dxpl);
      rc = 0;
      if (ok) break;
      if (!aa.overflow) {
        rc = duet_clip_fail_h5(err, f->path, "cannot read strings");
        break;
      }
      H5Eclear2(H5E_DEFAULT);
      rc = duet_clip_failf(err, DUET_EFORMAT, f->path, "strings of a batch exceed %zu bytes", want);
    }
  }
  if (mspace >= 0) H5Sclose(mspace);
  if (fspace >= 0) H5Sclose(fspace);
  duet_h5_quiet_end(&q);
  if (coords != coords_stack) free(coords);
  if (rc) return rc;
  /* An unwritten variable-length string reads as NULL, a stored empty one as "". */
  for (int k = 0; k < n; k++) {
    int empty = !out[k] || !out[k][0];
    if (which == DUET_CLIP_SOURCE && empty) out[k] = NULL;
    if (which == DUET_CLIP_CAPTION && !out[k]) out[k] = f->empty;
  }
  return 0;
}
