/* CPU kernels for rotary positions, with a per-thread table of their cosines and sines.
 *
 * Angles and their sines are computed in double whatever x's dtype, because positions
 * (seconds, frame or patch indices) times the fastest frequency can be large and f32 would
 * lose the phase. A model applies the same positions in every block, to queries and keys,
 * forward and backward, so each step used to compute the same sines and cosines dozens of
 * times (about 1 % of a tiny.ini step, partly on one thread while the others waited). The
 * table for a set of positions is now kept between calls and found again by the positions'
 * values, not their address: the next step's new tensor with the same positions hits,
 * changed positions miss. The values applied are the same doubles as before, so the bits
 * are unchanged. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu/cpu_kernels.h"
#include "core/ops.h"

/* Tables kept per thread, and the largest one kept (cosine-sine pairs); a larger one is
 * computed for the call and freed. */
#define ROPE_TABLES 8
#define ROPE_TABLE_MAX_PAIRS ((int64_t)1 << 22)

/* Angles (tokens x pairs) from which building a table or applying it uses every thread. */
#define ROPE_PARALLEL_MIN 1024

typedef struct rope_table {
  duet_rope_spec spec;
  duet_dtype pos_dtype;
  int64_t pos_numel;
  void *pos_copy;  /* the positions the table was computed for */
  double *cs;      /* [ntok][npairs][2]: cos, sin */
  uint64_t used;   /* for least-recently-used replacement */
} rope_table;

static _Thread_local rope_table tables[ROPE_TABLES];
static _Thread_local uint64_t table_clock;

static double pos_at(const duet_tensor *pos, int64_t i) {
  return pos->dtype == DUET_F64 ? ((const double *)pos->data)[i] : ((const float *)pos->data)[i];
}

static int same_spec(const duet_rope_spec *a, const duet_rope_spec *b) {
  if (a->n_axes != b->n_axes || a->theta != b->theta) return 0;
  for (int i = 0; i < a->n_axes; i++)
    if (a->pairs_per_axis[i] != b->pairs_per_axis[i]) return 0;
  return 1;
}

/* The frequencies of pairs [p0, p0 + n) in the order the kernel walks them (axis by axis), and
 * the axis each belongs to: pow once per pair and call, not per token. */
static void pair_freqs(const duet_rope_spec *spec, int64_t p0, int64_t n, double *freq, int *axis) {
  int64_t pair = 0;
  for (int a = 0; a < spec->n_axes; a++)
    for (int j = 0; j < spec->pairs_per_axis[a]; j++, pair++) {
      if (pair < p0 || pair >= p0 + n) continue;
      freq[pair - p0] = pow(spec->theta, -(double)j / (double)spec->pairs_per_axis[a]);
      axis[pair - p0] = a;
    }
}

/* cos and sin of token t's angles for pairs [0, n) with the given frequencies, into cs[2n]. */
static void token_angles(const duet_tensor *pos, int n_axes, int64_t t, const double *freq, const int *axis,
                         int64_t n, double *cs) {
  for (int64_t q = 0; q < n; q++) {
    double ang = pos_at(pos, t * n_axes + axis[q]) * freq[q];
    cs[2 * q] = cos(ang);
    cs[2 * q + 1] = sin(ang);
  }
}

static int fill_table(double *cs, const duet_tensor *pos, const duet_rope_spec *spec, int64_t ntok,
                      int64_t npairs) {
  double *freq = malloc((size_t)npairs * sizeof *freq);
  int *axis = malloc((size_t)npairs * sizeof *axis);
  if (!freq || !axis) {
    free(freq), free(axis);
    return 0;
  }
  pair_freqs(spec, 0, npairs, freq, axis);
#pragma omp parallel for schedule(static) if (ntok * npairs >= ROPE_PARALLEL_MIN)
  for (int64_t t = 0; t < ntok; t++) token_angles(pos, spec->n_axes, t, freq, axis, npairs, cs + t * npairs * 2);
  free(freq), free(axis);
  return 1;
}

/* The table for pos and spec: a kept one when the values match, else a new one, kept when
 * small enough. *temp is set when the caller must free the result. NULL when out of memory
 * (the caller then computes the angles as it goes). */
