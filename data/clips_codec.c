#include "data/clips_codec.h"

#include <limits.h>
#include <string.h>

/* The element sizes clips use get loops the compiler can unroll; others take the general one. */
void duet_shuffle(const void *src, void *dst, size_t nbytes, size_t elem) {
  const uint8_t *s = src;
  uint8_t *d = dst;
  size_t n = elem > 1 ? nbytes / elem : 0;
  if (n <= 1) {
    memcpy(d, s, nbytes);
    return;
  }
  if (elem == 4) {
    for (size_t i = 0; i < n; i++) {
      d[i] = s[4 * i];
      d[n + i] = s[4 * i + 1];
      d[2 * n + i] = s[4 * i + 2];
      d[3 * n + i] = s[4 * i + 3];
    }
  } else if (elem == 2) {
    for (size_t i = 0; i < n; i++) {
      d[i] = s[2 * i];
      d[n + i] = s[2 * i + 1];
    }
  } else {
    for (size_t j = 0; j < elem; j++)
      for (size_t i = 0; i < n; i++) d[j * n + i] = s[i * elem + j];
  }
  memcpy(d + n * elem, s + n * elem, nbytes - n * elem);
}

void duet_unshuffle(const void *src, void *dst, size_t nbytes, size_t elem) {
  const uint8_t *s = src;
  uint8_t *d = dst;
  size_t n = elem > 1 ? nbytes / elem : 0;
  if (n <= 1) {
    memcpy(d, s, nbytes);
    return;
  }
  if (elem == 4) {
    for (size_t i = 0; i < n; i++) {
      d[4 * i] = s[i];
      d[4 * i + 1] = s[n + i];
      d[4 * i + 2] = s[2 * n + i];
      d[4 * i + 3] = s[3 * n + i];
    }
  } else if (elem == 2) {
    for (size_t i = 0; i < n; i++) {
      d[2 * i] = s[i];
      d[2 * i + 1] = s[n + i];
    }
  } else {
    for (size_t j = 0; j < elem; j++)
      for (size_t i = 0; i < n; i++) d[i * elem + j] = s[j * n + i];
  }
  memcpy(d + n * elem, s + n * elem, nbytes - n * elem);
}

size_t duet_deflate_bound(size_t n) {
  /* zlib's compressBound formula, computed in size_t so that it holds past 4 GiB. */
  return n + (n >> 12) + (n >> 14) + (n >> 25) + 13 + 64;
}

int duet_deflater_init(duet_deflater *d, int level, duet_err *err) {
  memset(d, 0, sizeof *d);
  int rc = deflateInit(&d->zs, level);
  if (rc != Z_OK)
    return duet_err_set(err, rc == Z_MEM_ERROR ? DUET_ENOMEM : DUET_EINVAL,
                        "zlib deflateInit failed (level %d)", level);
  d->ready = 1;
  d->level = level;
  d->strategy = Z_DEFAULT_STRATEGY;
  return 0;
}

int duet_deflater_run(duet_deflater *d, int kind, const void *src, size_t n, void *dst,
                      size_t cap, size_t *out_n, duet_err *err) {
  if (n > UINT_MAX || cap > UINT_MAX)
    return duet_err_set(err, DUET_EINVAL, "chunk of %zu bytes is too large to deflate", n);
  deflateReset(&d->zs);
  int strategy = kind == DUET_DEFLATE_SIGNAL ? Z_RLE : Z_DEFAULT_STRATEGY;
  /* Before any input, changing parameters only records them. */
  if (strategy != d->strategy && deflateParams(&d->zs, d->level, strategy) != Z_OK)
    return duet_err_set(err, DUET_EINVAL, "zlib deflateParams failed");
  d->strategy = strategy;
  d->zs.next_in = (Bytef *)(uintptr_t)src;
  d->zs.avail_in = (uInt)n;
  d->zs.next_out = dst;
  d->zs.avail_out = (uInt)cap;
  int rc = deflate(&d->zs, Z_FINISH);
  if (rc != Z_STREAM_END)
    return duet_err_set(err, DUET_EINVAL, "zlib deflate failed (%d)", rc);
  *out_n = cap - d->zs.avail_out;
  return 0;
}

void duet_deflater_free(duet_deflater *d) {
  if (d->ready) deflateEnd(&d->zs);
  d->ready = 0;
}

int duet_inflater_init(duet_inflater *d, duet_err *err) {
  memset(d, 0, sizeof *d);
  if (inflateInit(&d->zs) != Z_OK) return duet_err_set(err, DUET_ENOMEM, "zlib inflateInit failed");
  d->ready = 1;
  return 0;
}

void duet_inflater_free(duet_inflater *d) {
  if (d->ready) inflateEnd(&d->zs);
  d->ready = 0;
}

static int inflate_exact(duet_inflater *inf, const void *in, size_t in_n, void *out, size_t out_n,
                         duet_err *err) {
  if (in_n > UINT_MAX || out_n > UINT_MAX)
    return duet_err_set(err, DUET_EFORMAT, "chunk of %zu bytes is too large to inflate", out_n);
  inflateReset(&inf->zs);
  inf->zs.next_in = (Bytef *)(uintptr_t)in;
  inf->zs.avail_in = (uInt)in_n;
  inf->zs.next_out = out;
  inf->zs.avail_out = (uInt)out_n;
  int rc = inflate(&inf->zs, Z_FINISH);
  if (rc != Z_STREAM_END || inf->zs.avail_out != 0)
    return duet_err_set(err, DUET_EFORMAT, "compressed chunk is corrupt (%s)",
                        rc == Z_STREAM_END ? "decodes to fewer bytes than a clip"
                        : rc == Z_BUF_ERROR ? "decodes to more bytes than a clip"
                        : inf->zs.msg       ? inf->zs.msg
                                            : "zlib error");
  return 0;
}

int duet_chunk_decode(duet_inflater *inf, const duet_chunk_pipeline *p, uint32_t skip_mask,
                      size_t elem, const void *in, size_t in_n, void *out, size_t out_n,
                      void *scratch, duet_err *err) {
  int active[2], k = 0;
  for (int i = p->n - 1; i >= 0; i--) {
    /* Shuffling one-byte elements changes nothing; skipping it saves a copy of every frame. */
    if (skip_mask & (1u << i) || (p->kind[i] == DUET_FILTER_SHUFFLE && elem <= 1)) continue;
    if (k == 2) return duet_err_set(err, DUET_EFORMAT, "unsupported filter pipeline");
    active[k++] = p->kind[i];
  }

  const void *src = in;
  size_t src_n = in_n;
  for (int s = 0; s < k; s++) {
    /* With two stages the first lands in scratch, so the last always lands in out. */
    void *dst = (s == k - 1) ? out : scratch;
    if (active[s] == DUET_FILTER_DEFLATE) {
      int rc = inflate_exact(inf, src, src_n, dst, out_n, err);
      if (rc) return rc;
    } else {
      if (src_n != out_n)
        return duet_err_set(err, DUET_EFORMAT, "stored chunk has %zu bytes, expected %zu", src_n,
                            out_n);
      duet_unshuffle(src, dst, out_n, elem);
    }
    src = dst;
    src_n = out_n;
  }
  if (k == 0) {
    if (in_n != out_n)
      return duet_err_set(err, DUET_EFORMAT, "stored chunk has %zu bytes, expected %zu", in_n,
                          out_n);
    memcpy(out, in, out_n);
  }
  return 0;
}
