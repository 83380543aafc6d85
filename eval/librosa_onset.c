#include "eval/librosa_onset.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/stft.h"

static double hz_to_mel(double f) {
  const double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = log(6.4) / 27.0;
  if (f >= min_log_hz) return min_log_mel + log(f / min_log_hz) / logstep;
  return f / f_sp;
}

static double mel_to_hz(double m) {
  const double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = log(6.4) / 27.0;
  if (m >= min_log_mel) return min_log_hz * exp(logstep * (m - min_log_mel));
  return f_sp * m;
}

int duet_librosa_mel(int sr, int n_fft, int n_mels, double fmin, double fmax, double **w,
                     duet_err *err) {
  *w = NULL;
  if (sr <= 0 || n_fft < 2 || n_mels < 1)
    return duet_err_set(err, DUET_EINVAL, "mel filters: bad sr %d, n_fft %d or n_mels %d", sr,
                        n_fft, n_mels);
  int nb = n_fft / 2 + 1;
  double *out = calloc((size_t)n_mels * nb, sizeof(double));
  double *mel_f = malloc(sizeof(double) * (size_t)(n_mels + 2));
  if (!out || !mel_f) {
    free(out);
    free(mel_f);
    return duet_err_set(err, DUET_ENOMEM, "mel filters: out of memory");
  }
  /* np.linspace(min_mel, max_mel, n_mels + 2) then back to Hz. */
  double lo = hz_to_mel(fmin), hi = hz_to_mel(fmax);
  int nm2 = n_mels + 2;
  double stepm = (hi - lo) / (nm2 - 1);
  for (int i = 0; i < nm2; i++) {
    double m = i == nm2 - 1 ? hi : lo + i * stepm;
    mel_f[i] = mel_to_hz(m);
  }
  for (int i = 0; i < n_mels; i++) {
    double fd0 = mel_f[i + 1] - mel_f[i], fd1 = mel_f[i + 2] - mel_f[i + 1];
    double enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
    for (int k = 0; k < nb; k++) {
      double fk = (double)k * sr / n_fft; /* np.fft.rfftfreq */
      double lower = -(mel_f[i] - fk) / fd0;
      double upper = (mel_f[i + 2] - fk) / fd1;
      double v = lower < upper ? lower : upper;
      if (v < 0) v = 0;
      /* librosa keeps the weights in float32 and scales them in place. */
      out[(size_t)i * nb + k] = (double)(float)((double)(float)v * enorm);
    }
  }
  free(mel_f);
  *w = out;
  return DUET_OK;
}

int duet_librosa_onset_strength(const float *y, int64_t n, int sr, double **env, int *n_env,
                                duet_err *err) {
  *env = NULL;
  *n_env = 0;
  const int n_fft = DUET_LIBROSA_N_FFT, hop = DUET_LIBROSA_HOP, n_mels = DUET_LIBROSA_N_MELS;
  if (n < 1) return duet_err_set(err, DUET_EINVAL, "onset strength: no audio samples");
  double *mel = NULL;
  int rc = duet_librosa_mel(sr, n_fft, n_mels, 0.0, 0.5 * sr, &mel, err);
  if (rc) return rc;
  duet_stft s;
  if ((rc = duet_stft_init(&s, n_fft, err))) {
    free(mel);
    return rc;
  }
  int64_t frames = duet_stft_frames(n, hop);
  int nb = s.n_bins;
  double *power = malloc(sizeof(double) * (size_t)nb);
  double *db = malloc(sizeof(double) * (size_t)frames * n_mels);
  double *out = calloc((size_t)frames, sizeof(double));
  if (!power || !db || !out) {
    free(mel);
    free(power);
    free(db);
    free(out);
    duet_stft_free(&s);
    return duet_err_set(err, DUET_ENOMEM, "onset strength: out of memory");
  }
  /* Each mel filter is nonzero on a short run of bins; summing only that run gives the same
   * result for a fraction of the work. */
  int *lo = malloc(sizeof(int) * 2 * n_mels);
  if (!lo) {
    free(mel);
    free(power);
    free(db);
    free(out);
    duet_stft_free(&s);
    return duet_err_set(err, DUET_ENOMEM, "onset strength: out of memory");
  }
  int *hi = lo + n_mels;
  for (int m = 0; m < n_mels; m++) {
    const double *wm = mel + (size_t)m * nb;
    lo[m] = 0;
    hi[m] = -1;
    for (int k = 0; k < nb; k++)
      if (wm[k] != 0.0) {
        if (hi[m] < 0) lo[m] = k;
        hi[m] = k;
      }
  }
  double top = -INFINITY;
  for (int64_t t = 0; t < frames; t++) {
    duet_stft_frame(&s, y, n, t * hop, power);
    for (int m = 0; m < n_mels; m++) {
      const double *wm = mel + (size_t)m * nb;
      double acc = 0.0;
      for (int k = lo[m]; k <= hi[m]; k++) acc += wm[k] * power[k];
      double v = 10.0 * log10(acc > 1e-10 ? acc : 1e-10);
      db[t * n_mels + m] = v;
      if (v > top) top = v;
    }
  }
  free(lo);
  free(power);
  free(mel);
  duet_stft_free(&s);
  double floor_db = top - 80.0;
  for (int64_t i = 0; i < frames * n_mels; i++)
    if (db[i] < floor_db) db[i] = floor_db;
  const int shift = 1 + n_fft / (2 * hop); /* lag + centring compensation */
  for (int64_t t = shift; t < frames; t++) {
    const double *b = db + (t - shift + 1) * n_mels, *a = db + (t - shift) * n_mels;
    double acc = 0.0;
    for (int m = 0; m < n_mels; m++) {
      double d = b[m] - a[m];
      acc += d > 0 ? d : 0.0;
    }
    out[t] = acc / n_mels;
  }
  free(db);
  *env = out;
  *n_env = (int)frames;
  return DUET_OK;
}

