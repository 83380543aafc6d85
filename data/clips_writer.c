/* The clip writer. Video and audio chunks are shuffled in append (that is the copy the caller
 * needs anyway), deflated on worker threads and stored in clip order with direct chunk writes;
 * the per-clip rows of the small datasets are buffered and written a chunk at a time. All HDF5
 * calls stay on the caller's thread. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/clips.h"
#include "data/clips_codec.h"
#include "data/clips_h5.h"

/* Rows of caption/source/events/text_mask buffered per write: one chunk of those datasets. */
#define ROW_CHUNK 256
/* Memory the in-flight clips may take, so 256x256x64 clips do not ask for gigabytes. */
#define SLOT_BUDGET_BYTES ((size_t)512 << 20)

enum { SLOT_FREE, SLOT_QUEUED, SLOT_BUSY, SLOT_DONE };

typedef struct wslot {
  int state;
  uint8_t *video, *audio;     /* shuffled raw bytes */
  uint8_t *video_z, *audio_z; /* deflated */
  size_t video_zn, audio_zn;
  int rc;
  duet_err err;
} wslot;

struct duet_clip_writer {
  char *path, *tmp;
  duet_clip_shape shape;
  int level, audio_i16;
  size_t video_bytes, audio_bytes, audio_elem, video_zcap, audio_zcap;

  hid_t file, video, audio, caption, source, text_emb, text_mask, events, str_type;
  int64_t count;  /* clips appended */
  int64_t stored; /* clips whose video and audio chunks are in the file */
  int64_t extent; /* current first dimension of every dataset */

  int64_t rows_first;
  int rows_n, rows_have_source;
  char *captions[ROW_CHUNK], *sources[ROW_CHUNK];
  float *row_events;
  uint8_t *row_mask;
  int16_t *audio_i16_buf;

  wslot *slots;
  int nslots, nworkers, nstarted;
  pthread_t *workers;
  pthread_mutex_t mu;
  pthread_cond_t work_cv, done_cv;
  int64_t queued, next_claim;
  int stop;
  duet_deflater inline_deflater; /* used when there are no workers */

  int failed;
  duet_err fail;
};

static int fail(duet_clip_writer *w, duet_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Remembers the first error so that every later call reports it too. */
static int fail(duet_clip_writer *w, duet_err *err, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  duet_err_vset(&w->fail, code, fmt, ap);
  va_end(ap);
  w->failed = code;
  if (err) *err = w->fail;
  return code;
}

static int fail_h5(duet_clip_writer *w, duet_err *err, const char *what) {
  char buf[512];
  duet_h5_error_text(buf, sizeof buf);
  return fail(w, err, DUET_EIO, "%s: %s: %s", w->path, what, buf);
}

static int compress_slot(duet_clip_writer *w, duet_deflater *d, wslot *s) {
  int rc = duet_deflater_run(d, DUET_DEFLATE_PICTURE, s->video, w->video_bytes, s->video_z,
                             w->video_zcap, &s->video_zn, &s->err);
  if (!rc)
    rc = duet_deflater_run(d, DUET_DEFLATE_SIGNAL, s->audio, w->audio_bytes, s->audio_z,
                           w->audio_zcap, &s->audio_zn, &s->err);
  return rc;
}

static void *worker_main(void *arg) {
  duet_clip_writer *w = arg;
  duet_deflater d;
  duet_err err;
  int init_rc = duet_deflater_init(&d, w->level, &err);
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->stop && w->next_claim >= w->queued) pthread_cond_wait(&w->work_cv, &w->mu);
    if (w->stop) break;
    wslot *s = &w->slots[w->next_claim++ % w->nslots];
    s->state = SLOT_BUSY;
    pthread_mutex_unlock(&w->mu);
    int rc = init_rc ? init_rc : compress_slot(w, &d, s);
    if (init_rc) s->err = err;
    pthread_mutex_lock(&w->mu);
    s->rc = rc;
    s->state = SLOT_DONE;
    pthread_cond_broadcast(&w->done_cv);
  }
  pthread_mutex_unlock(&w->mu);
  if (!init_rc) duet_deflater_free(&d);
  return NULL;
}

