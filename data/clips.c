/* Opening a clip file: every attribute and dataset is checked against the schema
 * (docs/data-format.md), so that a bad file fails at open with one line naming it rather than
 * mid-epoch. Reading is in clips_read.c. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/clips_file.h"
#include "data/clips_h5.h"
#include "data/clips_raw.h"

/* Every message starts with the file's name, as the contract promises. */
int duet_clip_failf(duet_err *err, int code, const char *path, const char *fmt, ...) {
  char msg[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return duet_err_set(err, code, "%s: %s", path, msg);
}

int duet_clip_fail_h5(duet_err *err, const char *path, const char *what) {
  char buf[512];
  duet_h5_error_text(buf, sizeof buf);
  return duet_clip_failf(err, DUET_EIO, path, "%s: %s", what, buf);
}

/* A file that HDF5 or the schema checks reject is malformed, not an I/O failure. */
static int as_format_error(duet_err *err, int rc) {
  (void)rc;
  if (err) err->code = DUET_EFORMAT;
  return DUET_EFORMAT;
}

static void format_dims(char *buf, size_t n, int rank, const hsize_t *dims) {
  size_t used = (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < rank && used < n; i++)
    used += (size_t)snprintf(buf + used, n - used, "%s%llu", i ? "," : "",
                             (unsigned long long)dims[i]);
  if (used < n) snprintf(buf + used, n - used, "]");
}

/* ---- attributes ---- */

static int read_string_attr(hid_t file, const char *path, const char *name, char *out, size_t n,
                            duet_err *err) {
  hid_t a = H5Aopen(file, name, H5P_DEFAULT);
  if (a < 0) return duet_clip_fail_h5(err, path, "cannot open attribute");
  hid_t t = H5Aget_type(a);
  int rc = 0;
  if (H5Tget_class(t) != H5T_STRING) {
    char tn[32];
    rc = duet_clip_failf(err, DUET_EFORMAT, path, "attribute '%s' is %s, expected a string", name,
               duet_h5_type_name(t, tn, sizeof tn));
  } else if (H5Tis_variable_str(t) > 0) {
    char *s = NULL;
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5Tget_cset(t));
    if (H5Aread(a, mt, &s) < 0) {
      rc = duet_clip_fail_h5(err, path, "cannot read attribute");
    } else {
      snprintf(out, n, "%s", s ? s : "");
      H5free_memory(s);
    }
    H5Tclose(mt);
  } else {
    size_t size = H5Tget_size(t);
    char *buf = calloc(1, size + 1);
    if (!buf)
      rc = duet_clip_failf(err, DUET_ENOMEM, path, "out of memory");
    else if (H5Aread(a, t, buf) < 0)
      rc = duet_clip_fail_h5(err, path, "cannot read attribute");
    else
      snprintf(out, n, "%s", buf);
    free(buf);
  }
  H5Tclose(t);
  H5Aclose(a);
  return rc;
}

static int read_number_attr(hid_t file, const char *path, const char *name, int whole, double *out,
                            duet_err *err) {
  htri_t exists = H5Aexists(file, name);
  if (exists <= 0) return duet_clip_failf(err, DUET_EFORMAT, path, "missing attribute '%s'", name);
  hid_t a = H5Aopen(file, name, H5P_DEFAULT);
  if (a < 0) return duet_clip_fail_h5(err, path, "cannot open attribute");
  hid_t t = H5Aget_type(a), s = H5Aget_space(a);
  H5T_class_t cls = H5Tget_class(t);
  hssize_t npoints = H5Sget_simple_extent_npoints(s);
  int rc = 0;
  if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
    char tn[32];
    rc = duet_clip_failf(err, DUET_EFORMAT, path, "attribute '%s' is %s, expected a number", name,
               duet_h5_type_name(t, tn, sizeof tn));
  } else if (npoints != 1) {
    rc = duet_clip_failf(err, DUET_EFORMAT, path, "attribute '%s' has %lld values, expected one", name,
               (long long)npoints);
  } else if (H5Aread(a, H5T_NATIVE_DOUBLE, out) < 0) {
    rc = duet_clip_fail_h5(err, path, "cannot read attribute");
  } else if (whole && (*out != floor(*out) || !isfinite(*out))) {
    rc = duet_clip_failf(err, DUET_EFORMAT, path, "attribute '%s' is %g, expected a whole number", name,
               *out);
  }
  H5Sclose(s);
  H5Tclose(t);
  H5Aclose(a);
  return rc;
}

