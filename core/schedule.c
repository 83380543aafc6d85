#include "core/schedule.h"

#include <math.h>
#include <string.h>

int duet_lr_schedule_check(const duet_lr_schedule *s, duet_err *err) {
  if (s->kind != DUET_LR_CONSTANT && s->kind != DUET_LR_COSINE)
    return duet_err_set(err, DUET_EINVAL, "lr schedule: unknown kind %d", (int)s->kind);
  if (!(s->base_lr >= 0) || !isfinite(s->base_lr))
    return duet_err_set(err, DUET_EINVAL, "lr schedule: base lr %g must be finite and >= 0", s->base_lr);
  if (s->warmup_steps < 0)
    return duet_err_set(err, DUET_EINVAL, "lr schedule: negative warmup %lld", (long long)s->warmup_steps);
  if (s->kind == DUET_LR_COSINE) {
    if (!(s->min_lr >= 0 && s->min_lr <= s->base_lr))
      return duet_err_set(err, DUET_EINVAL, "lr schedule: min lr %g outside [0, base lr %g]", s->min_lr,
                          s->base_lr);
    if (s->total_steps < s->warmup_steps)
      return duet_err_set(err, DUET_EINVAL, "lr schedule: total steps %lld shorter than warmup %lld",
                          (long long)s->total_steps, (long long)s->warmup_steps);
  }
  return DUET_OK;
}

double duet_lr_at(const duet_lr_schedule *s, int64_t step) {
  if (step < 0) step = 0;
  if (step < s->warmup_steps) return s->base_lr * (double)(step + 1) / (double)s->warmup_steps;
  if (s->kind == DUET_LR_CONSTANT) return s->base_lr;
  int64_t span = s->total_steps - s->warmup_steps;
  double q = span > 0 ? (double)(step - s->warmup_steps) / (double)span : 1.0;
  if (q > 1) q = 1;
  return s->min_lr + (s->base_lr - s->min_lr) * 0.5 * (1.0 + cos(M_PI * q));
}

int duet_lr_kind_parse(const char *name, duet_lr_kind *kind, duet_err *err) {
  if (strcmp(name, "constant") == 0) *kind = DUET_LR_CONSTANT;
  else if (strcmp(name, "cosine") == 0) *kind = DUET_LR_COSINE;
  else return duet_err_set(err, DUET_EINVAL, "unknown lr schedule '%s' (constant or cosine)", name);
  return DUET_OK;
}

const char *duet_lr_kind_name(duet_lr_kind kind) {
  return kind == DUET_LR_COSINE ? "cosine" : kind == DUET_LR_CONSTANT ? "constant" : "?";
}
