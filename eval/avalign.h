/* AV-Align (Yariv et al., "Diverse and Aligned Audio-to-Video Generation via Text-to-Video
 * Model Adaptation"): audio onsets (librosa at 22050 Hz, hop 512) against peaks of the mean
 * Farneback flow magnitude, matched within one video frame, scored as intersection over union.
 * Parameters are the reference script's, so scores compare with papers that use it. */
#ifndef DUET_EVAL_AVALIGN_H
#define DUET_EVAL_AVALIGN_H

#include <stdint.h>

#include "core/error.h"

/* A flow peak must reach this mean magnitude (pixels per frame), as in the reference. */
#define DUET_AVALIGN_MIN_PEAK 0.1

typedef struct duet_avalign {
  double score;      /* matched / (audio + video - matched), one-to-one; NaN with no peaks */
  double score_reference; /* the reference script's count, where one video peak may match
                             several onsets (it can exceed 1); NaN with no peaks */
  int n_audio, n_video, n_matched;
  double *audio_peaks;    /* [n_audio] seconds: onset frame * 512 / 22050 */
  double *video_peaks;    /* [n_video] seconds: frame / fps */
  double *onset_env;      /* [n_env] librosa onset strength at 22050 Hz, hop 512 */
  int n_env;
  double *flow;           /* [n_flow] mean flow magnitude per frame, px; flow[0] = flow[1] */
  int n_flow;
} duet_avalign;

/* Whole metric on a clip: video [frames, height, width, 3] RGB, mono audio at any rate
 * (resampled to 22050 Hz first, as librosa.load does). */
int duet_avalign_clip(const uint8_t *video, int frames, int height, int width, double fps,
                      const float *audio, int64_t samples, int sample_rate, duet_avalign *out,
                      duet_err *err);
void duet_avalign_free(duet_avalign *a);

/* Its parts, for tests and for callers that already hold one side. */

/* Onset strength and onset times of audio at 22050 Hz. *env and *times are malloc'd. */
int duet_avalign_audio_onsets(const float *audio22k, int64_t samples, double **env, int *n_env,
                              double **times, int *n_times, duet_err *err);

/* Mean Farneback flow magnitude between consecutive grey frames (BT.601 luma as cv2), the
 * first value repeated: flow[0] = flow[1] = |flow(frame 0 -> 1)|. At least 2 frames. Runs of
 * frame pairs go to OpenMP threads when there are enough frames; the result is the same for
 * any thread count. */
int duet_avalign_flow_curve(const uint8_t *video, int frames, int height, int width,
                            double **flow, duet_err *err);

/* Strict local maxima of flow[1..n-2] that reach DUET_AVALIGN_MIN_PEAK, as times i / fps.
 * times needs room for n values; returns the count. */
int duet_avalign_video_peaks(const double *flow, int n, double fps, double *times);

/* IoU of two peak lists: an audio peak matches an unused video peak strictly within 1 / fps
 * (first in list order). reference_score, when not NULL, gets the reference's variant. */
double duet_avalign_iou(const double *audio, int n_audio, const double *video, int n_video,
                        double fps, int *n_matched, double *reference_score);

#endif