static int set_extent_all(duet_clip_writer *w, int64_t n) {
  const duet_clip_shape *s = &w->shape;
  hsize_t v[5] = {(hsize_t)n, (hsize_t)s->frames, (hsize_t)s->height, (hsize_t)s->width, 3};
  hsize_t a[2] = {(hsize_t)n, (hsize_t)s->audio_samples};
  hsize_t r[1] = {(hsize_t)n};
  hsize_t te[3] = {(hsize_t)n, (hsize_t)s->text_len, (hsize_t)s->text_dim};
  hsize_t tm[2] = {(hsize_t)n, (hsize_t)s->text_len};
  hsize_t ev[2] = {(hsize_t)n, (hsize_t)s->max_events};
  if (H5Dset_extent(w->video, v) < 0 || H5Dset_extent(w->audio, a) < 0 ||
      H5Dset_extent(w->caption, r) < 0)
    return -1;
  if (w->source >= 0 && H5Dset_extent(w->source, r) < 0) return -1;
  if (w->text_emb >= 0 && (H5Dset_extent(w->text_emb, te) < 0 || H5Dset_extent(w->text_mask, tm) < 0))
    return -1;
  if (w->events >= 0 && H5Dset_extent(w->events, ev) < 0) return -1;
  w->extent = n;
  return 0;
}

/* Grows geometrically so that appending N clips resizes the datasets O(log N) times; close
 * trims them to the exact count. */
static int ensure_extent(duet_clip_writer *w, int64_t n, duet_err *err) {
  if (n <= w->extent) return 0;
  int64_t grow = w->extent * 2 > 64 ? w->extent * 2 : 64;
  if (set_extent_all(w, grow > n ? grow : n) < 0) return fail_h5(w, err, "cannot extend datasets");
  return 0;
}

static hid_t make_dataset(duet_clip_writer *w, const char *name, hid_t type, int rank,
                          const hsize_t *dims, const hsize_t *chunk, int compress,
                          const float *fill) {
  hsize_t cur[5], max[5];
  for (int i = 0; i < rank; i++) {
    cur[i] = i == 0 ? (hsize_t)w->extent : dims[i];
    max[i] = i == 0 ? H5S_UNLIMITED : dims[i];
  }
  hid_t space = H5Screate_simple(rank, cur, max);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  hid_t d = -1;
  if (space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, rank, chunk) >= 0 &&
      (!compress || (H5Pset_shuffle(dcpl) >= 0 && H5Pset_deflate(dcpl, (unsigned)w->level) >= 0)) &&
      (!fill || H5Pset_fill_value(dcpl, H5T_NATIVE_FLOAT, fill) >= 0))
    d = H5Dcreate2(w->file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (space >= 0) H5Sclose(space);
  return d;
}

