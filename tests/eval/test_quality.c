/* Quality metrics: SSIM and PSNR against scikit-image on stored image pairs
 * (make_quality_golden.py), audio distances and feature-set distances on inputs whose answer
 * is known in closed form, and the .npy / CSV readers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/matrix_io.h"
#include "eval/quality.h"
#include "fixture.h"
#include "testlib.h"

static void test_ssim_psnr_golden(void) {
  cJSON *g = fixture_json("quality_golden.json");
  CHECK(g != NULL);
  if (!g) return;
  const cJSON *c;
  cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "cases")) {
    char pa[1024], pb[1024];
    fixture_path(pa, sizeof pa, cJSON_GetObjectItem(c, "a")->valuestring);
    fixture_path(pb, sizeof pb, cJSON_GetObjectItem(c, "b")->valuestring);
    duet_npy a, b;
    duet_err err = {0};
    CHECK_MSG(duet_npy_read(pa, &a, &err) == 0, "%s", err.msg);
    CHECK_MSG(duet_npy_read(pb, &b, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(a.ndim, 3);
    int h = (int)a.shape[0], w = (int)a.shape[1];
    duet_video_quality q;
    CHECK(duet_video_quality_compute(a.data, b.data, 1, h, w, &q, &err) == 0);
    /* Same float64 arithmetic as skimage/scipy, summed in another order. */
    CHECK_NEAR(q.ssim, cJSON_GetObjectItem(c, "ssim")->valuedouble, 1e-9);
    CHECK_NEAR(q.psnr, cJSON_GetObjectItem(c, "psnr")->valuedouble, 1e-9);
    printf("%s %dx%d: SSIM %.6f PSNR %.3f\n", cJSON_GetObjectItem(c, "name")->valuestring, w, h,
           q.ssim, q.psnr);
    /* Identical images: SSIM 1, PSNR infinite. */
    CHECK(duet_video_quality_compute(a.data, a.data, 1, h, w, &q, &err) == 0);
    CHECK_NEAR(q.ssim, 1.0, 1e-12);
    CHECK(isinf(q.psnr));
    duet_npy_free(&a);
    duet_npy_free(&b);
  }
  cJSON_Delete(g);
  uint8_t tiny[10 * 10 * 3] = {0};
  double s;
  duet_err err = {0};
  CHECK(duet_ssim_rgb(tiny, tiny, 10, 10, &s, &err) == DUET_EINVAL);
}

static void test_audio_distances(void) {
  /* Scaling white noise by 2 changes every bin by exactly 20 log10 2 dB: LSD = 6.0206 dB,
   * spectral convergence 1, log-magnitude L1 ln 2. */
  int64_t n = 32000;
  float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
  unsigned s = 12345;
  for (int64_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    a[i] = (float)(((s >> 8) / 16777216.0 - 0.5) * 0.5);
    b[i] = 2 * a[i];
  }
  double lsd;
  duet_err err = {0};
  CHECK(duet_log_spectral_distance(a, b, n, &lsd, &err) == 0);
  CHECK_NEAR(lsd, 20 * log10(2.0), 1e-6);
  duet_mrstft m;
  CHECK(duet_mrstft_distance(a, b, n, &m, &err) == 0);
  for (int r = 0; r < DUET_MRSTFT_RESOLUTIONS; r++) {
    CHECK_NEAR(m.sc[r], 1.0, 1e-9);
    CHECK_NEAR(m.mag[r], log(2.0), 1e-3); /* the few bins under the floor move less */
  }
  CHECK_EQ_INT(m.n_fft[0], 512);
  CHECK_EQ_INT(m.n_fft[2], 2048);
  CHECK_NEAR(m.total, 1.0 + log(2.0), 1e-3);
  CHECK(duet_log_spectral_distance(a, a, n, &lsd, &err) == 0);
  CHECK_NEAR(lsd, 0.0, 0.0);
  CHECK(duet_mrstft_distance(a, a, n, &m, &err) == 0);
  CHECK_NEAR(m.total, 0.0, 0.0);
  free(a);
  free(b);
}

/* n samples of dim-dimensional data whose sample mean is exactly 0 and sample covariance
 * exactly I (Gram-Schmidt on centred columns), so that distances have closed forms. */
static double *whitened(int n, int dim, unsigned seed) {
  double *x = malloc(sizeof(double) * n * dim);
  for (int i = 0; i < n * dim; i++) {
    seed = seed * 1103515245u + 12345u;
    x[i] = (seed >> 8) / 16777216.0 - 0.5;
  }
  for (int j = 0; j < dim; j++) {
    double m = 0;
    for (int i = 0; i < n; i++) m += x[i * dim + j];
    for (int i = 0; i < n; i++) x[i * dim + j] -= m / n;
  }
  for (int j = 0; j < dim; j++) {
    for (int k = 0; k < j; k++) {
      double d = 0;
      for (int i = 0; i < n; i++) d += x[i * dim + j] * x[i * dim + k];
      for (int i = 0; i < n; i++) x[i * dim + j] -= d / (n - 1) * x[i * dim + k];
    }
    double nn = 0;
    for (int i = 0; i < n; i++) nn += x[i * dim + j] * x[i * dim + j];
    double sc = sqrt((n - 1) / nn);
    for (int i = 0; i < n; i++) x[i * dim + j] *= sc;
  }
  return x;
}