static int read_attributes(duet_clip_file *f, duet_err *err) {
  const char *path = f->path;
  if (H5Aexists(f->file, "format") <= 0)
    return duet_clip_failf(err, DUET_EFORMAT, path, "missing attribute 'format' (not a duet clip file)");
  char format[64];
  int rc = read_string_attr(f->file, path, "format", format, sizeof format, err);
  if (rc) return rc;
  if (strcmp(format, DUET_CLIPS_FORMAT) != 0)
    return duet_clip_failf(err, DUET_EFORMAT, path, "attribute 'format' is '%s', expected '%s'", format,
                 DUET_CLIPS_FORMAT);
  double version, fps, rate, frames, height, width, samples;
  if ((rc = read_number_attr(f->file, path, "version", 1, &version, err)) ||
      (rc = read_number_attr(f->file, path, "fps", 0, &fps, err)) ||
      (rc = read_number_attr(f->file, path, "sample_rate", 1, &rate, err)) ||
      (rc = read_number_attr(f->file, path, "frames", 1, &frames, err)) ||
      (rc = read_number_attr(f->file, path, "height", 1, &height, err)) ||
      (rc = read_number_attr(f->file, path, "width", 1, &width, err)) ||
      (rc = read_number_attr(f->file, path, "audio_samples", 1, &samples, err)))
    return rc;
  if (version > DUET_CLIPS_VERSION)
    return duet_clip_failf(err, DUET_EFORMAT, path, "version %g is newer than this build reads (%d)",
                 version, DUET_CLIPS_VERSION);
  if (version < 1) return duet_clip_failf(err, DUET_EFORMAT, path, "version %g is not valid", version);
  const double int_max = 2147483647.0;
  if (rate > int_max || frames > int_max || height > int_max || width > int_max)
    return duet_clip_failf(err, DUET_EFORMAT, path, "attributes sample_rate, frames, height, width are too large");
  f->shape.fps = fps;
  f->shape.sample_rate = (int)rate;
  f->shape.frames = (int)frames;
  f->shape.height = (int)height;
  f->shape.width = (int)width;
  f->shape.audio_samples = (int64_t)samples;
  rc = duet_clip_shape_check(&f->shape, path, err);
  return rc ? as_format_error(err, rc) : 0;
}

/* ---- datasets ---- */

static int open_dataset(duet_clip_file *f, const char *name, int required, hid_t *out,
                        duet_err *err) {
  *out = -1;
  htri_t exists = H5Lexists(f->file, name, H5P_DEFAULT);
  if (exists <= 0)
    return required ? duet_clip_failf(err, DUET_EFORMAT, f->path, "missing dataset '%s'", name) : 0;
  H5O_info_t info;
  if (H5Oget_info_by_name(f->file, name, &info, H5P_DEFAULT) < 0 || info.type != H5O_TYPE_DATASET)
    return duet_clip_failf(err, DUET_EFORMAT, f->path, "'%s' is not a dataset", name);
  /* Each clip's chunk is read exactly once, so caching chunks would only add a copy. */
  hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
  int big = !strcmp(name, "video") || !strcmp(name, "audio") || !strcmp(name, "text_emb");
  if (dapl >= 0 && big) H5Pset_chunk_cache(dapl, H5D_CHUNK_CACHE_NSLOTS_DEFAULT, 0, 1.0);
  *out = H5Dopen2(f->file, name, dapl >= 0 ? dapl : H5P_DEFAULT);
  if (dapl >= 0) H5Pclose(dapl);
  if (*out < 0) return duet_clip_fail_h5(err, f->path, "cannot open dataset");
  return 0;
}

/* Checks rank and dims; want[i] < 0 is not checked. label[i] names the attribute or dataset a
 * dimension must agree with, for the message. */
static int check_shape(duet_clip_file *f, hid_t d, const char *name, int rank,
                       const long long *want, const char *const *label, hsize_t *dims,
                       duet_err *err) {
  hid_t s = H5Dget_space(d);
  int r = H5Sget_simple_extent_ndims(s);
  hsize_t got[H5S_MAX_RANK];
  if (r >= 0) H5Sget_simple_extent_dims(s, got, NULL);
  H5Sclose(s);
  char shape[160];
  if (r != rank) {
    if (r > 0)
      format_dims(shape, sizeof shape, r, got);
    else
      snprintf(shape, sizeof shape, "[]");
    return duet_clip_failf(err, DUET_EFORMAT, f->path, "dataset '%s' has rank %d (shape %s), expected %d",
                 name, r, shape, rank);
  }
  format_dims(shape, sizeof shape, r, got);
  for (int i = 0; i < rank; i++) {
    if (want[i] < 0 || (long long)got[i] == want[i]) continue;
    return duet_clip_failf(err, DUET_EFORMAT, f->path, "dataset '%s' has shape %s but %s=%lld", name, shape,
                 label[i], want[i]);
  }
  memcpy(dims, got, sizeof(hsize_t) * (size_t)rank);
  return 0;
}