static int write_attr(hid_t file, const char *name, hid_t file_type, hid_t mem_type,
                      const void *value) {
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(file, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
  int rc = (a >= 0 && H5Awrite(a, mem_type, value) >= 0) ? 0 : -1;
  if (a >= 0) H5Aclose(a);
  H5Sclose(space);
  return rc;
}

static int write_attributes(duet_clip_writer *w) {
  const duet_clip_shape *s = &w->shape;
  const char *format = DUET_CLIPS_FORMAT;
  int version = DUET_CLIPS_VERSION;
  long long samples = s->audio_samples;
  if (write_attr(w->file, "format", w->str_type, w->str_type, &format) < 0 ||
      write_attr(w->file, "version", H5T_STD_I32LE, H5T_NATIVE_INT, &version) < 0 ||
      write_attr(w->file, "fps", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &s->fps) < 0 ||
      write_attr(w->file, "sample_rate", H5T_STD_I32LE, H5T_NATIVE_INT, &s->sample_rate) < 0 ||
      write_attr(w->file, "frames", H5T_STD_I32LE, H5T_NATIVE_INT, &s->frames) < 0 ||
      write_attr(w->file, "height", H5T_STD_I32LE, H5T_NATIVE_INT, &s->height) < 0 ||
      write_attr(w->file, "width", H5T_STD_I32LE, H5T_NATIVE_INT, &s->width) < 0 ||
      write_attr(w->file, "audio_samples", H5T_STD_I64LE, H5T_NATIVE_LLONG, &samples) < 0)
    return -1;
  return 0;
}

static int create_datasets(duet_clip_writer *w) {
  const duet_clip_shape *s = &w->shape;
  hsize_t v[5] = {1, (hsize_t)s->frames, (hsize_t)s->height, (hsize_t)s->width, 3};
  hsize_t a[2] = {1, (hsize_t)s->audio_samples};
  hsize_t rows[1] = {ROW_CHUNK};
  /* Raw chunks are written in the host's layout, so the stored type is the native one. */
  w->video = make_dataset(w, "video", H5T_NATIVE_UINT8, 5, v, v, 1, NULL);
  w->audio = make_dataset(w, "audio", w->audio_i16 ? H5T_NATIVE_SHORT : H5T_NATIVE_FLOAT, 2, a,
                          a, 1, NULL);
  w->caption = make_dataset(w, "caption", w->str_type, 1, rows, rows, 0, NULL);
  if (w->video < 0 || w->audio < 0 || w->caption < 0) return -1;
  if (s->text_len > 0) {
    hsize_t te[3] = {1, (hsize_t)s->text_len, (hsize_t)s->text_dim};
    hsize_t tm[2] = {1, (hsize_t)s->text_len};
    hsize_t tm_chunk[2] = {ROW_CHUNK, (hsize_t)s->text_len};
    w->text_emb = make_dataset(w, "text_emb", H5T_IEEE_F32LE, 3, te, te, 0, NULL);
    w->text_mask = make_dataset(w, "text_mask", H5T_STD_U8LE, 2, tm, tm_chunk, 0, NULL);
    if (w->text_emb < 0 || w->text_mask < 0) return -1;
  }
  if (s->max_events > 0) {
    hsize_t ev[2] = {1, (hsize_t)s->max_events};
    hsize_t ev_chunk[2] = {ROW_CHUNK, (hsize_t)s->max_events};
    float nan = NAN;
    w->events = make_dataset(w, "events", H5T_IEEE_F32LE, 2, ev, ev_chunk, 0, &nan);
    if (w->events < 0) return -1;
  }
  return 0;
}

static int start_workers(duet_clip_writer *w, int threads, duet_err *err) {
  size_t slot_bytes = w->video_bytes + w->video_zcap + w->audio_bytes + w->audio_zcap;
  w->nworkers = threads > 1 ? threads : 0;
  int want = w->nworkers ? 2 * w->nworkers + 1 : 1;
  size_t fit = SLOT_BUDGET_BYTES / slot_bytes;
  w->nslots = (size_t)want <= fit ? want : (int)fit;
  if (w->nslots < w->nworkers + 1) w->nslots = w->nworkers ? w->nworkers + 1 : 1;
  w->slots = calloc((size_t)w->nslots, sizeof *w->slots);
  if (!w->slots) return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", w->path);
  for (int i = 0; i < w->nslots; i++) {
    wslot *s = &w->slots[i];
    s->video = malloc(w->video_bytes);
    s->audio = malloc(w->audio_bytes);
    s->video_z = malloc(w->video_zcap);
    s->audio_z = malloc(w->audio_zcap);
    if (!s->video || !s->audio || !s->video_z || !s->audio_z)
      return duet_err_set(err, DUET_ENOMEM, "%s: out of memory for %d clip buffers", w->path,
                          w->nslots);
  }
  if (!w->nworkers) return duet_deflater_init(&w->inline_deflater, w->level, err);
  w->workers = calloc((size_t)w->nworkers, sizeof *w->workers);
  if (!w->workers) return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", w->path);
  for (; w->nstarted < w->nworkers; w->nstarted++)
    if (pthread_create(&w->workers[w->nstarted], NULL, worker_main, w) != 0)
      return duet_err_set(err, DUET_ENOMEM, "%s: cannot start compression threads", w->path);
  return 0;
}

static void stop_workers(duet_clip_writer *w) {
  pthread_mutex_lock(&w->mu);
  w->stop = 1;
  pthread_cond_broadcast(&w->work_cv);
  pthread_mutex_unlock(&w->mu);
  for (int i = 0; i < w->nstarted; i++) pthread_join(w->workers[i], NULL);
  w->nstarted = 0;
}

static void close_ids(duet_clip_writer *w) {
  hid_t *ds[] = {&w->video, &w->audio, &w->caption, &w->source, &w->text_emb, &w->text_mask,
                 &w->events};
  for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
    if (*ds[i] >= 0) H5Dclose(*ds[i]);
    *ds[i] = -1;
  }
  if (w->str_type >= 0) H5Tclose(w->str_type);
  w->str_type = -1;
}

