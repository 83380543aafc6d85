#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/quality.h"
#include "eval/stft.h"

int duet_log_spectral_distance(const float *ref, const float *test, int64_t n, double *lsd,
                               duet_err *err) {
  *lsd = NAN;
  if (n < 1) return duet_err_set(err, DUET_EINVAL, "log-spectral distance: no samples");
  const int n_fft = 2048, hop = 512;
  const double eps = 1e-10;
  duet_stft s;
  int rc = duet_stft_init(&s, n_fft, err);
  if (rc) return rc;
  double *pr = malloc(sizeof(double) * (size_t)s.n_bins * 2);
  if (!pr) {
    duet_stft_free(&s);
    return duet_err_set(err, DUET_ENOMEM, "log-spectral distance: out of memory");
  }
  double *pt = pr + s.n_bins;
  int64_t frames = duet_stft_frames(n, hop);
  double total = 0.0;
  for (int64_t t = 0; t < frames; t++) {
    duet_stft_frame(&s, ref, n, t * hop, pr);
    duet_stft_frame(&s, test, n, t * hop, pt);
    double acc = 0.0;
    for (int k = 0; k < s.n_bins; k++) {
      double d = 10.0 * log10(pr[k] + eps) - 10.0 * log10(pt[k] + eps);
      acc += d * d;
    }
    total += sqrt(acc / s.n_bins);
  }
  free(pr);
  duet_stft_free(&s);
  *lsd = total / (double)frames;
  return DUET_OK;
}

int duet_mrstft_distance(const float *ref, const float *test, int64_t n, duet_mrstft *out,
                         duet_err *err) {
  memset(out, 0, sizeof *out);
  if (n < 1) return duet_err_set(err, DUET_EINVAL, "MR-STFT distance: no samples");
  static const int sizes[DUET_MRSTFT_RESOLUTIONS] = {512, 1024, 2048};
  double sc_sum = 0.0, mag_sum = 0.0;
  for (int r = 0; r < DUET_MRSTFT_RESOLUTIONS; r++) {
    int n_fft = sizes[r], hop = n_fft / 4;
    duet_stft s;
    int rc = duet_stft_init(&s, n_fft, err);
    if (rc) return rc;
    double *pr = malloc(sizeof(double) * (size_t)s.n_bins * 2);
    if (!pr) {
      duet_stft_free(&s);
      return duet_err_set(err, DUET_ENOMEM, "MR-STFT distance: out of memory");
    }
    double *pt = pr + s.n_bins;
    int64_t frames = duet_stft_frames(n, hop);
    double diff2 = 0.0, ref2 = 0.0, logl1 = 0.0;
    for (int64_t t = 0; t < frames; t++) {
      duet_stft_frame(&s, ref, n, t * hop, pr);
      duet_stft_frame(&s, test, n, t * hop, pt);
      for (int k = 0; k < s.n_bins; k++) {
        double mr = sqrt(pr[k] > 1e-7 ? pr[k] : 1e-7), mt = sqrt(pt[k] > 1e-7 ? pt[k] : 1e-7);
        diff2 += (mt - mr) * (mt - mr);
        ref2 += mr * mr;
        logl1 += fabs(log(mt) - log(mr));
      }
    }
    out->n_fft[r] = n_fft;
    out->sc[r] = ref2 > 0 ? sqrt(diff2) / sqrt(ref2) : 0.0;
    out->mag[r] = logl1 / ((double)frames * s.n_bins);
    sc_sum += out->sc[r];
    mag_sum += out->mag[r];
    free(pr);
    duet_stft_free(&s);
  }
  out->total = (sc_sum + mag_sum) / DUET_MRSTFT_RESOLUTIONS;
  return DUET_OK;
}
