#include <math.h>
#include <stdlib.h>
#include <string.h>


#include "core/blas.h"
#include "eval/quality.h"

/* LAPACK's symmetric divide-and-conquer eigensolver, as OpenBLAS exports it. The two trailing
 * size_t arguments are the hidden lengths of the character arguments in gfortran's calling
 * convention. */
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
                    double *w, double *work, const int *lwork, int *iwork, const int *liwork,
                    int *info, size_t jobz_len, size_t uplo_len);

/* Eigenvalues (ascending) into w and, with vectors, eigenvectors into the columns of a
 * (column-major, so row i of the row-major array is eigenvector i). */
static int sym_eig(double *a, int n, double *w, int vectors, duet_err *err) {
  char jobz = vectors ? 'V' : 'N', uplo = 'L';
  int lwork = -1, liwork = -1, info = 0, iwq = 0;
  double wq = 0;
  dsyevd_(&jobz, &uplo, &n, a, &n, w, &wq, &lwork, &iwq, &liwork, &info, 1, 1);
  if (info)
    return duet_err_set(err, DUET_ENUMERIC, "eigensolver: workspace query failed (%d)", info);
  lwork = (int)wq;
  liwork = iwq;
  double *work = malloc(sizeof(double) * (size_t)(lwork > 1 ? lwork : 1));
  int *iwork = malloc(sizeof(int) * (size_t)(liwork > 1 ? liwork : 1));
  if (!work || !iwork) {
    free(work);
    free(iwork);
    return duet_err_set(err, DUET_ENOMEM, "eigensolver: out of memory (n = %d)", n);
  }
  dsyevd_(&jobz, &uplo, &n, a, &n, w, work, &lwork, iwork, &liwork, &info, 1, 1);
  free(work);
  free(iwork);
  if (info) return duet_err_set(err, DUET_ENUMERIC, "eigensolver did not converge (%d)", info);
  return DUET_OK;
}

/* Mean [dim] and unbiased covariance [dim, dim] of x [n, dim]. */
static int mean_cov(const double *x, int64_t n, int dim, double *mean, double *cov,
                    duet_err *err) {
  double *c = calloc((size_t)n * dim, sizeof(double));
  if (!c) return duet_err_set(err, DUET_ENOMEM, "covariance: out of memory");
  memset(mean, 0, sizeof(double) * (size_t)dim);
  for (int64_t i = 0; i < n; i++)
    for (int j = 0; j < dim; j++) mean[j] += x[i * dim + j];
  for (int j = 0; j < dim; j++) mean[j] /= (double)n;
  for (int64_t i = 0; i < n; i++)
    for (int j = 0; j < dim; j++) c[i * dim + j] = x[i * dim + j] - mean[j];
  cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, dim, (int)n, 1.0 / (double)(n - 1), c, dim,
              0.0, cov, dim);
  for (int i = 0; i < dim; i++) /* fill the upper triangle too */
    for (int j = i + 1; j < dim; j++) cov[i * dim + j] = cov[j * dim + i];
  free(c);
  return DUET_OK;
}

static int check_sets(int64_t nx, int64_t ny, int dim, const char *what, duet_err *err) {
  if (dim < 1) return duet_err_set(err, DUET_EINVAL, "%s: feature dimension %d", what, dim);
  if (nx < 2 || ny < 2)
    return duet_err_set(err, DUET_EINVAL, "%s: needs at least 2 samples per set (got %lld, %lld)",
                        what, (long long)nx, (long long)ny);
  if (nx > 0x7fffffff || ny > 0x7fffffff)
    return duet_err_set(err, DUET_EINVAL, "%s: too many samples", what);
  return DUET_OK;
}