/* Stops the threads, closes the file and frees w; remove_tmp deletes the temporary file. */
static void free_writer(duet_clip_writer *w, int remove_tmp) {
  stop_workers(w);
  close_ids(w);
  if (w->file >= 0) {
    H5Fclose(w->file);
    if (remove_tmp) unlink(w->tmp);
  }
  for (int i = 0; i < w->nslots; i++) {
    free(w->slots[i].video);
    free(w->slots[i].audio);
    free(w->slots[i].video_z);
    free(w->slots[i].audio_z);
  }
  for (int i = 0; i < w->rows_n; i++) {
    free(w->captions[i]);
    free(w->sources[i]);
  }
  duet_deflater_free(&w->inline_deflater);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->work_cv);
  pthread_cond_destroy(&w->done_cv);
  free(w->slots);
  free(w->workers);
  free(w->row_events);
  free(w->row_mask);
  free(w->audio_i16_buf);
  free(w->path);
  free(w->tmp);
  free(w);
}

int duet_clip_writer_open(duet_clip_writer **out, const char *path, const duet_clip_shape *shape,
                          int overwrite, duet_err *err) {
  duet_clip_writer_opts opts = {.overwrite = overwrite};
  return duet_clip_writer_open_opts(out, path, shape, &opts, err);
}

static int online_cpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

int duet_clip_writer_open_opts(duet_clip_writer **out, const char *path,
                               const duet_clip_shape *shape, const duet_clip_writer_opts *opts,
                               duet_err *err) {
  *out = NULL;
  duet_clip_writer_opts o = opts ? *opts : (duet_clip_writer_opts){0};
  int rc = duet_clip_shape_check(shape, path, err);
  if (rc) return rc;
  if (o.level < 0 || o.level > 9)
    return duet_err_set(err, DUET_EINVAL, "%s: deflate level %d is not in 0..9", path, o.level);
  if (o.threads < 0)
    return duet_err_set(err, DUET_EINVAL, "%s: thread count %d is negative", path, o.threads);
  struct stat st;
  if (!o.overwrite && stat(path, &st) == 0)
    return duet_err_set(err, DUET_EIO, "%s: already exists (refusing to overwrite it)", path);

  duet_clip_writer *w = calloc(1, sizeof *w);
  if (!w) return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", path);
  w->file = w->video = w->audio = w->caption = w->source = -1;
  w->text_emb = w->text_mask = w->events = w->str_type = -1;
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->work_cv, NULL);
  pthread_cond_init(&w->done_cv, NULL);
  w->shape = *shape;
  w->level = o.level ? o.level : 1;
  w->audio_i16 = o.audio_i16 != 0;
  w->audio_elem = w->audio_i16 ? 2 : 4;
  w->video_bytes = (size_t)shape->frames * shape->height * shape->width * 3;
  w->audio_bytes = (size_t)shape->audio_samples * w->audio_elem;
  w->video_zcap = duet_deflate_bound(w->video_bytes);
  w->audio_zcap = duet_deflate_bound(w->audio_bytes);
  w->path = strdup(path);
  size_t n = strlen(path) + 5;
  w->tmp = malloc(n);
  w->row_events = malloc(sizeof(float) * ROW_CHUNK * (size_t)(shape->max_events + 1));
  w->row_mask = malloc((size_t)ROW_CHUNK * (size_t)(shape->text_len + 1));
  w->audio_i16_buf = w->audio_i16 ? malloc(w->audio_bytes) : NULL;
  if (!w->path || !w->tmp || !w->row_events || !w->row_mask || (w->audio_i16 && !w->audio_i16_buf)) {
    free_writer(w, 0);
    return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", path);
  }
  snprintf(w->tmp, n, "%s.tmp", path);

  rc = start_workers(w, o.threads ? o.threads : online_cpus(), err);
  if (rc) {
    free_writer(w, 0);
    return rc;
  }

  duet_h5_quiet q;
  duet_h5_quiet_begin(&q);
  /* A stale .tmp from a writer that was killed is ours to replace. */
  w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (w->file < 0) {
    char buf[512];
    duet_h5_error_text(buf, sizeof buf);
    rc = duet_err_set(err, DUET_EIO, "%s: cannot create %s: %s", path, w->tmp, buf);
  } else {
    w->str_type = H5Tcopy(H5T_C_S1);
    if (w->str_type < 0 || H5Tset_size(w->str_type, H5T_VARIABLE) < 0 ||
        H5Tset_cset(w->str_type, H5T_CSET_UTF8) < 0 || write_attributes(w) < 0 ||
        create_datasets(w) < 0) {
      char buf[512];
      duet_h5_error_text(buf, sizeof buf);
      rc = duet_err_set(err, DUET_EIO, "%s: cannot lay out %s: %s", path, w->tmp, buf);
    }
  }
  duet_h5_quiet_end(&q);
  if (rc) {
    free_writer(w, 1);
    return rc;
  }
  *out = w;
  return 0;
}

