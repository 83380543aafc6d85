/* Learning-rate schedules: lr as a pure function of the step, so a resumed run, every rank and
 * a plot of the schedule all agree without carrying any schedule state.
 *
 * step counts updates from 0 (the lr of the first update is lr_at(0)). Warmup rises linearly
 * over warmup_steps updates, reaching base_lr at update warmup_steps - 1:
 *   lr(s) = base_lr * (s + 1) / warmup_steps                       for s < warmup_steps
 * then
 *   constant: lr(s) = base_lr
 *   cosine:   lr(s) = min_lr + (base_lr - min_lr) * (1 + cos(pi * q)) / 2,
 *             q = (s - warmup_steps) / (total_steps - warmup_steps), clamped to [0, 1],
 *             so lr = min_lr from total_steps on. */
#ifndef DUET_CORE_SCHEDULE_H
#define DUET_CORE_SCHEDULE_H

#include <stdint.h>

#include "core/error.h"

typedef enum duet_lr_kind { DUET_LR_CONSTANT = 0, DUET_LR_COSINE = 1 } duet_lr_kind;

typedef struct duet_lr_schedule {
  duet_lr_kind kind;
  double base_lr;
  double min_lr;        /* cosine only */
  int64_t warmup_steps; /* 0: no warmup */
  int64_t total_steps;  /* cosine only: the update at which lr reaches min_lr */
} duet_lr_schedule;

/* Checks the numbers (lr >= 0, min_lr <= base_lr, warmup <= total for cosine). */
int duet_lr_schedule_check(const duet_lr_schedule *s, duet_err *err);
double duet_lr_at(const duet_lr_schedule *s, int64_t step);

/* "constant" or "cosine" (for configs). */
int duet_lr_kind_parse(const char *name, duet_lr_kind *kind, duet_err *err);
const char *duet_lr_kind_name(duet_lr_kind kind);

#endif
