#include <string.h>

#include "core/cpu/cpu_kernels.h"
#include "core/cpu/vec_math.h"

/* Columns per block of reduce_rows. */
#define RED_BLOCK 64

/* Every kernel comes in f32 and f64 from one body; the f64 variant is what gradient checks
 * run, so it must compute exactly the same function. */
#define DEFINE_ELEMENTWISE(T, S, VEC)                                                          \
  static void binary_##S(duet_binary_op op, const duet_tensor *a, const duet_tensor *b,   \
                         duet_tensor *y) {                                                 \
    const T *pa = a->data, *pb = b->data;                                                  \
    T *py = y->data;                                                                       \
    int64_t n = a->numel, bn = b->numel, rows = n / bn;                                    \
    _Pragma("omp parallel for schedule(static) if (n >= DUET_CPU_PARALLEL_MIN)")           \
    for (int64_t r = 0; r < rows; r++) {                                                   \
      const T *ra = pa + r * bn;                                                           \
      T *ry = py + r * bn;                                                                 \
      switch (op) {                                                                        \
        case DUET_BINARY_ADD: for (int64_t j = 0; j < bn; j++) ry[j] = ra[j] + pb[j]; break; \
        case DUET_BINARY_SUB: for (int64_t j = 0; j < bn; j++) ry[j] = ra[j] - pb[j]; break; \
        case DUET_BINARY_MUL: for (int64_t j = 0; j < bn; j++) ry[j] = ra[j] * pb[j]; break; \
      }                                                                                    \
    }                                                                                      \
  }                                                                                        \
  static void axpy_##S(double alpha, const duet_tensor *src, duet_tensor *dst) {          \
    const T *x = src->data;                                                                \
    T *y = dst->data;                                                                      \
    T a = (T)alpha;                                                                        \
    int64_t n = dst->numel;                                                                \
    _Pragma("omp parallel for simd schedule(static) if (n >= DUET_CPU_PARALLEL_MIN)")      \
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];                                      \
  }                                                                                        \
  /* One row of bcast_acc, with the vector clones (VEC) its OpenMP region lacks. */        \
  VEC static void bcast_row_##S(T *rd, const T *s, const T *ro, T a, int64_t sn) {         \
    if (ro)                                                                                \
      for (int64_t j = 0; j < sn; j++) rd[j] += a * s[j] * ro[j];                          \
    else                                                                                   \
      for (int64_t j = 0; j < sn; j++) rd[j] += a * s[j];                                  \
  }                                                                                        \
  static void bcast_acc_##S(double alpha, const duet_tensor *src, const duet_tensor *other,\
                            duet_tensor *dst) {                                            \
    const T *s = src->data, *o = other ? other->data : NULL;                               \
    T *d = dst->data;                                                                      \
    T a = (T)alpha;                                                                        \
    int64_t n = dst->numel, sn = src->numel, rows = n / sn;                                \
    _Pragma("omp parallel for schedule(static) if (n >= DUET_CPU_PARALLEL_MIN)")           \
    for (int64_t r = 0; r < rows; r++)                                                     \
      bcast_row_##S(d + r * sn, s, o ? o + r * sn : NULL, a, sn);                          \
  }                                                                                        \
  /* Columns [j0, j0 + nj) of reduce_rows, nj <= RED_BLOCK: walks the rows, so memory is read \
   * sequentially (one column at a time would read one value per cache line, for bias         \
   * gradients over thousands of rows), each column summed over the rows in order. */          \
  VEC static void reduce_block_##S(const T *s, const T *o, int64_t n, int64_t rows, int64_t j0,  \
                                   int64_t nj, double *acc) {                                    \
    for (int64_t r = 0; r < rows; r++) {                                                   \
      const T *sr = s + r * n + j0;                                                        \
      if (o) {                                                                             \
        const T *orow = o + r * n + j0;                                                    \
        for (int64_t j = 0; j < nj; j++) acc[j] += (double)sr[j] * (double)orow[j];        \
      } else {                                                                             \
        for (int64_t j = 0; j < nj; j++) acc[j] += (double)sr[j];                          \
      }                                                                                    \
    }                                                                                      \
  }                                                                                        \
  static void reduce_rows_##S(double alpha, const duet_tensor *src,                        \
                              const duet_tensor *other, duet_tensor *dst) {                \
    const T *s = src->data, *o = other ? other->data : NULL;                               \
    T *d = dst->data;                                                                      \
    int64_t n = dst->numel, rows = src->numel / n, nblk = (n + RED_BLOCK - 1) / RED_BLOCK;  \
    if (n == 1) { /* a full sum: one accumulator in a register, not a block of them */      \
      double acc = 0;                                                                      \
      if (o)                                                                               \
        for (int64_t r = 0; r < rows; r++) acc += (double)s[r] * (double)o[r];             \
      else                                                                                 \
        for (int64_t r = 0; r < rows; r++) acc += (double)s[r];                            \
      d[0] += (T)(alpha * acc);                                                            \
      return;                                                                              \
    }                                                                                      \
    /* Columns are independent: split them across threads by blocks, so the result does    \
     * not depend on the thread count. */                                                  \
    _Pragma("omp parallel for schedule(static) if (src->numel >= DUET_CPU_PARALLEL_MIN && n > 1)") \
    for (int64_t blk = 0; blk < nblk; blk++) {                                             \
      int64_t j0 = blk * RED_BLOCK, nj = n - j0 < RED_BLOCK ? n - j0 : RED_BLOCK;          \
      double acc[RED_BLOCK] = {0};                                                         \
      reduce_block_##S(s, o, n, rows, j0, nj, acc);                                        \
      for (int64_t j = 0; j < nj; j++) d[j0 + j] += (T)(alpha * acc[j]);                   \
    }                                                                                      \
  }                                                                                        \
  static void scale_##S(double s, const duet_tensor *x, duet_tensor *y) {                  \
    const T *px = x->data;                                                                 \
    T *py = y->data;                                                                       \
    T a = (T)s;                                                                            \
    int64_t n = x->numel;                                                                  \
    _Pragma("omp parallel for simd schedule(static) if (n >= DUET_CPU_PARALLEL_MIN)")      \
    for (int64_t i = 0; i < n; i++) py[i] = a * px[i];                                     \
  }                                                                                        \
  static void fill_##S(duet_tensor *y, double value) {                                     \
    T *py = y->data;                                                                       \
    T v = (T)value;                                                                        \
    for (int64_t i = 0; i < y->numel; i++) py[i] = v;                                      \
  }

