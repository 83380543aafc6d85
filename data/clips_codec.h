/* Private to data/: the exact bytes HDF5's shuffle and deflate filters produce and accept,
 * computed outside HDF5. The writer compresses chunks on worker threads and stores them with
 * direct chunk writes; the loader reads stored chunks raw and decodes them off the I/O thread.
 * Either way the file stays an ordinary HDF5 file that H5Dread (and h5py) decode. */
#ifndef DUET_DATA_CLIPS_CODEC_H
#define DUET_DATA_CLIPS_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

#include "core/error.h"

enum { DUET_FILTER_SHUFFLE = 1, DUET_FILTER_DEFLATE = 2 };

/* A dataset's filter pipeline in write order, limited to the filters decoded here. */
typedef struct duet_chunk_pipeline {
  int n;
  int kind[4];
} duet_chunk_pipeline;

/* HDF5's byte shuffle: byte j of element i goes to j * (nbytes / elem) + i; a tail shorter
 * than one element is copied as is. Size-1 elements are a plain copy. */
void duet_shuffle(const void *src, void *dst, size_t nbytes, size_t elem);
void duet_unshuffle(const void *src, void *dst, size_t nbytes, size_t elem);

/* Upper bound of a zlib stream for n input bytes. */
size_t duet_deflate_bound(size_t n);

/* A z_stream kept across chunks so compressing one allocates nothing. */
typedef struct duet_deflater {
  z_stream zs;
  int ready, level, strategy;
} duet_deflater;

/* What is being compressed decides how deflate searches. Pictures repeat at long distances,
 * so they get the full match search. In shuffled audio the mantissa bytes are noise and
 * matches are all but limited to runs (silence, exponent bytes), so run-length matching keeps
 * the same ratio at about twice the speed. */
enum { DUET_DEFLATE_PICTURE = 0, DUET_DEFLATE_SIGNAL = 1 };

int duet_deflater_init(duet_deflater *d, int level, duet_err *err);
/* Compresses src into dst (capacity cap >= duet_deflate_bound(n)) as one zlib stream. */
int duet_deflater_run(duet_deflater *d, int kind, const void *src, size_t n, void *dst,
                      size_t cap, size_t *out_n, duet_err *err);
void duet_deflater_free(duet_deflater *d);

typedef struct duet_inflater {
  z_stream zs;
  int ready;
} duet_inflater;

int duet_inflater_init(duet_inflater *d, duet_err *err);
void duet_inflater_free(duet_inflater *d);

/* Undoes the pipeline on one stored chunk. `skip_mask` is the chunk's filter mask (bit i set:
 * filter i was not applied). The result, exactly `out_n` bytes, lands in `out`; `scratch`
 * (out_n bytes) holds the intermediate when two filters apply. Returns DUET_EFORMAT when the
 * chunk does not decode to out_n bytes. */
int duet_chunk_decode(duet_inflater *inf, const duet_chunk_pipeline *p, uint32_t skip_mask,
                      size_t elem, const void *in, size_t in_n, void *out, size_t out_n,
                      void *scratch, duet_err *err);

#endif
