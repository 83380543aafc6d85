#include <string.h>

#include "core/cpu/cpu_kernels.h"

/* Rows of a map: every dim but the innermost, flattened. The inner dim is walked by the
 * innermost loop, so each row costs one index decomposition, not each element. */
static int64_t map_rows(const duet_strided *m) {
  int64_t rows = 1;
  for (int k = 0; k < m->ndim - 1; k++) rows *= m->shape[k];
  return rows;
}

static void map_row_offsets(const duet_strided *m, int64_t r, int64_t *so, int64_t *dof) {
  int64_t s = m->src_offset, d = m->dst_offset;
  for (int k = m->ndim - 2; k >= 0; k--) {
    int64_t i = r % m->shape[k];
    r /= m->shape[k];
    s += i * m->src_stride[k];
    d += i * m->dst_stride[k];
  }
  *so = s;
  *dof = d;
}

/* Moves elements as ES-byte patterns: memcpy of a constant size compiles to one load and one
 * store and, unlike a cast to an integer type, is valid for any dtype under strict aliasing. */
#define DEFINE_COPY(ES)                                                                   \
  static void copy_##ES(const unsigned char *src, unsigned char *dst,                     \
                        const duet_strided *m) {                                          \
    if (m->ndim == 0) {                                                                   \
      memcpy(dst + m->dst_offset * ES, src + m->src_offset * ES, ES);                     \
      return;                                                                             \
    }                                                                                     \
    int64_t inner = m->shape[m->ndim - 1], rows = map_rows(m);                            \
    int64_t ss = m->src_stride[m->ndim - 1], ds = m->dst_stride[m->ndim - 1];             \
    _Pragma("omp parallel for schedule(static) if (rows * inner >= DUET_CPU_PARALLEL_MIN && rows > 1)") \
    for (int64_t r = 0; r < rows; r++) {                                                  \
      int64_t so, dof;                                                                    \
      map_row_offsets(m, r, &so, &dof);                                                   \
      const unsigned char *s = src + so * ES;                                             \
      unsigned char *d = dst + dof * ES;                                                  \
      if (ss == 1 && ds == 1) {                                                           \
        memcpy(d, s, (size_t)inner * ES);                                                 \
      } else {                                                                            \
        for (int64_t j = 0; j < inner; j++) memcpy(d + j * ds * ES, s + j * ss * ES, ES); \
      }                                                                                   \
    }                                                                                     \
  }

DEFINE_COPY(1)
DEFINE_COPY(2)
DEFINE_COPY(4)
DEFINE_COPY(8)

/* f32 and f64 from one body; the f64 variant is what gradient checks run. */
#define DEFINE_FLOAT(T, S)                                                                \
  static void accumulate_##S(const T *src, T *dst, const duet_strided *m) {               \
    if (m->ndim == 0) {                                                                   \
      dst[m->dst_offset] += src[m->src_offset];                                           \
      return;                                                                             \
    }                                                                                     \
    int64_t inner = m->shape[m->ndim - 1], rows = map_rows(m);                            \
    int64_t ss = m->src_stride[m->ndim - 1], ds = m->dst_stride[m->ndim - 1];             \
    _Pragma("omp parallel for schedule(static) if (rows * inner >= DUET_CPU_PARALLEL_MIN && rows > 1)") \
    for (int64_t r = 0; r < rows; r++) {                                                  \
      int64_t so, dof;                                                                    \
      map_row_offsets(m, r, &so, &dof);                                                   \
      const T *s = src + so;                                                              \
      T *d = dst + dof;                                                                   \
      if (ss == 1 && ds == 1) {                                                           \
        for (int64_t j = 0; j < inner; j++) d[j] += s[j];                                 \
      } else {                                                                            \
        for (int64_t j = 0; j < inner; j++) d[j * ds] += s[j * ss];                       \
      }                                                                                   \
    }                                                                                     \
  }                                                                                       \
  static void embedding_backward_##S(const T *dout, const int32_t *ids, int64_t n,        \
                                     int64_t dim, int64_t vocab, T *dtable) {             \
    /* Each block of table rows belongs to one thread, which scans every id in order:     \
     * rows never race and a row's sum is formed in the same order at any thread count.   \
     * Rescanning the ids per block is cheap next to the dim-wide additions. */           \
    int64_t blocks = vocab < 64 ? vocab : 64;                                             \
    _Pragma("omp parallel for schedule(dynamic) if (n * dim >= DUET_CPU_PARALLEL_MIN)")   \
    for (int64_t b = 0; b < blocks; b++) {                                                \
      int64_t lo = vocab * b / blocks, hi = vocab * (b + 1) / blocks;                     \
      for (int64_t r = 0; r < n; r++) {                                                   \
        int64_t id = ids[r];                                                              \
        if (id < lo || id >= hi) continue;                                                \
        const T *s = dout + r * dim;                                                      \
        T *d = dtable + id * dim;                                                         \
        for (int64_t j = 0; j < dim; j++) d[j] += s[j];                                   \
      }                                                                                   \
    }                                                                                     \
  }

DEFINE_FLOAT(float, f32)
DEFINE_FLOAT(double, f64)

static void copy(const duet_tensor *src, duet_tensor *dst, const duet_strided *map) {
  switch (duet_dtype_size(dst->dtype)) {
    case 1: copy_1(src->data, dst->data, map); break;
    case 2: copy_2(src->data, dst->data, map); break;
    case 4: copy_4(src->data, dst->data, map); break;
    case 8: copy_8(src->data, dst->data, map); break;
    default: break;
  }
}

static void accumulate(const duet_tensor *src, duet_tensor *dst, const duet_strided *map) {
  if (dst->dtype == DUET_F64) accumulate_f64(src->data, dst->data, map);
  else accumulate_f32(src->data, dst->data, map);
}

static int64_t find_bad_id(const duet_tensor *ids, int64_t limit) {
  const int32_t *p = ids->data;
  for (int64_t i = 0; i < ids->numel; i++)
    if (p[i] < 0 || p[i] >= limit) return i;
  return -1;
}

static void embedding_forward(const duet_tensor *table, const duet_tensor *ids, duet_tensor *out) {
  const int32_t *id = ids->data;
  const unsigned char *t = table->data;
  unsigned char *o = out->data;
  size_t row = (size_t)table->shape[1] * duet_dtype_size(table->dtype);
  int64_t n = ids->numel;
#pragma omp parallel for schedule(static) if (out->numel >= DUET_CPU_PARALLEL_MIN)
  for (int64_t r = 0; r < n; r++) memcpy(o + (size_t)r * row, t + (size_t)id[r] * row, row);
}

static void embedding_backward(const duet_tensor *dout, const duet_tensor *ids, duet_tensor *dtable) {
  int64_t dim = dtable->shape[1], vocab = dtable->shape[0];
  if (dtable->dtype == DUET_F64)
    embedding_backward_f64(dout->data, ids->data, ids->numel, dim, vocab, dtable->data);
  else
    embedding_backward_f32(dout->data, ids->data, ids->numel, dim, vocab, dtable->data);
}

const struct duet_kernels_layout duet_cpu_layout_kernels = {
    .copy = copy,
    .accumulate = accumulate,
    .find_bad_id = find_bad_id,
    .embedding_forward = embedding_forward,
    .embedding_backward = embedding_backward,
};