static void test_frechet_kid(void) {
  int n = 200, dim = 8;
  double *x = whitened(n, dim, 1), *y = whitened(n + 37, dim, 2);
  double mu[8] = {1, -2, 0.5, 0, 0, 3, -1, 0.25}, mu2 = 0;
  for (int j = 0; j < dim; j++) mu2 += mu[j] * mu[j];
  double *ys = malloc(sizeof(double) * (n + 37) * dim);
  /* N(0, I) against N(mu, I): FD = |mu|^2. */
  for (int i = 0; i < (n + 37) * dim; i++) ys[i] = y[i] + mu[i % dim];
  double fd, kid;
  duet_err err = {0};
  CHECK(duet_frechet_distance(x, n, ys, n + 37, dim, &fd, &err) == 0);
  CHECK_NEAR(fd, mu2, 1e-9 * mu2);
  /* N(0, I) against N(0, s^2 I): FD = dim (1 - s)^2. */
  for (int i = 0; i < (n + 37) * dim; i++) ys[i] = 3.0 * y[i];
  CHECK(duet_frechet_distance(x, n, ys, n + 37, dim, &fd, &err) == 0);
  CHECK_NEAR(fd, dim * 4.0, 1e-9 * dim * 4.0);
  CHECK(duet_frechet_distance(x, n, x, n, dim, &fd, &err) == 0);
  CHECK_NEAR(fd, 0.0, 1e-9);

  /* KID against the definition, summed directly. */
  for (int i = 0; i < (n + 37) * dim; i++) ys[i] = y[i] + mu[i % dim];
  CHECK(duet_kid(x, n, ys, n + 37, dim, &kid, &err) == 0);
  double kxx = 0, kyy = 0, kxy = 0;
  int m = n + 37;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++)
      if (i != j) {
        double d = 0;
        for (int k = 0; k < dim; k++) d += x[i * dim + k] * x[j * dim + k];
        kxx += pow(d / dim + 1, 3);
      }
  for (int i = 0; i < m; i++)
    for (int j = 0; j < m; j++)
      if (i != j) {
        double d = 0;
        for (int k = 0; k < dim; k++) d += ys[i * dim + k] * ys[j * dim + k];
        kyy += pow(d / dim + 1, 3);
      }
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++) {
      double d = 0;
      for (int k = 0; k < dim; k++) d += x[i * dim + k] * ys[j * dim + k];
      kxy += pow(d / dim + 1, 3);
    }
  double want =
      kxx / ((double)n * (n - 1)) + kyy / ((double)m * (m - 1)) - 2 * kxy / ((double)n * m);
  CHECK_NEAR(kid, want, 1e-9 * fabs(want) + 1e-12);
  double shifted = kid;
  /* Two sets from one distribution: the estimate is unbiased, so it sits near 0 (either sign),
   * far below the shifted sets' value. */
  CHECK(duet_kid(x, n, y, m, dim, &kid, &err) == 0);
  printf("KID: shifted sets %.4f, same distribution %.4f\n", shifted, kid);
  CHECK(shifted > 1.0);
  CHECK(fabs(kid) < 0.1 * shifted);
  CHECK(duet_kid(x, 1, y, m, dim, &kid, &err) == DUET_EINVAL);
  free(x);
  free(y);
  free(ys);
}

static void test_readers(void) {
  const char *dir = test_tmpdir();
  char path[1024];
  /* CSV with a header, comments and mixed separators. */
  snprintf(path, sizeof path, "%s/f.csv", dir);
  FILE *f = fopen(path, "w");
  fputs("a,b,c\n# comment\n1, 2, 3\n4;5;6\n\n7\t8\t9e-1\n", f);
  fclose(f);
  double *m;
  int64_t r, c;
  duet_err err = {0};
  CHECK_MSG(duet_matrix_read(path, &m, &r, &c, &err) == 0, "%s", err.msg);
  CHECK_EQ_INT(r, 3);
  CHECK_EQ_INT(c, 3);
  CHECK_NEAR(m[5], 6, 0);
  CHECK_NEAR(m[8], 0.9, 1e-15);
  free(m);
  f = fopen(path, "w");
  fputs("1,2\n3\n", f);
  fclose(f);
  CHECK(duet_matrix_read(path, &m, &r, &c, &err) == DUET_EFORMAT);
  CHECK(strstr(err.msg, "columns") != NULL);
  /* .npy: float32 2-D in Fortran order comes back in C order. */
  snprintf(path, sizeof path, "%s/f.npy", dir);
  f = fopen(path, "wb");
  const char hdr[] = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }";
  char header[64];
  memset(header, ' ', sizeof header);
  memcpy(header, hdr, strlen(hdr));
  header[63] = '\n';
  fwrite("\x93NUMPY\x01\x00\x40\x00", 1, 10, f);
  fwrite(header, 1, 64, f);
  float col_major[6] = {1, 4, 2, 5, 3, 6};
  fwrite(col_major, sizeof(float), 6, f);
  fclose(f);
  CHECK_MSG(duet_matrix_read(path, &m, &r, &c, &err) == 0, "%s", err.msg);
  CHECK_EQ_INT(r, 2);
  CHECK_EQ_INT(c, 3);
  for (int i = 0; i < 6; i++) CHECK_NEAR(m[i], i + 1, 0);
  free(m);
  /* Truncated data and a missing file say so. */
  f = fopen(path, "r+b");
  CHECK(ftruncate(fileno(f), 80) == 0);
  fclose(f);
  CHECK(duet_matrix_read(path, &m, &r, &c, &err) == DUET_EFORMAT);
  CHECK(strstr(err.msg, "truncated") != NULL);
  snprintf(path, sizeof path, "%s/missing.npy", dir);
  CHECK(duet_matrix_read(path, &m, &r, &c, &err) == DUET_EIO);
  CHECK(strstr(err.msg, "missing.npy") != NULL);
}

int main(void) {
  test_ssim_psnr_golden();
  test_audio_distances();
  test_frechet_kid();
  test_readers();
  return test_finish("eval_quality");
}