/* Stores video and audio of clips [stored, upto) in order; with wait = 0 it stops at the first
 * clip still being compressed instead of waiting for it. */
static int store_through(duet_clip_writer *w, int64_t upto, int wait, duet_err *err) {
  while (w->stored < upto) {
    wslot *s = &w->slots[w->stored % w->nslots];
    pthread_mutex_lock(&w->mu);
    while (s->state != SLOT_DONE && wait) pthread_cond_wait(&w->done_cv, &w->mu);
    int done = s->state == SLOT_DONE;
    pthread_mutex_unlock(&w->mu);
    if (!done) return 0;
    if (s->rc)
      return fail(w, err, s->rc, "%s: clip %lld: %s", w->path, (long long)w->stored, s->err.msg);
    int rc = ensure_extent(w, w->stored + 1, err);
    if (rc) return rc;
    hsize_t v[5] = {(hsize_t)w->stored, 0, 0, 0, 0};
    hsize_t a[2] = {(hsize_t)w->stored, 0};
    if (H5Dwrite_chunk(w->video, H5P_DEFAULT, 0, v, s->video_zn, s->video_z) < 0 ||
        H5Dwrite_chunk(w->audio, H5P_DEFAULT, 0, a, s->audio_zn, s->audio_z) < 0)
      return fail_h5(w, err, "cannot write a clip");
    pthread_mutex_lock(&w->mu);
    s->state = SLOT_FREE;
    pthread_mutex_unlock(&w->mu);
    w->stored++;
  }
  return 0;
}

static int write_rows(duet_clip_writer *w, hid_t d, hid_t mem_type, int cols, const void *buf) {
  hsize_t start[2] = {(hsize_t)w->rows_first, 0};
  hsize_t count[2] = {(hsize_t)w->rows_n, (hsize_t)cols};
  int rank = cols ? 2 : 1;
  hid_t fspace = H5Dget_space(d);
  hid_t mspace = H5Screate_simple(rank, count, NULL);
  int rc = (fspace >= 0 && mspace >= 0 &&
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
            H5Dwrite(d, mem_type, mspace, fspace, H5P_DEFAULT, buf) >= 0)
               ? 0
               : -1;
  if (mspace >= 0) H5Sclose(mspace);
  if (fspace >= 0) H5Sclose(fspace);
  return rc;
}

/* The source dataset appears with the first clip that has a source; earlier clips read back
 * as having none. */
static int ensure_source(duet_clip_writer *w) {
  if (w->source >= 0) return 0;
  hsize_t rows[1] = {ROW_CHUNK};
  w->source = make_dataset(w, "source", w->str_type, 1, rows, rows, 0, NULL);
  return w->source >= 0 ? 0 : -1;
}

