/* Progress lines, through the caller's log callback (the library prints nothing itself). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "train/trainer_internal.h"

double duet_trainer_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void duet_trainer_logf(duet_trainer *t, const char *fmt, ...) {
  if (!t->log || !t->is_main) return;
  char line[1280];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  t->log(t->log_ctx, line);
}

static void format_duration(double s, char *buf, size_t size) {
  if (!isfinite(s) || s < 0) {
    snprintf(buf, size, "?");
    return;
  }
  long long x = (long long)(s + 0.5);
  if (x >= 3600) snprintf(buf, size, "%lldh%02lldm", x / 3600, x / 60 % 60);
  else if (x >= 60) snprintf(buf, size, "%lldm%02llds", x / 60, x % 60);
  else snprintf(buf, size, "%llds", x);
}

void duet_trainer_log_progress(duet_trainer *t, const duet_train_stats *s) {
  double per_step = t->window_steps ? t->window_seconds / (double)t->window_steps : 0;
  double tok_s = t->window_seconds > 0 ? (double)t->window_tokens / t->window_seconds : 0;
  char eta[32];
  format_duration(per_step * (double)(t->cfg.train.steps - t->step), eta, sizeof eta);
  int digits = snprintf(NULL, 0, "%lld", (long long)t->cfg.train.steps);
  duet_trainer_logf(t, "step %*lld/%lld  loss %.4f (video %.4f audio %.4f)  |g| %.3g  lr %.2e  %.0f tok/s  %.2f s/step  ETA %s",
                    digits, (long long)s->step, (long long)t->cfg.train.steps, s->loss, s->loss_video, s->loss_audio,
                    s->grad_norm, s->lr, tok_s, per_step, eta);
  t->window_seconds = 0;
  t->window_tokens = 0;
  t->window_steps = 0;
}