static int check_chunks(duet_clip_file *f, hid_t d, const char *name, int rank,
                        const hsize_t *dims, duet_err *err) {
  hid_t dcpl = H5Dget_create_plist(d);
  hsize_t want[5], got[5];
  want[0] = 1;
  for (int i = 1; i < rank; i++) want[i] = dims[i];
  char wbuf[120], gbuf[120];
  format_dims(wbuf, sizeof wbuf, rank, want);
  int rc = 0;
  if (H5Pget_layout(dcpl) != H5D_CHUNKED) {
    rc = duet_clip_failf(err, DUET_EFORMAT, f->path, "dataset '%s' is not chunked, expected one clip per chunk %s",
               name, wbuf);
  } else if (H5Pget_chunk(dcpl, rank, got) != rank || memcmp(got, want, sizeof(hsize_t) * (size_t)rank)) {
    format_dims(gbuf, sizeof gbuf, rank, got);
    rc = duet_clip_failf(err, DUET_EFORMAT, f->path, "dataset '%s' has chunks %s, expected one clip per chunk %s",
               name, gbuf, wbuf);
  }
  H5Pclose(dcpl);
  return rc;
}

/* Records whether stored chunks can be decoded off the I/O thread, and refuses filters this
 * HDF5 cannot decode at all (a file written with h5py's lzf, say) at open, not mid-epoch. */
static int inspect_filters(duet_clip_file *f, hid_t d, const char *name, hid_t native, int which,
                           duet_err *err) {
  hid_t dcpl = H5Dget_create_plist(d);
  int nf = H5Pget_nfilters(dcpl);
  duet_chunk_pipeline *p = &f->pipe[which];
  p->n = 0;
  int ok = nf >= 0 && nf <= 4;
  for (int i = 0; i < nf; i++) {
    unsigned flags, config;
    size_t ncd = 0;
    char fname[64] = "";
    H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, NULL, sizeof fname, fname, &config);
    if (H5Zfilter_avail(id) <= 0) {
      H5Pclose(dcpl);
      return duet_clip_failf(err, DUET_EFORMAT, f->path,
                   "dataset '%s' uses HDF5 filter %d (%s), which this HDF5 cannot decode", name,
                   (int)id, fname[0] ? fname : "unknown");
    }
    if (id == H5Z_FILTER_SHUFFLE && p->n < 4)
      p->kind[p->n++] = DUET_FILTER_SHUFFLE;
    else if (id == H5Z_FILTER_DEFLATE && p->n < 4)
      p->kind[p->n++] = DUET_FILTER_DEFLATE;
    else
      ok = 0;
  }
  H5Pclose(dcpl);
  hid_t t = H5Dget_type(d);
  f->raw_ok[which] = ok && H5Tequal(t, native) > 0;
  H5Tclose(t);
  return 0;
}

static int check_type(duet_clip_file *f, hid_t d, const char *name, int ok, const char *expected,
                      duet_err *err) {
  if (ok) return 0;
  hid_t t = H5Dget_type(d);
  char tn[32];
  duet_h5_type_name(t, tn, sizeof tn);
  H5Tclose(t);
  return duet_clip_failf(err, DUET_EFORMAT, f->path, "dataset '%s' has type %s, expected %s", name, tn,
               expected);
}

static int type_is(hid_t d, H5T_class_t cls, size_t size, int sign) {
  hid_t t = H5Dget_type(d);
  int ok = H5Tget_class(t) == cls && (!size || H5Tget_size(t) == size) &&
           (sign < 0 || (int)H5Tget_sign(t) == sign);
  H5Tclose(t);
  return ok;
}

static int setup_strings(duet_clip_file *f, hid_t d, const char *name, strings_info *si,
                         duet_err *err) {
  int rc = check_type(f, d, name, type_is(d, H5T_STRING, 0, -1), "string", err);
  if (rc) return rc;
  hid_t t = H5Dget_type(d);
  si->fixed = H5Tis_variable_str(t) <= 0;
  si->size = H5Tget_size(t);
  si->mem_type = H5Tcopy(H5T_C_S1);
  /* Fixed-length strings get one more byte so that a full-width one is still terminated. */
  H5Tset_size(si->mem_type, si->fixed ? si->size + 1 : H5T_VARIABLE);
  H5Tset_strpad(si->mem_type, H5T_STR_NULLTERM);
  H5Tset_cset(si->mem_type, H5Tget_cset(t));
  H5Tclose(t);
  return 0;
}

