/* Reading arrays that users and tests hand to the metrics: NumPy .npy files (any of the
 * common little-endian numeric dtypes, 1-D or 2-D, C or Fortran order) and CSV text. */
#ifndef DUET_EVAL_MATRIX_IO_H
#define DUET_EVAL_MATRIX_IO_H

#include <stdint.h>

#include "core/error.h"

typedef enum duet_npy_dtype { DUET_DT_U8, DUET_DT_I16, DUET_DT_I32, DUET_DT_I64, DUET_DT_F32,
                          DUET_DT_F64 } duet_npy_dtype;

typedef struct duet_npy {
  duet_npy_dtype dtype;
  int ndim;           /* 0..4 */
  int64_t shape[4];
  int64_t count;      /* product of shape */
  void *data;         /* malloc'd, C order, native little-endian */
} duet_npy;

/* Reads any array of up to 4 dimensions; Fortran-ordered data is transposed to C order. */
int duet_npy_read(const char *path, duet_npy *out, duet_err *err);
void duet_npy_free(duet_npy *a);

/* Element i as a double. */
double duet_npy_get(const duet_npy *a, int64_t i);

/* A feature matrix from .npy (1-D: one column; 2-D: rows x cols) or from CSV (one row per
 * line, separated by commas, semicolons, tabs or spaces; a non-numeric first line is taken as
 * a header; '#' starts a comment). *data is malloc'd, row-major. */
int duet_matrix_read(const char *path, double **data, int64_t *rows, int64_t *cols,
                     duet_err *err);

#endif
