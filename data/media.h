/* Media files through FFmpeg's libav*: decode any container FFmpeg reads into RGB frames and
 * mono float audio (resampled, scaled, centre-cropped on request), and encode an MP4 with
 * H.264 video and AAC audio. Built when DUET_FFMPEG is on (DUET_HAVE_FFMPEG defined). */
#ifndef DUET_DATA_MEDIA_H
#define DUET_DATA_MEDIA_H

#include <stdint.h>

#include "core/error.h"

typedef struct duet_media_opts {
  int width, height;  /* output size; 0,0 = the stream's own. Both set: scale and centre-crop */
  double fps;         /* output frame rate; 0 = the stream's own (constant-rate assumed) */
  int sample_rate;    /* output audio rate; 0 = the stream's own */
  double start;       /* seconds from the start of the file */
  double duration;    /* seconds to read; 0 = to the end */
  int need_audio;     /* 1: a file without an audio stream is an error */
} duet_media_opts;

typedef struct duet_media {
  int frames, height, width;
  double fps;
  uint8_t *video;      /* [frames, height, width, 3] RGB24, malloc'd */
  int has_audio;
  int sample_rate;
  int64_t audio_samples;
  float *audio;        /* [audio_samples] mono, malloc'd (NULL when has_audio is 0) */
  double duration;     /* seconds, as the container reports it */
} duet_media;

int duet_media_read(const char *path, const duet_media_opts *opts, duet_media *out,
                    duet_err *err);
void duet_media_free(duet_media *m);

/* Writes an MP4 (H.264 yuv420p + AAC) atomically: path + ".tmp", then rename. audio may be
 * NULL for a video without sound; samples outside [-1, 1] are clipped and NaN is silence. */
int duet_media_write_mp4(const char *path, const uint8_t *video, int frames, int height,
                         int width, double fps, const float *audio, int64_t audio_samples,
                         int sample_rate, duet_err *err);

/* Writes mono 16-bit PCM WAV atomically. */
int duet_media_write_wav(const char *path, const float *audio, int64_t samples, int sample_rate,
                         duet_err *err);

#endif