static int validate(duet_clip_file *f, duet_err *err) {
  int rc;
  duet_clip_shape *s = &f->shape;
  if ((rc = open_dataset(f, "video", 1, &f->video, err)) ||
      (rc = open_dataset(f, "audio", 1, &f->audio, err)) ||
      (rc = open_dataset(f, "caption", 1, &f->caption, err)) ||
      (rc = open_dataset(f, "source", 0, &f->source, err)) ||
      (rc = open_dataset(f, "text_emb", 0, &f->text_emb, err)) ||
      (rc = open_dataset(f, "text_mask", 0, &f->text_mask, err)) ||
      (rc = open_dataset(f, "events", 0, &f->events, err)))
    return rc;

  hsize_t vd[5], ad[2], cd[1];
  long long vwant[5] = {-1, s->frames, s->height, s->width, 3};
  const char *vlabel[5] = {"", "attributes say frames", "attributes say height",
                           "attributes say width", "RGB needs channels"};
  if ((rc = check_shape(f, f->video, "video", 5, vwant, vlabel, vd, err))) return rc;
  f->n = (int64_t)vd[0];
  char nclips[64];
  snprintf(nclips, sizeof nclips, "'video' says clips");
  long long awant[2] = {f->n, s->audio_samples};
  const char *alabel[2] = {nclips, "attributes say audio_samples"};
  long long cwant[1] = {f->n};
  const char *clabel[1] = {nclips};
  if ((rc = check_shape(f, f->audio, "audio", 2, awant, alabel, ad, err)) ||
      (rc = check_shape(f, f->caption, "caption", 1, cwant, clabel, cd, err)) ||
      (f->source >= 0 && (rc = check_shape(f, f->source, "source", 1, cwant, clabel, cd, err))))
    return rc;

  if ((rc = check_type(f, f->video, "video", type_is(f->video, H5T_INTEGER, 1, H5T_SGN_NONE),
                       "uint8", err)))
    return rc;
  int f32 = type_is(f->audio, H5T_FLOAT, 4, -1);
  f->audio_i16 = type_is(f->audio, H5T_INTEGER, 2, H5T_SGN_2);
  if ((rc = check_type(f, f->audio, "audio", f32 || f->audio_i16, "float32 or int16", err)))
    return rc;
  if ((rc = check_chunks(f, f->video, "video", 5, vd, err)) ||
      (rc = check_chunks(f, f->audio, "audio", 2, ad, err)) ||
      (rc = inspect_filters(f, f->video, "video", H5T_NATIVE_UINT8, DUET_CLIP_VIDEO, err)) ||
      (rc = inspect_filters(f, f->audio, "audio", f->audio_i16 ? H5T_NATIVE_SHORT : H5T_NATIVE_FLOAT,
                            DUET_CLIP_AUDIO, err)))
    return rc;
  if ((rc = setup_strings(f, f->caption, "caption", &f->caption_str, err)) ||
      (f->source >= 0 && (rc = setup_strings(f, f->source, "source", &f->source_str, err))))
    return rc;

  if ((f->text_emb >= 0) != (f->text_mask >= 0))
    return duet_clip_failf(err, DUET_EFORMAT, f->path, "dataset '%s' is present but '%s' is missing",
                 f->text_emb >= 0 ? "text_emb" : "text_mask",
                 f->text_emb >= 0 ? "text_mask" : "text_emb");
  if (f->text_emb >= 0) {
    hsize_t td[3], md[2];
    long long twant[3] = {f->n, -1, -1};
    const char *tlabel[3] = {nclips, "", ""};
    if ((rc = check_shape(f, f->text_emb, "text_emb", 3, twant, tlabel, td, err))) return rc;
    long long mwant[2] = {f->n, (long long)td[1]};
    const char *mlabel[2] = {nclips, "'text_emb' says L"};
    if ((rc = check_shape(f, f->text_mask, "text_mask", 2, mwant, mlabel, md, err)) ||
        (rc = check_type(f, f->text_emb, "text_emb", type_is(f->text_emb, H5T_FLOAT, 0, -1),
                         "float16 or float32", err)) ||
        (rc = check_type(f, f->text_mask, "text_mask", type_is(f->text_mask, H5T_INTEGER, 1, -1),
                         "uint8", err)))
      return rc;
    if (td[1] == 0 || td[2] == 0 || td[1] > 1 << 20 || td[2] > 1 << 20)
      return duet_clip_failf(err, DUET_EFORMAT, f->path, "dataset 'text_emb' has an empty or huge L or D");
    s->text_len = (int)td[1];
    s->text_dim = (int)td[2];
  }
  if (f->events >= 0) {
    hsize_t ed[2];
    long long ewant[2] = {f->n, -1};
    const char *elabel[2] = {nclips, ""};
    if ((rc = check_shape(f, f->events, "events", 2, ewant, elabel, ed, err)) ||
        (rc = check_type(f, f->events, "events", type_is(f->events, H5T_FLOAT, 0, -1), "float32",
                         err)))
      return rc;
    if (ed[1] > 1 << 20)
      return duet_clip_failf(err, DUET_EFORMAT, f->path, "dataset 'events' has %llu columns",
                   (unsigned long long)ed[1]);
    s->max_events = (int)ed[1];
  }
  return 0;
}