static const double *rope_table_get(const duet_tensor *pos, const duet_rope_spec *spec, int64_t ntok,
                                    int64_t npairs, int *temp) {
  size_t pos_bytes = (size_t)pos->numel * duet_dtype_size(pos->dtype);
  *temp = 0;
  for (int i = 0; i < ROPE_TABLES; i++) {
    rope_table *e = &tables[i];
    if (e->cs && e->pos_dtype == pos->dtype && e->pos_numel == pos->numel && same_spec(&e->spec, spec) &&
        memcmp(e->pos_copy, pos->data, pos_bytes) == 0) {
      e->used = ++table_clock;
      return e->cs;
    }
  }
  double *cs = malloc((size_t)(ntok * npairs) * 2 * sizeof *cs);
  if (!cs || !fill_table(cs, pos, spec, ntok, npairs)) {
    free(cs);
    return NULL;
  }
  void *copy = ntok * npairs <= ROPE_TABLE_MAX_PAIRS ? malloc(pos_bytes ? pos_bytes : 1) : NULL;
  if (!copy) {
    *temp = 1;
    return cs;
  }
  memcpy(copy, pos->data, pos_bytes);
  rope_table *victim = &tables[0];
  for (int i = 1; i < ROPE_TABLES; i++)
    if (!tables[i].cs || (victim->cs && tables[i].used < victim->used)) victim = &tables[i];
  free(victim->cs), free(victim->pos_copy);
  *victim = (rope_table){*spec, pos->dtype, pos->numel, copy, cs, ++table_clock};
  return cs;
}

/* Without memory for a table, the angles are computed per token, ROPE_CHUNK pairs at a time,
 * on the stack (the same values): rotary positions never fail. */
#define ROPE_CHUNK 128

/* One body for both directions: the inverse of a rotation by a is the rotation by -a, so the
 * backward is the forward with the sine negated, accumulating into the gradient. When the
 * positions are shared by the batch ([L, n_axes]), a token's angles serve every sample's row. */
#define DEFINE_ROPE(T, S)                                                                          \
  static void rope_apply_##S(const duet_tensor *x, const duet_tensor *pos, int heads,              \
                             const duet_rope_spec *spec, int inverse, duet_tensor *y) {            \
    const T *px = x->data;                                                                         \
    T *py = y->data;                                                                               \
    int64_t B = x->shape[0], L = x->shape[1], C = x->shape[2], Dh = C / heads;                     \
    int per_sample = pos->ndim == 3;                                                               \
    int64_t npairs = 0, ntok = per_sample ? B * L : L, nsamp = per_sample ? 1 : B;                 \
    for (int a = 0; a < spec->n_axes; a++) npairs += spec->pairs_per_axis[a];                      \
    int temp;                                                                                      \
    const double *tab = rope_table_get(pos, spec, ntok, npairs, &temp);                            \
    for (int64_t p0 = 0; p0 < npairs; p0 += ROPE_CHUNK) {                                          \
      int64_t np = npairs - p0 < ROPE_CHUNK ? npairs - p0 : ROPE_CHUNK;                            \
      double freq[ROPE_CHUNK];                                                                     \
      int axis[ROPE_CHUNK];                                                                        \
      if (!tab) pair_freqs(spec, p0, np, freq, axis);                                              \
      _Pragma("omp parallel for schedule(static) if (ntok * np >= ROPE_PARALLEL_MIN)")             \
      for (int64_t t = 0; t < ntok; t++) {                                                         \
        double buf[2 * ROPE_CHUNK];                                                                \
        const double *row = tab ? tab + (t * npairs + p0) * 2 : buf;                               \
        if (!tab) token_angles(pos, spec->n_axes, t, freq, axis, np, buf);                         \
        T cs[ROPE_CHUNK], sn[ROPE_CHUNK];                                                          \
        for (int64_t q = 0; q < np; q++) {                                                         \
          cs[q] = (T)row[2 * q];                                                                   \
          sn[q] = (T)(inverse ? -row[2 * q + 1] : row[2 * q + 1]);                                 \
        }                                                                                          \
        for (int64_t b = 0; b < nsamp; b++) {                                                      \
          int64_t r = per_sample ? t : b * L + t;                                                  \
          const T *xr = px + r * C;                                                                \
          T *yr = py + r * C;                                                                      \
          for (int64_t h = 0; h < heads; h++) {                                                    \
            for (int64_t q = 0; q < np; q++) {                                                     \
              int64_t i0 = h * Dh + 2 * (p0 + q);                                                  \
              T x0 = xr[i0], x1 = xr[i0 + 1], c = cs[q], s = sn[q];                                \
              if (inverse) {                                                                       \
                yr[i0] += x0 * c - x1 * s;                                                         \
                yr[i0 + 1] += x0 * s + x1 * c;                                                     \
              } else {                                                                             \
                yr[i0] = x0 * c - x1 * s;                                                          \
                yr[i0 + 1] = x0 * s + x1 * c;                                                      \
              }                                                                                    \
            }                                                                                      \
          }                                                                                        \
        }                                                                                          \
      }                                                                                            \
    }                                                                                              \
    if (temp) free((void *)tab);                                                                   \
  }

DEFINE_ROPE(float, f32)
DEFINE_ROPE(double, f64)

void duet_cpu_rope_apply(const duet_tensor *x, const duet_tensor *pos, int heads, const duet_rope_spec *spec,
                         int inverse, duet_tensor *y) {
  if (x->dtype == DUET_F64) rope_apply_f64(x, pos, heads, spec, inverse, y);
  else rope_apply_f32(x, pos, heads, spec, inverse, y);
}
