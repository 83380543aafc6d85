#include "eval/avalign.h"

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "eval/farneback.h"
#include "eval/librosa_onset.h"
#include "eval/resample.h"
#include "eval/sync_curves.h"

int duet_avalign_audio_onsets(const float *audio22k, int64_t samples, double **env, int *n_env,
                              double **times, int *n_times, duet_err *err) {
  *env = NULL;
  *times = NULL;
  *n_env = *n_times = 0;
  double *e = NULL;
  int ne = 0;
  int rc = duet_librosa_onset_strength(audio22k, samples, DUET_LIBROSA_SR, &e, &ne, err);
  if (rc) return rc;
  int *frames = malloc(sizeof(int) * (size_t)ne);
  double *t = malloc(sizeof(double) * (size_t)(ne > 0 ? ne : 1));
  if (!frames || !t) {
    free(e);
    free(frames);
    free(t);
    return duet_err_set(err, DUET_ENOMEM, "AV-Align: out of memory");
  }
  int n = duet_librosa_onset_detect(e, ne, DUET_LIBROSA_SR, DUET_LIBROSA_HOP, frames, err);
  if (n < 0) {
    free(e);
    free(frames);
    free(t);
    return n;
  }
  for (int i = 0; i < n; i++) t[i] = (double)frames[i] * DUET_LIBROSA_HOP / DUET_LIBROSA_SR;
  free(frames);
  *env = e;
  *n_env = ne;
  *times = t;
  *n_times = n;
  return DUET_OK;
}

/* Flow magnitudes for frames [first, last): each needs its predecessor's expansion, so a
 * range starts by expanding frame first - 1. */
static int flow_range(const uint8_t *video, int first, int last, int height, int width,
                      double *out, duet_err *err) {
  duet_farneback_params p;
  duet_farneback_defaults(&p);
  size_t npx = (size_t)height * width;
  uint8_t *grey = malloc(npx);
  float *fl = malloc(sizeof(float) * npx * 2);
  duet_farneback_frame *prev = NULL, *next = NULL;
  int rc = DUET_OK;
  if (!grey || !fl) {
    rc = duet_err_set(err, DUET_ENOMEM, "AV-Align: out of memory (%dx%d)", width, height);
    goto done;
  }
  for (int i = first - 1; i < last; i++) {
    const uint8_t *rgb = video + npx * 3 * (size_t)i;
    for (size_t j = 0; j < npx; j++)
      grey[j] = duet_luma(rgb[3 * j], rgb[3 * j + 1], rgb[3 * j + 2]);
    if ((rc = duet_farneback_prepare(grey, height, width, &p, &next, err))) goto done;
    if (prev) {
      if ((rc = duet_farneback_flow(prev, next, &p, fl, err))) goto done;
      out[i] = duet_flow_mean_magnitude(fl, height, width);
      duet_farneback_frame_free(prev);
    }
    prev = next;
    next = NULL;
  }
done:
  duet_farneback_frame_free(prev);
  duet_farneback_frame_free(next);
  free(grey);
  free(fl);
  return rc;
}

int duet_avalign_flow_curve(const uint8_t *video, int frames, int height, int width,
                            double **flow, duet_err *err) {
  *flow = NULL;
  if (frames < 2)
    return duet_err_set(err, DUET_EINVAL, "AV-Align: the video has %d frame(s), at least 2 needed",
                        frames);
  double *out = malloc(sizeof(double) * (size_t)frames);
  if (!out) return duet_err_set(err, DUET_ENOMEM, "AV-Align: out of memory");
  /* Frame pairs are independent, so threads take contiguous runs of them; each run costs one
   * extra expansion of its first frame, and results do not depend on the thread count. */
  int chunks = 1;
#ifdef _OPENMP
  chunks = omp_get_max_threads();
#endif
  if (chunks > (frames - 1) / 8) chunks = (frames - 1) / 8;
  if (chunks < 1) chunks = 1;
  int rc = DUET_OK;
  duet_err first_err = {0};
#pragma omp parallel for schedule(static, 1) num_threads(chunks) if (chunks > 1)
  for (int c = 0; c < chunks; c++) {
    int a = 1 + (int)((int64_t)(frames - 1) * c / chunks);
    int b = 1 + (int)((int64_t)(frames - 1) * (c + 1) / chunks);
    duet_err e = {0};
    int r = flow_range(video, a, b, height, width, out, &e);
    if (r) {
#pragma omp critical(duet_avalign_error)
      if (!rc) {
        rc = r;
        first_err = e;
      }
    }
  }
  if (rc) {
    free(out);
    if (err) *err = first_err;
    return rc;
  }
  out[0] = out[1];
  *flow = out;
  return DUET_OK;
}