/* ---- open / close ---- */

void duet_clip_file_close(duet_clip_file *f) {
  if (!f) return;
  duet_h5_quiet q;
  duet_h5_quiet_begin(&q);
  hid_t ds[] = {f->video, f->audio, f->caption, f->source, f->text_emb, f->text_mask, f->events};
  for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
    if (ds[i] >= 0) H5Dclose(ds[i]);
  if (f->caption_str.mem_type >= 0) H5Tclose(f->caption_str.mem_type);
  if (f->source_str.mem_type >= 0) H5Tclose(f->source_str.mem_type);
  if (f->file >= 0) H5Fclose(f->file);
  duet_h5_quiet_end(&q);
  free(f->audio_scratch);
  free(f->path);
  free(f);
}

int duet_clip_file_open(duet_clip_file **out, const char *path, duet_err *err) {
  *out = NULL;
  struct stat st;
  if (stat(path, &st) != 0) return duet_clip_failf(err, DUET_EIO, path, "cannot open: %s", strerror(errno));
  if (S_ISDIR(st.st_mode)) return duet_clip_failf(err, DUET_EIO, path, "is a directory, not a clip file");
  duet_clip_file *f = calloc(1, sizeof *f);
  if (!f) return duet_clip_failf(err, DUET_ENOMEM, path, "out of memory");
  f->file = f->video = f->audio = f->caption = f->source = -1;
  f->text_emb = f->text_mask = f->events = -1;
  f->caption_str.mem_type = f->source_str.mem_type = -1;
  f->path = strdup(path);
  if (!f->path) {
    free(f);
    return duet_clip_failf(err, DUET_ENOMEM, path, "out of memory");
  }
  duet_h5_quiet q;
  duet_h5_quiet_begin(&q);
  int rc = 0;
  htri_t is_h5 = H5Fis_hdf5(path);
  if (is_h5 == 0) {
    rc = duet_clip_failf(err, DUET_EFORMAT, path, "not an HDF5 file");
  } else if (is_h5 < 0) {
    rc = as_format_error(err, duet_clip_fail_h5(err, path, "cannot read as HDF5"));
  } else {
    f->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f->file < 0) rc = as_format_error(err, duet_clip_fail_h5(err, path, "damaged or truncated HDF5 file"));
  }
  if (!rc) rc = read_attributes(f, err);
  if (!rc) rc = validate(f, err);
  if (!rc && f->audio_i16) {
    f->audio_scratch = malloc(sizeof(int16_t) * (size_t)f->shape.audio_samples);
    if (!f->audio_scratch) rc = duet_clip_failf(err, DUET_ENOMEM, path, "out of memory");
  }
  duet_h5_quiet_end(&q);
  if (rc) {
    duet_clip_file_close(f);
    return rc;
  }
  *out = f;
  return 0;
}

const duet_clip_shape *duet_clip_file_shape(const duet_clip_file *f) { return &f->shape; }
int64_t duet_clip_file_count(const duet_clip_file *f) { return f->n; }
int duet_clip_file_has_text_emb(const duet_clip_file *f) { return f->text_emb >= 0; }
int duet_clip_file_has_events(const duet_clip_file *f) { return f->events >= 0; }
int duet_clip_file_has_source(const duet_clip_file *f) { return f->source >= 0; }
int duet_clip_file_audio_is_i16(const duet_clip_file *f) { return f->audio_i16; }
const char *duet_clip_file_path(const duet_clip_file *f) { return f->path; }
