/* Clip files written with the plain HDF5 API and HDF5's own filters, as h5py or another tool
 * would write them, optionally broken in one way, to test what the reader accepts and how it
 * refuses the rest. */
#ifndef DUET_TESTS_DATA_H5MAKE_H
#define DUET_TESTS_DATA_H5MAKE_H

typedef enum h5make_break {
  H5MAKE_VALID,
  H5MAKE_FORMAT_WRONG,   /* format = "not-clips" */
  H5MAKE_FORMAT_MISSING,
  H5MAKE_VERSION,        /* version = 2 */
  H5MAKE_VIDEO_FRAMES,   /* video has 2 frames, attributes say 4 */
  H5MAKE_VIDEO_TYPE,     /* video int16 */
  H5MAKE_AUDIO_TYPE,     /* audio float64 */
  H5MAKE_AUDIO_COUNT,    /* audio has one clip fewer */
  H5MAKE_CAPTION_MISSING,
  H5MAKE_CAPTION_TYPE,   /* caption int32 */
  H5MAKE_VIDEO_CONTIGUOUS,
  H5MAKE_VIDEO_CHUNKS,   /* two clips per chunk */
  H5MAKE_MASK_MISSING,   /* text_emb without text_mask */
  H5MAKE_DURATION,       /* audio_samples attribute and dataset twice the video's length */
  H5MAKE_FRAMES_TEXT,    /* frames attribute is a string */
} h5make_break;

typedef struct h5make_opts {
  h5make_break brk;
  int i16_audio;      /* int16 audio */
  int fixed_strings;  /* fixed-length captions and sources (numpy 'S' arrays in h5py) */
  int f16_text;       /* text_emb as IEEE half */
  int fletcher;       /* add the fletcher32 filter, which only HDF5 decodes */
  int no_shuffle;     /* gzip only */
} h5make_opts;

/* Writes N=3 clips of 4 frames 6x10 (clipgen content), text 5x3, 4 events. */
int h5make_write(const char *path, const h5make_opts *o);

#endif
