#include "core/optim.h"

#include "core/cpu/vec_math.h"

#include <stdlib.h>
#include <string.h>

#ifdef DUET_HAVE_CUDA
#include "core/cuda/cuda_optim.h"
#endif

/* Below this many elements a parallel region costs more than it saves. */
#define OMP_MIN_ELEMS 32768
/* Block of the norm reduction: partial sums of blocks this long are added in index order. */
#define SUMSQ_BLOCK 16384
#define SUMSQ_BATCH 256

duet_adamw_config duet_adamw_defaults(void) {
  duet_adamw_config c = {0.9, 0.999, 1e-8, 0.0};
  return c;
}

static int ends_with(const char *s, size_t n, const char *suffix) {
  size_t k = strlen(suffix);
  return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

int duet_decay_default(const duet_tensor *param, void *ctx) {
  (void)ctx;
  if (param->ndim < 2) return 0;
  const char *s = param->name ? param->name : "";
  while (*s) {
    const char *dot = strchr(s, '.');
    size_t n = dot ? (size_t)(dot - s) : strlen(s);
    if (ends_with(s, n, "emb") || ends_with(s, n, "embed") || ends_with(s, n, "embedding") ||
        ends_with(s, n, "embeddings"))
      return 0;
    s += n + (dot ? 1 : 0);
  }
  return 1;
}

duet_adamw_hparams duet_adamw_hparams_make(const duet_adamw_config *cfg, double lr, int64_t step,
                                           int decay) {
  double bc1 = 1.0 - pow(cfg->beta1, (double)step);
  double bc2 = 1.0 - pow(cfg->beta2, (double)step);
  double wd = decay ? cfg->weight_decay : 0.0;
  duet_adamw_hparams h;
  h.lr = (float)lr;
  h.beta1 = (float)cfg->beta1;
  h.beta2 = (float)cfg->beta2;
  h.eps = (float)cfg->eps;
  h.one_minus_beta1 = (float)(1.0 - cfg->beta1);
  h.one_minus_beta2 = (float)(1.0 - cfg->beta2);
  h.weight_decay = (float)wd;
  h.step_size = (float)(lr / bc1);
  h.bc2_sqrt = (float)sqrt(bc2);
  h.decay_factor = (float)(1.0 - lr * wd);
  return h;
}

/* The element loop sits in a function of its own so that it gets AVX2 and AVX-512 clones (an
 * OpenMP region's body is compiled for the baseline only); it vectorises only because C is
 * built with -fno-math-errno (CMakeLists.txt): sqrtf's errno branch would keep it scalar, as it
 * did before that flag. Vector square roots and divisions round as the scalar ones do, and C17
 * contracts nothing into FMAs, so every clone gives the bits of duet_adamw_update_elem (which
 * the CUDA kernel matches too). */
#define ADAMW_BLOCK 8192
DUET_VEC_F32 static void adamw_block(float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
                                     int64_t n, const duet_adamw_hparams *h) {
  const duet_adamw_hparams hp = *h;
  for (int64_t i = 0; i < n; i++) duet_adamw_update_elem(&p[i], g[i], &m[i], &v[i], &hp);
}

void duet_adamw_update_range(float *p, const float *g, float *m, float *v, int64_t lo, int64_t hi,
                             const duet_adamw_hparams *h) {
  int64_t n = hi - lo, nblk = (n + ADAMW_BLOCK - 1) / ADAMW_BLOCK;
#pragma omp parallel for schedule(static) if (n > OMP_MIN_ELEMS)
  for (int64_t b = 0; b < nblk; b++) {
    int64_t i = lo + b * ADAMW_BLOCK;
    adamw_block(p + i, g + i, m + i, v + i, hi - i < ADAMW_BLOCK ? hi - i : ADAMW_BLOCK, h);
  }
}

static int trainable(const duet_tensor *t) { return t->requires_grad && t->grad; }

int duet_optim_device_ok(duet_device dev) {
  if (dev == DUET_CPU) return 1;
#ifdef DUET_HAVE_CUDA
  return dev == DUET_CUDA;
#else
  return 0;
#endif
}

int duet_adamw_update_tensor(duet_tensor *p, const duet_tensor *g, duet_tensor *m, duet_tensor *v, int64_t lo,
                             int64_t hi, const duet_adamw_hparams *h, duet_err *err) {
  if (p->device == DUET_CPU) {
    duet_adamw_update_range(p->data, g->data, m->data, v->data, lo, hi, h);
    return DUET_OK;
  }
#ifdef DUET_HAVE_CUDA
  if (p->device == DUET_CUDA) return duet_cuda_adamw_update_range(p->data, g->data, m->data, v->data, lo, hi, h, err);
#endif
  return duet_err_set(err, DUET_ENOTSUP, "adamw: '%s' lives on device %d, which has no optimizer kernels",
                      p->name ? p->name : "?", (int)p->device);
}

int duet_adamw_init(duet_adamw *opt, duet_param_set *ps, const duet_adamw_config *cfg,
                    duet_decay_rule rule, void *rule_ctx, duet_err *err) {
  memset(opt, 0, sizeof *opt);
  if (!(cfg->beta1 >= 0 && cfg->beta1 < 1 && cfg->beta2 >= 0 && cfg->beta2 < 1 && cfg->eps > 0 &&
        cfg->weight_decay >= 0))
    return duet_err_set(err, DUET_EINVAL,
                        "adamw: need 0 <= beta1, beta2 < 1, eps > 0, weight_decay >= 0 "
                        "(got %g, %g, %g, %g)",
                        cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay);
  for (int i = 0; i < ps->count; i++) {
    const duet_tensor *t = ps->items[i];
    if (!trainable(t)) continue;
    if (t->dtype != DUET_F32 || t->grad->dtype != DUET_F32 || !duet_optim_device_ok(t->device) ||
        t->grad->device != t->device)
      return duet_err_set(err, DUET_ENOTSUP, "adamw: parameter '%s' is %s on %s; f32 on the CPU%s needed",
                          t->name, duet_dtype_name(t->dtype), t->device == DUET_CPU ? "CPU" : "CUDA",
                          duet_optim_device_ok(DUET_CUDA) ? " or the GPU" : "");
  }
  opt->cfg = *cfg;
  opt->params = ps;
  opt->count = ps->count;
  size_t n = (size_t)ps->count + 1;
  opt->m = calloc(n, sizeof *opt->m);
  opt->v = calloc(n, sizeof *opt->v);
  opt->decay = calloc(n, 1);
  if (!opt->m || !opt->v || !opt->decay) {
    duet_adamw_free(opt);
    return duet_err_set(err, DUET_ENOMEM, "adamw: out of memory");
  }
  if (!rule) rule = duet_decay_default;
  for (int i = 0; i < ps->count; i++) {
    const duet_tensor *t = ps->items[i];
    if (!trainable(t)) continue;
    opt->decay[i] = (uint8_t)(rule(t, rule_ctx) != 0);
    opt->m[i] = duet_tensor_new_on(DUET_F32, t->device, t->ndim, t->shape, err);
    opt->v[i] = opt->m[i] ? duet_tensor_new_on(DUET_F32, t->device, t->ndim, t->shape, err) : NULL;
    if (!opt->v[i]) {
      duet_adamw_free(opt);
      return duet_err_prefix(err, "adamw: moments of '%s': ", t->name);
    }
  }
  return DUET_OK;
}

void duet_adamw_free(duet_adamw *opt) {
  for (int i = 0; i < opt->count; i++) {
    if (opt->m) duet_tensor_free_any(opt->m[i]);
    if (opt->v) duet_tensor_free_any(opt->v[i]);
  }
  free(opt->m);
  free(opt->v);
  free(opt->decay);
  memset(opt, 0, sizeof *opt);
}

int duet_adamw_index(const duet_adamw *opt, const char *name) {
  for (int i = 0; i < opt->count; i++)
    if (strcmp(opt->params->items[i]->name, name) == 0) return i;
  return -1;
}

int duet_adamw_set_decay(duet_adamw *opt, const char *name, int decay, duet_err *err) {
  int i = duet_adamw_index(opt, name);
  if (i < 0) return duet_err_set(err, DUET_EINVAL, "adamw: no parameter '%s'", name);
  opt->decay[i] = (uint8_t)(decay != 0);
  return DUET_OK;
}

/* Every CPU parameter's update as one parallel loop over blocks (duet_blocks_parallel): most
 * of a small model's tensors are below OMP_MIN_ELEMS, and updated one by one they ran on one
 * thread while the others waited. The same elementwise update, so the same bits. */
typedef struct adamw_pass {
  duet_adamw *opt;
  duet_adamw_hparams h[2]; /* without and with weight decay */
} adamw_pass;

static void adamw_pass_block(void *ctx, int i, int64_t lo, int64_t len) {
  adamw_pass *a = ctx;
  duet_tensor *t = a->opt->params->items[i];
  adamw_block((float *)t->data + lo, (const float *)t->grad->data + lo, (float *)a->opt->m[i]->data + lo,
              (float *)a->opt->v[i]->data + lo, len, &a->h[a->opt->decay[i] != 0]);
}

int duet_adamw_step(duet_adamw *opt, double lr, duet_err *err) {
  if (!opt->params || opt->params->count != opt->count)
    return duet_err_set(err, DUET_EINVAL, "adamw: the parameter set changed after init (%d -> %d)",
                        opt->count, opt->params ? opt->params->count : 0);
  if (!(lr >= 0) || isinf(lr)) return duet_err_set(err, DUET_ENUMERIC, "adamw: learning rate %g", lr);
  int64_t step = opt->step + 1;
  if (opt->params->device == DUET_CPU) {
    adamw_pass a = {opt, {duet_adamw_hparams_make(&opt->cfg, lr, step, 0),
                          duet_adamw_hparams_make(&opt->cfg, lr, step, 1)}};
    duet_blocks_parallel(opt->m, opt->count, ADAMW_BLOCK, OMP_MIN_ELEMS, adamw_pass_block, &a);
    opt->step = step;
    return DUET_OK;
  }
  for (int i = 0; i < opt->count; i++) {
    duet_tensor *t = opt->params->items[i];
    if (!opt->m[i]) continue;
    duet_adamw_hparams h = duet_adamw_hparams_make(&opt->cfg, lr, step, opt->decay[i]);
    int rc = duet_adamw_update_tensor(t, t->grad, opt->m[i], opt->v[i], 0, t->numel, &h, err);
    if (rc) return rc;
  }
  opt->step = step;
  return DUET_OK;
}

/* Eight running sums in a fixed pattern: independent chains that the compiler can vectorise,
 * added in a fixed order, so the result stays independent of threads. Its own function so
 * that it gets the vector clones: the OpenMP region around it is compiled for baseline x86-64. */
DUET_VEC_F32 static double sumsq_block(const float *restrict x, int64_t n) {
  double lane[8] = {0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) lane[j] += (double)x[i + j] * x[i + j];
  for (; i < n; i++) lane[0] += (double)x[i] * x[i];
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

static double sumsq_f32(const float *x, int64_t n) {
  double total = 0;
  int64_t nblocks = (n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
  for (int64_t b0 = 0; b0 < nblocks; b0 += SUMSQ_BATCH) {
    double part[SUMSQ_BATCH];
    int64_t nb = nblocks - b0 < SUMSQ_BATCH ? nblocks - b0 : SUMSQ_BATCH;
#pragma omp parallel for schedule(static) if (nb > 1)
    for (int64_t b = 0; b < nb; b++) {
      int64_t lo = (b0 + b) * SUMSQ_BLOCK, hi = lo + SUMSQ_BLOCK < n ? lo + SUMSQ_BLOCK : n;
      part[b] = sumsq_block(x + lo, hi - lo);
    }
    for (int64_t b = 0; b < nb; b++) total += part[b];
  }
  return total;
}

static double grad_sumsq(const duet_tensor *t) {
  const duet_tensor *g = t->grad;
#ifdef DUET_HAVE_CUDA
  if (g->device == DUET_CUDA) {
    /* f32 only on the GPU (adamw_init checked); a failure reads as NaN, which the caller
     * reports as a non-finite norm. */
    duet_cuda_span sp = {g->data, g->numel};
    double ss = 0;
    if (g->dtype != DUET_F32 || duet_cuda_grad_sumsq(&sp, 1, &ss, NULL)) return NAN;
    return ss;
  }
#endif
  if (g->dtype == DUET_F32) return sumsq_f32(g->data, g->numel);
  double s = 0;
  for (int64_t i = 0; i < g->numel; i++) {
    double x = duet_tensor_get(g, i);
    s += x * x;
  }
  return s;
}

double duet_grad_sumsq(const duet_param_set *ps) {
  double total = 0;
#ifdef DUET_HAVE_CUDA
  if (ps->device == DUET_CUDA) {
    /* Spans in batches: one read-back per batch instead of one per parameter. */
    enum { BATCH = 128 };
    duet_cuda_span spans[BATCH];
    int n = 0;
    for (int i = 0; i <= ps->count; i++) {
      const duet_tensor *t = i < ps->count ? ps->items[i] : NULL;
      if (t && trainable(t)) {
        if (t->grad->device != DUET_CUDA || t->grad->dtype != DUET_F32) return NAN;
        spans[n++] = (duet_cuda_span){t->grad->data, t->grad->numel};
      }
      if (n == BATCH || (!t && n)) {
        double ss = 0;
        if (duet_cuda_grad_sumsq(spans, n, &ss, NULL)) return NAN;
        total += ss;
        n = 0;
      }
    }
    return total;
  }
#endif
  for (int i = 0; i < ps->count; i++)
    if (trainable(ps->items[i])) total += grad_sumsq(ps->items[i]);
  return total;
}

int duet_grad_clip(duet_param_set *ps, double max_norm, double *norm, duet_err *err) {
  double n = sqrt(duet_grad_sumsq(ps));
  if (norm) *norm = n;
  if (!isfinite(n)) {
    /* The sum can overflow to Inf with every gradient finite; then no name is blamed. */
    for (int i = 0; i < ps->count; i++) {
      const duet_tensor *t = ps->items[i];
      if (trainable(t) && !isfinite(grad_sumsq(t)))
        return duet_err_set(err, DUET_ENUMERIC, "gradient norm is %s (first non-finite in '%s')",
                            isnan(n) ? "NaN" : "Inf", t->name);
    }
    return duet_err_set(err, DUET_ENUMERIC, "gradient norm is %s", isnan(n) ? "NaN" : "Inf");
  }
  if (max_norm > 0 && n > max_norm) duet_grad_scale(ps, max_norm / n);
  return DUET_OK;
}

void duet_grad_scale(duet_param_set *ps, double s) {
  for (int i = 0; i < ps->count; i++) {
    duet_tensor *t = ps->items[i];
    if (!trainable(t)) continue;
    duet_tensor *g = t->grad;
    int64_t n = g->numel;
#ifdef DUET_HAVE_CUDA
    if (g->device == DUET_CUDA) {
      if (g->dtype == DUET_F32) duet_cuda_scale_f32(g->data, n, (float)s, NULL);
      continue;
    }
#endif
    if (g->dtype == DUET_F32) {
      float *x = g->data;
      const float fs = (float)s;
#pragma omp parallel for schedule(static) if (n > OMP_MIN_ELEMS)
      for (int64_t k = 0; k < n; k++) x[k] *= fs;
    } else {
      for (int64_t k = 0; k < n; k++) duet_tensor_set(g, k, duet_tensor_get(g, k) * s);
    }
  }
}
