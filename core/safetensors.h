/* safetensors files (https://github.com/huggingface/safetensors), the format of duet's weights
 * and optimizer state, readable by the Python ecosystem as they are.
 *
 * Layout: 8 bytes little-endian header length N; N bytes of JSON
 *   {"__metadata__": {"key": "value", ...},
 *    "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
 * padded with spaces to a multiple of 8; then the data buffer, offsets relative to its start.
 * duet reads and writes the dtypes F32, BF16, F64, I32 and U8, little-endian, row-major.
 *
 * The reader is strict, as the reference Rust implementation is: the header is at most 100 MB
 * of valid JSON (trailing whitespace allowed); every tensor has a known dtype, a shape of at
 * most DUET_MAX_DIMS non-negative dims and data_offsets whose span is exactly
 * numel * dtype size; names are unique; and the tensors tile the buffer exactly: sorted by
 * offset, the first starts at 0, each starts where the previous ends (no overlap, no gap) and
 * the last ends at the end of the file (trailing bytes are rejected). Each violation is one
 * DUET_EFORMAT message naming the file and the problem.
 *
 * The writer orders tensors by decreasing element size (then as added), so every tensor is
 * aligned to its element size within the 8-aligned buffer, and writes atomically
 * (core/fileio.h). */
#ifndef DUET_CORE_SAFETENSORS_H
#define DUET_CORE_SAFETENSORS_H

#include <stdint.h>

#include "core/params.h"

#define DUET_ST_MAX_HEADER 100000000ull

/* "F32", "BF16", ... and back (DUET_EFORMAT-free: -1 for an unknown name). */
const char *duet_st_dtype_name(duet_dtype dt);
int duet_st_dtype_parse(const char *name);

/* ---- writing ---- */

typedef struct duet_st_writer duet_st_writer;

duet_st_writer *duet_st_writer_new(duet_err *err);
void duet_st_writer_free(duet_st_writer *w);
/* Adds a tensor under name (copied). The tensor is borrowed until write. Names are unique and
 * not "__metadata__". */
int duet_st_writer_add(duet_st_writer *w, const char *name, const duet_tensor *t, duet_err *err);
/* Same, stored as dtype (float dtypes convert into each other; bf16 rounds to nearest even). */
int duet_st_writer_add_as(duet_st_writer *w, const char *name, const duet_tensor *t, duet_dtype dtype,
                          duet_err *err);
/* Every parameter of ps, under prefix + its name (prefix may be NULL). */
int duet_st_writer_add_params(duet_st_writer *w, const duet_param_set *ps, const char *prefix,
                              duet_err *err);
/* A metadata pair (strings, copied; a later value for the same key replaces the earlier). */
int duet_st_writer_meta(duet_st_writer *w, const char *key, const char *value, duet_err *err);
/* Writes the file atomically: path is either untouched or complete. */
int duet_st_writer_write(duet_st_writer *w, const char *path, duet_err *err);

/* ---- reading ---- */

typedef struct duet_st_info {
  const char *name;
  duet_dtype dtype;
  int ndim;
  int64_t shape[DUET_MAX_DIMS];
  int64_t numel;
  uint64_t begin, end; /* byte offsets within the data buffer */
} duet_st_info;

typedef struct duet_st_file duet_st_file;

/* Opens and validates path (reads the header only; data is read on request with pread). */
int duet_st_open(duet_st_file **out, const char *path, duet_err *err);
void duet_st_close(duet_st_file *f);

const char *duet_st_path(const duet_st_file *f);
/* Tensors in file order (by offset). */
int duet_st_count(const duet_st_file *f);
const duet_st_info *duet_st_info_at(const duet_st_file *f, int i);
const duet_st_info *duet_st_find(const duet_st_file *f, const char *name);
/* Metadata value for key, or NULL. */
const char *duet_st_meta(const duet_st_file *f, const char *key);
int duet_st_meta_count(const duet_st_file *f);
void duet_st_meta_at(const duet_st_file *f, int i, const char **key, const char **value);

/* Reads a tensor into dst, which must have the same number of elements and either the same
 * dtype or, for float dtypes, any float dtype (converted). Shapes are the caller's business. */
int duet_st_read(const duet_st_file *f, const duet_st_info *ti, duet_tensor *dst, duet_err *err);
/* A new CPU tensor with the file's dtype and shape. */
int duet_st_read_new(const duet_st_file *f, const char *name, duet_tensor **out, duet_err *err);

/* ---- loading named tensors (a parameter set, optimizer moments) ---- */

typedef struct duet_st_load_opts {
  const char *prefix;   /* file keys are prefix + name ("m." for moments); NULL: none */
  int allow_missing;    /* a name absent from the file keeps its values */
  int allow_unexpected; /* file keys under prefix that match no name are ignored */
  int convert;          /* float dtypes may differ (converted); otherwise dtypes must match */
  int dry_run;          /* validate everything, read nothing */
} duet_st_load_opts;

typedef struct duet_st_load_report {
  int loaded, missing, unexpected;
  char first_missing[256], first_unexpected[256];
} duet_st_load_report;

/* Loads dst[i] from key prefix + names[i] (dst[i] NULL: the key may be in the file and is
 * ignored). Shapes must match exactly.
 * Everything is validated before anything is read, so a failed check leaves every tensor
 * unchanged. rep (may be NULL) counts what was loaded, missing and unexpected. */
int duet_st_load_tensors(const duet_st_file *f, int n, const char *const *names, duet_tensor *const *dst,
                         const duet_st_load_opts *opts, duet_st_load_report *rep, duet_err *err);
int duet_st_load_params(const duet_st_file *f, duet_param_set *ps, const duet_st_load_opts *opts,
                        duet_st_load_report *rep, duet_err *err);
/* Opens path, loads, closes. */
int duet_st_load_params_file(const char *path, duet_param_set *ps, const duet_st_load_opts *opts,
                             duet_st_load_report *rep, duet_err *err);

#endif
