#include <math.h>

#include "core/cpu/cpu_kernels.h"

/* The squared error is summed in this many fixed element ranges, each in order, and the
 * partial sums then in order: the same bits at any thread count. */
#define MSE_BLOCKS 64

/* f32 and f64 from one body; the f64 variant is what gradient checks run, so it must compute
 * exactly the same function. A mask is u8 or the prediction's dtype; `mv(r)` reads row r. */
#define DEFINE_LOSS(T, S)                                                                  \
  typedef struct mask_##S {                                                                \
    const uint8_t *u8;                                                                     \
    const T *f;                                                                            \
  } mask_##S;                                                                              \
  static mask_##S mask_view_##S(const duet_tensor *mask) {                                 \
    mask_##S m = {NULL, NULL};                                                             \
    if (mask && mask->dtype == DUET_U8) m.u8 = mask->data;                                 \
    else if (mask) m.f = mask->data;                                                       \
    return m;                                                                              \
  }                                                                                        \
  static inline double mv_##S(mask_##S m, int64_t r) {                                     \
    return m.u8 ? (double)m.u8[r] : m.f ? (double)m.f[r] : 1.0;                            \
  }                                                                                        \
  static void mse_forward_##S(const duet_tensor *pred, const duet_tensor *target,          \
                              const duet_tensor *mask, double weight, duet_tensor *loss,   \
                              duet_tensor *coef) {                                         \
    const T *p = pred->data, *t = target->data;                                            \
    mask_##S m = mask_view_##S(mask);                                                      \
    int64_t n = pred->numel, rows = mask ? mask->numel : n, dim = n / rows;                \
    double part[MSE_BLOCKS];                                                               \
    _Pragma("omp parallel for schedule(static) if (n >= DUET_CPU_PARALLEL_MIN)")           \
    for (int b = 0; b < MSE_BLOCKS; b++) {                                                 \
      int64_t i = n * b / MSE_BLOCKS, hi = n * (b + 1) / MSE_BLOCKS;                       \
      double acc = 0;                                                                      \
      while (i < hi) {                                                                     \
        int64_t r = i / dim, end = (r + 1) * dim < hi ? (r + 1) * dim : hi;                \
        double w = mv_##S(m, r);                                                           \
        /* Skipping masked rows keeps a NaN or Inf there out of the loss. */               \
        if (w == 0) {                                                                      \
          i = end;                                                                         \
          continue;                                                                        \
        }                                                                                  \
        double racc = 0;                                                                   \
        for (; i < end; i++) {                                                             \
          double d = (double)p[i] - (double)t[i];                                          \
          racc += d * d;                                                                   \
        }                                                                                  \
        acc += w * racc;                                                                   \
      }                                                                                    \
      part[b] = acc;                                                                       \
    }                                                                                      \
    double sq = 0, msum = 0;                                                               \
    for (int b = 0; b < MSE_BLOCKS; b++) sq += part[b];                                    \
    for (int64_t r = 0; r < rows; r++) msum += mv_##S(m, r);                               \
    double c = msum != 0 ? weight / (msum * (double)dim) : 0.0;                            \
    ((T *)coef->data)[0] = (T)c;                                                           \
    ((T *)loss->data)[0] = (T)(c * sq);                                                    \
  }                                                                                        \
  static void mse_backward_##S(const duet_tensor *dloss, const duet_tensor *coef,          \
                               const duet_tensor *pred, const duet_tensor *target,         \
                               const duet_tensor *mask, duet_tensor *dpred) {              \
    const T *p = pred->data, *t = target->data;                                            \
    T *dp = dpred->data;                                                                   \
    mask_##S m = mask_view_##S(mask);                                                      \
    int64_t n = pred->numel, rows = mask ? mask->numel : n, dim = n / rows;                \
    double g = 2.0 * (double)((const T *)dloss->data)[0] * (double)((const T *)coef->data)[0]; \
    if (g == 0) return;                                                                    \
    _Pragma("omp parallel for schedule(static) if (n >= DUET_CPU_PARALLEL_MIN)")           \
    for (int64_t r = 0; r < rows; r++) {                                                   \
      double w = g * mv_##S(m, r);                                                         \
      if (w == 0) continue;                                                                \
      for (int64_t i = r * dim; i < (r + 1) * dim; i++)                                    \
        dp[i] += (T)(w * ((double)p[i] - (double)t[i]));                                   \
    }                                                                                      \
  }                                                                                        \
  static void timestep_forward_##S(const duet_tensor *tt, double max_period, double scale, \
                                   duet_tensor *out) {                                     \
    const T *t = tt->data;                                                                 \
    T *o = out->data;                                                                      \
    int64_t batch = tt->numel, dim = out->shape[1], half = dim / 2;                        \
    double lp = log(max_period);                                                           \
    _Pragma("omp parallel for schedule(static) if (out->numel >= DUET_CPU_PARALLEL_MIN)")  \
    for (int64_t b = 0; b < batch; b++) {                                                  \
      for (int64_t k = 0; k < half; k++) {                                                 \
        double a = scale * (double)t[b] * exp(-lp * (double)k / (double)half);             \
        o[b * dim + k] = (T)cos(a);                                                        \
        o[b * dim + half + k] = (T)sin(a);                                                 \
      }                                                                                    \
    }                                                                                      \
  }                                                                                        \
  static void timestep_backward_##S(const duet_tensor *tt, const duet_tensor *dout,        \
                                    double max_period, double scale, duet_tensor *dtt) {   \
    const T *t = tt->data, *dy = dout->data;                                               \
    T *dt = dtt->data;                                                                     \
    int64_t batch = tt->numel, dim = dout->shape[1], half = dim / 2;                       \
    double lp = log(max_period);                                                           \
    _Pragma("omp parallel for schedule(static) if (dout->numel >= DUET_CPU_PARALLEL_MIN)") \
    for (int64_t b = 0; b < batch; b++) {                                                  \
      double acc = 0;                                                                      \
      for (int64_t k = 0; k < half; k++) {                                                 \
        double da = scale * exp(-lp * (double)k / (double)half);                           \
        double a = da * (double)t[b];                                                      \
        acc += da * (-sin(a) * (double)dy[b * dim + k] + cos(a) * (double)dy[b * dim + half + k]); \
      }                                                                                    \
      dt[b] += (T)acc;                                                                     \
    }                                                                                      \
  }