static int flush_rows(duet_clip_writer *w, duet_err *err) {
  if (w->rows_n == 0) return 0;
  int rc = ensure_extent(w, w->rows_first + w->rows_n, err);
  if (rc) return rc;
  const duet_clip_shape *s = &w->shape;
  if (write_rows(w, w->caption, w->str_type, 0, w->captions) < 0 ||
      (w->rows_have_source &&
       (ensure_source(w) < 0 || write_rows(w, w->source, w->str_type, 0, w->sources) < 0)) ||
      (w->events >= 0 && write_rows(w, w->events, H5T_NATIVE_FLOAT, s->max_events, w->row_events) < 0) ||
      (w->text_mask >= 0 && write_rows(w, w->text_mask, H5T_NATIVE_UINT8, s->text_len, w->row_mask) < 0))
    return fail_h5(w, err, "cannot write captions, sources, events or text masks");
  for (int i = 0; i < w->rows_n; i++) {
    free(w->captions[i]);
    free(w->sources[i]);
    w->captions[i] = w->sources[i] = NULL;
  }
  w->rows_first += w->rows_n;
  w->rows_n = 0;
  w->rows_have_source = 0;
  return 0;
}

static int write_text_emb(duet_clip_writer *w, int64_t i, const float *emb, duet_err *err) {
  const duet_clip_shape *s = &w->shape;
  int rc = ensure_extent(w, i + 1, err);
  if (rc) return rc;
  hsize_t start[3] = {(hsize_t)i, 0, 0};
  hsize_t count[3] = {1, (hsize_t)s->text_len, (hsize_t)s->text_dim};
  hid_t fspace = H5Dget_space(w->text_emb);
  hid_t mspace = H5Screate_simple(3, count, NULL);
  int ok = fspace >= 0 && mspace >= 0 &&
           H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
           H5Dwrite(w->text_emb, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, emb) >= 0;
  if (mspace >= 0) H5Sclose(mspace);
  if (fspace >= 0) H5Sclose(fspace);
  return ok ? 0 : fail_h5(w, err, "cannot write text_emb");
}

static int check_clip(const duet_clip_writer *w, const duet_clip *c, duet_err *err) {
  const duet_clip_shape *s = &w->shape;
  long long i = (long long)w->count;
  if (!c->video || !c->audio)
    return duet_err_set(err, DUET_EINVAL, "%s: clip %lld has no %s", w->path, i,
                        c->video ? "audio" : "video");
  if (c->n_events < 0 || c->n_events > s->max_events)
    return duet_err_set(err, DUET_EINVAL, "%s: clip %lld has %d events, the file holds at most %d",
                        w->path, i, c->n_events, s->max_events);
  if (c->n_events > 0 && !c->events)
    return duet_err_set(err, DUET_EINVAL, "%s: clip %lld has n_events = %d but no events", w->path,
                        i, c->n_events);
  for (int k = 0; k < c->n_events; k++)
    if (!isfinite(c->events[k]))
      return duet_err_set(err, DUET_EINVAL, "%s: clip %lld: event %d is not a finite time",
                          w->path, i, k);
  if (s->text_len > 0 && !c->text_emb)
    return duet_err_set(err, DUET_EINVAL, "%s: clip %lld has no text_emb but the file has one",
                        w->path, i);
  if (s->text_len == 0 && (c->text_emb || c->text_mask))
    return duet_err_set(err, DUET_EINVAL,
                        "%s: clip %lld has text_emb but the file was opened with text_len = 0",
                        w->path, i);
  return 0;
}

static void stage_audio(duet_clip_writer *w, const float *audio, uint8_t *dst) {
  if (!w->audio_i16) {
    duet_shuffle(audio, dst, w->audio_bytes, 4);
    return;
  }
  for (int64_t k = 0; k < w->shape.audio_samples; k++) {
    float x = audio[k] * 32768.0f;
    /* NaN fails both comparisons and is stored as silence. */
    int16_t v = x >= 32767.0f ? 32767 : x <= -32768.0f ? -32768 : x == x ? (int16_t)lrintf(x) : 0;
    w->audio_i16_buf[k] = v;
  }
  duet_shuffle(w->audio_i16_buf, dst, w->audio_bytes, 2);
}

