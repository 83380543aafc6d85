/* The video branch's codec: frames <-> the latent grid the video branch patchifies.
 *
 * Today the only kind is PIXELS, the identity up to scaling: u8 RGB [T, H, W, 3] <-> f32 in
 * [-1, 1] of the same shape, x / 127.5 - 1, decoded with rounding and clamping, so a u8 clip
 * round-trips exactly. The interface is the one a learned autoencoder needs too: a latent has
 * `channels` values per position on a grid downsampled by (t_down, h_down, w_down), channels
 * last, and callers size their buffers through duet_video_codec_latent_shape rather than by
 * assuming the latent looks like the frames.
 *
 * A codec is read-only once initialised; one may serve any number of threads at once. */
#ifndef DUET_MODEL_VIDEO_CODEC_H
#define DUET_MODEL_VIDEO_CODEC_H

#include <stdint.h>

#include "core/error.h"

typedef enum duet_video_codec_kind {
  DUET_VIDEO_CODEC_PIXELS = 0, /* u8 / 127.5 - 1; channels 3, no downsampling */
} duet_video_codec_kind;

typedef struct duet_video_codec {
  duet_video_codec_kind kind;
  int channels; /* latent values per grid position */
  int t_down;   /* frames per latent step in time */
  int h_down;   /* pixels per latent row */
  int w_down;   /* pixels per latent column */
} duet_video_codec;

/* Fills the codec for a kind; DUET_EINVAL for an unknown one. */
int duet_video_codec_init(duet_video_codec *vc, duet_video_codec_kind kind, duet_err *err);
/* Releases what init acquired (nothing for PIXELS; a learned codec's weights later). */
void duet_video_codec_free(duet_video_codec *vc);

/* The latent grid of a clip of frames x height x width: [*lt, *lh, *lw, channels].
 * DUET_EINVAL when a size is not positive or not a multiple of its downsampling factor. */
int duet_video_codec_latent_shape(const duet_video_codec *vc, int64_t frames, int64_t height,
                                  int64_t width, int64_t *lt, int64_t *lh, int64_t *lw,
                                  duet_err *err);

/* rgb u8 [frames, height, width, 3] -> latent f32 [lt, lh, lw, channels]. */
int duet_video_codec_encode(const duet_video_codec *vc, const uint8_t *rgb, int64_t frames,
                            int64_t height, int64_t width, float *latent, duet_err *err);

/* latent f32 [lt, lh, lw, channels] -> rgb u8 [frames, height, width, 3], where frames, height
 * and width are the output's size (the latent's follows from them). Values outside the latent's
 * range are clamped; a NaN is DUET_ENUMERIC (the output is then incomplete). */
int duet_video_codec_decode(const duet_video_codec *vc, const float *latent, int64_t frames,
                            int64_t height, int64_t width, uint8_t *rgb, duet_err *err);

#endif