DEFINE_ELEMENTWISE(float, f32, DUET_VEC_F32)
DEFINE_ELEMENTWISE(double, f64, )

/* Dispatch on dtype: f64 for gradient checks, f32 otherwise. */
#define DISPATCH(name, t, ...) \
  do { if ((t)->dtype == DUET_F64) name##_f64(__VA_ARGS__); else name##_f32(__VA_ARGS__); } while (0)

static void binary(duet_binary_op op, const duet_tensor *a, const duet_tensor *b, duet_tensor *y) {
  DISPATCH(binary, a, op, a, b, y);
}
static void axpy(double alpha, const duet_tensor *src, duet_tensor *dst) {
  DISPATCH(axpy, dst, alpha, src, dst);
}
static void bcast_acc(double alpha, const duet_tensor *src, const duet_tensor *other, duet_tensor *dst) {
  DISPATCH(bcast_acc, dst, alpha, src, other, dst);
}
static void reduce_rows(double alpha, const duet_tensor *src, const duet_tensor *other, duet_tensor *dst) {
  DISPATCH(reduce_rows, dst, alpha, src, other, dst);
}
static void scale(double s, const duet_tensor *x, duet_tensor *y) { DISPATCH(scale, x, s, x, y); }
static void fill(duet_tensor *y, double value) { DISPATCH(fill, y, y, value); }

const struct duet_kernels_elementwise duet_cpu_elementwise_kernels = {
    .binary = binary,
    .axpy = axpy,
    .bcast_acc = bcast_acc,
    .reduce_rows = reduce_rows,
    .scale = scale,
    .fill = fill,
};