static void stage_rows(duet_clip_writer *w, const duet_clip *c) {
  const duet_clip_shape *s = &w->shape;
  int r = w->rows_n;
  w->captions[r] = strdup(c->caption ? c->caption : "");
  w->sources[r] = strdup(c->source ? c->source : "");
  if (c->source && c->source[0]) w->rows_have_source = 1;
  if (s->max_events > 0) {
    float *row = w->row_events + (size_t)r * s->max_events;
    for (int k = 0; k < s->max_events; k++) row[k] = k < c->n_events ? c->events[k] : NAN;
  }
  if (s->text_len > 0) {
    uint8_t *row = w->row_mask + (size_t)r * s->text_len;
    if (c->text_mask)
      memcpy(row, c->text_mask, (size_t)s->text_len);
    else
      memset(row, 1, (size_t)s->text_len);
  }
  w->rows_n++;
}

int duet_clip_writer_append(duet_clip_writer *w, const duet_clip *c, duet_err *err) {
  if (w->failed) {
    if (err) *err = w->fail;
    return w->failed;
  }
  int rc = check_clip(w, c, err);
  if (rc) return rc;
  duet_h5_quiet q;
  duet_h5_quiet_begin(&q);
  int64_t i = w->count;
  wslot *s = &w->slots[i % w->nslots];
  /* The slot still holds clip i - nslots until that one is stored. */
  rc = store_through(w, i - w->nslots + 1, 1, err);
  if (!rc && w->text_emb >= 0) rc = write_text_emb(w, i, c->text_emb, err);
  if (!rc) {
    memcpy(s->video, c->video, w->video_bytes); /* u8 shuffles to itself */
    stage_audio(w, c->audio, s->audio);
    stage_rows(w, c);
    if (!w->captions[w->rows_n - 1] || !w->sources[w->rows_n - 1])
      rc = fail(w, err, DUET_ENOMEM, "%s: out of memory", w->path);
  }
  if (!rc) {
    w->count++;
    if (w->nworkers) {
      pthread_mutex_lock(&w->mu);
      s->state = SLOT_QUEUED;
      w->queued = w->count;
      pthread_cond_signal(&w->work_cv);
      pthread_mutex_unlock(&w->mu);
    } else {
      s->rc = compress_slot(w, &w->inline_deflater, s);
      s->state = SLOT_DONE;
    }
    if (w->rows_n == ROW_CHUNK) rc = flush_rows(w, err);
  }
  if (!rc) rc = store_through(w, w->count, 0, err);
  duet_h5_quiet_end(&q);
  return rc;
}

int64_t duet_clip_writer_count(const duet_clip_writer *w) { return w->count; }

static int sync_path(const char *path, int flags) {
  int fd = open(path, flags);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

static int commit(duet_clip_writer *w, duet_err *err) {
  int rc = store_through(w, w->count, 1, err);
  if (!rc) rc = flush_rows(w, err);
  if (rc) return rc;
  stop_workers(w);
  if (set_extent_all(w, w->count) < 0) return fail_h5(w, err, "cannot trim datasets");
  close_ids(w);
  herr_t closed = H5Fclose(w->file);
  w->file = -1;
  if (closed < 0) return fail_h5(w, err, "cannot close");
  if (sync_path(w->tmp, O_RDONLY) < 0)
    return fail(w, err, DUET_EIO, "%s: cannot sync %s: %s", w->path, w->tmp, strerror(errno));
  if (rename(w->tmp, w->path) < 0)
    return fail(w, err, DUET_EIO, "%s: cannot rename %s into place: %s", w->path, w->tmp,
                strerror(errno));
  /* The rename itself is durable only once the directory is synced. */
  char *dir = strdup(w->path);
  if (dir) {
    char *slash = strrchr(dir, '/');
    if (slash) slash[slash == dir ? 1 : 0] = '\0';
    sync_path(slash ? dir : ".", O_RDONLY | O_DIRECTORY);
    free(dir);
  }
  return 0;
}

int duet_clip_writer_close(duet_clip_writer *w, int commit_it, duet_err *err) {
  if (!w) return 0;
  duet_h5_quiet q;
  duet_h5_quiet_begin(&q);
  int rc = 0;
  if (commit_it && w->failed) {
    if (err) *err = w->fail;
    rc = w->failed;
  } else if (commit_it) {
    rc = commit(w, err);
  }
  int committed = commit_it && !rc;
  /* A commit that failed after closing the file leaves a temporary that free_writer no
   * longer knows is open. */
  if (!committed && w->file < 0) unlink(w->tmp);
  free_writer(w, !committed);
  duet_h5_quiet_end(&q);
  return rc;
}
