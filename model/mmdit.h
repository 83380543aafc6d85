/* The dual-stream MMDiT: a video branch and an audio branch of the same design that attend
 * to each other in every block, with one shared text encoder.
 *
 * Per dual-stream block (fusion = cross), for each branch X in (video, audio):
 *   joint self-attention over [X tokens; X's text tokens], with separate adaLN-Zero
 *   modulation, QKV (QK RMS-norm) and MLP weights for the branch tokens and for its text
 *   tokens (conditioned on X's flow time and the pooled text);
 * then audio cross-attends to video, and video cross-attends to the updated audio;
 * with model.aligned_width > 0, then a time-aligned exchange (duet_aligned_weights below).
 * fusion = joint replaces both by one attention over text, video and audio together.
 * Optional single-stream tail blocks share weights over [video; audio] tokens and
 * cross-attend to the text.
 *
 * Inputs are channel concatenations [x_t, condition, mask] for both branches, so one network
 * serves text-to-AV, image-to-AV, extension, inpainting, v2a and a2v. */
#ifndef DUET_MODEL_MMDIT_H
#define DUET_MODEL_MMDIT_H

#include "model/config.h"
#include "model/layers.h"
#include "model/positions.h"
#include "model/text_encoder.h"

#define DUET_MMDIT_MAX_BLOCKS 64

/* One stream's weights inside a joint attention block. A pre-only stream (the text streams of
 * the last dual-stream block, whose outputs nothing reads) only offers keys and values: its
 * qkv layer gives k and v, it has no q-norm, output projection or MLP, and its modulation
 * gives only shift1 and scale1. */
typedef struct duet_stream_weights {
  int pre_only;
  duet_linear_layer ada; /* cond -> shift1, scale1, gate1, shift2, scale2, gate2 (zero init) */
  duet_linear_layer qkv;
  duet_tensor *q_norm, *k_norm; /* [Dh] */
  duet_linear_layer proj;
  duet_mlp mlp;
} duet_stream_weights;

/* X attends to Y (different widths allowed: keys and values are projected into X's width). */
typedef struct duet_cross_weights {
  duet_linear_layer ada; /* cond_X -> shift, scale, gate (zero init) */
  duet_linear_layer q, kv;
  duet_tensor *q_norm, *k_norm;
  duet_linear_layer proj;
} duet_cross_weights;

/* The time-aligned exchange (model.aligned_width > 0): with S video tokens and R audio tokens
 * per video token time step, video tokens -> aligned_width features each; a step's S of them
 * side by side -> that step's R audio tokens (added to them); a step's R audio tokens side by
 * side -> one vector added to each of the step's video tokens. Both sides read LN(tokens);
 * the two outputs start at zero, so the exchange starts as a no-op. */
typedef struct duet_aligned_weights {
  duet_linear_layer video_down;       /* width_video -> aligned_width */
  duet_linear_layer audio_from_video; /* S * aligned_width -> R * width_audio (zero init) */
  duet_linear_layer video_from_audio; /* R * width_audio -> width_video (zero init) */
} duet_aligned_weights;

typedef struct duet_dual_block {
  duet_stream_weights video, video_text, audio, audio_text; /* cross fusion */
  duet_stream_weights text;                                 /* joint fusion: shared text stream */
  duet_cross_weights audio_from_video, video_from_audio;    /* cross fusion */
  duet_aligned_weights aligned;                             /* cross fusion, aligned_width > 0 */
} duet_dual_block;

typedef struct duet_single_block {
  duet_stream_weights av;
  duet_cross_weights from_text;
} duet_single_block;

typedef struct duet_branch_io {
  duet_linear_layer embed;     /* patch features [x_t, cond, mask] -> width */
  duet_linear_layer ref_embed; /* reference patches -> width (when references are configured) */
  duet_linear_layer text_in;   /* text width -> branch width (cross fusion) */
  duet_linear_layer t_mlp1, t_mlp2; /* timestep embedding MLP */
  duet_linear_layer pooled_in;      /* pooled text -> width */
  duet_linear_layer final_ada;      /* cond -> shift, scale (zero init) */
  duet_linear_layer final_out;      /* width -> patch features (zero init) */
} duet_branch_io;

typedef struct duet_mmdit {
  duet_model_config cfg;
  duet_param_set *params;
  duet_layer_builder builder;
  duet_positions pos;
  duet_text_encoder text;
  duet_branch_io video, audio;
  duet_linear_layer text_single_in; /* text -> width for single-stream cross-attention */
  duet_dual_block blocks[DUET_MMDIT_MAX_BLOCKS];
  duet_single_block singles[DUET_MMDIT_MAX_BLOCKS];
} duet_mmdit;

/* What one forward pass sees. Tensors are f32 (or f64 for gradient checks), except text ids
 * (i32) and masks of the text (u8). */
typedef struct duet_mmdit_inputs {
  duet_tensor *video_xt, *video_cond, *video_mask; /* [B,T,H,W,C], [B,T,H,W,C], [B,T,H,W,1] */
  duet_tensor *audio_xt, *audio_cond, *audio_mask; /* [B,F,M], [B,F,M], [B,F,1] */
  duet_tensor *t_video, *t_audio;                  /* [B] flow times in [0, 1] */
  duet_tensor *text, *text_mask;                   /* [B,L] i32 or [B,L,D] f32; [B,L] u8 */
  duet_tensor *ref_video;                          /* optional [B,Tr,H,W,C] */
  duet_tensor *ref_audio;                          /* optional [B,Fr,M] */
} duet_mmdit_inputs;

typedef struct duet_mmdit_outputs {
  duet_tensor *video_v; /* predicted velocity [B,T,H,W,C] (with a clean prediction: the velocity it implies) */
  duet_tensor *audio_v; /* [B,F,M] */
} duet_mmdit_outputs;

/* Registers every parameter in ps (which the caller owns) and initialises them from seed. */
int duet_mmdit_create(duet_mmdit **out, const duet_model_config *cfg, duet_param_set *ps, uint64_t seed,
                      duet_err *err);
void duet_mmdit_free(duet_mmdit *m);

/* Builds the forward pass in g. Returns DUET_OK or the graph's error (bad shapes name the
 * input). */
int duet_mmdit_forward(duet_mmdit *m, duet_graph *g, const duet_mmdit_inputs *in, duet_mmdit_outputs *out,
                       duet_err *err);

#endif