DEFINE_LOSS(float, f32)
DEFINE_LOSS(double, f64)

#define DISPATCH(name, t, ...) \
  do { if ((t)->dtype == DUET_F64) name##_f64(__VA_ARGS__); else name##_f32(__VA_ARGS__); } while (0)

static void mse_forward(const duet_tensor *pred, const duet_tensor *target, const duet_tensor *mask,
                        double weight, duet_tensor *loss, duet_tensor *coef) {
  DISPATCH(mse_forward, pred, pred, target, mask, weight, loss, coef);
}
static void mse_backward(const duet_tensor *dloss, const duet_tensor *coef, const duet_tensor *pred,
                         const duet_tensor *target, const duet_tensor *mask, duet_tensor *dpred) {
  DISPATCH(mse_backward, pred, dloss, coef, pred, target, mask, dpred);
}
static void timestep_forward(const duet_tensor *t, double max_period, double scale, duet_tensor *out) {
  DISPATCH(timestep_forward, t, t, max_period, scale, out);
}
static void timestep_backward(const duet_tensor *t, const duet_tensor *dout, double max_period,
                              double scale, duet_tensor *dt) {
  DISPATCH(timestep_backward, t, t, dout, max_period, scale, dt);
}

const struct duet_kernels_loss duet_cpu_loss_kernels = {
    .mse_forward = mse_forward,
    .mse_backward = mse_backward,
    .timestep_forward = timestep_forward,
    .timestep_backward = timestep_backward,
};