void duet_librosa_peak_pick_defaults(int sr, int hop, duet_peak_pick *p) {
  /* Python's float floor division, then np.ceil to int (a no-op on whole numbers). */
  p->pre_max = (int)floor(0.03 * sr / hop);
  p->post_max = (int)floor(0.00 * sr / hop) + 1;
  p->pre_avg = (int)floor(0.10 * sr / hop);
  p->post_avg = (int)floor(0.10 * sr / hop) + 1;
  p->wait = (int)floor(0.03 * sr / hop);
  p->delta = 0.07;
}

static double range_max(const double *x, int a, int b) {
  double m = -INFINITY;
  for (int i = a; i < b; i++)
    if (x[i] > m) m = x[i];
  return m;
}

static double range_mean(const double *x, int a, int b) {
  double s = 0.0;
  for (int i = a; i < b; i++) s += x[i];
  return b > a ? s / (b - a) : NAN;
}

int duet_librosa_peak_pick(const double *x, int n, const duet_peak_pick *p, int *peaks) {
  if (n < 1) return 0;
  int count = 0, i;
  int first = x[0] >= range_max(x, 0, p->post_max < n ? p->post_max : n) &&
              x[0] >= range_mean(x, 0, p->post_avg < n ? p->post_avg : n) + p->delta;
  if (first) {
    peaks[count++] = 0;
    i = p->wait + 1;
  } else {
    i = 1;
  }
  while (i < n) {
    int lo = i - p->pre_max > 0 ? i - p->pre_max : 0;
    int hi = i + p->post_max < n ? i + p->post_max : n;
    if (x[i] != range_max(x, lo, hi)) {
      i++;
      continue;
    }
    lo = i - p->pre_avg > 0 ? i - p->pre_avg : 0;
    hi = i + p->post_avg < n ? i + p->post_avg : n;
    if (!(x[i] >= range_mean(x, lo, hi) + p->delta)) {
      i++;
      continue;
    }
    peaks[count++] = i;
    i += p->wait + 1;
  }
  return count;
}

int duet_librosa_onset_detect(const double *env, int n, int sr, int hop, int *frames,
                              duet_err *err) {
  if (n < 1) return 0;
  double lo = INFINITY, hi = -INFINITY;
  for (int i = 0; i < n; i++) {
    if (!isfinite(env[i])) return 0;
    if (env[i] < lo) lo = env[i];
  }
  double *x = malloc(sizeof(double) * (size_t)n);
  if (!x) return duet_err_set(err, DUET_ENOMEM, "onset detect: out of memory");
  for (int i = 0; i < n; i++) {
    x[i] = env[i] - lo;
    if (x[i] > hi) hi = x[i];
  }
  if (!(hi > 0)) {
    free(x);
    return 0;
  }
  /* librosa adds the float32 `tiny` to the divisor; it changes nothing at these magnitudes. */
  for (int i = 0; i < n; i++) x[i] /= hi + FLT_MIN;
  duet_peak_pick p;
  duet_librosa_peak_pick_defaults(sr, hop, &p);
  int count = duet_librosa_peak_pick(x, n, &p, frames);
  free(x);
  return count;
}
