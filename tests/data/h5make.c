#include "h5make.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clipgen.h"

#define N 3

static void attr_int(hid_t f, const char *name, long long v) {
  hid_t s = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(f, name, H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, H5T_NATIVE_LLONG, &v);
  H5Aclose(a);
  H5Sclose(s);
}

static void attr_double(hid_t f, const char *name, double v) {
  hid_t s = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(f, name, H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
  H5Aclose(a);
  H5Sclose(s);
}

static void attr_str(hid_t f, const char *name, const char *v) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  hid_t s = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(f, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, t, &v);
  H5Aclose(a);
  H5Sclose(s);
  H5Tclose(t);
}

/* chunk_rows: 0 = contiguous; filters as h5py's compression="gzip", shuffle=True. */
static void dataset(hid_t f, const char *name, hid_t ftype, hid_t mtype, int rank,
                    const hsize_t *dims, int chunk_rows, const h5make_opts *o, int compress,
                    const void *data) {
  hid_t s = H5Screate_simple(rank, dims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (chunk_rows > 0) {
    hsize_t chunk[5];
    memcpy(chunk, dims, sizeof(hsize_t) * (size_t)rank);
    chunk[0] = (hsize_t)chunk_rows;
    H5Pset_chunk(dcpl, rank, chunk);
    if (compress) {
      if (o->fletcher) H5Pset_fletcher32(dcpl);
      if (!o->no_shuffle) H5Pset_shuffle(dcpl);
      H5Pset_deflate(dcpl, 4);
    }
  }
  hid_t d = H5Dcreate2(f, name, ftype, s, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(s);
}

static void strings(hid_t f, const char *name, char (*v)[160], const h5make_opts *o) {
  hsize_t dims[1] = {N};
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_cset(t, H5T_CSET_UTF8);
  if (o->fixed_strings) {
    /* Fixed width, padded with NULs and not terminated when full, as numpy writes them. */
    H5Tset_size(t, 160);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    dataset(f, name, t, t, 1, dims, 0, o, 0, v);
  } else {
    H5Tset_size(t, H5T_VARIABLE);
    const char *p[N];
    for (int i = 0; i < N; i++) p[i] = v[i];
    dataset(f, name, t, t, 1, dims, 0, o, 0, p);
  }
  H5Tclose(t);
}

int h5make_write(const char *path, const h5make_opts *o) {
  duet_clip_shape s = clipgen_shape(4, 6, 10, 5, 3, 4);
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) return -1;
  h5make_break b = o->brk;

  if (b == H5MAKE_FORMAT_WRONG) attr_str(f, "format", "not-clips");
  else if (b != H5MAKE_FORMAT_MISSING) attr_str(f, "format", "duet-clips");
  attr_int(f, "version", b == H5MAKE_VERSION ? 2 : 1);
  attr_double(f, "fps", s.fps);
  attr_int(f, "sample_rate", s.sample_rate);
  if (b == H5MAKE_FRAMES_TEXT) attr_str(f, "frames", "four");
  else attr_int(f, "frames", s.frames);
  attr_int(f, "height", s.height);
  attr_int(f, "width", s.width);
  int64_t samples = s.audio_samples * (b == H5MAKE_DURATION ? 2 : 1);
  attr_int(f, "audio_samples", samples);

  int frames = b == H5MAKE_VIDEO_FRAMES ? 2 : s.frames;
  size_t vn = (size_t)frames * s.height * s.width * 3;
  uint8_t *video = malloc(vn * N);
  int16_t *video16 = malloc(sizeof(int16_t) * vn * N);
  float *audio = malloc(sizeof(float) * (size_t)samples * N);
  double *audio64 = malloc(sizeof(double) * (size_t)samples * N);
  int16_t *audio16 = malloc(sizeof(int16_t) * (size_t)samples * N);
  float text[N][5][3], events[N][4];
  uint8_t mask[N][5];
  int codes[N];
  char captions[N][160], sources[N][160];
  for (int i = 0; i < N; i++) {
    for (int t = 0; t < frames; t++)
      for (int y = 0; y < s.height; y++)
        for (int x = 0; x < s.width; x++)
          for (int c = 0; c < 3; c++) {
            size_t at = (size_t)i * vn + (((size_t)t * s.height + y) * s.width + x) * 3 + c;
            video[at] = clipgen_pixel(i, t, y, x, c);
            video16[at] = video[at];
          }
    for (int64_t k = 0; k < samples; k++) {
      size_t at = (size_t)i * (size_t)samples + (size_t)k;
      audio[at] = clipgen_sample(i, k);
      audio64[at] = audio[at];
      audio16[at] = (int16_t)lrintf(audio[at] * 32768.0f);
    }
    for (int l = 0; l < 5; l++) {
      mask[i][l] = clipgen_mask(i, l, 5);
      for (int d = 0; d < 3; d++) text[i][l][d] = clipgen_text(i, l, d);
    }
    int k = clipgen_events(i, 4, events[i]);
    for (int e = k; e < 4; e++) events[i][e] = NAN;
    clipgen_caption(i, captions[i], 160);
    if (!clipgen_source(i, sources[i], 160)) sources[i][0] = '\0';
    codes[i] = i;
  }

  hsize_t vdims[5] = {N, (hsize_t)frames, (hsize_t)s.height, (hsize_t)s.width, 3};
  int vchunk = b == H5MAKE_VIDEO_CONTIGUOUS ? 0 : b == H5MAKE_VIDEO_CHUNKS ? 2 : 1;
  if (b == H5MAKE_VIDEO_TYPE)
    dataset(f, "video", H5T_STD_I16LE, H5T_NATIVE_INT16, 5, vdims, vchunk, o, 1, video16);
  else
    dataset(f, "video", H5T_STD_U8LE, H5T_NATIVE_UINT8, 5, vdims, vchunk, o, 1, video);

  hsize_t adims[2] = {b == H5MAKE_AUDIO_COUNT ? N - 1 : N, (hsize_t)samples};
  if (b == H5MAKE_AUDIO_TYPE)
    dataset(f, "audio", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, adims, 1, o, 1, audio64);
  else if (o->i16_audio)
    dataset(f, "audio", H5T_STD_I16LE, H5T_NATIVE_INT16, 2, adims, 1, o, 1, audio16);
  else
    dataset(f, "audio", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, adims, 1, o, 1, audio);

  hsize_t cdims[1] = {N};
  if (b == H5MAKE_CAPTION_TYPE)
    dataset(f, "caption", H5T_STD_I32LE, H5T_NATIVE_INT, 1, cdims, 0, o, 0, codes);
  else if (b != H5MAKE_CAPTION_MISSING)
    strings(f, "caption", captions, o);
  strings(f, "source", sources, o);

  hsize_t tdims[3] = {N, 5, 3}, mdims[2] = {N, 5}, edims[2] = {N, 4};
  hid_t half = H5Tcopy(H5T_IEEE_F32LE);
  H5Tset_fields(half, 15, 10, 5, 0, 10);
  H5Tset_size(half, 2);
  H5Tset_ebias(half, 15);
  dataset(f, "text_emb", o->f16_text ? half : H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, tdims, 1, o, 0,
          text);
  H5Tclose(half);
  if (b != H5MAKE_MASK_MISSING)
    dataset(f, "text_mask", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, mdims, 0, o, 0, mask);
  dataset(f, "events", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, edims, 0, o, 0, events);

  free(video);
  free(video16);
  free(audio);
  free(audio64);
  free(audio16);
  return H5Fclose(f) < 0 ? -1 : 0;
}