int duet_frechet_distance(const double *x, int64_t nx, const double *y, int64_t ny, int dim,
                          double *fd, duet_err *err) {
  *fd = NAN;
  int rc = check_sets(nx, ny, dim, "Frechet distance", err);
  if (rc) return rc;
  size_t d2 = (size_t)dim * dim;
  double *buf = malloc(sizeof(double) * (4 * d2 + 3 * (size_t)dim));
  if (!buf) return duet_err_set(err, DUET_ENOMEM, "Frechet distance: out of memory (dim %d)", dim);
  double *cx = buf, *cy = cx + d2, *s = cy + d2, *t = s + d2, *mx = t + d2, *my = mx + dim,
         *w = my + dim;
  if ((rc = mean_cov(x, nx, dim, mx, cx, err)) || (rc = mean_cov(y, ny, dim, my, cy, err)))
    goto done;
  double tr = 0.0, dmu = 0.0;
  for (int i = 0; i < dim; i++) {
    tr += cx[i * dim + i] + cy[i * dim + i];
    dmu += (mx[i] - my[i]) * (mx[i] - my[i]);
  }
  /* Cx^1/2 = V diag(sqrt(max(l, 0))) V^T. dsyevd overwrites cx with V (rows = vectors). */
  if ((rc = sym_eig(cx, dim, w, 1, err))) goto done;
  for (int k = 0; k < dim; k++) {
    double r = sqrt(sqrt(w[k] > 0 ? w[k] : 0.0)); /* split sqrt(l) over both factors */
    for (int j = 0; j < dim; j++) t[k * dim + j] = cx[k * dim + j] * r;
  }
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, dim, dim, dim, 1.0, t, dim, t, dim, 0.0, s,
              dim);
  /* M = S Cy S is symmetric positive semidefinite; tr M^1/2 = sum of sqrt of its eigenvalues. */
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, dim, dim, dim, 1.0, s, dim, cy, dim, 0.0,
              t, dim);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, dim, dim, dim, 1.0, t, dim, s, dim, 0.0,
              cx, dim);
  for (int i = 0; i < dim; i++)
    for (int j = 0; j < i; j++)
      cx[i * dim + j] = cx[j * dim + i] = 0.5 * (cx[i * dim + j] + cx[j * dim + i]);
  if ((rc = sym_eig(cx, dim, w, 0, err))) goto done;
  double trsqrt = 0.0;
  for (int k = 0; k < dim; k++) trsqrt += sqrt(w[k] > 0 ? w[k] : 0.0);
  *fd = dmu + tr - 2.0 * trsqrt;
done:
  free(buf);
  if (rc) duet_err_prefix(err, "Frechet distance: ");
  return rc;
}

/* Sum of (a_i . b_j / dim + 1)^3 over all i, j, skipping i == j when `same`; blocks of rows
 * keep the Gram matrix small. */
static double poly_kernel_sum(const double *a, int64_t na, const double *b, int64_t nb, int dim,
                              int same, double *gram) {
  const int64_t block = 256;
  double total = 0.0;
  for (int64_t i0 = 0; i0 < na; i0 += block) {
    int64_t bi = na - i0 < block ? na - i0 : block;
    for (int64_t j0 = 0; j0 < nb; j0 += block) {
      int64_t bj = nb - j0 < block ? nb - j0 : block;
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)bi, (int)bj, dim, 1.0 / dim,
                  a + i0 * dim, dim, b + j0 * dim, dim, 0.0, gram, (int)bj);
      for (int64_t i = 0; i < bi; i++)
        for (int64_t j = 0; j < bj; j++) {
          if (same && i0 + i == j0 + j) continue;
          double k = gram[i * bj + j] + 1.0;
          total += k * k * k;
        }
    }
  }
  return total;
}

int duet_kid(const double *x, int64_t nx, const double *y, int64_t ny, int dim, double *kid,
             duet_err *err) {
  *kid = NAN;
  int rc = check_sets(nx, ny, dim, "KID", err);
  if (rc) return rc;
  double *gram = malloc(sizeof(double) * 256 * 256);
  if (!gram) return duet_err_set(err, DUET_ENOMEM, "KID: out of memory");
  double kxx = poly_kernel_sum(x, nx, x, nx, dim, 1, gram);
  double kyy = poly_kernel_sum(y, ny, y, ny, dim, 1, gram);
  double kxy = poly_kernel_sum(x, nx, y, ny, dim, 0, gram);
  free(gram);
  *kid = kxx / ((double)nx * (nx - 1)) + kyy / ((double)ny * (ny - 1)) -
         2.0 * kxy / ((double)nx * ny);
  return DUET_OK;
}
