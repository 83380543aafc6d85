/* Audio onsets exactly as librosa (0.10, 0.11) computes them with its defaults, which is what
 * AV-Align's reference implementation calls: librosa.onset.onset_strength(y=y, sr=sr) and
 * librosa.onset.onset_detect(onset_envelope=env, sr=sr). */
#ifndef DUET_EVAL_LIBROSA_ONSET_H
#define DUET_EVAL_LIBROSA_ONSET_H

#include <stdint.h>

#include "core/error.h"

enum {
  DUET_LIBROSA_SR = 22050, /* librosa.load's default rate */
  DUET_LIBROSA_N_FFT = 2048,
  DUET_LIBROSA_HOP = 512,
  DUET_LIBROSA_N_MELS = 128,
};

/* Slaney-style mel filterbank (librosa.filters.mel, htk=False, norm="slaney"), rounded to
 * float32 as librosa stores it: w[m * (n_fft / 2 + 1) + k]. *w is malloc'd. */
int duet_librosa_mel(int sr, int n_fft, int n_mels, double fmin, double fmax, double **w,
                     duet_err *err);

/* onset_strength with every default: power mel spectrogram (n_fft 2048, hop 512, 128 mels,
 * fmax sr/2, centred, zero padded), power_to_db (amin 1e-10, top_db 80), flux with lag 1
 * rectified at 0, mean over mels, shifted right by lag + n_fft / (2 hop) = 3 frames.
 * *env (malloc'd) has 1 + n / 512 values, one per frame of 512 samples. */
int duet_librosa_onset_strength(const float *y, int64_t n, int sr, double **env, int *n_env,
                                duet_err *err);

typedef struct duet_peak_pick {
  int pre_max, post_max, pre_avg, post_avg, wait;
  double delta;
} duet_peak_pick;

/* onset_detect's defaults: 30 ms, 0 ms (+1), 100 ms, 100 ms (+1) and 30 ms converted to frames
 * with floor division as librosa does (at 22050 Hz / 512: 1, 1, 4, 5, 1), delta 0.07. */
void duet_librosa_peak_pick_defaults(int sr, int hop, duet_peak_pick *p);

/* librosa.util.peak_pick: writes the indices of peaks of x[0..n) into peaks (room for n) and
 * returns how many. */
int duet_librosa_peak_pick(const double *x, int n, const duet_peak_pick *p, int *peaks);

/* onset_detect(onset_envelope=env, sr=sr, hop_length=hop): the envelope is shifted to a
 * minimum of 0 and scaled to a maximum of 1, then peak-picked with the defaults. frames gets
 * room for n indices; returns the count (0 for a flat or non-finite envelope, as librosa) or
 * a negative DUET_E* code. */
int duet_librosa_onset_detect(const double *env, int n, int sr, int hop, int *frames,
                              duet_err *err);

#endif