int duet_avalign_video_peaks(const double *flow, int n, double fps, double *times) {
  int count = 0;
  for (int i = 1; i < n - 1; i++)
    if (flow[i - 1] < flow[i] && flow[i] > flow[i + 1] && flow[i] >= DUET_AVALIGN_MIN_PEAK)
      times[count++] = i / fps;
  return count;
}

double duet_avalign_iou(const double *audio, int n_audio, const double *video, int n_video,
                        double fps, int *n_matched, double *reference_score) {
  int matched = 0, ref_matched = 0;
  double tol = 1.0 / fps;
  unsigned char *used = calloc((size_t)(n_video > 0 ? n_video : 1), 1);
  for (int i = 0; i < n_audio; i++) {
    int any = 0;
    for (int j = 0; j < n_video; j++) {
      if (!(video[j] - tol < audio[i] && audio[i] < video[j] + tol)) continue;
      any = 1;
      if (used && !used[j]) {
        used[j] = 1;
        matched++;
        break;
      }
    }
    ref_matched += any;
  }
  free(used);
  if (n_matched) *n_matched = matched;
  double den = n_audio + n_video - matched, ref_den = n_audio + n_video - ref_matched;
  if (reference_score) *reference_score = ref_den > 0 ? ref_matched / ref_den : NAN;
  return den > 0 ? matched / den : NAN;
}

int duet_avalign_clip(const uint8_t *video, int frames, int height, int width, double fps,
                      const float *audio, int64_t samples, int sample_rate, duet_avalign *out,
                      duet_err *err) {
  memset(out, 0, sizeof *out);
  if (fps <= 0) return duet_err_set(err, DUET_EINVAL, "AV-Align: bad frame rate %g", fps);
  if (!audio || samples < 1) return duet_err_set(err, DUET_EINVAL, "AV-Align: no audio");
  float *a22 = NULL;
  int64_t n22 = 0;
  int rc = duet_resample(audio, samples, sample_rate, DUET_LIBROSA_SR, &a22, &n22, err);
  if (rc) return rc;
  rc = duet_avalign_audio_onsets(a22, n22, &out->onset_env, &out->n_env, &out->audio_peaks,
                                 &out->n_audio, err);
  free(a22);
  if (!rc) rc = duet_avalign_flow_curve(video, frames, height, width, &out->flow, err);
  if (rc) {
    duet_avalign_free(out);
    return rc;
  }
  out->n_flow = frames;
  out->video_peaks = malloc(sizeof(double) * (size_t)frames);
  if (!out->video_peaks) {
    duet_avalign_free(out);
    return duet_err_set(err, DUET_ENOMEM, "AV-Align: out of memory");
  }
  out->n_video = duet_avalign_video_peaks(out->flow, frames, fps, out->video_peaks);
  out->score = duet_avalign_iou(out->audio_peaks, out->n_audio, out->video_peaks, out->n_video,
                                fps, &out->n_matched, &out->score_reference);
  return DUET_OK;
}

void duet_avalign_free(duet_avalign *a) {
  free(a->audio_peaks);
  free(a->video_peaks);
  free(a->onset_env);
  free(a->flow);
  memset(a, 0, sizeof *a);
}
