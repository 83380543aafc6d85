/* Rotary positions of the two branches on one time scale.
 *
 * Every head's rotation pairs begin with rope_time_pairs pairs on the shared time axis, whose
 * position is seconds * rope_time_scale for video and audio alike: a video token and an audio
 * token at the same instant get the same rotation on those pairs, in self- and in
 * cross-attention, which is what lets attention find "the sound of this frame". The remaining
 * pairs belong to the branch: video h and w (in patches), audio its own fine time index (in
 * audio tokens). Cross-attention uses the time axis alone (the other positions are 0).
 * References sit at negative times, before the clip. */
#ifndef DUET_MODEL_POSITIONS_H
#define DUET_MODEL_POSITIONS_H

#include "core/ops.h"
#include "model/config.h"

typedef struct duet_branch_positions {
  duet_rope_spec self_spec, cross_spec;
  int tokens;        /* reference tokens + clip tokens */
  int ref_tokens;
  int self_axes;
  float *self_pos;   /* [tokens, self_axes] */
  float *times;      /* [tokens]: the shared time axis (seconds * rope_time_scale) */
} duet_branch_positions;

typedef struct duet_positions {
  duet_branch_positions video, audio;
} duet_positions;

int duet_positions_make(duet_positions *p, const duet_model_config *cfg, duet_err *err);
void duet_positions_free(duet_positions *p);

/* Time in seconds of the centre of video token i / audio token i (negative for references). */
double duet_video_token_time(const duet_model_config *cfg, int time_index);
double duet_audio_token_time(const duet_model_config *cfg, int time_index);

/* A step tensor [n, axes] of rows [first, first + n) of a position table. */
duet_tensor *duet_positions_tensor(duet_graph *g, const float *table, int axes, int first, int n);
/* Cross-attention positions [n, axes]: the time of tokens [first, first + n), other axes 0.
 * The axes are those of the attending branch's cross spec, whichever branch the tokens are
 * from, so both sides of a cross-attention rotate with one spec. */
duet_tensor *duet_positions_cross_tensor(duet_graph *g, const float *times, int first, int n, int axes);

#endif
